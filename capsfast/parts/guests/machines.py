"""Machine types per emulator (``--machines``): runs ``<emulator> -machine
help`` once per binary and keeps the answer in an on-disk cache.

The cache lives in ``$XDG_CACHE_HOME/capsfast/machines-2`` (default
``~/.cache``) and is keyed by the binary's path, size, mtime and inode, so
an upgraded or replaced binary is asked again and a second call costs no
process.  Off by default: it is the one part of capsfast that runs a
program (libvirt's equivalent QMP probe is what makes it slow).

Each run is bounded by ``TIMEOUT`` and ``OUTPUT_LIMIT`` and made in a
session of its own; its answer must have the shape of QEMU's ``-machine
help`` (a ``Supported machines are:`` line, then one ``NAME  description``
line per machine).  An emulator that hangs, prints too much or prints
something else is killed with every process it started, named in one
``capsfast: ...`` line on stderr, and left out (its machines unknown), never
cached, so the next call asks it again.
"""
import os
import sys

from capsfast.errors import CapsfastError, printable
from capsfast.model import Machine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from capsfast.model import Guest

    Machines = tuple[Machine, ...]

CACHE_VERSION = 2
# Every emulator's machine list: a few hundred KiB at most.
_MAX_CACHE = 8 << 20
# Seconds one `-machine help` may take.  QEMU answers in ~50 ms; one that
# has not answered by then hangs (a wrapper waiting for something, a broken
# build), and --machines must not hang with it.
TIMEOUT = 5.0
# Bytes one `-machine help` may print.  QEMU 7.2's longest list (x86_64)
# is about 3 KB; an emulator printing more is not answering the question.
OUTPUT_LIMIT = 256 * 1024
HEADER = "Supported machines are:"
# The characters of a QEMU machine type name (pc-i440fx-7.2, virt-7.2, s390-ccw-virtio).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")


def warn(message: str) -> None:
    """The default report of a skipped emulator: one line on stderr."""
    sys.stderr.write("capsfast: %s\n" % printable(message))
    sys.stderr.flush()


def parse_help(text: str) -> "Machines":
    """Machines from QEMU's ``-machine help`` output, in its order.

    The first line is ``Supported machines are:``; the others look like
    ``pc   Standard PC (...) (alias of pc-i440fx-7.2)`` or ``pc-i440fx-1.4
    Standard PC (...) (deprecated)``.  ``none`` (the empty machine) is left
    out, as libvirt does.  Raises CapsfastError for text of another shape."""
    lines = text.splitlines()
    if not lines or lines[0].rstrip() != HEADER:
        raise CapsfastError("its -machine help does not start with %r" % HEADER)
    machines: list[Machine] = []
    seen: set[str] = set()
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        name, _sep, rest = line.strip().partition(" ")
        if not set(name) <= _NAME_CHARS or not line[0].isalnum() or not line.isprintable():
            raise CapsfastError("line %d of its -machine help is not a machine type: %r"
                                % (number, line[:60]))
        if name == "none" or name in seen:
            continue
        seen.add(name)
        canonical = None
        marker = "(alias of "
        start = rest.find(marker)
        if start >= 0:
            end = rest.find(")", start)
            canonical = rest[start + len(marker):end].strip() or None
        machines.append(Machine(name, canonical, "(deprecated)" in rest))
    return tuple(machines)


def cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "capsfast", "machines-%d" % CACHE_VERSION)


def _key(path: str, st: os.stat_result) -> str:
    return "%s\0%d\0%d\0%d" % (path, st.st_size, st.st_mtime_ns, st.st_ino)


# The cache file: this header, then one record per emulator, every field
# ended by a NUL (no path or machine name holds one): the key's four fields
# (path, size, mtime, inode), the number of machines, then name, canonical
# name ("" for none) and deprecated ("1" or "0") of each.  Read without the
# json module, which alone would cost more than the rest of --machines.
_HEADER = b"capsfast machine types %d\n" % CACHE_VERSION


def _load(path: str) -> "dict[str, object]":
    """The cache's entries by key, as ``_cached`` reads them; {} for a file
    that is absent, unreadable or not wholly of the shape ``_save`` writes."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CACHE + 1)
    except OSError:
        return {}
    if len(data) > _MAX_CACHE or not data.startswith(_HEADER) or not data.endswith(b"\0"):
        return {}
    try:
        fields = data[len(_HEADER):-1].decode("utf-8", "surrogateescape").split("\0")
    except UnicodeDecodeError:  # pragma: no cover - surrogateescape decodes any bytes
        return {}
    cache: "dict[str, object]" = {}
    at = 0
    while at < len(fields):
        head = fields[at:at + 5]
        if len(head) < 5 or not head[4].isdigit():
            return {}
        count = int(head[4])
        body = fields[at + 5:at + 5 + 3 * count]
        if len(body) != 3 * count or any(flag not in ("0", "1") for flag in body[2::3]):
            return {}
        cache["\0".join(head[:4])] = [[name, canonical or None, flag == "1"]
                                       for name, canonical, flag in zip(body[0::3], body[1::3], body[2::3])]
        at += 5 + 3 * count
    return cache


def _save(path: str, data: "dict[str, object]") -> None:
    """Write the cache atomically; a read-only home just means no cache."""
    fields = []
    for key, entry in sorted(data.items()):
        machines = _cached(entry) or ()
        fields += [key, str(len(machines))]
        for machine in machines:
            fields += [machine.name, machine.canonical or "", "1" if machine.deprecated else "0"]
    text = _HEADER + "".join(field + "\0" for field in fields).encode("utf-8", "surrogateescape")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass


def run_help(binary: str) -> str:
    """``binary -machine help`` as text; CapsfastError if it cannot run,
    fails, prints more than ``OUTPUT_LIMIT`` bytes or text that is not
    UTF-8, or has not answered within ``TIMEOUT`` seconds.  Whatever is left
    of its process group afterwards (itself after a failure, children it
    forked in any case) is killed: nothing it started outlives the call."""
    import subprocess

    try:
        # A new session: the emulator and all it forks share one process
        # group, which can be killed as a whole.
        proc = subprocess.Popen(
            [binary, "-machine", "help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except OSError as e:
        raise CapsfastError("cannot run %s -machine help: %s" % (binary, e.strerror), errno=e.errno) from None
    with proc:  # closes the pipe and reaps the emulator on every way out
        try:
            assert proc.stdout is not None
            output = _read_bounded(proc.stdout.fileno(), binary)
            proc.wait(timeout=TIMEOUT)  # its output ended: it is exiting
        except subprocess.TimeoutExpired:
            raise CapsfastError("%s -machine help gave no answer within %g s" % (binary, TIMEOUT)) from None
        finally:
            _kill_group(proc.pid)
    if proc.returncode != 0:
        raise CapsfastError("%s -machine help exited with status %d" % (binary, proc.returncode))
    try:
        return output.decode("utf-8")
    except UnicodeDecodeError:
        raise CapsfastError("%s -machine help printed text that is not UTF-8" % binary) from None


def _read_bounded(fd: int, binary: str) -> bytes:
    """Everything on ``fd`` up to its end, within ``TIMEOUT`` seconds and
    ``OUTPUT_LIMIT`` bytes; CapsfastError past either bound."""
    import selectors
    import time

    deadline = time.monotonic() + TIMEOUT
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise CapsfastError("%s -machine help gave no answer within %g s" % (binary, TIMEOUT))
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > OUTPUT_LIMIT:
                raise CapsfastError("%s -machine help printed more than %d bytes"
                                    % (binary, OUTPUT_LIMIT))
            chunks.append(chunk)


def _kill_group(pgid: int) -> None:
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass  # ESRCH: the group is gone, nothing was left behind


def _cached(entry: object) -> "Machines | None":
    """The machines a cache entry holds, or None if it holds none
    (absent, or not of the shape ``_save`` writes)."""
    if not isinstance(entry, list):
        return None
    machines = []
    for item in entry:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and (item[1] is None or isinstance(item[1], str))):
            return None
        machines.append(Machine(item[0], item[1], bool(item[2])))
    return tuple(machines)


def machines_for(binaries: "Iterable[str]", runner: "Callable[[str], str]" = run_help,
                 cache_file: "str | None" = None,
                 report: "Callable[[str], None]" = warn) -> "dict[str, Machines | None]":
    """``{real path: machines}`` for the given real paths of emulators,
    running each one at most once and only when the cache has no entry for
    its current (path, size, mtime, inode).  An emulator that cannot be run,
    fails or hangs maps to None (unknown), is not cached, and is named to
    ``report`` in one line."""
    cache_file = cache_file or cache_path()
    cache = _load(cache_file)
    result: dict[str, Machines | None] = {}
    dirty = False
    for binary in dict.fromkeys(binaries):
        try:
            st = os.stat(binary)
        except OSError:
            result[binary] = None
            continue
        key = _key(binary, st)
        machines = _cached(cache.get(key))
        if machines is not None:
            result[binary] = machines
            continue
        try:
            text = runner(binary)
        except CapsfastError as e:
            report("%s; its machine types are left out" % e)
            result[binary] = None
            continue
        try:
            machines = parse_help(text)
        except CapsfastError as e:
            report("%s: %s; its machine types are left out" % (binary, e))
            result[binary] = None
            continue
        # Drop stale entries of the same path (an upgraded binary).
        for old in [k for k in cache if k.split("\0", 1)[0] == binary]:
            del cache[old]
        cache[key] = [list(m) for m in machines]
        result[binary] = machines
        dirty = True
    if dirty:
        _save(cache_file, cache)
    return result


def attach(guests: "tuple[Guest, ...]", root: str = "/", runner: "Callable[[str], str]" = run_help,
           cache_file: "str | None" = None, report: "Callable[[str], None]" = warn) -> "tuple[Guest, ...]":
    """``guests`` with ``machines`` filled for the QEMU guests, whose
    emulator runs from inside ``root``.  ``report`` gets one line per
    emulator left out (default: ``capsfast: ...`` on stderr)."""
    from capsfast.sources.base import under

    wanted = [under(root, g.emulator) for g in guests if g.machines is None and g.emulator]
    if not wanted:
        return guests
    found = machines_for(wanted, runner, cache_file, report)
    return tuple(
        g._replace(machines=found.get(under(root, g.emulator))) if g.machines is None and g.emulator else g
        for g in guests
    )
