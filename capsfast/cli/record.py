"""``capsfast record DIR``: this host, or a remote one, kept as a recording
that replays as the host it captured."""
from capsfast.cli.options import PROG, Option, UsageError, out, output_failed, parse_or_help
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.cli.options import Values


# The input flags of the other commands that record does not take, and why.
_LIVE = "it captures this host as it runs now (or with --connect, a remote one)"
NOT_TAKEN = {
    "--root": _LIVE, "--cpuid-dump": _LIVE, "--arch": _LIVE,
    "--replay": "a recording is kept as it is (copy its directory)",
    "--cpu-map": "a recording keeps the CPUID walk, not a CPU model's name; name the model when it is "
                 "replayed (--replay DIR --cpu-map MAP)",
}
NOT_TAKEN_HELP = ("Of the other commands' input flags, record takes --deep and --connect only: no\n"
                  "--root, --cpuid-dump or --arch (it captures this host as it runs), no --replay, and no\n"
                  "--cpu-map (give it when the recording is replayed).")


def main(argv: list[str]) -> int:
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
        Option(("--redact",), "leave out the host's ids (machine-id, DMI UUID), the kernel arguments capsfast "
                              "does not read and the PATH entries without an emulator: for a bug report"),
    )
    for arg in argv:
        if arg == "--":
            break
        reason = NOT_TAKEN.get(arg.partition("=")[0])
        if reason is not None:
            raise UsageError("record takes no %s: %s" % (arg.partition("=")[0], reason))
    values = parse_or_help("%s record" % PROG, options, ("DIR",), argv, summary + "\n\n" + NOT_TAKEN_HELP)
    if values is None:
        return 0
    directory = str(values["DIR"])
    try:
        lines = _record(directory, values)
    except CapsfastError:
        raise
    except OSError as e:
        if directory != "-":
            raise CapsfastError("record: %s: %s" % (directory, e.strerror or e), errno=e.errno) from None
        # The tar stream is cut short (a reader that left, a full disk): the
        # recording is not whole, which its reader must be told.
        raise output_failed(e) from None
    for line in lines:
        out(line + "\n")
    return 0


def _record(directory: str, values: "Values") -> "list[str]":
    from capsfast.recording import format as recording

    if values["connect"] is not None:
        from capsfast.recording import remote

        with remote.ending_cleanly(), remote.fetch(str(values["connect"]), deep=bool(values["deep"])) as fetched:
            recording.read(fetched)  # a malformed reply is an error here, not a saved recording
            files = recording.files_of(fetched)
            if values["redact"]:
                from capsfast.recording.redact import redact

                files = redact(files)
            # The one writer a local recording goes through too.
            lines = recording.write(files, directory)
    else:
        lines = recording.record(directory, deep=bool(values["deep"]), redact=bool(values["redact"]))
    return lines
