"""Machine types per emulator (``--machines``), process I/O of this
machine: runs ``<emulator> -machine help`` once per binary and keeps the
answer in an on-disk cache.  It stands apart from ``read`` because no
source can answer it: a source answers files, and only the machine
capsfast runs on can run an emulator (a recording or a fake root's
binaries are run from this machine, inside the root).  The text it gets is
parsed by ``capsfast.parts.guests.parse.parse_help``.

The cache lives in ``$XDG_CACHE_HOME/capsfast/machines-3`` (default
``~/.cache``; the mechanics are ``capsfast.sources.cache``'s) and is keyed
by the binary's path, size, mtime and inode, so an upgraded or replaced
binary is asked again and a second call costs no process.  Off by default:
it is the one part of capsfast that runs a program (libvirt's equivalent
QMP probe is what makes it slow).

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
from capsfast.model import Guest  # loaded already: parse builds Machine values
from capsfast.parts.guests.parse import cache_body, cache_entries, parse_help
from capsfast.sources import cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from capsfast.parts.guests.parse import Machines

# 3: the magic and key lines of capsfast.sources.cache (2: a header line of
# its own), so a file of version 2 is another file, and never misread.
CACHE_VERSION = 3
# Every emulator's machine list: a few hundred KiB at most.
_MAX_CACHE = 8 << 20
# Seconds one `-machine help` may take.  QEMU answers in ~50 ms; one that
# has not answered by then hangs (a wrapper waiting for something, a broken
# build), and --machines must not hang with it.
TIMEOUT = 5.0
# Bytes one `-machine help` may print.  QEMU 7.2's longest list (x86_64)
# is about 3 KB; an emulator printing more is not answering the question.
OUTPUT_LIMIT = 256 * 1024


def warn(message: str) -> None:
    """The default report of a skipped emulator: one line on stderr."""
    sys.stderr.write("capsfast: %s\n" % printable(message))
    sys.stderr.flush()


def cache_path() -> str:
    return os.path.join(cache.directory(), "machines-%d" % CACHE_VERSION)


def _key(path: str, st: os.stat_result) -> str:
    return "%s\0%d\0%d\0%d" % (path, st.st_size, st.st_mtime_ns, st.st_ino)


# The cache file: capsfast.sources.cache's magic and key lines (the key
# line names what each entry is keyed by), then the body
# capsfast.parts.guests.parse.cache_body writes.
_MAGIC = b"capsfast machine types %d" % CACHE_VERSION
_KEY = b"per emulator: path, size, mtime, inode"


def _load(path: str) -> "dict[str, Machines]":
    """The cache's entries by key; {} for a file that is absent,
    unreadable or not wholly of the shape ``_save`` writes."""
    body = cache.load(path, _MAGIC, _KEY, _MAX_CACHE)
    return {} if body is None else cache_entries(body)


def _save(path: str, entries: "dict[str, Machines]") -> None:
    """Write the cache atomically; a read-only home just means no cache."""
    cache.save(path, _MAGIC, _KEY, cache_body(entries))


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


def machines_for(binaries: "Iterable[str]", runner: "Callable[[str], str]" = run_help,
                 cache_file: "str | None" = None,
                 report: "Callable[[str], None]" = warn) -> "dict[str, Machines | None]":
    """``{real path: machines}`` for the given real paths of emulators,
    running each one at most once and only when the cache has no entry for
    its current (path, size, mtime, inode).  An emulator that cannot be run,
    fails or hangs maps to None (unknown), is not cached, and is named to
    ``report`` in one line.  With ``CAPSFAST_CACHE=off`` each is run and
    nothing is kept."""
    use_cache = cache.enabled()
    cache_file = cache_file or cache_path()
    kept = _load(cache_file) if use_cache else {}
    result: dict[str, Machines | None] = {}
    dirty = False
    for binary in dict.fromkeys(binaries):
        try:
            st = os.stat(binary)
        except OSError:
            result[binary] = None
            continue
        key = _key(binary, st)
        machines = kept.get(key)
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
        for old in [k for k in kept if k.split("\0", 1)[0] == binary]:
            del kept[old]
        kept[key] = machines
        result[binary] = machines
        dirty = True
    if dirty and use_cache:
        _save(cache_file, kept)
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
