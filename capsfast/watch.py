"""Watch, don't poll: learn within milliseconds that a fact of the host changed.

    >>> from capsfast import watch
    >>> with watch.changes() as changes:
    ...     for host, changed in changes:
    ...         for path, old, new in changed:
    ...             print(path, old, new)        # host.kvm.accessible False True

An iterator rather than a callback: the caller's loop is the only loop, so
no thread is started (a callback would need one, or would run the caller's
code inside ours), it stops where the caller breaks out, and a
``for`` statement needs no registration API.  Each step blocks in one
``poll`` on the inotify descriptor, the uevent socket and the stop
descriptors, so an idle watcher costs nothing.

What wakes it:

* inotify on the directories that hold the probed device nodes and files
  (for the live host only ``/dev``: sysfs and procfs send no inotify
  events), creations, deletions, renames and attribute changes (a chmod or
  an ACL).  A directory that does not exist yet is watched through its
  nearest existing ancestor and re-armed when it appears.
* the kernel's uevent netlink socket (live host only): module and misc
  device add and remove.  Binding it may be refused (a container, some
  sandboxes): the watcher says so once and goes on with inotify.
* a slow safety re-probe (``safety`` seconds) for what sends nothing
  (module parameters such as ``nested``); every ``FALLBACK_SAFETY``
  seconds at most when inotify itself is unavailable or exhausted.

A burst of events (``modprobe`` creates a device node, then udev changes
its mode) is coalesced for ``COALESCE`` seconds into one probe.  Each probe
is compared key by key with the last, over the JSON document
(``capsfast.render.json.host_dict``); ``changed`` lists
``(json_path, old, new)``, and an event that changed nothing yields
nothing.

Stopping: ``close()`` from any thread wakes the watcher at once (not from
a signal handler: pass a file descriptor instead).  ``stop`` may be a file
descriptor that becomes readable to stop (a pipe, or the one
``signal.set_wakeup_fd`` writes to: ``SignalStop`` does that for the
command line), an object with ``is_set()`` and ``fileno()`` (``Stop``), or
a plain ``threading.Event`` (looked at every ``EVENT_POLL`` seconds, as it
has nothing to wait on).  ``hangup`` may be a file descriptor whose
hang-up stops the watcher: the writing end of a pipe whose reader went
away (the command line passes its standard output, so ``capsfast watch |
head -1`` ends).  Iterating from several threads is safe: they take turns.

What it notices but cannot fix (inotify or uevents unavailable) goes to
``warn``, by default one ``capsfast: watch: ...`` line on standard error.
"""
import errno
import os
import select
import signal
import struct
import threading
import time

from capsfast.parts.core import read as facts
from capsfast.sources.base import under
from capsfast.constants import KVM_DEVICE
from capsfast.errors import CapsfastError, printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    import socket
    from collections.abc import Callable, Iterator
    from types import TracebackType

    from capsfast.model import Host

    Change = tuple[str, object, object]

COALESCE = 0.02        # seconds a burst of events is gathered into one probe
FALLBACK_SAFETY = 5.0  # the safety interval, at most, when inotify cannot watch
EVENT_POLL = 0.2       # how often a stop Event without a descriptor is looked at

# inotify(7)
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
IN_ONLYDIR, IN_EXCL_UNLINK = 0x01000000, 0x04000000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
# Entries come and go or change their mode; no IN_MODIFY in /dev, where
# every write to /dev/null would wake us.
DIRECTORY_EVENTS = (IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF
                    | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
# Under a fake root, files are rewritten too (a module parameter).
FILE_EVENTS = DIRECTORY_EVENTS | IN_CLOSE_WRITE | IN_MODIFY
_SELF_EVENTS = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW

NETLINK_KOBJECT_UEVENT = 15
_DEVICES = (KVM_DEVICE, "/dev/kqemu", "/dev/sev")
_DEVICE_NAMES = frozenset(os.path.basename(p) for p in _DEVICES)
_EVENT = struct.Struct("iIII")  # struct inotify_event, then the name


# -- inotify through ctypes (imported on first use) -----------------------------

_libc: "list[ctypes.CDLL]" = []


def _call(name: str, *args: object) -> int:
    import ctypes

    if not _libc:
        _libc.append(ctypes.CDLL(None, use_errno=True))
    result = int(getattr(_libc[0], name)(*args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _inotify_init() -> int:
    """A new inotify descriptor (OSError: EMFILE when the limit is reached)."""
    return _call("inotify_init1", IN_NONBLOCK | IN_CLOEXEC)


def _add_watch(fd: int, path: str, mask: int) -> int:
    """The watch descriptor of ``path`` (OSError: ENOSPC when out of watches)."""
    import ctypes

    return _call("inotify_add_watch", fd, ctypes.c_char_p(os.fsencode(path)), ctypes.c_uint32(mask))


def _rm_watch(fd: int, wd: int) -> None:
    try:
        _call("inotify_rm_watch", fd, wd)
    except OSError:
        pass  # already gone with its directory


def _bind_uevents() -> "socket.socket":
    """The kernel's uevent multicast group (OSError when refused)."""
    import socket

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                         NETLINK_KOBJECT_UEVENT)
    try:
        sock.bind((0, 1))
    except OSError:
        sock.close()
        raise
    return sock


def _uevent_matters(message: bytes) -> bool:
    """A KVM module, or a device node we probe, came or went."""
    fields = dict(f.partition(b"=")[::2] for f in message.split(b"\0")[1:] if b"=" in f)
    subsystem = fields.get(b"SUBSYSTEM")
    if subsystem == b"module":
        return os.path.basename(fields.get(b"DEVPATH", b"")).decode("ascii", "replace") in facts.KVM_MODULES
    return subsystem == b"misc" and fields.get(b"DEVNAME", b"").decode("ascii", "replace") in _DEVICE_NAMES


# -- comparison ---------------------------------------------------------------------

def _flatten(value: object, path: str, into: "dict[str, object]") -> None:
    # Dicts and lists of dicts (guests) are walked; other lists are values,
    # as the JSON has them.
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, "%s.%s" % (path, key) if path else str(key), into)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            _flatten(item, "%s[%d]" % (path, i), into)
    else:
        into[path] = value


def flat(host: "Host") -> "dict[str, object]":
    """The JSON document of ``host`` as {json path: value}."""
    from capsfast.render.json import host_dict

    doc = host_dict(host, layout=False, cpu_model=False)
    doc.pop("schema_version", None)
    out: dict[str, object] = {}
    _flatten(doc, "", out)
    return out


def compare(old: "dict[str, object]", new: "dict[str, object]") -> "list[Change]":
    """(path, old, new) for each path whose value differs (None where absent)."""
    paths = list(old) + [p for p in new if p not in old]
    return [(p, old.get(p), new.get(p)) for p in paths if old.get(p) != new.get(p)]


# -- the watcher ----------------------------------------------------------------------

def _warn_on_stderr(note: str) -> None:
    """One ``capsfast: ...`` line on standard error, as the command's own
    messages read."""
    import sys

    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write("capsfast: %s\n" % printable(note))
        stream.flush()
    except OSError:
        pass  # nowhere to say it: the watcher goes on


class Stop(threading.Event):
    """A ``threading.Event`` that wakes a watcher at once when set."""

    def __init__(self) -> None:
        super().__init__()
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def set(self) -> None:
        super().set()
        try:
            os.write(self._w, b"x")
        except OSError:
            pass  # the pipe is full: it is readable already

    def fileno(self) -> int:
        return self._r

    def __del__(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


class Watcher:
    """Iterate for ``(host, changed)``; see the module's description."""

    def __init__(self, root: str = "/", cpuid: "str | None" = None, arch: "str | None" = None,
                 deep: bool = False, safety: float = 60.0, stop: object = None,
                 uevents: "bool | None" = None, warn: "Callable[[str], object] | None" = None,
                 hangup: "int | None" = None) -> None:
        if not safety > 0:
            raise CapsfastError("the safety interval must be a positive number of seconds, not %r" % safety)
        self._warn = _warn_on_stderr if warn is None else warn
        self._hangup = hangup
        self.notes: list[str] = []   # what degraded, as said on stderr
        self._root, self._cpuid, self._arch, self._deep = os.fspath(root), cpuid, arch, deep
        self._live = self._root == "/" and cpuid is None and arch is None
        self.safety = safety
        self._lock = threading.Lock()   # one iterating thread at a time
        self._fds = threading.Lock()    # guards closing the descriptors against close()
        self._closed = False
        self._stop_event: Callable[[], object] | None = getattr(stop, "is_set", None)
        fileno = getattr(stop, "fileno", None)
        self._stop_fd: int | None = stop if isinstance(stop, int) else None if fileno is None else int(fileno())
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._inotify: int | None = None
        self._wds: dict[int, str] = {}            # watch descriptor -> directory
        self._interest: dict[str, set[str]] = {}  # directory -> the names in it that matter
        self._uevents: socket.socket | None = None
        try:
            self._inotify = _inotify_init()
        except OSError as e:
            self._degrade("inotify is unavailable (%s)" % e.strerror)
        if self._inotify is not None:
            self._arm()
        if uevents if uevents is not None else self._root == "/":
            try:
                self._uevents = _bind_uevents()
            except OSError as e:
                self._say("kernel uevents are not readable here (%s): module loads are seen by the "
                          "safety re-probe every %g s" % (e.strerror, self.safety))
        try:
            self.host = self._probe()
        except BaseException:
            self._release()
            raise
        self._facts = flat(self.host)
        self._probed_at = time.monotonic()

    # -- set-up and tear-down --

    def _say(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)
            self._warn("watch: " + note)

    def _degrade(self, why: str) -> None:
        if self.safety > FALLBACK_SAFETY:
            self.safety = FALLBACK_SAFETY
        self._say("%s: re-probing every %g s instead" % (why, self.safety))

    def _targets(self) -> "dict[str, set[str]]":
        """Directory -> names of the entries in it that a probe reads."""
        paths = list(_DEVICES)
        if not self._live:
            # A fake root's files are plain files: every one can be watched.
            paths += [entry[1] for entry in facts.DEVICE_FILES]
        targets: dict[str, set[str]] = {}
        for path in paths:
            directory, name = os.path.split(under(self._root, path))
            targets.setdefault(directory, set()).add(name)
        return targets

    def _arm(self) -> None:
        """Watch each directory of interest, or its nearest existing ancestor
        while it is missing; called again after events, so a directory that
        appeared is watched from then on."""
        if self._inotify is None:
            return
        interest: dict[str, set[str]] = {}
        wds: dict[int, str] = {}
        for directory, names in self._targets().items():
            path = directory
            while True:
                mask = DIRECTORY_EVENTS if self._live or path.startswith(under(self._root, "/dev")) \
                    else FILE_EVENTS
                try:
                    wd = _add_watch(self._inotify, path, mask)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.ENOTDIR) and path != os.path.dirname(path):
                        names, path = {os.path.basename(path)}, os.path.dirname(path)
                        continue
                    if e.errno in (errno.ENOSPC, errno.ENOMEM):
                        self._degrade("out of inotify watches (fs.inotify.max_user_watches)")
                    elif e.errno != errno.EACCES:
                        self._degrade("cannot watch %s (%s)" % (path, e.strerror))
                    break
                wds[wd] = path
                interest.setdefault(path, set()).update(names)
                break
        for wd in set(self._wds) - set(wds):
            _rm_watch(self._inotify, wd)
        self._wds, self._interest = wds, interest

    def _release(self) -> None:
        with self._fds:
            fds = [self._wake_r, self._wake_w, self._inotify]
            self._wake_r = self._wake_w = -1
            self._inotify = None
            if self._uevents is not None:
                self._uevents.close()
                self._uevents = None
            for fd in fds:
                if fd is not None and fd >= 0:
                    os.close(fd)

    def close(self) -> None:
        """Stop: a thread waiting in the loop returns at once (StopIteration)."""
        self._closed = True
        with self._fds:
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except OSError:
                    pass
        if self._lock.acquire(False):  # nobody iterates: release now
            try:
                self._release()
            finally:
                self._lock.release()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, kind: "type[BaseException] | None", value: "BaseException | None",
                 tb: "TracebackType | None") -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_wake_r", -1) >= 0:
            self._release()

    # -- the loop --

    def _probe(self) -> "Host":
        from capsfast.host import probe

        if self._live:
            return probe(refresh=True, deep=self._deep)
        return probe(root=self._root, cpuid=self._cpuid, arch=self._arch, deep=self._deep)

    def _stopped(self) -> bool:
        event = self._stop_event
        return self._closed or (event is not None and bool(event()))

    def _drain(self) -> bool:
        """Read what is pending; whether any of it matters."""
        matters = False
        fd = self._inotify
        while fd is not None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            at = 0
            while at + 16 <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, at)
                name = data[at + 16:at + 16 + length].rstrip(b"\0")
                at += 16 + length
                if mask & _SELF_EVENTS:
                    matters = True
                elif os.fsdecode(name) in self._interest.get(self._wds.get(wd, ""), ()):
                    matters = True
        sock = self._uevents
        while sock is not None:
            try:
                message = sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: some were lost
                matters = True
                continue
            matters = matters or _uevent_matters(message)
        return matters

    def _wait(self, deadline: float) -> "bool | None":
        """Block until something matters (True), the deadline (False), or a
        stop (None)."""
        while True:
            if self._stopped():
                return None
            now = time.monotonic()
            if now >= deadline:
                return False
            timeout = deadline - now
            if self._stop_event is not None and self._stop_fd is None:
                timeout = min(timeout, EVENT_POLL)
            fds = [self._wake_r] + [fd for fd in (self._stop_fd, self._inotify) if fd is not None]
            if self._uevents is not None:
                fds.append(self._uevents.fileno())
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            if self._hangup is not None:
                # No events asked: poll reports only POLLERR or POLLHUP, so a
                # terminal or a file never wakes us, a pipe's gone reader does.
                poller.register(self._hangup, 0)
            # Rounded up: a wait rounded down to 0 ms would spin until the deadline.
            ready = [fd for fd, _events in poller.poll(int(timeout * 1000) + 1)]
            if self._hangup is not None and self._hangup in ready:
                ready.remove(self._hangup)
                self._closed = True  # nobody reads what we would print
            if self._stop_fd is not None and self._stop_fd in ready:
                self._closed = True  # stopped for good, as by close()
            if self._wake_r in ready or self._closed:
                return None
            if ready and self._drain():
                return True

    def next_change(self, timeout: "float | None" = None) -> "tuple[Host, list[Change]] | None":
        """The next change, or None after ``timeout`` seconds without one.
        StopIteration once stopped; CapsfastError when a probe fails (the
        watcher stays usable)."""
        with self._lock:
            if self._wake_r < 0:
                raise StopIteration
            try:
                found = self._next(None if timeout is None else time.monotonic() + timeout)
            except CapsfastError:
                raise  # a probe failed (the root went away): the caller may go on waiting
            except BaseException:
                self._release()
                raise
            if found is None and self._stopped():
                self._release()
                raise StopIteration
            return found

    def _next(self, until: "float | None") -> "tuple[Host, list[Change]] | None":
        while True:
            safety_at = self._probed_at + self.safety
            deadline = safety_at if until is None else min(until, safety_at)
            woke = self._wait(deadline)
            if woke is None:
                return None
            if woke:
                # A burst: gather it, then probe once.
                time.sleep(COALESCE)
                self._drain()
                self._arm()
            elif until is not None and time.monotonic() >= until and until < safety_at:
                return None
            self._probed_at = time.monotonic()  # a failing probe, too, waits for the next beat
            host = self._probe()
            new = flat(host)
            changed = compare(self._facts, new)
            self.host, self._facts = host, new
            if changed:
                return host, changed

    def __iter__(self) -> "Iterator[tuple[Host, list[Change]]]":
        return self

    def __next__(self) -> "tuple[Host, list[Change]]":
        found = self.next_change()
        assert found is not None  # without a timeout, only a change or a stop returns
        return found


def changes(root: "str | os.PathLike[str]" = "/", cpuid: "str | None" = None, arch: "str | None" = None,
            deep: bool = False, safety: float = 60.0, stop: object = None, hangup: "int | None" = None) -> Watcher:
    """An iterator of ``(host, changed)``, one per change of the host's facts
    (the probed host's ``capsfast.render.json.host_dict``, key by key):
    ``changed`` lists ``(json_path, old, new)``.  Set up (watches armed,
    first probe made: ``.host``) before it returns.  ``safety``: seconds
    between re-probes when nothing is heard.  Stop it with ``close()``
    (or ``with``), with ``stop``, or by ``hangup`` (see the module)."""
    return Watcher(os.fspath(root), cpuid, arch, deep, safety, stop, hangup=hangup)


# -- stopping on SIGTERM and SIGINT, for the commands --------------------------------

class SignalStop:
    """While entered: SIGTERM and SIGINT are collected (``signals``), not
    raised, and wake a watcher given this as ``stop`` at once, through
    ``signal.set_wakeup_fd``.  A write in progress finishes (Python resumes
    an interrupted system call), then the loop returns.  Main thread only."""

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signals: list[int] = []
        self._r = self._w = -1
        self._previous: list[object] = []
        self._previous_fd = -1

    def fileno(self) -> int:
        return self._r

    def is_set(self) -> bool:
        return bool(self.signals)

    def _collect(self, signo: int, _frame: object) -> None:
        self.signals.append(signo)

    def __enter__(self) -> "SignalStop":
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous = [signal.signal(s, self._collect) for s in self.STOP_SIGNALS]
        self._previous_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        return self

    def __exit__(self, kind: "type[BaseException] | None", value: "BaseException | None",
                 tb: "TracebackType | None") -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for s, handler in zip(self.STOP_SIGNALS, self._previous):
            signal.signal(s, handler)  # type: ignore[arg-type]
        os.close(self._r)
        os.close(self._w)
