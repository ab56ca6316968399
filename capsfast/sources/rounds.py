"""Rounds of reads: a part asks for (path, op) pairs, each round one
crossing into C, and what a round found tells the next what to ask (CPUs
and nodes, then their files, then the cache banks).  Used by the topology
part; ``capsfast bench`` measures a round's crossing alone."""
from capsfast import _native
from capsfast._native import LIST as LIST, READ as READ

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from capsfast._native import FileSpec

    # What a round returns for each (path, op): the bytes (a LIST's are
    # NUL-separated names), ABSENT or FAILED.
    Fetch = Callable[[Sequence[tuple[str, str]]], list["bytes | Missing"]]

# Buffer sizes: numbers; lists and meminfo; directory listings (a NUMA
# node directory lists a memoryN entry per memory block).  A READ or LIST
# that does not fit is asked again with room to spare, up to _MAX_SIZE.
_SMALL = 64
_TEXT = 4096
_LISTING = 16384
_MAX_SIZE = 1 << 22


class Missing:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# libvirt's -2 (no such file) and -1 (any other failure).
ABSENT = Missing("ABSENT")
FAILED = Missing("FAILED")




_SIZES: "dict[str, int]" = {}


def _size(path: str, op: str) -> int:
    """_first_size, kept by the path's last component and op."""
    key = op + path[path.rfind("/"):]
    size = _SIZES.get(key)
    if size is None:
        size = _SIZES[key] = _first_size(path, op)
    return size


def _first_size(path: str, op: str) -> int:
    """A first buffer for ``path``: room for what it usually holds (a
    file or listing that does not fit is read again, bigger)."""
    if op == LIST:
        if path.endswith("/cache") or "hugepages" in path:
            return 512
        return _LISTING
    if path.endswith(("meminfo", "distance")):
        return _TEXT
    return 256 if path.endswith("list") else _SMALL


def _c_op(path: str, op: str) -> str:
    """The op C is asked for: the kernel writes a sysfs attribute whole in
    its first read, so a short read is its end (no read more to hear it);
    any other file is read to its end (a procfs file of many records comes
    a page at a time)."""
    return _native.READ_ONCE if op == READ and path.startswith("/sys/") else op


def _placer(root: str, place: "Callable[[str], str] | None") -> "Callable[[str], str]":
    """Where a path of the probed host is on this machine: ``place``'s
    answer (a source's, which follows links inside its root), else the
    path under the ``root`` prefix."""
    if place is not None:
        return place
    prefix = "" if root in ("", "/") else root.rstrip("/")
    return lambda path: prefix + path


def batch_specs(root: str, requests: "Sequence[tuple[str, str]]",
                place: "Callable[[str], str] | None" = None) -> "list[FileSpec]":
    """The Batch entries of one round's first try (the benchmark's floor)."""
    where = _placer(root, place)
    return [(where(path), _c_op(path, op), 0, _size(path, op), None) for path, op in requests]


def fetch(root: str, place: "Callable[[str], str] | None" = None) -> "Fetch":
    """A fetch of (path, op) requests under ``root`` (placed by ``place``
    where given), one crossing a round; an entry that did not fit is asked
    again, bigger."""
    place = _placer(root, place)

    def fetch(requests: "Sequence[tuple[str, str]]") -> "list[bytes | Missing]":
        known = _SIZES.get
        sizes = [known(op + path[path.rfind("/"):]) or _size(path, op) for path, op in requests]
        out: "list[bytes | Missing]" = [FAILED] * len(requests)
        pending = list(range(len(requests)))
        placed = [place(path) for path, _op in requests]
        while pending:
            results = _native.read_files([(placed[i], _c_op(*requests[i]), sizes[i]) for i in pending])
            again = []
            for i, (outcome, data, truncated) in zip(pending, results):
                if data is not None:
                    if truncated:
                        if sizes[i] < _MAX_SIZE:
                            sizes[i] = min(sizes[i] * 16, _MAX_SIZE)
                            again.append(i)
                        continue  # FAILED: too large to be what it should
                    out[i] = data
                elif outcome.code == "absent":
                    out[i] = ABSENT
            pending = again
        return out

    return fetch
