"""Machine types per emulator (``--machines``): runs ``<emulator> -machine
help`` once per binary and keeps the answer in an on-disk cache.

The cache lives in ``$XDG_CACHE_HOME/capsfast/machines-1.json`` (default
``~/.cache``) and is keyed by the binary's path, size, mtime and inode, so
an upgraded or replaced binary is asked again and a second call costs no
process.  Off by default: it is the one part of capsfast that runs a
program (libvirt's equivalent QMP probe is what makes it slow).
"""
import os

from capsfast.errors import CapsfastError
from capsfast.model import Machine

CACHE_VERSION = 1
TIMEOUT = 30  # seconds for one `-machine help`; QEMU answers in ~50 ms


def parse_help(text):
    """Machines from QEMU's ``-machine help`` output, in its order.

    Lines look like ``pc   Standard PC (...) (alias of pc-i440fx-7.2)`` or
    ``pc-i440fx-1.4   Standard PC (...) (deprecated)``.  ``none`` (the empty
    machine) is left out, as libvirt does."""
    machines = []
    seen = set()
    for line in text.splitlines():
        if not line.strip() or line.startswith("Supported machines"):
            continue
        name, _sep, rest = line.strip().partition(" ")
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


def cache_path():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "capsfast", "machines-%d.json" % CACHE_VERSION)


def _key(path, st):
    return "%s\0%d\0%d\0%d" % (path, st.st_size, st.st_mtime_ns, st.st_ino)


def _load(path):
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path, data):
    """Write the cache atomically; a read-only home just means no cache."""
    import json

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def run_help(binary):
    """``binary -machine help`` as text; CapsfastError if it cannot run."""
    import subprocess

    try:
        done = subprocess.run(
            [binary, "-machine", "help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, timeout=TIMEOUT, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CapsfastError("cannot run %s -machine help: %s" % (binary, e)) from None
    if done.returncode != 0:
        raise CapsfastError("%s -machine help exited with status %d" % (binary, done.returncode))
    return done.stdout.decode("utf-8", "replace")


def machines_for(binaries, runner=run_help, cache_file=None):
    """``{real path: machines}`` for the given real paths of emulators,
    running each one at most once and only when the cache has no entry for
    its current (path, size, mtime, inode).  An emulator that cannot be run
    maps to None (unknown) and is not cached."""
    cache_file = cache_file or cache_path()
    cache = _load(cache_file)
    result = {}
    dirty = False
    for binary in dict.fromkeys(binaries):
        try:
            st = os.stat(binary)
        except OSError:
            result[binary] = None
            continue
        key = _key(binary, st)
        entry = cache.get(key)
        if isinstance(entry, list):
            result[binary] = tuple(Machine(n, c, bool(d)) for n, c, d in entry)
            continue
        try:
            machines = parse_help(runner(binary))
        except CapsfastError:
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


def attach(guests, root="/", runner=run_help, cache_file=None):
    """``guests`` with ``machines`` filled for the QEMU guests, whose
    emulator runs from inside ``root``."""
    from capsfast.devices import under

    wanted = [under(root, g.emulator) for g in guests if g.machines is None and g.emulator]
    if not wanted:
        return guests
    found = machines_for(wanted, runner, cache_file)
    return tuple(
        g._replace(machines=found.get(under(root, g.emulator))) if g.machines is None and g.emulator else g
        for g in guests
    )
