"""QMP transcripts in libvirt's own ``tests/qemucapabilitiesdata/*.replies``
format: the JSON objects of a conversation, each command followed by its
reply, separated by blank lines.  One file holds every process of one
probe: the second ``qmp_capabilities`` starts the TCG-only process.

Read with a bound on size and nesting (a transcript may come from a remote
host or a hostile emulator), written exactly as libvirt's test data is.
"""
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

    Exchange = tuple[dict[str, Any], dict[str, Any]]

MAX_BYTES = 64 << 20
MAX_DEPTH = 64


class Transcript:
    """A probe's conversations: ``processes[0]`` the first (KVM where it
    was used), ``processes[1]`` the TCG-only one, if any; each a list of
    (command, reply) pairs in the order they were exchanged."""

    __slots__ = ("processes",)

    def __init__(self, processes: "list[list[Exchange]]") -> None:
        self.processes = processes

    def replies(self, command: str, process: int = 0) -> "Iterator[Exchange]":
        """Each (command, reply) of ``command`` in ``process``, in order."""
        if process < len(self.processes):
            for exchange in self.processes[process]:
                if exchange[0].get("execute") == command:
                    yield exchange

    def value(self, command: str, process: int = 0, arguments: "dict[str, Any] | None" = None) -> "Any":
        """The ``return`` of the first ``command`` (with exactly these
        ``arguments`` when given) in ``process``; None where it was not
        asked or answered with an error."""
        for sent, reply in self.replies(command, process):
            if arguments is not None and sent.get("arguments") != arguments:
                continue
            return reply.get("return")
        return None


def _check_depth(text: str) -> None:
    # json's decoder recurses per level; a hostile document of 5,000 levels
    # ends in RecursionError.  One text of many objects: the deepest counts.
    from capsfast import bounded_json

    if bounded_json.depth(text.encode("utf-8", "surrogatepass"), MAX_DEPTH) > MAX_DEPTH:
        raise CapsfastError("QMP transcript nested deeper than %d levels" % MAX_DEPTH)


def parse(text: str) -> Transcript:
    """A transcript from ``.replies`` text; CapsfastError where it is not one."""
    import json

    if len(text) > MAX_BYTES:
        raise CapsfastError("QMP transcript larger than %d bytes" % MAX_BYTES)
    _check_depth(text)
    decoder = json.JSONDecoder()
    objects = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos == end:
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError as e:
            raise CapsfastError("malformed QMP transcript: %s" % e) from None
        if not isinstance(obj, dict):
            raise CapsfastError("malformed QMP transcript: an object is not a JSON object")
        objects.append(obj)
    if len(objects) % 2:
        raise CapsfastError("malformed QMP transcript: a command without its reply")
    processes: "list[list[Exchange]]" = []
    for command, reply in zip(objects[0::2], objects[1::2]):
        if "execute" not in command or ("return" not in reply and "error" not in reply):
            raise CapsfastError("malformed QMP transcript: expected a command and its reply")
        if command["execute"] == "qmp_capabilities" or not processes:
            processes.append([])
        processes[-1].append((command, reply))
    return Transcript(processes)


def format(transcript: Transcript) -> str:
    """``.replies`` text, as libvirt's test data lays it out: two-space
    indent, an empty object or array still opened and closed on two lines,
    one blank line between objects."""
    out = []
    for process in transcript.processes:
        for command, reply in process:
            out.append(_dumps(command, ""))
            out.append(_dumps(reply, ""))
    return "\n\n".join(out) + "\n"


def _dumps(value: "Any", indent: str) -> str:
    import json

    inner = indent + "  "
    if isinstance(value, dict):
        items = [inner + json.dumps(k) + ": " + _dumps(v, inner) for k, v in value.items()]
        return "{\n" + ",\n".join(items) + ("\n" if items else "") + indent + "}"
    if isinstance(value, list):
        items = [inner + _dumps(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + ("\n" if items else "") + indent + "]"
    return json.dumps(value)
