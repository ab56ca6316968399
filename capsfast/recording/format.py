"""Recordings: a host captured so that it replays as the host it was.

A recording is a directory (or the same as a tar stream):

- ``scenario.json``: ``format`` (1), the ``capsfast`` version that made it,
  a ``description``, the host's ``arch``, the ``path`` searched for
  emulators, ``cpu_source`` (``cpuid`` with ``cpuid.txt``, else
  ``cpuinfo`` or ``none``), whether it was made with ``deep``, the ``msr``
  values read, and for each device node probed what was observed
  (``devices``: for ``/dev/kvm`` each step of the way to a usable KVM),
  and the lazy parts of the Host whose files ``root/`` holds (``captured``:
  a part a recording did not capture replays as unknown).
- ``cpuid.txt``: a full CPUID walk in ``cpuid -r -1`` form.
- ``root/``: every file the probe read, as read; an empty file for each
  device node found and for each emulator (executable, so guests replay).

Replaying decides with the same code as a live probe; only the facts come
from the recording.  A hand-made tree (``tests/hosts/*``) is a recording
whose ``scenario.json`` names no device facts: its device placeholders are
then what they are, "exists, not a character device".
"""
import json
import os
import shutil
import stat
import sys
import tempfile
import time

from capsfast import _native
from capsfast.parts.core import cpuid
from capsfast.parts.guests import discover as emulators
from capsfast.parts.core import read as facts
from capsfast.constants import KVM_DEVICE, X86_ARCHS, __version__
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast._native import KvmDevice, Outcome
    from capsfast.parts.core.read import KvmCaps
    from capsfast.model import Tsc

FORMAT = 1
SCENARIO = "scenario.json"
DUMP = "cpuid.txt"
ROOT = "root"
_MAX_SCENARIO = 1 << 20
_STEP_CODES = ("absent", "denied", "not_a_file", "not_kvm_device", "too_short", "failed")


class Replay:
    """What a recording says beyond its files: the inputs of a probe."""

    __slots__ = ("directory", "root", "dump", "arch", "path", "deep", "msr", "kvm", "caps_recorded", "caps",
                 "captured", "access", "cpu_msr", "cpu_tsc")

    def __init__(self, directory: str, root: str, dump: "str | None", arch: "str | None", path: str,
                 deep: bool, msr: "dict[int, int]", kvm: "KvmDevice | None", caps_recorded: bool = False,
                 caps: "KvmCaps | None" = None, captured: "frozenset[str]" = frozenset(),
                 access: "dict[str, bool | None] | None" = None) -> None:
        self.directory = directory
        self.root = root
        self.dump = dump
        self.arch = arch
        self.path = path
        self.deep = deep
        self.msr = msr
        self.kvm = kvm
        # KVM_CHECK_EXTENSION answers as recorded (None: /dev/kvm did not
        # open); a recording without them replays by asking its placeholder.
        self.caps_recorded = caps_recorded
        self.caps = caps
        # The lazy parts of Host whose files root/ holds (facts.CAPTURED); a part
        # a recording did not capture replays as unknown, not as absent.
        self.captured = captured
        # Read-write access of the device nodes VMMs open (capsfast.parts.platform.read.ACCESS).
        self.access = access or {}
        # What the host CPU decode read from the device (scenario.json
        # "cpu_model"): IA32_ARCH_CAPABILITIES and the TSC; None where not
        # read or not recorded (an older recording).
        self.cpu_msr: "int | None" = None
        self.cpu_tsc: "Tsc | None" = None


# -- writing ---------------------------------------------------------------------

def _step(outcome: "Outcome") -> str:
    if outcome.code in ("ok", "not_tried"):
        return outcome.code
    return "%s: %s" % (outcome.code, outcome.reason)


def kvm_facts(device: "KvmDevice", caps: "KvmCaps | None") -> "dict[str, object]":
    """The observed steps of the KVM device, as scenario.json keeps them,
    and its KVM_CHECK_EXTENSION answers (name -> answer, or None)."""
    return {
        "mode": None if not device.stat.ok else "0o%o" % device.mode,
        "stat": _step(device.stat),
        "access": _step(device.access),
        "open": _step(device.open),
        "api_call": _step(device.api_call),
        "api_version": device.api_version,
        "create_vm": _step(device.create_vm),
        "caps": None if caps is None else dict(caps),
    }


def record(directory: str, deep: bool = False) -> "list[str]":
    """Capture the running host into ``directory`` (which must not exist or
    be empty), or as a tar stream on standard output for ``-``.  Returns
    lines to print."""
    if not directory:
        raise CapsfastError("record: the directory name is empty")
    if "\0" in directory:
        raise CapsfastError("record: %r: a path cannot hold a NUL byte" % directory)
    if directory == "-":
        with tempfile.TemporaryDirectory(prefix="capsfast-record-") as tmp:
            _record_into(os.path.join(tmp, "r"), deep)
            _write_tar(os.path.join(tmp, "r"))
        return []
    if os.path.isdir(directory) and os.listdir(directory):
        raise CapsfastError("record: %s is not empty" % directory)
    try:
        count, arch, cpu_entries = _record_into(directory, deep)
    except OSError as e:
        raise CapsfastError("record: cannot write %s: %s" % (e.filename or directory, e.strerror),
                            errno=e.errno) from None
    return ["recorded %s: %d files, %d CPUID leaves and subleaves, arch %s" % (directory, count, cpu_entries, arch)]


def _record_into(directory: str, deep: bool) -> "tuple[int, str, int]":
    from capsfast.parts.platform import read as platform

    entries = facts.RECORDED_FILES + platform.ENTRIES
    results = _native.Batch(KVM_DEVICE, facts.specs("/", entries)).run(False, deep)
    arch = facts.normalize_arch(os.uname().machine)
    root = os.path.join(directory, ROOT)
    os.makedirs(root)
    written = 0
    devices: "dict[str, object]" = {}
    kvm = results.kvm
    if kvm is not None:
        # As Host.kvm_caps reads them (capsfast.host.read_kvm_caps).
        opened, values = _native.kvm_caps(KVM_DEVICE, facts.KVM_CAP_NUMBERS)
        devices[KVM_DEVICE] = kvm_facts(kvm, facts.kvm_caps(values if opened.ok else None))
        if kvm.stat.ok:
            written += _placeholder(root, KVM_DEVICE, kvm.mode)
    msr: "dict[str, str]" = {}
    for (_key, path, op, number, _size), result in zip(entries, results.files):
        if not result.outcome.ok:
            continue
        if op == _native.MSR and result.value is not None:
            msr["0x%x" % number] = "0x%x" % result.value
        elif op == _native.STAT:
            written += _placeholder(root, path, result.mode)
        elif result.data is not None:
            written += _write(root, path, result.data)
    # What capsfast.parts.topology.decide reads, found as the remote collector finds it.
    from capsfast.recording import collector
    from capsfast.parts.topology import decide as topology

    for path, (data, mode) in collector.collect_globs([list(row) for row in topology.RECORD_GLOBS]).items():
        if data is None:
            written += _placeholder(root, path, stat.S_IFDIR)
        elif not os.path.exists(root + path):
            written += _write(root, path, data, mode)
    access = {}
    for path in platform.ACCESS:
        if os.path.exists(path):
            access[path] = platform.access_of(path)
    for path in platform.LISTED:
        for name in platform.list_dir(path) or ():
            written += _placeholder(root, path + "/" + name, stat.S_IFDIR)
    found = emulators.discover("/")
    for binary in sorted(found.binaries.values()) + ([found.qemu_kvm] if found.qemu_kvm else []):
        written += _write(root, binary, b"", mode=0o755)
    walk = _native.cpuid_walk() if _native.HAS_CPUID and arch in X86_ARCHS else []
    if walk:
        with open(os.path.join(directory, DUMP), "w") as f:
            f.write(cpuid.format_dump(walk))
    cpu_model, map_written = _record_cpu_model(root, walk)
    written += map_written
    scenario = {
        "format": FORMAT,
        "capsfast": __version__,
        "description": "recorded by capsfast record on %s" % time.strftime("%Y-%m-%d"),
        "arch": arch,
        "path": emulators.search_path(),
        "cpu_source": "cpuid" if walk else ("cpuinfo" if os.path.exists(os.path.join(root, "proc", "cpuinfo"))
                                            else "none"),
        "deep": deep,
        "msr": msr,
        "devices": devices,
        "captured": list(facts.CAPTURED),
        "access": access,
        "cpu_model": cpu_model,
    }
    with open(os.path.join(directory, SCENARIO), "w") as f:
        f.write(json.dumps(scenario, indent=2) + "\n")
    return written, arch, len(walk)


def _record_cpu_model(root: str, walk: "list[cpuid.WalkEntry]") -> "tuple[dict[str, object], int]":
    """What Host.cpu_model reads beyond the files: the feature MSR and the
    TSC from the device (where libvirt would ask), and the CPU map, copied
    to the recording's /usr/share/libvirt/cpu_map so a replay decodes with
    the same map."""
    from capsfast.parts.cpu_model import read as hostcpu

    msr = tsc = None
    if walk:
        want_msr, want_tsc = hostcpu.device_wants({(leaf, sub): regs for leaf, sub, regs in walk})
        msr, tsc = hostcpu.live_device_reader("/")(want_msr, want_tsc)
    written = 0
    for name, data in hostcpu.map_files(hostcpu.map_directory("/", None)):
        written += _write(root, "%s/%s" % (hostcpu.DEFAULT_CPU_MAP, name), data)
    return hostcpu.scenario_facts(msr, tsc), written


def copy(source: str, directory: str) -> "list[str]":
    """Save the recording in ``source`` (a temporary one, fetched from a
    remote host) as ``directory``, or as a tar stream for ``-``."""
    if directory == "-":
        _write_tar(source)
        return []
    if not directory:
        raise CapsfastError("record: the directory name is empty")
    if os.path.isdir(directory) and os.listdir(directory):
        raise CapsfastError("record: %s is not empty" % directory)
    try:
        shutil.copytree(source, directory, symlinks=True, dirs_exist_ok=True)
    except OSError as e:
        raise CapsfastError("record: cannot write %s: %s" % (getattr(e, "filename", None) or directory,
                                                           getattr(e, "strerror", None) or e)) from None
    return ["recorded %s" % directory]


def _target(root: str, path: str) -> str:
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    return target


def _placeholder(root: str, path: str, mode: int) -> int:
    target = _target(root, path)
    if stat.S_ISDIR(mode):
        os.makedirs(target, exist_ok=True)
        # Git keeps no empty directory; a marker keeps the recording portable.
        open(os.path.join(target, ".present"), "w").close()
    else:
        open(target, "w").close()
    return 1


def _write(root: str, path: str, data: bytes, mode: int = 0o644) -> int:
    target = _target(root, path)
    with open(target, "wb") as f:
        f.write(data)
    os.chmod(target, mode)
    return 1


def _write_tar(directory: str) -> None:
    import tarfile

    out = sys.stdout.buffer if sys.stdout is not None else None
    if out is None:
        raise CapsfastError("cannot write to standard output: it is closed")
    with tarfile.open(fileobj=out, mode="w|") as tar:
        for name in sorted(os.listdir(directory)):
            tar.add(os.path.join(directory, name), arcname=name)
    out.flush()


# -- reading ---------------------------------------------------------------------

def _outcome(text: object, where: str) -> "Outcome":
    if text in ("ok", "not_tried"):
        return _native.OK if text == "ok" else _native.NOT_TRIED
    if isinstance(text, str):
        code, sep, reason = text.partition(": ")
        if sep and code in _STEP_CODES:
            return _native.Outcome(code, reason)
    raise CapsfastError("%s: %r is not a step ('ok', 'not_tried' or 'CODE: reason')" % (where, text))


def _kvm_device(observed: object, where: str) -> "KvmDevice":
    if not isinstance(observed, dict):
        raise CapsfastError("%s: not an object" % where)
    mode = observed.get("mode")
    api = observed.get("api_version")
    try:
        mode_value = 0 if mode is None else int(str(mode), 0)
    except ValueError:
        raise CapsfastError("%s: mode %r is not a number" % (where, mode)) from None
    if api is not None and not isinstance(api, int):
        raise CapsfastError("%s: api_version %r is not a number" % (where, api))
    return _native.KvmDevice(
        stat=_outcome(observed.get("stat"), where + ".stat"),
        mode=mode_value,
        access=_outcome(observed.get("access", "not_tried"), where + ".access"),
        open=_outcome(observed.get("open", "not_tried"), where + ".open"),
        api_call=_outcome(observed.get("api_call", "not_tried"), where + ".api_call"),
        api_version=api,
        create_vm=_outcome(observed.get("create_vm", "not_tried"), where + ".create_vm"),
    )


def _caps(observed: object, where: str) -> "KvmCaps | None":
    """The recorded answers in KVM_CAPS order: a name this capsfast does not
    ask (a newer one recorded it) is left out, one it asks but the recording
    lacks (an older one) is None."""
    if observed is None:
        return None
    if not isinstance(observed, dict):
        raise CapsfastError("%s: not an object of capability names and numbers" % where)
    for name, value in observed.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0
                                  or value >= 1 << 31):
            raise CapsfastError("%s: %s is %r, not a KVM_CHECK_EXTENSION answer" % (where, name, value))
    return facts.kvm_caps([observed.get(name) for name in facts.KVM_CAP_NAMES])


def _hex(text: object, where: str) -> int:
    try:
        value = int(str(text), 16)
    except ValueError:
        raise CapsfastError("%s: %r is not a hexadecimal number" % (where, text)) from None
    if not 0 <= value < 1 << 64:
        raise CapsfastError("%s: %r is out of range" % (where, text))
    return value


def read(directory: str) -> Replay:
    """The recording in ``directory``; CapsfastError naming what is wrong
    with a malformed one or one of a newer format."""
    directory = os.fspath(directory)
    name = os.path.join(directory, SCENARIO)
    try:
        with open(name, "rb") as f:
            text = f.read(_MAX_SCENARIO + 1)
    except OSError as e:
        raise CapsfastError("replay %s: %s: %s" % (directory, SCENARIO, e.strerror or e), errno=e.errno) from None
    if len(text) > _MAX_SCENARIO:
        raise CapsfastError("replay %s: %s is larger than %d bytes" % (directory, SCENARIO, _MAX_SCENARIO))
    try:
        doc = json.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CapsfastError("replay %s: %s is not JSON (%s)" % (directory, SCENARIO, str(e).splitlines()[0])) from None
    if not isinstance(doc, dict):
        raise CapsfastError("replay %s: %s is not an object" % (directory, SCENARIO))
    version = doc.get("format", FORMAT)
    if not isinstance(version, int) or version < 1:
        raise CapsfastError("replay %s: format %r is not a recording format" % (directory, version))
    if version > FORMAT:
        raise CapsfastError("replay %s: recording format %d is newer than this capsfast (%s) reads (%d): "
                            "upgrade capsfast" % (directory, version, __version__, FORMAT))
    root = os.path.join(directory, ROOT)
    if not os.path.isdir(root):
        raise CapsfastError("replay %s: no %s/ directory" % (directory, ROOT))
    dump = os.path.join(directory, DUMP)
    arch = doc.get("arch", doc.get("args", {}).get("arch") if isinstance(doc.get("args"), dict) else None)
    if arch is not None and not isinstance(arch, str):
        raise CapsfastError("replay %s: arch %r is not a name" % (directory, arch))
    path = doc.get("path", emulators.DEFAULT_PATH)
    # Each entry is looked up inside root/: one that climbs out of it would
    # list directories of this machine as the recorded host's.
    if not isinstance(path, str) or not path.isprintable() or any(
            ".." in entry.split("/") for entry in path.split(":")):
        raise CapsfastError("replay %s: path %r is not a PATH inside the recording" % (directory, path))
    msr_doc = doc.get("msr", {})
    if not isinstance(msr_doc, dict):
        raise CapsfastError("replay %s: msr is not an object" % directory)
    msr = {_hex(k, "msr"): _hex(v, "msr %s" % k) for k, v in msr_doc.items()}
    devices = doc.get("devices", {})
    if not isinstance(devices, dict):
        raise CapsfastError("replay %s: devices is not an object" % directory)
    kvm = _kvm_device(devices[KVM_DEVICE], "devices %s" % KVM_DEVICE) if KVM_DEVICE in devices else None
    observed = devices.get(KVM_DEVICE)
    recorded = isinstance(observed, dict) and "caps" in observed
    caps = _caps(observed.get("caps"), "devices %s.caps" % KVM_DEVICE) if isinstance(observed, dict) else None
    captured = doc.get("captured", [])
    if not isinstance(captured, list) or not all(isinstance(part, str) for part in captured):
        raise CapsfastError("replay %s: captured is not a list of names" % directory)
    access = doc.get("access", {})
    if not isinstance(access, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, bool))
                                               for k, v in access.items()):
        raise CapsfastError("replay %s: access is not an object of device paths and true/false" % directory)
    replay = Replay(directory, root, dump if os.path.exists(dump) else None, arch, path,
                    bool(doc.get("deep", False)), msr, kvm, recorded, caps, frozenset(captured), access)
    if "cpu_model" in doc:
        from capsfast.parts.cpu_model import read as hostcpu

        replay.cpu_msr, replay.cpu_tsc = hostcpu.parse_scenario_facts(
            doc["cpu_model"], "replay %s: cpu_model" % directory)
    return replay
