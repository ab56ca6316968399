"""Remote hosts over SSH: ``--connect URI`` and ``probe(connect=URI)``.

The system ``ssh`` client (so ``~/.ssh/config``, agents, ProxyJump and
known_hosts all work) runs ``capsfast.recording.collector`` on the remote ``python3``
with the probe's plan written into it; the collector records that host and
streams the recording back as a tar on stdout.  Nothing is installed or left
there.  The reply is read with a size bound and a deadline, then extracted
into a temporary directory with checks of our own (only regular files and
directories, each under the directory, bounded in number and size), and
replayed there like any recording.

Every fault is a CapsfastError of one line naming the host and the cause.
"""
import errno
import io
import json
import math
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time

from capsfast import bounded_json
from capsfast.constants import __version__
from capsfast.errors import CapsfastError, printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType
    from typing import Any, BinaryIO

DEFAULT_TIMEOUT = 10.0
# After the connect timeout, the time a host has to authenticate, run the
# collector and send the reply (well under a second on a live host).
GRACE = 5.0
# The command run there: -I -S so that no capsfast installed there (or on
# this machine, over ssh to localhost) can be imported by the collector.
REMOTE_COMMAND = "python3 -I -S -"
# The status the collector exits with after its one line on stderr.
COLLECTOR_FAILED = 3

# Bounds of a reply, as for a hostile root: small files at most 16 KiB (the
# /proc/cpuinfo block; 4 KiB for the others), the CPUID dump at most 1 MiB,
# a QMP transcript (qemu/<emulator>.replies; libvirt's x86_64 ones are
# under 1 MiB) at most 8 MiB, the whole stream at most 12 MiB and 2048
# members (emulators included).
MAX_REPLIES = 8 << 20
MAX_REPLY = (4 << 20) + MAX_REPLIES
MAX_MEMBERS = 2048
MAX_DUMP = 1 << 20
MAX_SCENARIO = 64 << 10
# A libvirt CPU map file (the largest, x86_features.xml, is about 21 KiB).
MAX_CPU_MAP_FILE = 1 << 20
MAX_ROOT_FILE = 16 << 10
MAX_NAME = 1024
MAX_DEPTH = 32

_SCHEMES = {"ssh": ("", "/"), "qemu+ssh": ("/system",)}
_PARAMS = ("keyfile", "known_hosts", "no_verify")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.%")


class Target:
    """A parsed remote URI: where to connect and how."""

    __slots__ = ("uri", "user", "host", "port", "keyfile", "known_hosts", "no_verify")

    def __init__(self, uri: str, user: "str | None", host: str, port: "int | None", keyfile: "str | None" = None,
                 known_hosts: "str | None" = None, no_verify: bool = False) -> None:
        self.uri = uri
        self.user = user
        self.host = host
        self.port = port
        self.keyfile = keyfile
        self.known_hosts = known_hosts
        self.no_verify = no_verify

    @property
    def name(self) -> str:
        """``[user@]host[:port]``, for messages."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s%s%s" % (self.user + "@" if self.user else "", host, ":%d" % self.port if self.port else "")

    def ssh_argv(self, timeout: float) -> "list[str]":
        """The ssh command line that runs the collector there."""
        argv = ["ssh", "-T", "-x", "-a",
                "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=%d" % max(1, math.ceil(timeout)),
                "-o", "ClearAllForwardings=yes",
                "-o", "PermitLocalCommand=no",
                # Errors only: a warning ("Permanently added ... to the list
                # of known hosts") is no reason a host failed.
                "-o", "LogLevel=ERROR"]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        if self.keyfile is not None:
            argv += ["-i", self.keyfile]
        if self.known_hosts is not None:
            argv += ["-o", "UserKnownHostsFile=" + self.known_hosts]
        if self.no_verify:
            argv += ["-o", "StrictHostKeyChecking=no"]
            if self.known_hosts is None:
                # Not verified, so not remembered: nothing written to ~/.ssh.
                argv += ["-o", "UserKnownHostsFile=/dev/null"]
        argv += ["--", (self.user + "@" if self.user else "") + self.host, REMOTE_COMMAND]
        return argv

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __repr__(self) -> str:
        return "Target(%s)" % ", ".join("%s=%r" % (a, getattr(self, a)) for a in self.__slots__)


def _bad_uri(uri: str, why: str) -> CapsfastError:
    return CapsfastError("bad remote URI '%s': %s" % (printable(uri), why))


def parse_uri(uri: str) -> Target:
    """``ssh://[user@]host[:port]`` or libvirt's
    ``qemu+ssh://[user@]host[:port]/system``, with libvirt's ssh query
    parameters ``keyfile``, ``known_hosts`` and ``no_verify``."""
    from urllib.parse import parse_qsl, unquote

    if not isinstance(uri, str) or not uri:
        raise _bad_uri(str(uri), "empty")
    if not uri.isprintable() or any(c.isspace() for c in uri):
        raise _bad_uri(uri, "it holds spaces or control characters")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise _bad_uri(uri, "not of the form ssh://[user@]host[:port] or qemu+ssh://[user@]host[:port]/system")
    scheme = scheme.lower()
    if scheme not in _SCHEMES:
        raise _bad_uri(uri, "scheme %s is not ssh or qemu+ssh (capsfast connects over SSH only)" % scheme)
    if "#" in rest:
        raise _bad_uri(uri, "a fragment (#...) means nothing here")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    if path not in _SCHEMES[scheme]:
        if scheme == "qemu+ssh":
            raise _bad_uri(uri, "path %s: only /system (the host's system instance) is known" % (path or "(none)"))
        raise _bad_uri(uri, "path %s: an ssh URI names a host only" % path)
    userinfo, at, hostport = netloc.rpartition("@")
    user = None
    if at:
        if ":" in userinfo:
            raise _bad_uri(uri, "a password in the URI is not supported (use a key or an agent)")
        user = unquote(userinfo)
        if not user or user.startswith("-") or not set(user) <= _HOST_CHARS:
            raise _bad_uri(uri, "user name %r is not a user name" % user)
    port_text = ""
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or not host or not set(host) <= _IPV6_CHARS or (after and not after.startswith(":")):
            raise _bad_uri(uri, "%r is not a bracketed IPv6 address" % hostport)
        port_text = after[1:] if after else ""
        has_port = bool(after)
    else:
        host, colon, port_text = hostport.partition(":")
        has_port = bool(colon)
        host = unquote(host)
        if not host:
            raise _bad_uri(uri, "no host")
        if host.startswith("-") or not set(host) <= _HOST_CHARS:
            raise _bad_uri(uri, "host %r is not a host name or address" % host)
    port = None
    if has_port:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536 or len(port_text) > 5:
            raise _bad_uri(uri, "port %r is not a port number (1-65535)" % port_text)
        port = int(port_text)
    params: "dict[str, str]" = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise _bad_uri(uri, "query %r is not name=value&..." % query) from None
        for key, value in pairs:
            if key not in _PARAMS:
                raise _bad_uri(uri, "parameter %r is not supported (only %s)" % (key, ", ".join(_PARAMS)))
            if key in params:
                raise _bad_uri(uri, "parameter %s is given twice" % key)
            params[key] = value
    for key in ("keyfile", "known_hosts"):
        if key in params and not params[key]:
            raise _bad_uri(uri, "%s is empty" % key)
        if key in params and not params[key].isprintable():
            raise _bad_uri(uri, "%s holds control characters" % key)
    no_verify = params.get("no_verify", "0")
    if no_verify not in ("0", "1"):
        raise _bad_uri(uri, "no_verify is %r, not 0 or 1" % no_verify)
    return Target(uri, user, host, port, params.get("keyfile"), params.get("known_hosts"), no_verify == "1")


# -- the plan, in the collector's text ----------------------------------------

def plan(target_name: str, deep: bool = False, domcaps: bool = False,
         emulator: "str | None" = None) -> "dict[str, Any]":
    """What the collector is to record on ``target_name``: the capture plan
    (``domcaps``: with QEMU's answers, see capture.plan)."""
    from capsfast.recording import capture

    return capture.plan("recorded over SSH from %s by capsfast %s on %s"
                        % (target_name, __version__, time.strftime("%Y-%m-%d")), deep, domcaps, emulator)


def script(the_plan: "dict[str, Any]") -> bytes:
    """The collector's source with ``the_plan`` in its ``PLAN`` line and,
    where the plan asks QEMU, the QMP conversation's text in its ``QMP``
    line."""
    here = os.path.dirname(os.path.abspath(__file__))
    source = _source(os.path.join(here, "collector.py"))
    source = _fill(source, "PLAN", json.dumps(the_plan, sort_keys=True))
    if the_plan.get("qmp"):
        source = _fill(source, "QMP", _source(os.path.join(os.path.dirname(here), "parts", "domcaps", "qmp.py")))
    return source.encode("utf-8")


def _source(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _fill(source: str, name: str, value: str) -> str:
    line = '\n%s = ""\n' % name
    if source.count(line) != 1:  # pragma: no cover - a broken install
        raise CapsfastError("capsfast/collector.py has no %s line: reinstall capsfast" % name)
    return source.replace(line, "\n%s = %r\n" % (name, value))


# -- running ssh -------------------------------------------------------------------

# The ssh processes running now, in every thread: each runs in a session of
# its own (no terminal to prompt on), so no signal to our process group
# reaches it, and whatever ends this process ends them first.
_LIVE: "set[subprocess.Popen[bytes]]" = set()
_LIVE_LOCK = threading.Lock()


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    """Kill ``proc`` and its children (a ProxyCommand): its whole group."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def kill_all() -> None:
    """Kill every ssh process running now (this process is ending)."""
    with _LIVE_LOCK:
        for proc in _LIVE:
            if proc.returncode is None:
                _kill(proc)


class _Cancelled(Exception):
    pass


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived while ssh ran (a BaseException, as
    KeyboardInterrupt: nothing may take it for a fault of one host)."""


class ending_cleanly:
    """``with ending_cleanly():`` around work that runs ssh: SIGTERM and
    SIGHUP, which would end this process on the spot, first unwind it (the
    ssh children killed, temporary recordings removed) and then end it by
    the same signal.  Where a handler of the program's own is set, or off
    the main thread, signals are left as they are."""

    def __init__(self) -> None:
        self._saved: "list[tuple[int, Any]]" = []
        self._signal = 0

    def _handler(self, number: int, _frame: object) -> None:
        if not self._signal:
            self._signal = number
            raise _Terminated

    def __enter__(self) -> None:
        import signal

        if threading.current_thread() is not threading.main_thread():
            return
        for number in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(number) == signal.SIG_DFL:
                self._saved.append((number, signal.signal(number, self._handler)))

    def __exit__(self, kind: "type[BaseException] | None", value: "BaseException | None",
                 traceback: "TracebackType | None") -> None:
        import signal

        if kind is not None:
            kill_all()
        for number, handler in self._saved:
            signal.signal(number, handler)
        if self._signal:
            os.kill(os.getpid(), self._signal)  # the default action now: this process ends by it


def _run(argv: "list[str]", stdin: bytes, seconds: float, name: str,
         cancel: "threading.Event | None" = None) -> "tuple[int, bytes, bytes]":
    """Run ``argv`` with ``stdin`` written to it; (status, stdout, stderr).
    Past ``seconds`` or MAX_REPLY bytes of output, the process and its
    children (a ProxyCommand) are killed."""
    import selectors

    deadline = time.monotonic() + seconds

    try:
        with _LIVE_LOCK:
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)  # a group of its own, and no terminal to prompt on
            _LIVE.add(proc)
    except _Cancelled:
        raise CapsfastError("%s: not connected: interrupted" % name) from None
    except OSError as e:
        raise CapsfastError("%s: cannot run %s: %s" % (name, argv[0], e.strerror), errno=e.errno) from None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out: "list[bytes]" = []
    err: "list[bytes]" = []
    size = 0
    fault = None
    written = 0
    sel = selectors.DefaultSelector()
    try:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                fault = "timeout"
                break
            for key, _events in sel.select(left):
                fileobj = key.fileobj
                if fileobj is proc.stdin:
                    try:
                        written += os.write(proc.stdin.fileno(), stdin[written:written + 65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        written = len(stdin)  # ssh is gone: its status tells why
                    if written >= len(stdin):
                        sel.unregister(proc.stdin)
                        proc.stdin.close()  # EOF: the remote python3 starts the script
                    continue
                assert fileobj is proc.stdout or fileobj is proc.stderr
                chunk = os.read(fileobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(fileobj)
                elif fileobj is proc.stdout:
                    size += len(chunk)
                    out.append(chunk)
                    if size > MAX_REPLY:
                        fault = "too_large"
                        break
                elif sum(len(e) for e in err) < 65536:
                    err.append(chunk)
            if fault:
                break
        if fault is None:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                fault = "timeout"
    finally:
        sel.close()
        if fault is not None or proc.returncode is None:
            _kill(proc)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
        proc.wait()
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    if fault == "timeout":
        if size:
            raise CapsfastError("%s: the reply stopped mid-stream (%d bytes in): stopped after %g s"
                                % (name, size, seconds))
        raise CapsfastError("%s: no reply within %g s (the host, or its python3, hangs)" % (name, seconds))
    if fault == "too_large":
        raise CapsfastError("%s: the reply is larger than %d bytes: not a recording" % (name, MAX_REPLY))
    return proc.returncode, b"".join(out), b"".join(err)


# What ssh prints (any of the phrases, lower case) -> the cause in our
# words; the first match wins, so the specific ones come first.
_SSH_CAUSES = (
    (("could not resolve hostname", "name or service not known", "temporary failure in name resolution"),
     "unknown host name"),
    (("connection refused",), "connection refused (no sshd listens on that port)"),
    (("timed out",), "connection timed out"),
    (("no route to host", "network is unreachable"), "host unreachable"),
    (("remote host identification has changed", "host key for"),
     "host key mismatch: the host's key is not the one known_hosts has for it"),
    # In batch mode ssh says no more than this for a host it does not know.
    (("host key verification failed", "host key is known"),
     "host key not known: known_hosts has no key for it (no_verify=1 skips the check)"),
    (("permission denied", "too many authentication failures"),
     "authentication refused: the key (or agent) was not accepted"),
    (("connection closed", "connection reset", "broken pipe", "kex_exchange_identification"),
     "the connection was lost"),
)


def ssh_cause(stderr: bytes) -> str:
    """ssh's exit status 255 in our words, from what it printed."""
    text = stderr.decode("utf-8", "replace")
    lower = text.lower()
    for phrases, cause in _SSH_CAUSES:
        if any(phrase in lower for phrase in phrases):
            return cause
    return "ssh failed: %s" % _last_line(text)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "(it said nothing)"
    line = lines[-1]
    if line.startswith("ssh: "):
        line = line[5:]
    return printable(line[:200])


def _explain(name: str, status: int, stderr: bytes) -> CapsfastError:
    """The one-line error for a run that did not end well."""
    text = stderr.decode("utf-8", "replace")
    if status == 255:
        return CapsfastError("%s: %s" % (name, ssh_cause(stderr)))
    if status == 127 or "python3: not found" in text or "python3: command not found" in text:
        return CapsfastError("%s: no python3 on the remote host (the collector needs Python 3.6 or later there)"
                             % name)
    if status == 126:
        return CapsfastError("%s: python3 on the remote host cannot be run: %s" % (name, _last_line(text)))
    if status == COLLECTOR_FAILED and "capsfast collector:" in text:
        line = text[text.rindex("capsfast collector:") + len("capsfast collector:"):]
        return CapsfastError("%s: the collector failed there: %s" % (name, _last_line(line)))
    if "SyntaxError" in text:
        return CapsfastError("%s: the remote python3 is too old for the collector (it needs 3.6 or later)" % name)
    if status < 0:
        return CapsfastError("%s: ssh was killed by signal %d" % (name, -status))
    return CapsfastError("%s: the remote python3 failed (status %d): %s" % (name, status, _last_line(text)))


# -- reading a reply ---------------------------------------------------------------

class _TooLarge(Exception):
    pass


class _Bounded(io.RawIOBase):
    """A read-only view of a stream that ends in _TooLarge past ``limit``
    bytes, and keeps the first 512 bytes read (a tar header, if it is a tar)
    and the last 1024 (the end-of-archive blocks)."""

    def __init__(self, stream: "BinaryIO", limit: int) -> None:
        super().__init__()
        self._stream = stream
        self._left = limit
        self.head = b""
        self.tail = b""
        self.total = 0

    def readable(self) -> bool:
        return True

    def read(self, size: "int | None" = -1) -> bytes:
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        data = self._stream.read(want) if want else b""
        data = data or b""
        self._left -= len(data)
        self.total += len(data)
        if self._left < 0:
            raise _TooLarge
        if len(self.head) < 512:
            self.head += data[:512 - len(self.head)]
        self.tail = (self.tail + data)[-1024:]
        return data

    def starts_as_tar(self) -> bool:
        try:
            tarfile.TarInfo.frombuf(self.head, "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            return False
        return True

    def readinto(self, buffer: "Any") -> int:  # pragma: no cover - tarfile calls read()
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _member_limit(parts: "list[str]", is_dir: bool, where: str) -> int:
    """The largest size a member may have, by where it is; CapsfastError
    for a member that has no place in a recording."""
    top = parts[0]
    if parts[:-1] == ["root", "usr", "share", "libvirt", "cpu_map"] and not is_dir:
        return MAX_CPU_MAP_FILE
    if top == "root":
        return MAX_ROOT_FILE
    if len(parts) == 1 and not is_dir and top == "scenario.json":
        return MAX_SCENARIO
    if len(parts) == 1 and not is_dir and top == "cpuid.txt":
        return MAX_DUMP
    if len(parts) == 2 and not is_dir and top == "qemu" and parts[1].endswith(".replies"):
        return MAX_REPLIES
    if parts == ["qemu"] and is_dir:
        return 0
    raise CapsfastError("%s: member %s has no place in a recording" % (where, printable("/".join(parts))))


def _check_name(name: str, where: str) -> "list[str]":
    shown = printable(name[:100])
    if not name or len(name) > MAX_NAME or not name.isprintable() or "\\" in name:
        raise CapsfastError("%s: member name %r refused" % (where, shown))
    if name.startswith("/"):
        raise CapsfastError("%s: member %s is an absolute path: refused" % (where, shown))
    parts = name.split("/")
    if ".." in parts:
        raise CapsfastError("%s: member %s climbs out with '..': refused" % (where, shown))
    if any(part in ("", ".") for part in parts) or len(parts) > MAX_DEPTH:
        raise CapsfastError("%s: member name %s refused" % (where, shown))
    return parts


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _directory(dirs: "dict[tuple[str, ...], int]", parts: "tuple[str, ...]") -> int:
    """The directory ``parts`` open (``dirs`` keeps each one made, by its
    parts, with ``()`` the top): made and opened once, relative to its
    parent, never following a symbolic link."""
    fd = dirs.get(parts)
    if fd is None:
        parent = _directory(dirs, parts[:-1])
        try:
            os.mkdir(parts[-1], 0o755, dir_fd=parent)
        except FileExistsError:
            pass
        fd = dirs[parts] = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
    return fd


def _place(dirs: "dict[tuple[str, ...], int]", parts: "list[str]", data: "bytes | None", mode: int,
           where: str) -> None:
    """Create ``parts`` under the directories ``dirs`` holds open: a
    directory (``data`` None) or a new file; an existing file is never
    overwritten."""
    try:
        if data is None:
            _directory(dirs, tuple(parts))
            return
        parent = _directory(dirs, tuple(parts[:-1]))
        out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                      dir_fd=parent)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view):]
        finally:
            os.close(out)
    except FileExistsError:
        raise CapsfastError("%s: member %s is there twice: refused" % (where, printable("/".join(parts)))) from None
    except (NotADirectoryError, IsADirectoryError):
        raise CapsfastError("%s: member %s: a file or a link where a directory belongs, or the reverse: refused"
                            % (where, printable("/".join(parts)))) from None
    except OSError as e:
        if e.errno == errno.ELOOP:  # a link where the file belongs
            raise CapsfastError("%s: member %s: a link in the way: refused" % (where, printable("/".join(parts)))) \
                from None
        raise CapsfastError("cannot write the recording of %s: %s" % (where, e.strerror), errno=e.errno) from None


def extract(stream: "BinaryIO", directory: str, where: str) -> None:
    """Extract the tar ``stream`` into the existing, empty ``directory``:
    only regular files and directories, with relative names that stay
    inside (no ``..``, no absolute path, no link, device or FIFO), at most
    MAX_MEMBERS members of the sizes a recording has and MAX_REPLY bytes in
    all; a recording must end with its end-of-archive blocks and hold
    ``scenario.json``.  CapsfastError naming ``where`` and the fault.  On an
    error, what was written stays in ``directory`` (the caller removes it)."""
    bounded = _Bounded(stream, MAX_REPLY)
    dirs: "dict[tuple[str, ...], int]" = {(): os.open(directory, _DIR_FLAGS)}
    count = 0
    try:
        # "r|": a plain stream, read once from the start; nothing is ever
        # extracted by tarfile itself.
        with tarfile.open(fileobj=bounded, mode="r|") as tar:
            for member in tar:
                count += 1
                if count > MAX_MEMBERS:
                    raise CapsfastError("%s: more than %d members: not a recording" % (where, MAX_MEMBERS))
                is_dir = member.type == tarfile.DIRTYPE
                if not is_dir and member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    kind = ("a link" if member.issym() or member.islnk() else
                            "a device node" if member.ischr() or member.isblk() else
                            "not a regular file or directory")
                    raise CapsfastError("%s: member %s is %s: refused"
                                        % (where, printable(member.name[:100]), kind))
                parts = _check_name(member.name, where)
                limit = _member_limit(parts, is_dir, where)
                if is_dir:
                    _place(dirs, parts, None, 0o755, where)
                    continue
                if member.size > limit:
                    raise CapsfastError("%s: member %s is %d bytes, more than %d: refused"
                                        % (where, printable(member.name), member.size, limit))
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                data = source.read(member.size)
                if len(data) != member.size:
                    raise CapsfastError("%s: the reply is truncated (in %s)" % (where, printable(member.name)))
                _place(dirs, parts, data, 0o755 if member.mode & 0o111 else 0o644, where)
            # Whatever follows the end-of-archive blocks (the padding of the
            # last record) is read too, so that a cut-off reply shows.
            while bounded.read(65536):
                pass
    except _TooLarge:
        raise CapsfastError("%s: the reply is larger than %d bytes: not a recording" % (where, MAX_REPLY)) from None
    except (tarfile.TarError, EOFError, ValueError, UnicodeError, OverflowError) as e:
        reason = str(e)
        if bounded.total == 0 or reason == "empty file":
            raise CapsfastError("%s: the reply is empty: not a recording" % where) from None
        if not bounded.starts_as_tar():
            start = bounded.head.split(b"\n", 1)[0][:60].decode("ascii", "replace")
            # Text there is most often a login script of the remote shell that prints.
            said = " but %r: does a shell startup file there print?" % start if start.isprintable() and start else ""
            raise CapsfastError("%s: the reply is not a recording (garbage: no tar header at its start%s)"
                                % (where, said)) from None
        if "unexpected end" in reason or "truncated" in reason:
            raise CapsfastError("%s: the reply is truncated (%d bytes)" % (where, bounded.total)) from None
        raise CapsfastError("%s: the reply is not a recording (garbage: %s)" % (where, printable(reason[:80]))) \
            from None
    finally:
        for fd in dirs.values():
            os.close(fd)
    if bounded.total == 0:
        raise CapsfastError("%s: the reply is empty: not a recording" % where)
    if bounded.tail != bytes(1024) or bounded.total % 512:
        raise CapsfastError("%s: the reply is truncated or has garbage after it (%d bytes)" % (where, bounded.total))
    try:
        with open(os.path.join(directory, "scenario.json"), "rb") as f:
            text = f.read(MAX_SCENARIO + 1)
    except FileNotFoundError:
        raise CapsfastError("%s: the reply has no scenario.json: not a recording (truncated?)" % where) from None
    except OSError as e:
        raise CapsfastError("%s: scenario.json: %s" % (where, e.strerror), errno=e.errno) from None
    doc = bounded_json.loads(text, "%s: scenario.json" % where, MAX_SCENARIO)
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), int):
        raise CapsfastError("%s: scenario.json names no recording format: not a recording" % where)


class Recording:
    """A recording in a temporary directory: ``path``; ``close()`` (or
    leaving a ``with`` block, which gives the path) removes it."""

    __slots__ = ("path", "name")

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, kind: "type[BaseException] | None", value: "BaseException | None",
                 traceback: "TracebackType | None") -> None:
        self.close()

    def __repr__(self) -> str:
        return "Recording(%r, %r)" % (self.path, self.name)


def read_stream(stream: "BinaryIO", where: str) -> Recording:
    """A recording from a tar stream (``capsfast record -`` or a reply),
    extracted safely into a temporary directory."""
    directory = tempfile.mkdtemp(prefix="capsfast-remote-")
    try:
        extract(stream, directory, where)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return Recording(directory, where)


def fetch(uri: str, timeout: float = DEFAULT_TIMEOUT, deep: bool = False, *, domcaps: bool = False,
          emulator: "str | None" = None, cancel: "threading.Event | None" = None) -> Recording:
    """Record the host ``uri`` names over SSH: a Recording in a temporary
    directory (use it as ``with fetch(uri) as directory:``).  ``timeout``
    is ssh's connect timeout; the whole exchange must end within it plus
    GRACE seconds.  ``deep`` also tries KVM_CREATE_VM there.  ``domcaps``
    also asks QEMU there, as libvirt does (``emulator``, default the host
    architecture's own): its transcript is ``qemu/<emulator's
    name>.replies`` in the recording, and the exchange has the QMP probe's
    time more.  Once ``cancel`` is set, no ssh is started."""
    target = parse_uri(uri)
    if not timeout > 0:
        raise CapsfastError("%s: the timeout must be positive, not %r" % (target.name, timeout))
    name = target.name
    for key, path in (("keyfile", target.keyfile), ("known_hosts", target.known_hosts)):
        # ssh only warns about a missing key file and goes on without it.
        if path is not None and not (key == "known_hosts" and target.no_verify):
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise CapsfastError("%s: %s %s: %s" % (name, key, printable(path), e.strerror), errno=e.errno) \
                    from None
    if shutil.which("ssh") is None:
        raise CapsfastError("%s: no ssh client on this machine (install OpenSSH's client)" % name)
    the_plan = plan(name, deep, domcaps, emulator)
    seconds = timeout + GRACE + (the_plan["qmp"]["timeout"] if domcaps else 0)
    status, out, err = _run(target.ssh_argv(timeout), script(the_plan), seconds, name, cancel)
    if status != 0:
        raise _explain(name, status, err)
    if not out:
        said = _last_line(err.decode("utf-8", "replace"))
        raise CapsfastError("%s: the remote python3 sent nothing (%s)" % (name, said))
    return read_stream(io.BytesIO(out), name)


class Fetched:
    """One URI of ``fetch_many``: its ``recording`` or its ``error``."""

    __slots__ = ("uri", "recording", "error")

    def __init__(self, uri: str, recording: "Recording | None", error: "CapsfastError | None") -> None:
        self.uri = uri
        self.recording = recording
        self.error = error

    def close(self) -> None:
        if self.recording is not None:
            self.recording.close()

    def __repr__(self) -> str:
        return "Fetched(%r, %r, %r)" % (self.uri, self.recording, self.error)


def fetch_many(uris: "Sequence[str]", parallel: int = 8, timeout: float = DEFAULT_TIMEOUT,
               deep: bool = False) -> "list[Fetched]":
    """``fetch`` each URI, at most ``parallel`` at once; one Fetched per
    URI, in order (the caller closes them).  A fault of one host is its
    Fetched's error, never an exception."""
    if parallel < 1:
        raise CapsfastError("parallel must be at least 1, not %r" % parallel)
    if not uris:
        return []
    from concurrent.futures import ThreadPoolExecutor

    cancel = threading.Event()

    def one(uri: str) -> Fetched:
        try:
            return Fetched(uri, fetch(uri, timeout, deep, cancel=cancel), None)
        except CapsfastError as e:
            return Fetched(uri, None, e)

    pool = ThreadPoolExecutor(max_workers=min(parallel, len(uris)), thread_name_prefix="capsfast-ssh")
    futures = [pool.submit(one, uri) for uri in uris]
    try:
        return [future.result() for future in futures]
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): no ssh started from now on, the
        # running ones killed, and what was fetched removed.
        with _LIVE_LOCK:
            cancel.set()
        kill_all()
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().close()
        raise
    finally:
        pool.shutdown(wait=True)
