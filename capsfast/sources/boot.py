"""The per-boot cache: what the parts read that stays fixed while the
system runs (the decoded CPU model with its TSC, the topology skeleton, the
UUID, the emulator list...), kept in one file per host so that the first
answer of a new process need not read and decode it again.

The file's key is the host's boot id (``/proc/sys/kernel/random/boot_id``,
inside the root for a fake root: a root without one gets no cache),
capsfast's version, the host's architecture, and ``/dev/kvm``'s identity
with this process's access to it (a reloaded KVM module makes a new node;
the TSC and MSR are read through it).  Inside, each part's entry
carries the part's own invalidators (``boot_key``: CPU lists, microcode,
the CPU map's identity, PATH directories, emulators, and the values a part
reads live), checked on every use: a differing one is a miss, and the part
is read again and its entry replaced.

A recording or a remote host brings its own facts: it neither reads nor
fills this cache.  The mechanics (per-user directory, atomic write,
``CAPSFAST_CACHE=off``) are ``capsfast.sources.cache``'s.

The facts are written with ``marshal`` (built in: ``pickle`` costs
milliseconds to import), records as lists of their class name and fields.
"""
import marshal
import os

from capsfast.sources import cache
from capsfast.sources.base import under

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsfast.sources.base import Source

BOOT_ID = "/proc/sys/kernel/random/boot_id"
VERSION = 1
MAGIC = b"capsfast per-boot cache %d" % VERSION
_MAX_BYTES = 16 << 20


def _read_small(path: str) -> "bytes | None":
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _device(path: str) -> str:
    """The KVM device's identity and this process's access to it (what
    the TSC and MSR reads could do), not its ctime: other programs
    re-permission it without changing what it is."""
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    try:
        usable = os.access(path, os.R_OK | os.W_OK)
    except (OSError, ValueError):
        usable = False
    return "%o %d:%d %d %d %d" % (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_ino, usable)


def usable(source: "Source") -> bool:
    """Whether ``source`` may use the per-boot cache: the running host or a
    directory (a fake root), never a recording."""
    return source.kind in ("live", "root") and cache.enabled()


def host_key(source: "Source") -> "bytes | None":
    """The key of ``source``'s per-boot file, read now; None where the host
    has no boot id (then nothing is cached)."""
    boot_id = _read_small(under(source.root, BOOT_ID))
    if not boot_id or b"\n" in boot_id.rstrip(b"\n"):
        return None
    from capsfast.constants import __version__

    fields = [__version__, source.kind, source.root, source.arch,
              boot_id.strip().decode("ascii", "replace"), _device(under(source.root, "/dev/kvm"))]
    return repr(fields).encode("ascii", "backslashreplace")


def file_for(kind: str, root: str) -> str:
    """The per-boot file of the host under ``root`` read as ``kind``
    (the running host, or a directory)."""
    return os.path.join(cache.directory(), "boot-%d-%s-%s.bin" % (VERSION, kind, cache.file_name(root)))


# -- facts as marshal data ------------------------------------------------------------

def encode(value: object) -> object:
    """``value`` (records, tuples, dicts, strings, numbers, None) as data
    ``marshal`` writes: a record becomes [class name, field...]."""
    if isinstance(value, tuple):
        fields = getattr(type(value), "_fields", None)
        items = [encode(v) for v in value]
        if fields is not None:
            return [type(value).__name__] + items
        return tuple(items)
    if isinstance(value, dict):
        return {encode(k): encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    raise TypeError("a per-boot fact cannot be a %s" % type(value).__name__)


def decode(value: object) -> object:
    """The value ``encode`` gave, records made again (ValueError for a
    name that is not a record of ``capsfast.model``)."""
    if isinstance(value, list):
        from capsfast import model

        cls = getattr(model, str(value[0]), None) if value else None
        if not isinstance(cls, type) or not issubclass(cls, tuple) or not hasattr(cls, "_fields"):
            raise ValueError("not a record: %r" % (value[:1],))
        make: "Callable[..., object]" = cls
        return make(*[decode(v) for v in value[1:]])
    if isinstance(value, tuple):
        return tuple(decode(v) for v in value)
    if isinstance(value, dict):
        return {decode(k): decode(v) for k, v in value.items()}
    return value


# -- the file -------------------------------------------------------------------------

class Store:
    """One host's per-boot file, read once: ``get`` a part's (key, facts),
    ``put`` them (the file re-read and written whole, atomically, so two
    processes filling it at once leave one valid file)."""

    __slots__ = ("path", "key", "_entries")

    def __init__(self, path: str, key: bytes) -> None:
        self.path = path
        self.key = key
        self._entries = self._load()

    def _load(self) -> "dict[str, tuple[str, object]]":
        body = cache.load(self.path, MAGIC, self.key, _MAX_BYTES)
        if body is None:
            return {}
        try:
            entries = marshal.loads(body)
        except (ValueError, EOFError, TypeError):
            return {}  # corrupt: replaced on the next put
        if not isinstance(entries, dict):
            return {}
        return {name: entry for name, entry in entries.items()
                if isinstance(name, str) and isinstance(entry, tuple) and len(entry) == 2
                and isinstance(entry[0], str)}

    def get(self, part: str) -> "tuple[str, object] | None":
        """The part's (key, facts) as kept; None where there are none or
        they cannot be decoded."""
        entry = self._entries.get(part)
        if entry is None:
            return None
        try:
            return entry[0], decode(entry[1])
        except (ValueError, TypeError, IndexError):
            return None

    def put(self, part: str, key: str, facts: object) -> None:
        """Keep the part's facts under its key, beside what another process
        may have kept since this one read the file."""
        entries = self._load()
        entries[part] = (key, encode(facts))
        self._entries = entries
        cache.save(self.path, MAGIC, self.key, marshal.dumps(entries))


def open_store(source: "Source") -> "Store | None":
    """The per-boot file of ``source``'s host; None where there is none to
    be had (a recording, a host without a boot id, caching off)."""
    if not usable(source):
        return None
    key = host_key(source)
    if key is None:
        return None
    return Store(file_for(source.kind, source.root), key)


def stamps(paths: "list[str]") -> str:
    """The identity (size, mtime, ctime, inode) of each path, in order."""
    return "\n".join("%s %s" % (path, cache.stamp(path)) for path in paths)


def directory_stamps(directory: str) -> str:
    """The identity of every file in ``directory`` (one listing and a stat
    each, relative to the open directory): a file added, removed, replaced
    or touched changes it."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return "-"
    found = cache.stamps_in(directory, names)
    return "-" if found is None else "\n".join("%s %s" % pair for pair in zip(names, found))

