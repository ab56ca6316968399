"""The ``capsfast`` command: ``main(argv) -> exit status``.

Each subcommand is a function taking its argument list; user errors become
one ``capsfast: ...`` line on stderr and exit status 2, never a traceback.
Imports stay inside the commands so ``capsfast check -q`` loads only what
it uses.
"""
import sys

from capsfast.cmdline import (
    INPUT_OPTIONS, PROG, Option, UsageError, dispatch, error, flush, format_options, out, parse_or_help, probe_inputs,
)
from capsfast.constants import FORMATS
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def cmd_capabilities(argv: list[str]) -> int:
    summary = "Print what this host offers for virtualization, as libvirt capabilities XML, the draft XML, or JSON."
    machines = Option(("--machines",), "also list each emulator's machine types (runs each emulator once; "
                      "cached on disk)")
    options = INPUT_OPTIONS + format_options(FORMATS, FORMATS[0]) + (machines,)
    values = parse_or_help("%s capabilities" % PROG, options, (), argv, summary)
    if values is None:
        return 0
    from capsfast.render import render

    host = probe_inputs(values)
    if values["machines"]:
        from capsfast.machines import attach

        host = host._replace(guests=attach(host.guests, str(values["root"])))
    out(render(host, str(values["format"])))
    return 0


def cmd_check(argv: list[str]) -> int:
    summary = (
        "Tell whether KVM guests can run here, and if not, why and what to do.\n"
        "Exit status: 0 KVM usable, 1 not usable, 2 bad usage or input."
    )
    options = INPUT_OPTIONS + format_options(("text", "json"), "text") + (
        Option(("-q", "--quiet"), "print nothing; only the exit status tells"),
    )
    values = parse_or_help("%s check" % PROG, options, (), argv, summary)
    if values is None:
        return 0
    host = probe_inputs(values)
    if not values["quiet"]:
        from capsfast import report

        out(report.as_json(host) if values["format"] == "json" else report.as_text(host))
    return 0 if host.kvm.usable else 1


def cmd_record(argv: list[str]) -> int:
    summary = (
        "Capture this host as a replayable scenario: DIR/cpuid.txt (dump format),\n"
        "DIR/root/ (a copy of every file the probe reads, a placeholder per device node)\n"
        "and DIR/scenario.json (MSR values, description).  Replay with\n"
        "capsfast capabilities --root DIR/root --cpuid-dump DIR/cpuid.txt"
    )
    values = parse_or_help("%s record" % PROG, (), ("DIR",), argv, summary)
    if values is None:
        return 0
    from capsfast.record import record

    for line in record(str(values["DIR"])):
        out(line + "\n")
    return 0


def cmd_export(argv: list[str]) -> int:
    from capsfast.export import main as export_main

    return export_main(argv)


def cmd_bench(argv: list[str]) -> int:
    from capsfast.bench import main as bench_main

    return bench_main(argv)


COMMANDS = {
    "bench": (cmd_bench, "probe latency on this host, against the floor and the alternatives"),
    "capabilities": (cmd_capabilities, "print the host's capabilities (libvirt XML, draft XML or JSON)"),
    "check": (cmd_check, "can KVM guests run here? why not, and what to do"),
    "export": (cmd_export, "feed fleet tools: NFD node labels, Prometheus textfile, Ansible fact"),
    "record": (cmd_record, "capture this host as a replayable test scenario"),
}


def _run(args: list[str]) -> int:
    if args and args[0] == "--version":
        from capsfast.constants import __version__

        out("%s %s\n" % (PROG, __version__))
        return 0
    return dispatch(PROG, COMMANDS, args, "What virtualization this Linux host can do "
                    "('%s --version' prints the version)." % PROG)


def main(argv: "Sequence[str] | None" = None) -> int:
    """Run the CLI; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        status = _run(args)
        # The output is complete only once flushed: a full disk or a closed
        # standard output is an error, a reader that left is not.
        flush()
        return status
    except (UsageError, CapsfastError) as e:
        error(e)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
