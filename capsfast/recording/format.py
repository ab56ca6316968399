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
import sys
import time

from capsfast import bounded_json
from capsfast.constants import DEFAULT_PATH, KVM_DEVICE, __version__
from capsfast.errors import CapsfastError
from capsfast.model import Tsc
from capsfast.parts.core import parse
from capsfast.recording import capture, collector
from capsfast.sources.base import NOT_TRIED, OK, KvmDevice, Outcome
from capsfast.sources.replay import Replay

FORMAT = 1
SCENARIO = "scenario.json"
DUMP = "cpuid.txt"
ROOT = "root"
_MAX_SCENARIO = 1 << 20
_STEP_CODES = ("absent", "denied", "not_a_file", "not_kvm_device", "too_short", "failed")


# -- writing ---------------------------------------------------------------------

def record(directory: str, deep: bool = False, redact: bool = False) -> "list[str]":
    """Capture the running host into ``directory`` (which must not exist or
    be empty), or as a tar stream on standard output for ``-``: the same
    collector ``--connect`` runs over SSH, run here, with the CPU's own
    CPUID walk; ``redact``: without the host's ids and what else the
    answers do not need (see ``capsfast.recording.redact``).  Returns lines
    to print."""
    _check_target(directory)
    files = collect(deep)
    if redact:
        from capsfast.recording.redact import redact as without_private_data

        files = without_private_data(files)
    return write(files, directory)


def _check_target(directory: str) -> None:
    if not directory:
        raise CapsfastError("record: the directory name is empty")
    if "\0" in directory:
        raise CapsfastError("record: %r: a path cannot hold a NUL byte" % directory)
    if directory != "-" and os.path.isdir(directory) and os.listdir(directory):
        raise CapsfastError("record: %s is not empty" % directory)


def write(files: "dict[str, tuple[bytes | None, int]]", directory: str) -> "list[str]":
    """Write the recording ``files`` (by name) into ``directory``, or as a
    tar stream on standard output for ``-``.  Returns lines to print."""
    _check_target(directory)
    if directory == "-":
        out = sys.stdout.buffer if sys.stdout is not None else None
        if out is None:
            raise CapsfastError("cannot write to standard output: it is closed")
        collector.write_tar(files, out)
        out.flush()
        return []
    try:
        for name in sorted(files):
            data, mode = files[name]
            target = os.path.join(directory, name)
            if data is None:
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(data)
                os.chmod(target, mode)
    except OSError as e:
        raise CapsfastError("record: cannot write %s: %s" % (e.filename or directory, e.strerror),
                            errno=e.errno) from None
    scenario = json.loads(files[SCENARIO][0] or b"{}")
    count = sum(1 for name, (data, _mode) in files.items() if name.startswith(ROOT + "/") and data is not None)
    dump = files.get(DUMP, (None, 0))[0]
    leaves = 0 if dump is None else dump.count(b"\n") - 1
    return ["recorded %s: %d files, %d CPUID leaves and subleaves, arch %s"
            % (directory, count, leaves, scenario.get("arch"))]


def collect(deep: bool = False) -> "dict[str, tuple[bytes | None, int]]":
    """The running host recorded by the capture plan, as the collector
    returns it; the CPUID walk is the CPU's own (no cpuid driver needed)."""
    from capsfast.sources.live import Live

    description = "recorded by capsfast record on %s" % time.strftime("%Y-%m-%d")
    plan = capture.plan(description, deep)
    arch = parse.normalize_arch(os.uname().machine)

    def walk() -> "list[tuple[int, int, tuple[int, int, int, int]]] | None":
        table = Live(arch).walk()
        return None if table is None else [(leaf, sub, regs) for (leaf, sub), regs in table.items()]

    try:
        files = collector.collect(plan, walk)
    except OSError as e:
        raise CapsfastError("record: %s" % (e.strerror or e), errno=e.errno) from None
    _add_domcaps(files, arch)
    return files


def _add_domcaps(files: "dict[str, tuple[bytes | None, int]]", arch: str) -> None:
    """What domain capabilities need that only running programs tells:
    each emulator's QMP transcript, swtpm's capabilities (the collector
    runs nothing), and the loader images the descriptors name."""
    from capsfast.parts.domcaps import read as domcaps
    from capsfast.sources.live import Live

    scenario = json.loads(files[SCENARIO][0] or b"{}")
    # The PATH the collector searched (this process's, as it records it).
    searched = Live(arch, path_env=scenario.get("path"))
    descriptors = {name[len(ROOT):]: data for name, (data, _mode) in files.items()
                   if data and name.startswith(ROOT + "/") and "/qemu/firmware/" in name}
    for name, data in domcaps.recorded_extras(searched, descriptors).items():
        files.setdefault(name, (data, 0o644))


def files_of(directory: str) -> "dict[str, tuple[bytes | None, int]]":
    """The recording in ``directory`` (a temporary one capsfast extracted
    and bounded) by name, as the collector returns one."""
    files: "dict[str, tuple[bytes | None, int]]" = {}
    for top, dirs, names in os.walk(directory):
        relative = os.path.relpath(top, directory)
        for name in dirs:
            files[os.path.normpath(os.path.join(relative, name))] = (None, 0o755)
        for name in names:
            path = os.path.join(top, name)
            with open(path, "rb") as f:
                files[os.path.normpath(os.path.join(relative, name))] = (f.read(), os.stat(path).st_mode & 0o777)
    return files


# -- reading ---------------------------------------------------------------------

def _outcome(text: object, where: str) -> "Outcome":
    if text in ("ok", "not_tried"):
        return OK if text == "ok" else NOT_TRIED
    if isinstance(text, str):
        code, sep, reason = text.partition(": ")
        if sep and code in _STEP_CODES:
            return Outcome(code, reason)
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
    return KvmDevice(
        stat=_outcome(observed.get("stat"), where + ".stat"),
        mode=mode_value,
        access=_outcome(observed.get("access", "not_tried"), where + ".access"),
        open=_outcome(observed.get("open", "not_tried"), where + ".open"),
        api_call=_outcome(observed.get("api_call", "not_tried"), where + ".api_call"),
        api_version=api,
        create_vm=_outcome(observed.get("create_vm", "not_tried"), where + ".create_vm"),
    )


def _caps(observed: object, where: str) -> "dict[str, int | None] | None":
    """The recorded answers by name (None: the device did not open); a
    name this capsfast does not ask (a newer one recorded it) is never
    asked for, one it asks but the recording lacks (an older one) reads as
    None."""
    if observed is None:
        return None
    if not isinstance(observed, dict):
        raise CapsfastError("%s: not an object of capability names and numbers" % where)
    for name, value in observed.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0
                                  or value >= 1 << 31):
            raise CapsfastError("%s: %s is %r, not a KVM_CHECK_EXTENSION answer" % (where, name, value))
    return {str(name): value for name, value in observed.items()}


def _hex(text: object, where: str) -> int:
    try:
        value = int(str(text), 16)
    except ValueError:
        raise CapsfastError("%s: %r is not a hexadecimal number" % (where, text)) from None
    if not 0 <= value < 1 << 64:
        raise CapsfastError("%s: %r is out of range" % (where, text))
    return value


def _cpu_device(doc: object, where: str) -> "tuple[int | None, Tsc | None]":
    """The (IA32_ARCH_CAPABILITIES, Tsc) the device told the CPU decode
    (scenario.json's ``cpu_model``); CapsfastError for a malformed one."""
    if not isinstance(doc, dict):
        raise CapsfastError("%s: not an object" % where)
    text = doc.get("arch_capabilities")
    msr = None
    if text is not None:
        try:
            msr = int(str(text), 16)
        except ValueError:
            raise CapsfastError("%s: arch_capabilities %r is not a hexadecimal number" % (where, text)) from None
        if not 0 <= msr < 1 << 64:
            raise CapsfastError("%s: arch_capabilities %r is out of range" % (where, text))
    tsc_doc = doc.get("tsc")
    tsc = None
    if tsc_doc is not None:
        if not isinstance(tsc_doc, dict):
            raise CapsfastError("%s: tsc is not an object" % where)
        frequency, scaling = tsc_doc.get("frequency"), tsc_doc.get("scaling")
        if not isinstance(frequency, int) or isinstance(frequency, bool) or not 0 <= frequency < 1 << 64:
            raise CapsfastError("%s: tsc frequency %r is not a number of Hz" % (where, frequency))
        if scaling not in ("yes", "no"):
            raise CapsfastError("%s: tsc scaling %r is not 'yes' or 'no'" % (where, scaling))
        tsc = Tsc(frequency, str(scaling))
    return msr, tsc


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
    doc = bounded_json.loads(text, "replay %s: %s" % (directory, SCENARIO), _MAX_SCENARIO)
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
    path = doc.get("path", DEFAULT_PATH)
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
    cpu_msr = cpu_tsc = None
    if "cpu_model" in doc:
        cpu_msr, cpu_tsc = _cpu_device(doc["cpu_model"], "replay %s: cpu_model" % directory)
    group = observed.get("group") if isinstance(observed, dict) else None
    if group is not None and not (isinstance(group, str) and group.isprintable() and 0 < len(group) <= 64):
        raise CapsfastError("replay %s: devices %s.group %r is not a group name" % (directory, KVM_DEVICE, group))
    replay = Replay(directory, root, dump if os.path.exists(dump) else None, arch, path,
                    bool(doc.get("deep", False)), msr, kvm, recorded, caps, frozenset(captured), access,
                    cpu_msr, cpu_tsc)
    replay.kvm_group = group
    return replay
