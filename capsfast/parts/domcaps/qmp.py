"""The QMP probe: run an emulator as libvirt 9.0 runs it to learn its
capabilities, and hold libvirt's conversation with it.

The emulator starts paused with no machine (``-S -no-user-config
-nodefaults -nographic -machine none,accel=kvm:tcg``) and QMP on its
stdin and stdout.  The commands are libvirt's, in libvirt's order, with
libvirt's conditions (``virQEMUCapsInitQMPMonitor`` and its callees): a
device or object is asked about only where ``qom-list-types`` lists what
libvirt's table requires, the CPU model commands only where
``query-commands`` has them, SEV and SGX only where their object types
exist.  Where KVM was enabled, a second, TCG-only process answers the
questions libvirt asks again for TCG (``virQEMUCapsInitQMPMonitorTCG``).

The two processes may run at once: where ``/dev/kvm`` is usable the TCG
process starts with the first one, so the emulators' start-up costs are
paid side by side; it is dropped unasked where KVM turns out not to be
enabled.

An emulator is untrusted: every read is bounded in time (one deadline for
the whole probe) and size, a reply's nesting depth is bounded before it
is decoded, each process runs in a session of its own and the whole
process group is killed when the conversation ends, however it ends.  An
error reply libvirt tolerates is kept in the transcript as it came; any
other failure is one QmpError, naming the emulator's last line on
stderr where it said something.

This module imports nothing but the standard library at module level and
runs on Python 3.6: ``--connect`` sends its text along with the recording
collector, so that a remote host's QEMU is asked by the same code as a
local one (``conversation`` and ``replies_text``).  ``converse`` maps its
results and errors to capsfast's for the local side.
"""
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    # A command and its reply, as JSON objects.
    Exchange = tuple[dict[str, Any], dict[str, Any]]

DEFAULT_TIMEOUT = 30.0
KVM_MACHINE = "none,accel=kvm:tcg"
TCG_MACHINE = "none,accel=tcg"
# The largest single reply (query-qmp-schema is the largest, well under
# 1 MiB today) and the most stderr kept for the error line.
MAX_REPLY = 16 << 20
MAX_STDERR = 64 << 10
KVM_DEVICE = "/dev/kvm"
# libvirt 9.0 refuses anything older (QEMU_MIN_MAJOR, QEMU_MIN_MINOR).
MIN_VERSION = (4, 2, 0)
# Bounds of a transcript, on the wire and in a file: all replies together,
# and the nesting of one reply (the JSON decoder recurses once per level).
MAX_BYTES = 64 << 20
MAX_DEPTH = 64


class QmpError(Exception):
    """The conversation failed; the message is one line.  ``errno`` is the
    system error where one caused it."""

    def __init__(self, message: str, errno: "int | None" = None) -> None:
        super().__init__(message)
        self.errno = errno


class Transcript:
    """A probe's conversations: ``processes[0]`` the first (KVM where it
    was used), ``processes[1]`` the TCG-only one, if any; each a list of
    (command, reply) pairs in the order they were exchanged."""

    __slots__ = ("processes",)

    def __init__(self, processes: "list[list[Exchange]]") -> None:
        self.processes = processes

    def replies(self, command: str, process: int = 0) -> "Iterator[Exchange]":
        """Each (command, reply) of ``command`` in ``process``, in order."""
        if process < len(self.processes):
            for exchange in self.processes[process]:
                if exchange[0].get("execute") == command:
                    yield exchange

    def value(self, command: str, process: int = 0, arguments: "dict[str, Any] | None" = None) -> "Any":
        """The ``return`` of the first ``command`` (with exactly these
        ``arguments`` when given) in ``process``; None where it was not
        asked or answered with an error."""
        for sent, reply in self.replies(command, process):
            if arguments is not None and sent.get("arguments") != arguments:
                continue
            return reply.get("return")
        return None


def printable(text: str) -> str:
    """``text`` with control characters escaped (as capsfast.errors.printable:
    this module may not import capsfast)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)

# -- libvirt 9.0's tables (src/qemu/qemu_capabilities.c) ---------------------------

# virQEMUCapsObjectTypes, for the capabilities that decide what is asked
# next: capability -> the type names in qom-list-types that set it.
_TYPE_CAPS = {
    "virtio-net": ("virtio-net-pci", "virtio-net-ccw", "virtio-net-device"),
    "virtio-scsi": ("virtio-scsi-pci", "virtio-scsi-ccw", "virtio-scsi-device"),
    "virtio-ccw": ("virtio-blk-ccw",),
    "vfio-pci": ("vfio-pci",),
    "usb-redir": ("usb-redir",),
    "usb-storage": ("usb-storage",),
    "VGA": ("VGA",),
    "vmware-svga": ("vmware-svga",),
    "qxl": ("qxl",),
    "virtio-gpu": ("virtio-gpu-pci", "virtio-gpu-device"),
    "intel-iommu": ("intel-iommu",),
    "spapr-pci-host-bridge": ("spapr-pci-host-bridge",),
    "virtio-gpu-ccw": ("virtio-gpu-ccw",),
    "mch": ("mch",),
    "nvdimm": ("nvdimm",),
    "pcie-root-port": ("pcie-root-port",),
    "vhost-user-fs-device": ("vhost-user-fs-device",),
    "virtio-mem-pci": ("virtio-mem-pci",),
    "virtio-iommu-pci": ("virtio-iommu-pci",),
    "memory-backend-memfd": ("memory-backend-memfd",),
    "max-x86_64-cpu": ("max-x86_64-cpu",),
    "max-arm-cpu": ("max-arm-cpu",),
    "tcg": ("tcg-accel",),
    "sev-guest": ("sev-guest",),
    "sgx-epc": ("sgx-epc",),
}

# virQEMUCapsDeviceProps: each device libvirt asks device-list-properties
# about, in order, with the capability it needs (None: always asked).
_DEVICE_PROPS = (
    ("virtio-blk-pci", None), ("virtio-net-pci", "virtio-net"), ("virtio-scsi-pci", "virtio-scsi"),
    ("virtio-blk-ccw", "virtio-ccw"), ("virtio-net-ccw", "virtio-net"), ("virtio-scsi-ccw", "virtio-scsi"),
    ("vfio-pci", "vfio-pci"), ("scsi-hd", None), ("ide-hd", None), ("PIIX4_PM", None),
    ("usb-redir", "usb-redir"), ("usb-storage", "usb-storage"), ("kvm-pit", None), ("VGA", "VGA"),
    ("vmware-svga", "vmware-svga"), ("qxl", "qxl"), ("virtio-gpu-pci", "virtio-gpu"),
    ("virtio-gpu-device", "virtio-gpu"), ("ICH9-LPC", None), ("virtio-balloon-pci", None),
    ("virtio-balloon-ccw", None), ("virtio-balloon-device", None), ("intel-iommu", "intel-iommu"),
    ("spapr-pci-host-bridge", "spapr-pci-host-bridge"), ("virtio-gpu-ccw", "virtio-gpu-ccw"),
    ("mch", "mch"), ("nvdimm", "nvdimm"), ("pcie-root-port", "pcie-root-port"), ("usb-host", None),
    ("vhost-user-fs-device", "vhost-user-fs-device"), ("virtio-mem-pci", "virtio-mem-pci"),
    ("virtio-iommu-pci", "virtio-iommu-pci"),
)

# virQEMUCapsObjectProps: qom-list-properties, in order, with the
# capability each needs.
_OBJECT_PROPS = (
    ("memory-backend-file", None), ("memory-backend-memfd", "memory-backend-memfd"),
    ("max-x86_64-cpu", "max-x86_64-cpu"), ("max-arm-cpu", "max-arm-cpu"),
)
# The CPU property whose presence makes libvirt trust QEMU's canonical
# feature names (QEMU_CAPS_CPU_UNAVAILABLE_FEATURES implies
# QEMU_CAPS_CANONICAL_CPU_FEATURES).
_CANONICAL_PROPERTY = "unavailable-features"

# virQEMUCapsMachineProps: machine types whose QOM properties libvirt
# lists (``none`` always; the others only where QEMU has the machine).
_MACHINE_PROPS = ("pseries", "virt", "none")

_X86 = ("i686", "x86_64")
_ARM = ("armv6l", "armv7l", "armv7b", "aarch64")
_S390 = ("s390", "s390x")


# -- one process -------------------------------------------------------------------

def _too_deep(line: bytes) -> bool:
    """Whether the JSON text ``line`` nests deeper than MAX_DEPTH, found
    without decoding it (the decoder recurses once per level).  The rule of
    ``capsfast.bounded_json.depth``, written here again because this module
    also runs on a remote host, where there is no capsfast to import:
    strings are text, their brackets do not nest."""
    import re

    level = 0
    for bracket in re.sub(rb'"[^"\\]*(?:\\.[^"\\]*)*"', b"", line).translate(None, _NOT_BRACKETS):
        if bracket in b"[{":
            level += 1
            if level > MAX_DEPTH:
                return True
        else:
            level -= 1
    return False


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


class _Process:
    """One emulator process and its side of the conversation."""

    def __init__(self, emulator: str, machine: str, deadline: float, timeout: float) -> None:
        import subprocess

        self.emulator = emulator
        self.machine = machine
        self.deadline = deadline
        self.timeout = timeout
        self.exchanges: list[Exchange] = []
        self._next_id = 1
        self._pending: "dict[str, Any] | None" = None
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline
        self._received = 0
        self._stderr = bytearray()
        self._stderr_open = True
        self._out_open = True
        self._killed = False
        argv = [emulator, "-S", "-no-user-config", "-nodefaults", "-nographic",
                "-machine", machine, "-qmp", "stdio"]
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, close_fds=True, env=_environment())
        except OSError as e:
            raise QmpError("cannot run emulator %s: %s" % (printable(emulator), e.strerror),
                           errno=e.errno) from None
        assert self._proc.stdin is not None and self._proc.stdout is not None and self._proc.stderr is not None
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        self._err = self._proc.stderr.fileno()
        for fd in (self._in, self._out, self._err):
            os.set_blocking(fd, False)
        # Readable once the emulator has exited: a child it left holding
        # stdout open must not make its exit look like silence.
        pidfd_open = getattr(os, "pidfd_open", None)  # Python 3.9 and later
        try:
            self._exit_fd: "int | None" = None if pidfd_open is None else pidfd_open(self._proc.pid)
        except OSError:  # pragma: no cover - kernels before 5.3: found at the deadline instead
            self._exit_fd = None
        self._exited = False

    # -- ending -------------------------------------------------------------------

    def kill(self) -> None:
        """Kill the process and everything it started in its session, and
        reap it.  Safe to call twice."""
        import signal

        proc = self._proc
        if not self._killed:
            # Before the leader is reaped, so its group id cannot be reused.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._killed = True
        proc.wait()
        if self._exit_fd is not None:
            os.close(self._exit_fd)
            self._exit_fd = None
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    # -- errors -------------------------------------------------------------------

    def fail(self, what: str) -> QmpError:
        """The one-line error for ``what`` went wrong, with the emulator's
        last line on stderr when it wrote one."""
        said = ""
        for line in reversed(bytes(self._stderr).decode("utf-8", "replace").splitlines()):
            if line.strip():
                said = line.strip()
                break
        if len(said) > 300:
            said = said[:300] + "..."
        message = "emulator %s (%s): %s" % (printable(self.emulator), self.machine, what)
        if said:
            message += ": " + printable(said)
        return QmpError(message)

    # -- the wire -----------------------------------------------------------------

    def _wait(self, events: "list[tuple[int, int]]") -> "list[tuple[int, int]]":
        import select
        import time

        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.fail("no answer within %g s" % self.timeout)
        poller = select.poll()
        for fd, mask in events:
            poller.register(fd, mask)
        if self._stderr_open:
            poller.register(self._err, select.POLLIN)
        if self._exit_fd is not None and not self._exited:
            poller.register(self._exit_fd, select.POLLIN)
        ready = poller.poll(max(1, int(left * 1000 + 0.999)))
        for fd, _mask in ready:
            if fd == self._err:
                self._drain_stderr()
            elif fd == self._exit_fd:
                self._exited = True
        return [(fd, mask) for fd, mask in ready if fd not in (self._err, self._exit_fd)]

    def _drain_stderr(self) -> None:
        try:
            chunk = os.read(self._err, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._stderr_open = False
            return
        # The latest lines are kept: the error is usually last.
        self._stderr += chunk
        if len(self._stderr) > MAX_STDERR:
            del self._stderr[:-MAX_STDERR]

    def post(self, execute: str, arguments: "dict[str, Any] | None" = None) -> None:
        """Send one command (its reply is read by ``answer``)."""
        import json
        import select

        command: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            command["arguments"] = arguments
        command["id"] = "libvirt-%d" % self._next_id
        self._next_id += 1
        data = (json.dumps(command) + "\n").encode()
        while data:
            try:
                written = os.write(self._in, data)
            except BlockingIOError:
                written = 0
            except (BrokenPipeError, ConnectionResetError):
                self._collect_stderr()
                if self._proc.poll() is None:
                    raise self.fail("stopped reading its QMP input before %s" % execute) from None
                raise self.fail("exited before answering %s%s" % (execute, self._status())) from None
            data = data[written:]
            if data:
                self._wait([(self._in, select.POLLOUT)])
        self._pending = command

    def answer(self) -> "dict[str, Any]":
        """The reply to the command posted last, kept with it."""
        import json
        import select

        command = self._pending
        assert command is not None
        self._pending = None
        execute = command["execute"]
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buffer)  # search only new bytes next time
                if len(self._buffer) > MAX_REPLY:
                    raise self.fail("a reply to %s larger than %d bytes" % (execute, MAX_REPLY))
                if not self._out_open or (self._exited and not self._read_out()):
                    self._collect_stderr()
                    raise self.fail("exited before answering %s%s" % (execute, self._status()))
                for _fd, _mask in self._wait([(self._out, select.POLLIN)]):
                    self._read_out()
                continue
            line = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            self._scanned = 0
            if not line.strip():
                continue
            if len(line) > MAX_REPLY:
                raise self.fail("a reply to %s larger than %d bytes" % (execute, MAX_REPLY))
            if _too_deep(line):
                raise self.fail("a reply to %s nested deeper than %d levels" % (execute, MAX_DEPTH))
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):
                raise self.fail("malformed JSON in reply to %s" % execute) from None
            if not isinstance(message, dict):
                raise self.fail("a reply to %s that is not a JSON object" % execute)
            if "QMP" in message or "event" in message:
                continue  # the greeting, or an event: not a reply
            if message.get("id") != command["id"] or ("return" not in message and "error" not in message):
                raise self.fail("an unexpected message in reply to %s" % execute)
            self.exchanges.append((command, message))
            return message

    def _read_out(self) -> bool:
        """Read what stdout holds now; whether there was anything."""
        try:
            chunk = os.read(self._out, 1 << 20)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self._out_open = False
            return False
        self._received += len(chunk)
        if self._received > MAX_BYTES:
            raise self.fail("more than %d bytes of replies" % MAX_BYTES)
        self._buffer += chunk
        return True

    def _status(self) -> str:
        code = self._proc.poll()
        if code is None:
            return ""
        return " (killed by signal %d)" % -code if code < 0 else " (exit status %d)" % code

    def _collect_stderr(self) -> None:
        """What stderr still holds once the process has gone (briefly: a
        process that closed stdout may still be writing its last words)."""
        import select
        import time

        end = min(self.deadline, time.monotonic() + 0.2)
        poller = select.poll()
        poller.register(self._err, select.POLLIN)
        while self._stderr_open and len(self._stderr) < MAX_STDERR:
            left = end - time.monotonic()
            if left <= 0 or not poller.poll(max(1, int(left * 1000))):
                break
            self._drain_stderr()

    # -- commands -----------------------------------------------------------------

    def ask(self, execute: str, arguments: "dict[str, Any] | None" = None,
            tolerated: "Sequence[str]" = ()) -> "Any":
        """``execute``'s ``return``; None for an error reply whose class is
        one of ``tolerated`` (libvirt reads it as "not there"); any other
        error reply is a QmpError."""
        self.post(execute, arguments)
        reply = self.answer()
        if "error" in reply:
            error = reply["error"]
            klass = error.get("class") if isinstance(error, dict) else None
            if klass in tolerated:
                return None
            desc = error.get("desc") if isinstance(error, dict) else None
            raise self.fail("%s failed: %s" % (execute, printable(str(desc or klass or error))[:300]))
        return reply["return"]

    def ask_list(self, execute: str, arguments: "dict[str, Any] | None" = None,
                 tolerated: "Sequence[str]" = ()) -> "list[Any] | None":
        value = self.ask(execute, arguments, tolerated)
        if value is not None and not isinstance(value, list):
            raise self.fail("%s did not return a list" % execute)
        return value

    def ask_object(self, execute: str, arguments: "dict[str, Any] | None" = None,
                   tolerated: "Sequence[str]" = ()) -> "dict[str, Any] | None":
        value = self.ask(execute, arguments, tolerated)
        if value is not None and not isinstance(value, dict):
            raise self.fail("%s did not return an object" % execute)
        return value

    def names(self, execute: str, arguments: "dict[str, Any] | None" = None,
              tolerated: "Sequence[str]" = ()) -> "set[str] | None":
        """The ``name`` of each object a list-returning command returns."""
        value = self.ask_list(execute, arguments, tolerated)
        if value is None:
            return None
        return {entry["name"] for entry in value if isinstance(entry, dict) and isinstance(entry.get("name"), str)}


def _environment() -> "dict[str, str]":
    """The environment libvirt gives the emulator (virCommandAddEnvPassCommon):
    the C locale and a few variables passed on."""
    env = {"LC_ALL": "C"}
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "HOME", "USER", "LOGNAME", "TMPDIR"):
        value = os.environ.get(name)
        if value is not None:
            env[name] = value
    env.setdefault("PATH", "/usr/bin:/bin")
    return env


# -- libvirt's conversation ----------------------------------------------------------

class _Facts:
    """What the first process told that decides what is asked next."""

    __slots__ = ("arch", "commands", "caps")

    def __init__(self) -> None:
        self.arch = ""
        self.commands: set[str] = set()
        self.caps: set[str] = set()


def _first_process(proc: _Process) -> _Facts:
    """virQEMUCapsInitQMPMonitor's conversation."""
    facts = _Facts()
    proc.ask("qmp_capabilities")
    version = proc.ask_object("query-version") or {}
    qemu = version.get("qemu")
    try:
        if not isinstance(qemu, dict):
            raise TypeError
        numbers = (int(qemu["major"]), int(qemu["minor"]), int(qemu["micro"]))
    except (TypeError, KeyError, ValueError):
        raise proc.fail("query-version did not give a version") from None
    if numbers < MIN_VERSION:
        raise proc.fail("QEMU %d.%d.%d is older than %d.%d.%d, the oldest libvirt 9.0 uses" % (numbers + MIN_VERSION))
    target = proc.ask_object("query-target") or {}
    if not isinstance(target.get("arch"), str):
        raise proc.fail("query-target did not name an arch")
    facts.arch = target["arch"]
    proc.ask_list("query-qmp-schema")
    facts.commands = proc.names("query-commands") or set()
    kvm = proc.ask_object("query-kvm") or {}
    if not isinstance(kvm.get("enabled"), bool) or not isinstance(kvm.get("present"), bool):
        raise proc.fail("query-kvm replied unexpected data")
    if kvm["enabled"] and kvm["present"]:
        facts.caps.add("kvm")
    types = proc.names("qom-list-types") or set()
    for cap, type_names in _TYPE_CAPS.items():
        if any(name in types for name in type_names):
            facts.caps.add(cap)
    for device, needs in _DEVICE_PROPS:
        if needs is None or needs in facts.caps:
            proc.ask_list("device-list-properties", {"typename": device}, ("DeviceNotFound",))
    for qom_type, needs in _OBJECT_PROPS:
        if needs is None or needs in facts.caps:
            props = proc.names("qom-list-properties", {"typename": qom_type}, ("DeviceNotFound",))
            if qom_type.startswith("max-") and props and _CANONICAL_PROPERTY in props:
                facts.caps.add("canonical-cpu-features")
    machines = proc.ask_list("query-machines") or []
    names = {m.get("name") for m in machines if isinstance(m, dict) and m.get("name") != "none"}
    aliases = {m.get("alias"): m.get("name") for m in machines
               if isinstance(m, dict) and m.get("name") != "none" and m.get("alias")}
    for machine in _MACHINE_PROPS:
        canonical = aliases.get(machine, machine)
        if canonical == "none" or canonical in names:
            proc.ask_list("qom-list-properties", {"typename": "%s-machine" % canonical}, ("DeviceNotFound",))
    if "query-cpu-definitions" in facts.commands:
        proc.ask_list("query-cpu-definitions", tolerated=("GenericError",))
    if proc.ask_list("query-tpm-models", tolerated=("CommandNotFound",)) is not None:
        proc.ask_list("query-tpm-types", tolerated=("CommandNotFound",))
    proc.ask_list("query-command-line-options")
    proc.ask_list("query-migrate-capabilities")
    if facts.arch in _ARM:
        proc.ask_list("query-gic-capabilities", tolerated=("CommandNotFound",))
    if "sev-guest" in facts.caps:
        proc.ask_object("query-sev-capabilities", tolerated=("GenericError",))
    if "sgx-epc" in facts.caps:
        proc.ask_object("query-sgx-capabilities", tolerated=("GenericError",))
    # libvirt takes the virt type before qom-list-types can say TCG exists:
    # without KVM it is "none", which counts as accelerated, so the first
    # process always expands "host".
    _host_cpu(proc, facts, accelerated=True)
    return facts


def _tcg_process(proc: _Process, facts: _Facts, posted: bool) -> None:
    """virQEMUCapsInitQMPMonitorTCG's conversation; ``posted``:
    qmp_capabilities was sent already, its reply not yet read."""
    if posted:
        if "error" in proc.answer():
            raise proc.fail("qmp_capabilities failed")
    else:
        proc.ask("qmp_capabilities")
    if "query-cpu-definitions" in facts.commands:
        proc.ask_list("query-cpu-definitions", tolerated=("GenericError",))
    _host_cpu(proc, facts, accelerated=False)
    proc.ask_list("query-machines")


def _host_cpu(proc: _Process, facts: _Facts, accelerated: bool) -> None:
    """virQEMUCapsProbeQMPHostCPU: the expansions of ``host`` (or ``max``
    under TCG), with and without migratable features, and the full one
    with Hyper-V passthrough libvirt reads Hyper-V features from."""
    if "query-cpu-model-expansion" not in facts.commands:
        return
    model = "host" if accelerated else "max"
    x86 = facts.arch in _X86
    if x86 and "canonical-cpu-features" not in facts.caps:
        kind = "static-full"  # older QEMU: a full expansion gives every spelling
    elif facts.arch in _ARM:
        kind = "full"
    else:
        kind = "static"
    need_props = facts.arch not in _S390  # older s390 models report no features
    info = _expand(proc, kind, model, True, False, need_props)
    if info and x86:
        _expand(proc, kind, model, False, False, need_props)
    if accelerated and (x86 or facts.arch in _ARM):
        _expand(proc, "full", model, False, True, True)


def _expand(proc: _Process, kind: str, name: str, migratable: bool, hv_passthrough: bool,
            need_props: bool) -> bool:
    """One query-cpu-model-expansion as libvirt makes it; False where QEMU
    answered GenericError (no expansion here)."""
    model: dict[str, Any] = {"name": name}
    if not migratable or hv_passthrough:
        props: dict[str, Any] = {}
        if not migratable:
            props["migratable"] = False
        if hv_passthrough:
            props["hv-passthrough"] = True
        model["props"] = props
    result = _expansion(proc, "full" if kind == "full" else "static", model, need_props)
    if result is None:
        return False
    if kind == "static-full":
        return _expansion(proc, "full", result, need_props) is not None
    return True


def _expansion(proc: _Process, kind: str, model: "dict[str, Any]", need_props: bool) -> "dict[str, Any] | None":
    value = proc.ask_object("query-cpu-model-expansion", {"type": kind, "model": model}, ("GenericError",))
    if value is None:
        return None
    expanded = value.get("model")
    if not isinstance(expanded, dict) or not isinstance(expanded.get("name"), str):
        raise proc.fail("query-cpu-model-expansion reply data was missing 'model'")
    if need_props and not isinstance(expanded.get("props"), dict):
        raise proc.fail("query-cpu-model-expansion reply data was missing 'props'")
    return expanded


# -- the probe -----------------------------------------------------------------------

def _kvm_usable() -> bool:
    try:
        return os.access(KVM_DEVICE, os.R_OK | os.W_OK)
    except OSError:
        return False


def conversation(emulator: str, *, timeout: float = DEFAULT_TIMEOUT,
                 tcg_early: "bool | None" = None) -> "list[list[Exchange]]":
    """libvirt 9.0's capabilities conversation with ``emulator``: the
    first process's (command, reply) exchanges, then, where KVM was
    enabled, the TCG-only process's.  ``timeout`` bounds the whole probe,
    both processes; ``tcg_early`` starts the TCG process along with the
    first (None: where ``/dev/kvm`` is usable by this user, so KVM is
    likely to be enabled).  QmpError, one line, for an emulator that cannot
    be run, does not answer in time, answers what libvirt would not
    accept, or exits."""
    import time

    if not os.path.isfile(emulator) or not os.access(emulator, os.X_OK):
        raise QmpError("emulator %s: not an executable file" % printable(emulator))
    if not timeout > 0:
        raise QmpError("QMP probe timeout must be positive, not %r" % timeout)
    if tcg_early is None:
        tcg_early = _kvm_usable()
    deadline = time.monotonic() + timeout
    started: "list[_Process]" = []
    try:
        first = _Process(emulator, KVM_MACHINE, deadline, timeout)
        started.append(first)
        second = None
        if tcg_early:
            second = _Process(emulator, TCG_MACHINE, deadline, timeout)
            started.append(second)
            second.post("qmp_capabilities")
        facts = _first_process(first)
        first.kill()
        processes = [first.exchanges]
        if "kvm" in facts.caps and "tcg" in facts.caps:
            posted = second is not None
            if second is None:
                second = _Process(emulator, TCG_MACHINE, deadline, timeout)
                started.append(second)
            _tcg_process(second, facts, posted)
            processes.append(second.exchanges)
        return processes
    finally:
        for proc in started:
            proc.kill()


def converse(emulator: str, *, timeout: float = DEFAULT_TIMEOUT, tcg_early: "bool | None" = None) -> Transcript:
    """``conversation`` as a Transcript; its failures as one CapsfastError."""
    from capsfast.errors import CapsfastError

    try:
        return Transcript(conversation(emulator, timeout=timeout, tcg_early=tcg_early))
    except QmpError as e:
        raise CapsfastError(str(e), errno=e.errno) from None


# -- the transcript as text ------------------------------------------------------------

def replies_text(processes: "Sequence[Sequence[Exchange]]") -> str:
    """The exchanges as libvirt's ``.replies`` test data lays them out:
    two-space indent, an empty object or array still opened and closed on
    two lines, one blank line between objects."""
    out = []
    for process in processes:
        for command, reply in process:
            out.append(_dumps(command, ""))
            out.append(_dumps(reply, ""))
    return "\n\n".join(out) + "\n"


def _dumps(value: "Any", indent: str) -> str:
    import json

    inner = indent + "  "
    if isinstance(value, dict):
        items = [inner + json.dumps(k) + ": " + _dumps(v, inner) for k, v in value.items()]
        return "{\n" + ",\n".join(items) + ("\n" if items else "") + indent + "}"
    if isinstance(value, list):
        items = [inner + _dumps(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + ("\n" if items else "") + indent + "]"
    return json.dumps(value)
