"""Emulator discovery: the ``qemu-system-*`` binaries in the PATH
directories and /usr/libexec/qemu-kvm, inside a root.  Runs nothing.

A directory's listing is cached and keyed on its (mtime, inode): installing,
removing or replacing a binary changes the directory's mtime, so a repeated
discovery costs one ``stat`` per directory.  Directories reached twice
(``/bin`` -> ``usr/bin``) are listed and watched once.  Known blind spot: a
``chmod`` of an existing binary does not change the directory's mtime.
"""
import os
import stat as _stat
import time

from capsfast.parts.guests import DEFAULT_PATH, PREFIX
from capsfast.parts.guests import decide as guests
from capsfast.constants import QEMU_KVM
from capsfast.sources.base import under as _under

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsfast.model import Guest, Kqemu, Kvm, Xen

    # (directory inside the root, mtime_ns, inode): both None while absent.
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


def _stat_in_root(root: str, path: str) -> os.stat_result:
    """``os.stat`` of a path inside ``root``, following a final symlink
    whose absolute target is read inside the root too."""
    if root == "/":
        return os.stat(path)
    for _hop in range(16):
        st = os.lstat(path)
        if not _stat.S_ISLNK(st.st_mode):
            return st
        target = os.readlink(path)
        if target.startswith("/"):
            path = _under(root, target)
        else:
            path = os.path.join(os.path.dirname(path), target)
    raise OSError(40, "too many levels of symbolic links", path)


def _stamp(path: str, st: os.stat_result, now_ns: int) -> "Stamp":
    if now_ns - st.st_mtime_ns < _RACY_NS:
        return (path, -1, -1)  # matches no directory: listed again next time
    return (path, st.st_mtime_ns, st.st_ino)


def _executable(st: os.stat_result) -> bool:
    # libvirt's virFileIsExecutable: a regular file with an x bit.
    return _stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def _scan(root: str, path_env: str) -> "_Entry":
    now_ns = time.time_ns()
    watch: list[Stamp] = []
    seen: set[tuple[int, int]] = set()
    binaries: dict[str, str] = {}
    for entry in path_env.split(":"):
        # Relative and empty entries name the caller's working directory:
        # a daemon's is /, so they are not the host's emulators.
        if not entry.startswith("/"):
            continue
        directory = _under(root, entry.rstrip("/") or "/")
        try:
            st = _stat_in_root(root, directory)
        except OSError:
            watch.append((directory, None, None))
            continue
        if not _stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        watch.append(_stamp(directory, st, now_ns))
        try:
            # listdir, not scandir: names alone, a quarter faster on a
            # /usr/bin of a thousand entries.
            names = [name for name in os.listdir(directory) if name.startswith(PREFIX)]
        except OSError:
            continue
        prefix = entry.rstrip("/") + "/"
        for name in sorted(names):
            target = name[len(PREFIX):]
            if target in binaries:
                continue
            try:
                if _executable(_stat_in_root(root, directory + "/" + name)):
                    binaries[target] = prefix + name
            except OSError:
                pass
    libexec = _under(root, os.path.dirname(QEMU_KVM))
    try:
        watch.append(_stamp(libexec, os.stat(libexec), now_ns))
    except OSError:
        watch.append((libexec, None, None))
    try:
        qemu_kvm = QEMU_KVM if _executable(_stat_in_root(root, _under(root, QEMU_KVM))) else None
    except OSError:
        qemu_kvm = None
    return _Entry(tuple(watch), Emulators(binaries, qemu_kvm))


def _unchanged(watch: "tuple[Stamp, ...]", stat: "Callable[[str], os.stat_result]" = os.stat) -> bool:
    for path, mtime, ino in watch:
        try:
            st = stat(path)
        except OSError:
            if mtime is None:
                continue
            return False
        if st.st_mtime_ns != mtime or st.st_ino != ino:
            return False
    return True


def search_path() -> str:
    """The PATH this process searches for emulators, as libvirt would."""
    path_env = os.environ.get("PATH")
    return DEFAULT_PATH if path_env is None else path_env


def discover(root: str = "/", path_env: "str | None" = None) -> "Emulators":
    """The emulators of the host under ``root`` in ``path_env`` (default:
    this process's PATH); an ``Emulators``, the same object as last time
    while nothing changed."""
    if path_env is None:
        path_env = search_path()
    key = (root, path_env)
    entry = _cache.get(key)
    if entry is not None and _unchanged(entry.watch):
        return entry.found
    fresh = _scan(root, path_env)
    if entry is not None and fresh.found == entry.found:
        fresh.found = entry.found  # keep the identity: callers memoise on it
    if len(_cache) > 64:  # many fake roots: start over
        _cache.clear()
    _cache[key] = fresh
    return fresh.found


def forget() -> None:
    """Drop the cache (tests use it)."""
    _cache.clear()


# (inputs, guests): one probe after another mostly sees the same host
_last: "tuple[Emulators, str, Kvm, Kqemu, Xen, tuple[Guest, ...]] | None" = None


def host_guests(root: str, arch: str, kvm: "Kvm", kqemu: "Kqemu", xen: "Xen",
                path_env: "str | None" = None, found: "Emulators | None" = None) -> "tuple[Guest, ...]":
    """The guests of the host under ``root``: discovery (cached; ``found``
    where the caller has it) plus the pure rules of
    ``capsfast.parts.guests.decide``, memoised on their inputs."""
    global _last
    if found is None:
        found = discover(root, path_env)
    last = _last
    if last is not None and last[0] is found and last[1] == arch and (
        # The probe reuses its fact objects while nothing changed: try
        # identity first, then the facts the rules read.
        (last[2] is kvm and last[3] is kqemu and last[4] is xen)
        or (last[2].usable == kvm.usable and last[3].exists == kqemu.exists
            and last[4].role == xen.role and last[4].capabilities == xen.capabilities)
    ):
        return last[5]
    result = guests.for_host(arch, found.binaries, found.qemu_kvm, kvm, kqemu, xen)
    _last = (found, arch, kvm, kqemu, xen, result)
    return result


# -- per boot ---------------------------------------------------------------------
# What discovery found is kept per boot (``capsfast.sources.boot``) under a
# key of the PATH, each watched directory's (mtime, inode) and each
# emulator's identity and mode: installing, removing, replacing or
# chmod-ing one changes it.  A stamp too recent to be trusted (see
# _RACY_NS) is written "racy", which no later reading repeats.

def _watch_key(watch: "tuple[Stamp, ...]") -> str:
    return "\n".join("%s %s" % (path, "-" if mtime is None or ino is None else "racy" if mtime == -1
                                 else "%d %d" % (mtime, ino)) for path, mtime, ino in watch)


def _emulators_key(root: str, found: "Emulators", now_ns: int) -> str:
    out = []
    for path in sorted(found.binaries.values()) + ([found.qemu_kvm] if found.qemu_kvm else []):
        try:
            st = _stat_in_root(root, _under(root, path))
        except OSError:
            out.append(path + " -")
            continue
        if now_ns - st.st_ctime_ns < _RACY_NS or now_ns - st.st_mtime_ns < _RACY_NS:
            out.append(path + " racy")
        else:
            out.append("%s %o %d %d %d %d" % (path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                              st.st_ino))
    return "\n".join(out)


def boot_scan(root: str, path_env: "str | None") -> "tuple[str, tuple[dict[str, str], str | None, tuple[str, ...]]]":
    """(key, (binaries, qemu-kvm, the watched directories)) of a discovery
    made now."""
    if path_env is None:
        path_env = search_path()
    entry = _scan(root, path_env)
    found = entry.found
    key = "PATH %s\n%s\n%s" % (path_env, _watch_key(entry.watch), _emulators_key(root, found, time.time_ns()))
    return key, (found.binaries, found.qemu_kvm, tuple(path for path, _m, _i in entry.watch))


def boot_key(root: str, path_env: "str | None", binaries: "dict[str, str]", qemu_kvm: "str | None",
             watched: "tuple[str, ...]") -> str:
    """``boot_scan``'s key of the same discovery, read now."""
    if path_env is None:
        path_env = search_path()
    now_ns = time.time_ns()
    watch: list[Stamp] = []
    for path in watched:
        try:
            watch.append(_stamp(path, _stat_in_root(root, path), now_ns))
        except OSError:
            watch.append((path, None, None))
    return "PATH %s\n%s\n%s" % (path_env, _watch_key(tuple(watch)),
                                _emulators_key(root, Emulators(binaries, qemu_kvm), now_ns))
