"""``capsfast capabilities``: the host's capabilities as libvirt XML, the
draft XML or JSON; several remote hosts at once, one document each."""
from capsfast.cli.options import CONNECT_HELP, INPUT_OPTIONS, PROG, Option, UsageError, connects, error, \
    format_options, out, parse_or_help, probe_inputs, was_given
from capsfast.constants import FORMATS
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.cli.options import Values


def main(argv: list[str]) -> int:
    summary = (
        "Print what this host offers for virtualization, as libvirt capabilities XML, the draft XML,\n"
        "or JSON.  One --connect prints that host's document, as for this host.  --connect given\n"
        "more than once, or --hosts FILE (even of one line), probes those hosts concurrently and\n"
        "prints one document per host, each tagged with its URI (JSON lines with --format json)."
    )
    machines = Option(("--machines",), "also list each emulator's machine types (runs each emulator once; "
                      "cached on disk)")
    hosts = Option(("--hosts",), "a file of remote URIs, one a line ('#' comments), as if each were a --connect; "
                   "it must name at least one", metavar="FILE")
    parallel = Option(("--parallel",), "at most N remote hosts at once (default 8); with several hosts only",
                      metavar="N")
    connect = Option(("--connect",), CONNECT_HELP + "; again for more hosts", metavar="URI", many=True)
    inputs = tuple(connect if o.dest == "connect" else o for o in INPUT_OPTIONS)
    options = inputs + format_options(FORMATS, FORMATS[0]) + (machines, hosts, parallel)
    values = parse_or_help("%s capabilities" % PROG, options, (), argv, summary)
    if values is None:
        return 0
    from capsfast.render import render

    uris = connects(values) + _hosts_file(values["hosts"])
    if len(uris) > 1 or values["hosts"] is not None:
        return _many_hosts(uris, values)
    if values["parallel"] is not None:
        raise UsageError("--parallel applies to several hosts (--connect given more than once, or --hosts FILE)")
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
    uris = [uri for uri in uris if uri]
    if not uris:
        raise CapsfastError("--hosts %s names no host (one URI a line)" % path)
    return uris


def _many_hosts(uris: "list[str]", values: "Values") -> int:
    """One document per host, in the order given; a host that failed is one
    line on stderr and makes the exit status 2, the others still print."""
    import json

    from capsfast.recording import remote
    from capsfast.host import replay_temporary
    from capsfast.render import render

    refused = [flag for dest, flag in was_given(values).items()
               if dest in ("replay", "root", "cpuid_dump", "arch", "machines")]
    if refused:
        raise UsageError("several hosts take no %s" % " or ".join(refused))
    try:
        parallel = int(str(8 if values["parallel"] is None else values["parallel"]))
    except ValueError:
        parallel = 0
    if parallel < 1:
        raise UsageError("--parallel needs a whole number of at least 1, not %r" % values["parallel"])
    fmt = str(values["format"])
    failed = False
    with remote.ending_cleanly():
        every = remote.fetch_many(uris, parallel=parallel, deep=bool(values["deep"]))
        try:
            for fetched in every:
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
            for fetched in every:  # those not reached too (a broken pipe, an interrupt)
                fetched.close()
    return 2 if failed else 0
