"""``capsfast export {nfd,prometheus,ansible}``: the host in the formats
fleet tools read, written atomically, optionally kept fresh.

Each format is a pure module (Host -> text): ``nfd`` (Node Feature
Discovery feature file, hence Kubernetes node labels), ``prometheus``
(node_exporter textfile) and ``ansible`` (a facts.d fact).  This module
parses the command line, probes, and writes with ``atomic.write``;
``every`` keeps a file fresh.
"""
import os
import time

from capsfast.cli.options import (
    INPUT_OPTIONS, Option, UsageError, dispatch, error, format_options, input_args, out, parse_or_help, probe_inputs,
    local_inputs, seconds_option,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsfast.cli.options import Values
    from capsfast.cpu_map.x86_map import CpuMap
    from capsfast.model import Host
    from capsfast.parts.domcaps.cpu import CpuModes
    from capsfast.parts.domcaps.parse import Transcript

    Prober = Callable[[], tuple[Host, float]]

PROG = "capsfast export"

EVERY_OPTION = Option(
    ("--every",), "stay running: probe again every SECONDS (more than 0, less than 1e9) and rewrite the "
    "file when its content changes; stop cleanly on SIGTERM", metavar="SECONDS",
)

WATCH_OPTION = Option(
    ("--watch",), "stay running: rewrite the file as soon as a fact changes (inotify, kernel uevents); "
    "--every SECONDS is then the safety re-probe (default %g)" % 60.0,
)

# With --every, NFD drops the labels this many beats after the last write
# unless rewritten, so a node whose exporter died loses them; the file is
# rewritten, changed or not, once half of that time has gone.
EXPIRY_BEATS = 10


_SUMMARIES = {
    "nfd": "Write the host's capabilities as Node Feature Discovery labels\n"
           "(DIR/capsfast, one namespace/name=value a line).",
    "prometheus": "Print (or write to FILE) the host's capabilities as Prometheus metrics\n"
                  "in node_exporter's textfile format.",
    "ansible": "Print the host's capabilities as the JSON of an Ansible facts.d fact,\n"
               "or install a fact that does (ansible_local.capsfast).",
}


def _seconds(text: object) -> float:
    return seconds_option("--every", text)


def _prober(values: "Values") -> "Prober":
    """A function returning (host, seconds it took); the live host is probed
    afresh on each call."""
    def run() -> "tuple[Host, float]":
        start = time.perf_counter()
        host = probe_inputs(values, refresh=True)
        return host, time.perf_counter() - start

    return run


def _keep_fresh(interval: float, path: str, make: "Callable[[], tuple[str, str]]",
                refresh_after: "float | None" = None, watch: "Values | None" = None) -> int:
    """The ``--every`` loop: ``make()`` gives (facts, text); the file is
    rewritten when the facts differ from the last written, or
    ``refresh_after`` seconds after the last write; otherwise only its
    modification time is touched, which tells it is alive.  With ``watch``
    (the input options), a change the watcher reports runs a step at once,
    besides the beat."""
    from capsfast.cli import atomic, every, long_running

    long_running()

    last_facts: list[str] = []      # the facts last written, once written
    written_at: list[float] = []    # when

    def step() -> None:
        facts, text = make()
        now = time.monotonic()
        stale = bool(written_at) and refresh_after is not None and now - written_at[0] >= refresh_after
        if last_facts != [facts] or stale:
            atomic.write(path, text)
            last_facts[:], written_at[:] = [facts], [now]
        else:
            try:
                os.utime(path)
            except FileNotFoundError:  # someone removed it: write it again
                atomic.write(path, text)
            except OSError as e:
                error("cannot touch %s: %s" % (path, e.strerror))

    if watch is None:
        every.run(interval, step, error)
    else:
        _watched(interval, step, watch)
    return 0


def _watched(interval: float, step: "Callable[[], object]", values: "Values") -> None:
    """``every.run`` waiting on a watcher instead of sleeping: a step on each
    beat and on each change, until SIGTERM or SIGINT (collected, so a write
    in progress finishes first).  A failing first step raises; later
    failures are said and the loop goes on."""
    from capsfast import watch
    from capsfast.errors import CapsfastError

    with watch.SignalStop() as stop:
        # The watcher first: a change while the first file is written is
        # then reported, not lost between the two probes.
        with watch.changes(**local_inputs(values), safety=interval, stop=stop) as watcher:
            step()
            beat = time.monotonic() + interval
            while True:
                try:
                    found = watcher.next_change(max(0.0, beat - time.monotonic()))
                except StopIteration:
                    return
                except CapsfastError as e:
                    error(e)
                    found = None
                now = time.monotonic()
                if found is None and now < beat:
                    continue
                if now >= beat:  # keep the beat, skip what was missed
                    beat += ((now - beat) // interval + 1) * interval
                try:
                    step()
                except CapsfastError as e:
                    error(e)


def _every(values: "Values") -> "float | None":
    every = values.get("every")
    if values.get("watch"):
        if values["replay"] is not None or values["connect"]:
            raise UsageError("--watch follows this host or a root on it: not a recording (--replay) "
                             "or a remote host (--connect)")
        return 60.0 if every is None else _seconds(every)
    return None if every is None else _seconds(every)


def _watching(values: "Values") -> "Values | None":
    return values if values.get("watch") else None


def options(fmt: str) -> tuple[Option, ...]:
    """The options of ``capsfast export FMT``."""
    if fmt == "nfd":
        from capsfast.render import nfd

        return INPUT_OPTIONS + (
            Option(("--dir",), "the NFD features directory (default %s)" % nfd.DEFAULT_DIR,
                   metavar="DIR", default=nfd.DEFAULT_DIR),
            Option(("--prefix",), "the label namespace (default %s)" % nfd.DEFAULT_NAMESPACE,
                   metavar="NAMESPACE", default=nfd.DEFAULT_NAMESPACE),
            Option(("--stdout",), "print the file instead of writing it"),
            Option(("--domcaps",), "also the labels KubeVirt takes from domain capabilities: host-model CPU, "
                   "its required features and vendor, usable CPU models (asks the host's QEMU once, then cached)"),
            EVERY_OPTION,
            WATCH_OPTION,
        )
    if fmt == "prometheus":
        return INPUT_OPTIONS + (
            Option(("--file",), "write this .prom file (for node_exporter's textfile "
                   "collector) instead of printing", metavar="FILE"),
            EVERY_OPTION,
            WATCH_OPTION,
        )
    from capsfast.render import ansible

    # It prints JSON only; --json and --format json are accepted as on every
    # command that prints JSON.
    return INPUT_OPTIONS + format_options(("json",), "json") + (
        Option(("--install",), "write an executable %s that prints this JSON, "
               "so ansible_local.capsfast appears" % ansible.FACT_NAME),
        Option(("--dir",), "where --install writes (default %s)" % ansible.DEFAULT_DIR,
               metavar="DIR", default=ansible.DEFAULT_DIR),
    )


def _parse(fmt: str, argv: list[str]) -> "Values | None":
    return parse_or_help("%s %s" % (PROG, fmt), options(fmt), (), argv, _SUMMARIES[fmt])


def cmd_nfd(argv: list[str]) -> int:
    from capsfast.cli import atomic
    from capsfast.render import nfd

    values = _parse("nfd", argv)
    if values is None:
        return 0
    namespace = str(values["prefix"])
    if not nfd.valid_namespace(namespace):
        raise UsageError("--prefix %r is not a DNS subdomain (lowercase a-z, 0-9, '-', '.')" % namespace)
    if nfd.nfd_denies(namespace):
        raise UsageError("--prefix %r: nfd-worker refuses labels under kubernetes.io and k8s.io "
                         "(except feature.node.kubernetes.io)" % namespace)
    interval = _every(values)
    probe = _nfd_prober(values) if values["domcaps"] else _prober_with_modes(_prober(values))
    path = os.path.join(str(values["dir"]), nfd.FILE_NAME)
    if interval is None:
        host, modes = probe()[0]
        text = nfd.render(host, namespace, cpu_modes=modes)
        if values["stdout"]:
            out(text)
        else:
            atomic.write(path, text)
        return 0
    if values["stdout"]:
        raise UsageError("%s writes the file; it cannot be combined with --stdout"
                         % ("--watch" if values["watch"] else "--every"))
    lifetime = interval * EXPIRY_BEATS

    def make() -> tuple[str, str]:
        host, modes = probe()[0]
        # NFD's stamp has whole seconds: round up, or a short lifetime
        # could be written already past.
        expiry = time.gmtime(-(-(time.time() + lifetime) // 1))
        return (nfd.render(host, namespace, cpu_modes=modes),
                nfd.render(host, namespace, expiry, cpu_modes=modes))

    return _keep_fresh(interval, path, make, lifetime / 2, _watching(values))


def _prober_with_modes(probe: "Prober") -> "Callable[[], tuple[tuple[Host, CpuModes | None], float]]":
    def run() -> "tuple[tuple[Host, CpuModes | None], float]":
        host, seconds = probe()
        return (host, None), seconds

    return run


def _nfd_prober(values: "Values") -> "Callable[[], tuple[tuple[Host, CpuModes | None], float]]":
    """``_prober`` with domain capabilities' CPU modes: the live host's
    emulator answers from the transcript cache; a recording (``--replay
    DIR``) from the QEMU transcript it holds; a remote host (``--connect``)
    is recorded with its QEMU's answers."""
    from capsfast.cli.options import connects, is_live, optional_str

    def run() -> "tuple[tuple[Host, CpuModes | None], float]":
        from capsfast.host import check_recorded_inputs, replay_temporary

        start = time.perf_counter()
        uris = connects(values)
        if uris:
            from capsfast.recording import remote

            if len(uris) > 1:
                raise UsageError("--domcaps takes one --connect")
            check_recorded_inputs(values["root"], values["cpuid_dump"], values["arch"], values["replay"], uris[0])
            recording = remote.fetch(uris[0], deep=bool(values["deep"]), domcaps=True)
            answers: "tuple[Transcript, CpuMap | None] | None"
            try:
                answers = recorded_answers(recording.path)  # read before the recording is removed
            except BaseException:
                recording.close()
                raise
            host = replay_temporary(recording, bool(values["deep"]))
        else:
            replay = optional_str(values["replay"])
            if replay == "-":
                raise UsageError("--domcaps reads the QEMU transcript of a recording directory, not a stream")
            host = probe_inputs(values, refresh=True)
            answers = None if is_live(values) else recorded_answers(str(replay))
        return (host, domcaps_cpu_modes(host, answers)), time.perf_counter() - start

    return run


def recorded_answers(directory: str) -> "tuple[Transcript, CpuMap | None]":
    """The QEMU transcript a recording holds (``capsfast record``'s, or
    one fetched with ``--connect``), and the CPU map it kept."""
    import json

    from capsfast.errors import CapsfastError
    from capsfast.parts.domcaps import parse

    def unreadable(e: OSError) -> CapsfastError:
        return CapsfastError("%s: %s" % (directory, e.strerror), errno=e.errno)

    try:
        with open(os.path.join(directory, "scenario.json"), encoding="utf-8") as f:
            entry = json.load(f).get("qmp")
    except OSError as e:
        raise unreadable(e) from None
    except ValueError as e:
        raise CapsfastError("%s: scenario.json: %s" % (directory, e)) from None
    name = entry.get("replies") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name.startswith("qemu/") or "/" in name[5:] or name[5:] in ("", ".", ".."):
        raise CapsfastError("%s: the recording holds no QEMU answers (domain capabilities need them)" % directory)
    try:
        with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as f:
            transcript = parse.transcript(f.read(parse.MAX_BYTES + 1))
    except CapsfastError as e:
        raise CapsfastError("%s: %s" % (name, e)) from None
    except OSError as e:
        raise unreadable(e) from None
    return transcript, _cpu_map(os.path.join(directory, "root"))


def _cpu_map(root: str) -> "CpuMap | None":
    from capsfast.cpu_map import x86_map
    from capsfast.sources.base import DEFAULT_CPU_MAP

    directory = os.path.join(root, DEFAULT_CPU_MAP.lstrip("/"))
    if not os.path.isdir(directory):
        return None
    return x86_map.load(directory, root)


def domcaps_cpu_modes(host: "Host", answers: "tuple[Transcript, CpuMap | None] | None") -> "CpuModes":
    """Domain capabilities' CPU modes for ``host``'s own architecture and
    its default virt type (kvm where QEMU used it), as ``virsh
    domcapabilities`` gives them without arguments; ``answers``: a
    recording's transcript and CPU map, or None for the live host's
    emulator (cached transcript)."""
    from capsfast.errors import CapsfastError
    from capsfast.parts.domcaps import decide
    from capsfast.parts.domcaps.cpu import cpu_modes

    if answers is None:
        from capsfast.parts.domcaps import cache
        from capsfast.sources.base import DEFAULT_CPU_MAP

        emulator = next((guest.emulator for guest in host.guests
                         if guest.arch == host.arch and guest.os_type == "hvm" and guest.emulator), None)
        if emulator is None:
            raise CapsfastError("domain capabilities: no QEMU emulator for %s on this host" % host.arch)
        transcript = cache.transcript(emulator, cpu_map=DEFAULT_CPU_MAP)
        cpu_map = _cpu_map("/")
    else:
        transcript, cpu_map = answers
    if cpu_map is None:
        raise CapsfastError("domain capabilities: no libvirt CPU map (the CPU models come from it)")
    virttype = "kvm" if decide.kvm_used(transcript) else "qemu"
    return cpu_modes(transcript, virttype=virttype, arch=host.arch, cpu_map=cpu_map)


def cmd_prometheus(argv: list[str]) -> int:
    from capsfast.cli import atomic
    from capsfast.render import prometheus

    values = _parse("prometheus", argv)
    if values is None:
        return 0
    path = None if values["file"] is None else str(values["file"])
    interval = _every(values)
    probe = _prober(values)
    if interval is None:
        host, seconds = probe()
        text = prometheus.render(host, seconds)
        if path is None:
            out(text)
        else:
            atomic.write(path, text)
        return 0
    if path is None:
        raise UsageError("%s needs --file: there is no file to keep fresh"
                         % ("--watch" if values["watch"] else "--every"))

    def make() -> tuple[str, str]:
        # Every probe's duration is a new fact: the file says how long the
        # latest probe took, so each beat writes it.
        host, seconds = probe()
        text = prometheus.render(host, seconds)
        return text, text

    return _keep_fresh(interval, path, make, watch=_watching(values))


def cmd_ansible(argv: list[str]) -> int:
    import sys

    from capsfast.render import ansible
    from capsfast.cli import atomic

    values = _parse("ansible", argv)
    if values is None:
        return 0
    if values["install"]:
        package = os.path.dirname(os.path.dirname(os.path.abspath(ansible.__file__)))  # .../capsfast
        script = ansible.fact_script(sys.executable, os.path.dirname(package), input_args(values))
        path = os.path.join(str(values["dir"]), ansible.FACT_NAME)
        atomic.write(path, script, mode=0o755)
        out("installed %s\n" % path)
        return 0
    out(ansible.render(_prober(values)()[0]))
    return 0


COMMANDS = {
    "nfd": (cmd_nfd, "Kubernetes node labels, as a Node Feature Discovery features.d file"),
    "prometheus": (cmd_prometheus, "Prometheus metrics, for node_exporter's textfile collector"),
    "ansible": (cmd_ansible, "an Ansible facts.d fact (ansible_local.capsfast)"),
}
FORMATS = tuple(COMMANDS)


def main(argv: list[str]) -> int:
    """``capsfast export FORMAT [options]``; returns the exit status.
    Raises UsageError or CapsfastError for the CLI to print."""
    return dispatch(PROG, COMMANDS, argv, "Feed fleet tools: Kubernetes node labels through NFD, Prometheus "
                    "through\nnode_exporter's textfile collector, Ansible through a facts.d fact.",
                    what="format")
