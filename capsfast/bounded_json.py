"""JSON from outside this process (a recording, a remote host's reply, a
cache file), decoded only within bounds: Python's decoder recurses once
per level of nesting, so ``[[[...`` a few thousand deep ends in
RecursionError, and a large text costs memory before any check runs.
The size and the depth are measured first, without decoding; every fault
is a one-line CapsfastError naming ``what`` was read."""
import re

from capsfast.errors import CapsfastError

# A recording's documents nest a few levels; QMP replies about ten.
MAX_DEPTH = 64

# A whole string, escapes included, in one match (no backtracking per
# character): its brackets are text, not nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def depth(text: bytes, limit: int) -> int:
    """How deep ``text`` nests, counting no further than ``limit + 1``."""
    level = deepest = 0
    for bracket in _STRING.sub(b"", text).translate(None, _NOT_BRACKETS):
        if bracket in b"[{":
            level += 1
            if level > deepest:
                deepest = level
                if deepest > limit:
                    break
        else:
            level -= 1
    return deepest


def loads(data: "bytes | str", what: str, max_bytes: int, max_depth: int = MAX_DEPTH) -> object:
    """The value of the JSON text ``data``; CapsfastError when it is larger
    than ``max_bytes``, nests deeper than ``max_depth``, is not UTF-8 or is
    not JSON."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise CapsfastError("%s is larger than %d bytes" % (what, max_bytes))
    if depth(raw, max_depth) > max_depth:
        raise CapsfastError("%s nests deeper than %d levels" % (what, max_depth))
    import json

    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CapsfastError("%s is not UTF-8 text" % what) from None
    except (ValueError, RecursionError) as e:
        # ValueError also for a number of more digits than int() takes.
        raise CapsfastError("%s is not JSON (%s)" % (what, str(e).splitlines()[0][:100])) from None
