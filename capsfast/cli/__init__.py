"""The ``capsfast`` command: ``main(argv) -> exit status``.

Each subcommand is a function taking its argument list; user errors become
one ``capsfast: ...`` line on stderr and exit status 2, never a traceback.
Imports stay inside the commands so ``capsfast check -q`` loads only what
it uses.
"""
import os
import sys

from capsfast.cli.options import (
    INPUT_OPTIONS, PROG, Option, UsageError, connects, dispatch, error, flush, format_options, is_live, out,
    parse_or_help, probe_inputs, local_inputs,
)
from capsfast.constants import FORMATS
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from capsfast.cli.options import Values


def cmd_capabilities(argv: list[str]) -> int:
    summary = (
        "Print what this host offers for virtualization, as libvirt capabilities XML, the draft XML,\n"
        "or JSON.  Several --connect (or --hosts FILE) probe those hosts concurrently and print one\n"
        "document per host (JSON lines with --format json), each tagged with its URI."
    )
    machines = Option(("--machines",), "also list each emulator's machine types (runs each emulator once; "
                      "cached on disk)")
    hosts = Option(("--hosts",), "a file of remote URIs, one a line ('#' comments), as if each were a --connect",
                   metavar="FILE")
    parallel = Option(("--parallel",), "at most N remote hosts at once (default 8)", metavar="N", default="8")
    options = INPUT_OPTIONS + format_options(FORMATS, FORMATS[0]) + (machines, hosts, parallel)
    values = parse_or_help("%s capabilities" % PROG, options, (), argv, summary)
    if values is None:
        return 0
    from capsfast.render import render

    uris = connects(values) + _hosts_file(values["hosts"])
    if len(uris) > 1 or values["hosts"] is not None:
        return _many_hosts(uris, values)
    host = probe_inputs(values)
    if values["machines"]:
        from capsfast.parts.guests.machines import attach

        host = host._replace(guests=attach(host.guests, str(values["root"])))
    out(render(host, str(values["format"])))
    return 0


def _hosts_file(path: object) -> "list[str]":
    if path is None:
        return []
    try:
        with open(str(path), "rb") as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
    except OSError as e:
        raise CapsfastError("--hosts %s: %s" % (path, e.strerror), errno=e.errno) from None
    uris = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [uri for uri in uris if uri]


def _many_hosts(uris: "list[str]", values: "Values") -> int:
    """One document per host, in the order given; a host that failed is one
    line on stderr and makes the exit status 2, the others still print."""
    import json

    from capsfast.recording import remote
    from capsfast.host import replay_temporary
    from capsfast.render import render

    if values["replay"] is not None or values["root"] != "/" or values["cpuid_dump"] is not None \
            or values["arch"] is not None or values["machines"]:
        raise UsageError("several hosts take no --replay, --root, --cpuid-dump, --arch or --machines")
    try:
        parallel = int(str(values["parallel"]))
    except ValueError:
        parallel = 0
    if parallel < 1:
        raise UsageError("--parallel needs a whole number of at least 1, not %r" % values["parallel"])
    fmt = str(values["format"])
    failed = False
    for fetched in remote.fetch_many(uris, parallel=parallel, deep=bool(values["deep"])):
        try:
            if fetched.recording is None:
                error(fetched.error)
                failed = True
                continue
            try:
                host = replay_temporary(fetched.recording, bool(values["deep"]))
            except CapsfastError as e:
                error("%s: %s" % (fetched.uri, e))
                failed = True
                continue
            if fmt == "json":
                doc = json.loads(render(host, "json"))
                out(json.dumps(dict({"uri": fetched.uri}, **doc), separators=(",", ":")) + "\n")
            else:
                out("<!-- capsfast: %s -->\n" % fetched.uri.replace("--", "- -") + render(host, fmt))
        finally:
            fetched.close()
    return 2 if failed else 0


def cmd_check(argv: list[str]) -> int:
    from capsfast import readiness

    summary = (
        "Tell whether KVM guests can run here, and if not, why and what to do; with --for, whether\n"
        "that VMM can run here (its own list of KVM capabilities and, for Kata, modules and CPU flags).\n"
        "Exit status: 0 KVM usable (with --for: the VMM can run), 1 not, 2 bad usage or input."
    )
    options = INPUT_OPTIONS + format_options(("text", "json"), "text") + (
        Option(("-q", "--quiet"), "print nothing; only the exit status tells"),
        Option(("--for",), "the VMM to check for: %s (default qemu: the KVM steps and the capabilities QEMU needs)"
               % "|".join(readiness.NAMES), metavar="VMM", default="qemu", dest="vmm"),
    )
    values = parse_or_help("%s check" % PROG, options, (), argv, summary)
    if values is None:
        return 0
    vmm = str(values["vmm"])
    if vmm not in readiness.PROFILES:  # before probing: a typo is bad usage
        raise CapsfastError("--for %s: unknown VMM; known ones are %s" % (vmm, readiness.known()))
    if readiness.PROFILES[vmm].kata and is_live(values):
        values["deep"] = True  # kata-runtime check creates a VM: so does this
    host = probe_inputs(values)
    verdict = readiness.ready(vmm, host)
    if not values["quiet"]:
        from capsfast.render import check as report

        if values["format"] == "json":
            out(report.as_json(host, verdict))
        else:
            note = _cpu_map_note(values, host.arch)
            out(report.as_text(host, verdict, [] if note is None else [("libvirt CPU map", None, note, None)]))
    return 0 if verdict.ok else 1


def _cpu_map_note(values: "Values", arch: str) -> "str | None":
    """One line where no libvirt CPU map is found: capabilities will name
    no CPU model (one stat; the model itself is never decoded by check)."""
    from capsfast.constants import X86_ARCHS

    if arch not in X86_ARCHS or values["connect"] or values["replay"] == "-":
        return None
    from capsfast.parts.cpu_model import read as hostcpu
    from capsfast.recording.format import ROOT

    import os

    root = os.path.join(str(values["replay"]), ROOT) if values["replay"] is not None else str(values["root"])
    directory = hostcpu.map_directory(root, _optional_str(values["cpu_map"]))
    if hostcpu.map_present(directory):
        return None
    return "none at %s: capabilities names no CPU model (--cpu-map DIR names one)" % directory


def _optional_str(value: object) -> "str | None":
    return None if value is None else str(value)


def cmd_record(argv: list[str]) -> int:
    summary = (
        "Capture this host (or with --connect, a remote one) as a recording that replays as the\n"
        "host it captured: DIR/cpuid.txt (a full CPUID walk, 'cpuid -r -1' format), DIR/root/\n"
        "(every file the probe reads; a placeholder per device node and emulator) and\n"
        "DIR/scenario.json (what the devices answered, the MSR values).  DIR '-' writes a\n"
        "tar stream to stdout.  Replay with: capsfast check --replay DIR"
    )
    options = (
        Option(("--deep",), "also create a VM with KVM_CREATE_VM, and record its answer"),
        Option(("--connect",), "record a remote host over SSH instead (see capsfast check --help)", metavar="URI"),
    )
    values = parse_or_help("%s record" % PROG, options, ("DIR",), argv, summary)
    if values is None:
        return 0
    from capsfast.recording import format as recording

    directory = str(values["DIR"])
    if values["connect"] is not None:
        from capsfast.recording import remote

        with remote.fetch(str(values["connect"]), deep=bool(values["deep"])) as fetched:
            recording.read(fetched)  # a malformed reply is an error here, not a saved recording
            lines = recording.copy(fetched, directory)
    else:
        lines = recording.record(directory, deep=bool(values["deep"]))
    for line in lines:
        out(line + "\n")
    return 0


def cmd_export(argv: list[str]) -> int:
    from capsfast.cli.export import main as export_main

    return export_main(argv)


def cmd_bench(argv: list[str]) -> int:
    from capsfast.bench.steps import main as bench_main

    return bench_main(argv)


def cmd_watch(argv: list[str]) -> int:
    summary = (
        "Stay running and print one line per change of the host's facts, as it happens: device\n"
        "nodes coming and going or changing mode (inotify), modules loaded and unloaded (kernel\n"
        "uevents), and a safety re-probe for what sends no event (module parameters).  Text:\n"
        "'TIME path: old -> new'; --format json: one JSON object a line.  SIGTERM or SIGINT stops."
    )
    safety = Option(("--safety",), "re-probe after SECONDS without an event (default 60)", metavar="SECONDS",
                    default="60")
    options = INPUT_OPTIONS + format_options(("text", "json"), "text") + (safety,)
    values = parse_or_help("%s watch" % PROG, options, (), argv, summary)
    if values is None:
        return 0
    if values["replay"] is not None or connects(values):
        raise UsageError("watch follows this host or a root on it: not a recording (--replay) or a remote "
                         "host (--connect)")
    try:
        seconds = float(str(values["safety"]))
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 1e9:
        raise UsageError("--safety needs a positive number of seconds, not %r" % values["safety"])
    import json
    import time

    from capsfast import watch

    as_json = values["format"] == "json"
    with watch.SignalStop() as stop:
        with watch.changes(**local_inputs(values), safety=seconds, stop=stop) as watcher:
            for _host, changed in watcher:
                now = time.time()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (now % 1 * 1000)
                if as_json:
                    out(json.dumps({"time": stamp, "changes": [{"path": p, "old": o, "new": n}
                                                               for p, o, n in changed]},
                                   separators=(",", ":")) + "\n")
                else:
                    out("".join("%s %s: %s -> %s\n" % (stamp, p, json.dumps(o), json.dumps(n))
                                for p, o, n in changed))
                flush()
    return 0


COMMANDS = {
    "bench": (cmd_bench, "probe latency on this host, against the floor and the alternatives"),
    "capabilities": (cmd_capabilities, "print the host's capabilities (libvirt XML, draft XML or JSON)"),
    "check": (cmd_check, "can KVM guests run here? why not, and what to do"),
    "export": (cmd_export, "feed fleet tools: NFD node labels, Prometheus textfile, Ansible fact"),
    "record": (cmd_record, "capture this host (or a remote one) as a recording that replays as it"),
    "watch": (cmd_watch, "print each change of the host's facts as it happens (inotify, uevents)"),
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


def run() -> "NoReturn":
    """The ``capsfast`` command: main() on sys.argv, then the process ends.

    It ends with os._exit once the output is out: tearing the interpreter
    down (every module's objects, the C buffers) would cost about 3 ms of a
    25 ms ``capsfast capabilities`` and release nothing the kernel does not
    release anyway.  Everything capsfast writes is closed by then (exported
    files are written, synced and renamed inside main)."""
    status = main()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # main() already reported what it could; the status stands
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    run()
