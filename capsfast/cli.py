"""The ``capsfast`` command: ``main(argv) -> exit status``.

Each subcommand is a function taking its argument list; user errors become
one ``capsfast: ...`` line on stderr and exit status 2, never a traceback.
Imports stay inside the commands so ``capsfast check -q`` loads only what
it uses.
"""
import sys

from capsfast.argv import Option, UsageError, parse, usage
from capsfast.errors import CapsfastError, printable

PROG = "capsfast"

INPUT_OPTIONS = (
    Option(("--root",), "probe the host whose files are under DIR (default /)", metavar="DIR", default="/"),
    Option(("--cpuid-dump",), "CPU facts from a 'cpuid -r -1' dump instead of the live CPU", metavar="FILE"),
    Option(("--arch",), "the host architecture (default: DIR/proc/sys/kernel/arch, else this machine's)", metavar="ARCH"),
    Option(("--deep",), "also create a VM with KVM_CREATE_VM (costs hundreds of microseconds)"),
)

FORMAT_OPTION = Option(
    ("--format",), "output format (default libvirt)", metavar="FORMAT",
    choices=("libvirt", "draft", "json"), default="libvirt",
)


def _probe(values):
    from capsfast.probe import probe

    return probe(
        root=values["root"], cpuid=values["cpuid_dump"], arch=values["arch"], deep=values["deep"]
    )


def _parse(name, options, positionals, argv, summary):
    """Parsed values, or None after printing the help."""
    values = parse(options, positionals, argv)
    if values["help"]:
        sys.stdout.write(usage("%s %s" % (PROG, name), options, positionals, summary))
        return None
    return values


def cmd_capabilities(argv):
    summary = "Print what this host offers for virtualization, as libvirt capabilities XML, the draft XML, or JSON."
    machines = Option(("--machines",), "also list each emulator's machine types (runs each emulator once; cached on disk)")
    values = _parse("capabilities", INPUT_OPTIONS + (FORMAT_OPTION, machines), (), argv, summary)
    if values is None:
        return 0
    from capsfast.render import render

    host = _probe(values)
    if values["machines"]:
        from capsfast.machines import attach

        host = host._replace(guests=attach(host.guests, values["root"]))
    sys.stdout.write(render(host, values["format"]))
    return 0


def cmd_check(argv):
    summary = (
        "Tell whether KVM guests can run here, and if not, why and what to do.\n"
        "Exit status: 0 KVM usable, 1 not usable, 2 bad usage or input."
    )
    options = INPUT_OPTIONS + (
        Option(("--json",), "print the report as JSON"),
        Option(("-q", "--quiet"), "print nothing; only the exit status tells"),
    )
    values = _parse("check", options, (), argv, summary)
    if values is None:
        return 0
    host = _probe(values)
    if not values["quiet"]:
        from capsfast import report

        text = report.as_json(host) if values["json"] else report.as_text(host)
        sys.stdout.write(text)
    return 0 if host.kvm.usable else 1


def cmd_record(argv):
    summary = (
        "Capture this host as a replayable scenario: DIR/cpuid.txt (dump format),\n"
        "DIR/root/ (a copy of every file the probe reads, a placeholder per device node)\n"
        "and DIR/scenario.json (MSR values, description).  Replay with\n"
        "capsfast capabilities --root DIR/root --cpuid-dump DIR/cpuid.txt"
    )
    values = _parse("record", (), ("DIR",), argv, summary)
    if values is None:
        return 0
    from capsfast.record import record

    for line in record(values["DIR"]):
        sys.stdout.write(line + "\n")
    return 0


def cmd_export(argv):
    from capsfast.export import main as export_main

    return export_main(argv)


def cmd_bench(argv):
    from capsfast.bench import main

    return main(argv)


COMMANDS = {
    "bench": (cmd_bench, "probe latency on this host, against the floor and the alternatives"),
    "capabilities": (cmd_capabilities, "print the host's capabilities (libvirt XML, draft XML or JSON)"),
    "check": (cmd_check, "can KVM guests run here? why not, and what to do"),
    "export": (cmd_export, "feed fleet tools: NFD node labels, Prometheus textfile, Ansible fact"),
    "record": (cmd_record, "capture this host as a replayable test scenario"),
}


def _main_usage():
    width = max(len(name) for name in COMMANDS)
    rows = "\n".join("  %s  %s" % (name.ljust(width), text) for name, (_f, text) in COMMANDS.items())
    return (
        "usage: %s [--version] COMMAND [options]\n\n"
        "What virtualization this Linux host can do.\n\ncommands:\n%s\n\n"
        "'%s COMMAND --help' describes each command.\n" % (PROG, rows, PROG)
    )


def main(argv=None):
    """Run the CLI; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if not args:
            sys.stderr.write(_main_usage())
            return 2
        if args[0] in ("-h", "--help"):
            sys.stdout.write(_main_usage())
            return 0
        if args[0] == "--version":
            from capsfast._version import __version__

            sys.stdout.write("%s %s\n" % (PROG, __version__))
            return 0
        entry = COMMANDS.get(args[0])
        if entry is None:
            raise UsageError("unknown command %r (see '%s --help')" % (args[0], PROG))
        return entry[0](args[1:])
    except (UsageError, CapsfastError) as e:
        sys.stderr.write("%s: %s\n" % (PROG, printable(str(e))))
        return 2
    except BrokenPipeError:
        # "capsfast capabilities | head": the reader left; that is not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
