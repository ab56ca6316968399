"""Emulator discovery, I/O through the source only (its ``stat`` and
``listdir``): the ``qemu-system-*`` binaries in the PATH directories and
/usr/libexec/qemu-kvm of the probed host.  Runs nothing.  It stands apart
from ``read`` because it keeps state of its own: a per-process cache of
its scans, and the stamps the per-boot cache is keyed on.

A directory's listing is cached and keyed on its (mtime, inode): installing,
removing or replacing a binary changes the directory's mtime, so a repeated
discovery costs one ``stat`` per directory.  Directories reached twice
(``/bin`` -> ``usr/bin``) are listed and watched once.  Known blind spot: a
``chmod`` of an existing binary does not change the directory's mtime.
"""
import os
import stat as _stat
import time

from capsfast.constants import QEMU_KVM
from capsfast.parts.guests.parse import emulator_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.sources.base import Source

    # (directory as on the probed host, mtime_ns, inode): both None while absent.
    Stamp = tuple[str, "int | None", "int | None"]

# A listing taken within this time of the directory's mtime may have missed
# a change made in the same timestamp tick (as git's "racy" index entries):
# such a directory is listed again next time.
_RACY_NS = 20_000_000


class Emulators:
    """What discovery found: ``binaries`` maps a QEMU target (``x86_64``,
    ``i386``, ``arm``, ...) to the path of the first executable
    ``qemu-system-<target>`` in the PATH, as on the probed host;
    ``qemu_kvm`` is /usr/libexec/qemu-kvm when it is executable, else None."""

    __slots__ = ("binaries", "qemu_kvm")

    def __init__(self, binaries: dict[str, str], qemu_kvm: "str | None") -> None:
        self.binaries = binaries
        self.qemu_kvm = qemu_kvm

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Emulators) and self.binaries == other.binaries
                and self.qemu_kvm == other.qemu_kvm)

    def __repr__(self) -> str:
        return "Emulators(%r, %r)" % (self.binaries, self.qemu_kvm)


class _Entry:
    __slots__ = ("watch", "found")

    def __init__(self, watch: "tuple[Stamp, ...]", found: "Emulators") -> None:
        self.watch = watch
        self.found = found


_cache: "dict[tuple[str, str], _Entry]" = {}  # (root, PATH) -> _Entry


def _stamp(path: str, st: os.stat_result, now_ns: int) -> "Stamp":
    if now_ns - st.st_mtime_ns < _RACY_NS:
        return (path, -1, -1)  # matches no directory: listed again next time
    return (path, st.st_mtime_ns, st.st_ino)


def _executable(st: "os.stat_result | None") -> bool:
    # libvirt's virFileIsExecutable: a regular file with an x bit.
    return st is not None and _stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def _scan(source: "Source", path_env: str) -> "_Entry":
    now_ns = time.time_ns()
    watch: list[Stamp] = []
    seen: set[tuple[int, int]] = set()
    binaries: dict[str, str] = {}
    for entry in path_env.split(":"):
        # Relative and empty entries name the caller's working directory:
        # a daemon's is /, so they are not the host's emulators.
        if not entry.startswith("/"):
            continue
        directory = entry.rstrip("/") or "/"
        st = source.stat(directory)
        if st is None:
            watch.append((directory, None, None))
            continue
        if not _stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        watch.append(_stamp(directory, st, now_ns))
        names = source.listdir(directory)
        if names is None:
            continue
        prefix = entry.rstrip("/") + "/"
        for target, name in emulator_names(names):
            if target not in binaries and _executable(source.stat(prefix + name)):
                binaries[target] = prefix + name
    libexec = os.path.dirname(QEMU_KVM)
    st = source.stat(libexec)
    watch.append((libexec, None, None) if st is None else _stamp(libexec, st, now_ns))
    qemu_kvm = QEMU_KVM if _executable(source.stat(QEMU_KVM)) else None
    return _Entry(tuple(watch), Emulators(binaries, qemu_kvm))


def _unchanged(source: "Source", watch: "tuple[Stamp, ...]") -> bool:
    for path, mtime, ino in watch:
        st = source.stat(path)
        if st is None:
            if mtime is None:
                continue
            return False
        if st.st_mtime_ns != mtime or st.st_ino != ino:
            return False
    return True


def discover(source: "Source") -> "Emulators":
    """The emulators of the host ``source`` reads, in its PATH
    (``Source.search_path``); an ``Emulators``, the same object as
    last time while nothing changed."""
    path_env = source.search_path()
    key = (source.root, path_env)
    entry = _cache.get(key)
    if entry is not None and _unchanged(source, entry.watch):
        return entry.found
    fresh = _scan(source, path_env)
    if entry is not None and fresh.found == entry.found:
        fresh.found = entry.found  # keep the identity: callers memoise on it
    if len(_cache) > 64:  # many fake roots: start over
        _cache.clear()
    _cache[key] = fresh
    return fresh.found


def forget() -> None:
    """Drop the cache (tests use it)."""
    _cache.clear()


# -- per boot ---------------------------------------------------------------------
# What discovery found is kept per boot (``capsfast.sources.boot``) under a
# key of the PATH, each watched directory's (mtime, inode) and each
# emulator's identity and mode: installing, removing, replacing or
# chmod-ing one changes it.  A stamp too recent to be trusted (see
# _RACY_NS) is written "racy", which no later reading repeats.  The key's
# first line names its form: directories are kept as paths of the probed
# host (before, as paths on this machine inside the root), so an entry
# kept in the older form is a miss, never read with the other meaning.
_KEY_FORM = "emulators 2"


def _watch_key(watch: "tuple[Stamp, ...]") -> str:
    return "\n".join("%s %s" % (path, "-" if mtime is None or ino is None else "racy" if mtime == -1
                                 else "%d %d" % (mtime, ino)) for path, mtime, ino in watch)


def _emulators_key(source: "Source", found: "Emulators", now_ns: int) -> str:
    out = []
    for path in sorted(found.binaries.values()) + ([found.qemu_kvm] if found.qemu_kvm else []):
        st = source.stat(path)
        if st is None:
            out.append(path + " -")
        elif now_ns - st.st_ctime_ns < _RACY_NS or now_ns - st.st_mtime_ns < _RACY_NS:
            out.append(path + " racy")
        else:
            out.append("%s %o %d %d %d %d" % (path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                              st.st_ino))
    return "\n".join(out)


def _key(source: "Source", watch: "tuple[Stamp, ...]", found: "Emulators", now_ns: int) -> str:
    return "%s\nPATH %s\n%s\n%s" % (_KEY_FORM, source.search_path(), _watch_key(watch),
                                    _emulators_key(source, found, now_ns))


def boot_scan(source: "Source") -> "tuple[str, tuple[dict[str, str], str | None, tuple[str, ...]]]":
    """(key, (binaries, qemu-kvm, the watched directories)) of a discovery
    made now."""
    entry = _scan(source, source.search_path())
    found = entry.found
    key = _key(source, entry.watch, found, time.time_ns())
    return key, (found.binaries, found.qemu_kvm, tuple(path for path, _m, _i in entry.watch))


def boot_key(source: "Source", binaries: "dict[str, str]", qemu_kvm: "str | None",
             watched: "tuple[str, ...]") -> str:
    """``boot_scan``'s key of the same discovery, read now."""
    now_ns = time.time_ns()
    watch: list[Stamp] = []
    for path in watched:
        st = source.stat(path)
        watch.append((path, None, None) if st is None else _stamp(path, st, now_ns))
    return _key(source, tuple(watch), Emulators(binaries, qemu_kvm), now_ns)
