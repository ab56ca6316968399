"""QMP transcripts in libvirt's own ``tests/qemucapabilitiesdata/*.replies``
format: the JSON objects of a conversation, each command followed by its
reply, separated by blank lines.  One file holds every process of one
probe: the second ``qmp_capabilities`` starts the TCG-only process.

Read with a bound on size and nesting (a transcript may come from a remote
host or a hostile emulator), written exactly as libvirt's test data is.
"""
from capsfast.errors import CapsfastError
from capsfast.parts.domcaps.qmp import MAX_BYTES as MAX_BYTES, MAX_DEPTH as MAX_DEPTH
from capsfast.parts.domcaps.qmp import Transcript as Transcript, replies_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.parts.domcaps.qmp import Exchange as Exchange


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
    """``.replies`` text, as libvirt's test data lays it out (the layout
    is ``qmp.replies_text``'s, which a remote host's collector runs too)."""
    return replies_text(transcript.processes)
