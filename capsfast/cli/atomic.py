"""Replace a file so that a reader sees the old content or the new, never
a mix, a truncation or nothing.

The new content goes to a temporary file in the same directory (rename is
atomic only within one filesystem), is fsynced, then renamed over the
target; the directory is fsynced so the rename survives a crash.  The
temporary name starts with a dot and ends in ``.tmp``: NFD skips dot files,
node_exporter reads only ``*.prom`` and Ansible only ``*.fact``, so none of
them reads a half-written temporary file either.

A missing directory is created with its parents, mode 0755, as an installer
would: the default directories (NFD's features.d, Ansible's facts.d) do not
exist on a host that never ran those tools.
"""
import os

from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike

_SUFFIX = ".tmp"


def _temp_name(path: str, pid: int) -> str:
    directory, base = os.path.split(path)
    return os.path.join(directory, ".%s.%d%s" % (base, pid, _SUFFIX))


def _remove_stale(path: str) -> None:
    """Delete temporary files left by writers of ``path`` that were killed
    (SIGKILL, power loss) before they could clean up; a live writer's file
    is left alone."""
    directory, base = os.path.split(path)
    head = ".%s." % base
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return
    for name in names:
        if not (name.startswith(head) and name.endswith(_SUFFIX)):
            continue
        pid = name[len(head):-len(_SUFFIX)]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that writer still runs
        except ProcessLookupError:
            pass
        except OSError:
            continue  # exists, but not ours to signal
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def make_directories(directory: str, mode: int = 0o755) -> None:
    """Create ``directory`` and its missing parents, each with permission
    bits ``mode`` (set explicitly, not left to the umask), as ``install -d``
    does; directories that exist are left as they are.  CapsfastError with
    one line, naming the directory that could not be made, if it cannot."""
    missing = []
    head = directory
    while head and not os.path.isdir(head):
        missing.append(head)
        head = os.path.dirname(head)
    for path in reversed(missing):
        try:
            os.mkdir(path, mode)
            os.chmod(path, mode)
        except OSError as e:
            if isinstance(e, FileExistsError) and os.path.isdir(path):
                continue  # another writer made it meanwhile
            raise CapsfastError("cannot create directory %s: %s" % (path, e.strerror), errno=e.errno) from None
        _sync_directory(os.path.dirname(path) or ".")  # the new entry survives a crash too


def write(path: "str | PathLike[str]", data: "str | bytes", mode: int = 0o644) -> None:
    """Atomically make ``path`` hold ``data`` (str or bytes) with permission
    bits ``mode`` (set explicitly, not left to the umask), creating its
    directory if need be.  CapsfastError with one line if it cannot."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    make_directories(directory)
    _remove_stale(path)
    temp = _temp_name(path, os.getpid())
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise CapsfastError("cannot write %s: %s" % (path, e.strerror), errno=e.errno) from None
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
    except OSError as e:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise CapsfastError("cannot write %s: %s" % (path, e.strerror), errno=e.errno) from None
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename stands
    finally:
        os.close(fd)

