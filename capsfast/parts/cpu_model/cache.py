"""The decoded CPU model's disk cache (I/O: it stats the CPU map's files and
reads and writes a file of its own, apart from ``read``, which asks only the
source): one file per CPU map directory in ``$XDG_CACHE_HOME/capsfast``,
keyed on the CPUID walk, the IA32_ARCH_CAPABILITIES value and each map
file's identity (name, size, mtime, ctime, inode).  The magic and key lines,
the atomic write, the size bound and a walk as key text are what every
cache shares (``capsfast.sources.cache``); a corrupt, foreign or stale file
is a miss.
"""
import os

from capsfast.sources import cache as shared

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    Walk = Mapping[tuple[int, int], tuple[int, int, int, int]]
    # A CPU map feature: its name, and (kind, leaf, subleaf) -> the bits it reads.
    Feature = tuple[str, Mapping[tuple[int, int, int], int]]

CACHE_VERSION = 1
_CACHE_MAGIC = b"capsfast cpu model cache %d" % CACHE_VERSION
_MAX_CACHE = 1 << 20


class Entry:
    """One decode as the cache keeps it: which device values it asked for
    (``wants_msr``, ``wants_tsc``), the MSR value it had (part of the key),
    and what it found."""

    __slots__ = ("wants_msr", "msr", "wants_tsc", "model", "vendor", "features")

    def __init__(self, wants_msr: bool, msr: "int | None", wants_tsc: bool, model: "str | None",
                 vendor: "str | None", features: "tuple[str, ...]") -> None:
        self.wants_msr = wants_msr
        self.msr = msr
        self.wants_tsc = wants_tsc
        self.model = model
        self.vendor = vendor
        self.features = features


def path(directory: str) -> str:
    """One cache file per CPU map directory (its last walk)."""
    return os.path.join(shared.directory(), "cpumodel-%d-%s.txt" % (CACHE_VERSION, shared.file_name(directory)))


def _volatile_free(features: "Iterable[Feature]") -> bool:
    """Whether no feature of the map reads a per-CPU bit: only then may the
    key leave them out."""
    for _name, data in features:
        for (kind, leaf, sub), value in data.items():
            if kind != 0:
                continue
            masks = shared.volatile_masks(leaf, sub)
            if masks is None:
                continue
            kept = masks[0] | masks[1] << 32 | masks[2] << 64 | masks[3] << 96
            if value & ~kept:
                return False
    return True


def _identities(directory: str, names: "list[str]") -> "list[str | None]":
    """Each map file's identity (name, size, mtime, ctime, inode), or None
    where it cannot be stat'ed; the names resolved in the directory once."""
    found = shared.stamps_in(directory, names)
    if found is None:
        return [None] * len(names)
    return [None if stamp == "-" else "%s %s" % (name, stamp) for name, stamp in zip(names, found)]


def _map_line(directory: str) -> bytes:
    return ("map " + directory).encode("utf-8", "surrogateescape")


def load(path: str, directory: str, walk: "Walk") -> "Entry | None":
    """The cached entry at ``path`` when its map and walk are these and each
    map file is as it was; None otherwise (absent, corrupt, stale)."""
    body = shared.load(path, _CACHE_MAGIC, _map_line(directory), _MAX_CACHE)
    if body is None:
        return None
    try:
        fields: dict[str, str] = {}
        files: list[str] = []
        for line in body.decode("utf-8", "surrogateescape").split("\n"):
            key, _sep, value = line.partition(" ")
            if key == "file":
                files.append(value)
            elif key:
                fields[key] = value
        if not files:
            return None
        if fields.get("walk") != shared.walk_key(walk, fields.get("stable") == "1"):
            return None
        if _identities(directory, [recorded.split(" ", 1)[0] for recorded in files]) != files:
            return None
        msr = fields["msr"]
        model, vendor = fields["model"], fields["vendor"]
        return Entry(fields["wants_msr"] == "1", None if msr == "-" else int(msr, 16), fields["wants_tsc"] == "1",
                     None if model == "-" else model, None if vendor == "-" else vendor,
                     tuple(fields["features"].split()))
    except (KeyError, ValueError, IndexError):
        return None


def save(path: str, directory: str, walk: "Walk", map_files: "Sequence[str]", map_features: "Iterable[Feature]",
         entry: Entry) -> None:
    """Write the entry, decoded against the map in ``directory`` (its files
    and its features), atomically; a read-only home just means no cache."""
    names = ([entry.model or "-", entry.vendor or "-"] + list(entry.features) + [directory]
             + list(map_files))
    if any(not n or any(c.isspace() for c in n) for n in names[:-len(map_files) - 1]) or "\n" in directory:
        return  # names a line format cannot hold: decode again next time
    stable = _volatile_free(map_features)
    identities = _identities(directory, list(map_files))
    if any(i is None for i in identities):
        return
    lines = ["file %s" % i for i in identities] + [
        "stable %d" % stable,
        "walk " + shared.walk_key(walk, stable),
        "wants_msr %d" % entry.wants_msr,
        "msr %s" % ("-" if entry.msr is None else "%x" % entry.msr),
        "wants_tsc %d" % entry.wants_tsc,
        "model " + (entry.model or "-"),
        "vendor " + (entry.vendor or "-"),
        "features " + " ".join(entry.features),
        "",
    ]
    shared.save(path, _CACHE_MAGIC, _map_line(directory), "\n".join(lines).encode("utf-8", "surrogateescape"))
