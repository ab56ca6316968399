"""What every on-disk cache of capsfast shares: one directory per user,
files that begin with a magic line (the cache's name and format version)
and a key line, written atomically, bounded in size, and never trusted
unless both lines are exactly what the reader expects.

A file that is absent, truncated, corrupt, foreign or of another key is a
miss: the caller computes the answer again and the file is replaced.  A
read-only or missing home only means no cache.  ``CAPSFAST_CACHE=off``
turns every cache off.  The caches built on it: the decoded CPU model, the
QMP transcripts, the per-boot facts (``capsfast.sources.boot``).
"""
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

ENV_CACHE = "CAPSFAST_CACHE"
MAX_BYTES = 64 << 20  # no cache file of capsfast comes near this


def enabled() -> bool:
    """False when ``CAPSFAST_CACHE=off``."""
    return os.environ.get(ENV_CACHE, "").lower() != "off"


def directory() -> str:
    """``$XDG_CACHE_HOME/capsfast`` (default ``~/.cache/capsfast``): each
    user, root included, has its own."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "capsfast")


def file_name(text: str) -> str:
    """``text`` (a path) made a readable file name, shortened past 120
    characters with a stable hash of the whole of it, so two texts share a
    name only by a hash collision (which the key inside catches)."""
    name = text.strip("/").replace("_", "__").replace("/", "_") or "_"
    if len(name) > 120 or not name.isprintable():
        digest = 0xCBF29CE484222325  # FNV-1a, 64 bits: no module to import for a few bytes
        for byte in text.encode("utf-8", "surrogateescape"):
            digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        name = "%s-%016x" % ("".join(c for c in name[-80:] if c.isalnum() or c in "_-."), digest)
    return name


def load(path: str, magic: bytes, key: bytes, limit: int = MAX_BYTES) -> "bytes | None":
    """The body of the file at ``path`` when its first line is ``magic``
    and its second ``key``; None where it is absent, unreadable, larger
    than ``limit`` or of another cache or key."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    if size > limit:
        return None
    raw = b"".join(chunks)
    head = magic + b"\n" + key + b"\n"
    if not raw.startswith(head):
        return None
    return raw[len(head):]


def save(path: str, magic: bytes, key: bytes, body: bytes) -> bool:
    """Keep ``body`` at ``path`` under ``magic`` and ``key``: written to a
    temporary file of this process and renamed over the old one, so a
    reader (or another writer) sees either file whole.  False where it
    could not be written."""
    if b"\n" in magic or b"\n" in key:
        raise ValueError("a cache's magic and key are one line each")
    folder = os.path.dirname(path)
    tmp = "%s.%d.%d.tmp" % (path, os.getpid(), id(body))
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        try:
            data = magic + b"\n" + key + b"\n" + body
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def stamp(path: str, dir_fd: "int | None" = None) -> str:
    """A file's identity: size, mtime, ctime, inode; ``-`` where it cannot
    be stat'ed."""
    try:
        st = os.stat(path, dir_fd=dir_fd)
    except (OSError, ValueError):
        return "-"
    return "%d %d %d %d" % (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def stamps_in(directory: str, names: "Iterable[str]") -> "list[str] | None":
    """The ``stamp`` of each of ``names`` in ``directory``, each stat'ed
    relative to the directory opened once (a path resolved once, however
    many files); None where the directory cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return [stamp(name, fd) for name in names]
    finally:
        os.close(fd)


# -- a CPUID walk in a key -----------------------------------------------------------

# What CPUID answers differently on each CPU (the APIC ids; AMD's compute
# unit and node ids), as libvirt's virHostCPUGetCPUIDFilterVolatile lists
# it: (leaf, subleaf or None for every subleaf) -> the registers' masks of
# the bits kept in a cache key.  A process may run its walk on any CPU.
VOLATILE_CPUID = {(0x1, 0): (0xFFFFFFFF, 0x00FFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
                  (0xB, None): (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0),
                  (0x1F, None): (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0),
                  (0x8000001E, None): (0, 0, 0, 0)}


def volatile_masks(leaf: int, sub: int) -> "tuple[int, int, int, int] | None":
    """The masks of the bits of ``(leaf, sub)`` kept in a key, None where
    every bit is."""
    return VOLATILE_CPUID.get((leaf, sub)) or VOLATILE_CPUID.get((leaf, None))


def walk_key(walk: "Mapping[tuple[int, int], tuple[int, int, int, int]]", stable: bool) -> str:
    """A CPUID walk as cache key text; ``stable``: with the per-CPU bits
    masked off (only where nothing read from the walk depends on them)."""
    parts = []
    for (leaf, sub), (a, b, c, d) in sorted(walk.items()):
        if stable:
            masks = volatile_masks(leaf, sub)
            if masks is not None:
                a, b, c, d = a & masks[0], b & masks[1], c & masks[2], d & masks[3]
        parts.append("%x:%x:%x:%x:%x:%x" % (leaf, sub, a, b, c, d))
    return " ".join(parts)
