"""The one writer of recordings: run by ``capsfast record`` in-process, and
by a remote ``python3`` (3.6 or later, standard library only, nothing
installed there) for ``--connect``, it records a host by a plan (the union
of the parts' captures: ``capsfast.recording.capture``) as
{path: (bytes, mode)}: ``scenario.json``, ``cpuid.txt``, ``root/...``
(format 1); over SSH, as a tar stream on stdout.

``capsfast.recording.remote`` sends this file's text with the plan written
into the ``PLAN`` line below, so the plan has one source, and, where the
plan asks QEMU (``qmp``), the text of ``capsfast.parts.domcaps.qmp`` in
the ``QMP`` line, so one conversation serves local and remote hosts.  It
must never import capsfast: the
remote host has none, and the local side runs it with ``-I -S`` so that an
installed one is not found either.

What each step does mirrors the C core (csrc/capsfast.c): look with stat()
before opening, never open a FIFO, a directory or a device other than
KVM's and the msr driver's, read bounded amounts, never load a module.
Errors end the run with one line on stderr and exit status 3.
"""
import errno
import fcntl
import io
import json
import os
import stat
import sys
import tarfile
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Registers = tuple[int, int, int, int]
    # (leaf, subleaf, registers) in the order walked
    Walked = list[tuple[int, int, Registers]]
    Plan = dict[str, Any]

# The local side replaces this line's value with the plan as JSON.
PLAN = ""
# ... and this one's with the QMP conversation's module text, where the plan asks QEMU.
QMP = ""

# Fixed device numbers: <linux/miscdevice.h> KVM_MINOR, <asm/msr.h> and
# <asm/cpuid.h> majors.  Opening any other device may act on it.
KVM_MAJOR, KVM_MINOR = 10, 232
MSR_MAJOR = 202
CPUID_MAJOR = 203
CPUID_DEVICE = "/dev/cpu/0/cpuid"
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
BLOCK_STEP = 2048  # /proc/cpuinfo in small steps: the kernel stops after the first block

# Bounds of the CPUID walk, whatever a (virtual) CPU answers: leaves per
# range, subleaves per leaf, and so entries in all (three ranges; seven
# leaves with up to 64 subleaves, two with up to 32).  At 80 bytes a line
# the dump stays far below the 1 MiB a CPUID dump may have.
MAX_RANGE = 256
MAX_SUBLEAVES = 64
MAX_LINES = 3 * MAX_RANGE + 7 * (MAX_SUBLEAVES - 1) + 2 * 31

X86 = ("x86_64", "i686")

# Result codes by errno, as capsfast._native names them.
_CODES = {
    errno.ENOENT: "absent",
    errno.EACCES: "denied",
    errno.EPERM: "denied",
    errno.EISDIR: "not_a_file",
    errno.EINVAL: "not_a_file",
    errno.ENODATA: "too_short",
    errno.ENODEV: "not_kvm_device",
}


class CollectorError(Exception):
    """A fault of the collection, said in one line."""


def step(err: int) -> str:
    """A step's result as the recording spells it: ``ok`` or
    ``<code>: <reason>``."""
    if err == 0:
        return "ok"
    return "%s: %s" % (_CODES.get(err, "failed"), os.strerror(err))


def _open(path: str, flags: int) -> int:
    # O_NONBLOCK: a FIFO planted where a file belongs must not hang us.
    return os.open(path, flags | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)


def _is_device(st: os.stat_result, major: int, minor: "int | None" = None) -> bool:
    return (stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == major
            and (minor is None or os.minor(st.st_rdev) == minor))


# -- the KVM device -------------------------------------------------------------

def kvm_caps(path: str, caps: "list[list[Any]]") -> "dict[str, int | None] | None":
    """KVM_CHECK_EXTENSION of each (name, number) of ``caps``, as C's
    capsfast_kvm_caps asks it; None where the device does not open."""
    try:
        st = os.stat(path)
        if not _is_device(st, KVM_MAJOR, KVM_MINOR):
            return None  # a placeholder or another device: never opened
        fd = _open(path, os.O_RDWR)
    except OSError:
        return None
    answers: "dict[str, int | None]" = {}
    try:
        for name, number in caps:
            try:
                answers[str(name)] = fcntl.ioctl(fd, KVM_CHECK_EXTENSION, int(number))
            except OSError:
                answers[str(name)] = None
    finally:
        os.close(fd)
    return answers


def _group_name(gid: int) -> str:
    """The group's name (its number where the group database has none):
    a hint for a user who may not open the node names it."""
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def kvm_device(path: str, deep: bool, caps: "list[list[Any]] | None" = None) -> "dict[str, Any]":
    """The device node's steps, as C's probe_kvm takes them, and (given
    ``caps``) its KVM_CHECK_EXTENSION answers."""
    facts: "dict[str, Any]" = {"mode": None, "stat": "ok", "access": "not_tried", "open": "not_tried",
                               "api_call": "not_tried", "api_version": None, "create_vm": "not_tried"}
    if caps is not None:
        facts["caps"] = kvm_caps(path, caps)
    try:
        st = os.stat(path)
    except OSError as e:
        facts["stat"] = step(e.errno or errno.EIO)
        return facts
    facts["mode"] = oct(st.st_mode)
    facts["group"] = _group_name(st.st_gid)
    if not stat.S_ISCHR(st.st_mode):
        return facts  # a placeholder file: never opened
    if not _is_device(st, KVM_MAJOR, KVM_MINOR):
        facts["access"] = step(_access_rw(path))
        facts["open"] = step(errno.ENODEV)  # some other device: not opened
        return facts
    try:
        fd = _open(path, os.O_RDWR)
    except OSError as e:
        err = e.errno or errno.EIO
        facts["open"] = step(err)
        # A refused open answers the access question; other failures ask.
        facts["access"] = step(err if err in (errno.EACCES, errno.EPERM) else _access_rw(path))
        return facts
    try:
        # An open for reading and writing that works answers access too.
        facts["access"] = facts["open"] = "ok"
        try:
            version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        except OSError as e:
            facts["api_call"] = step(e.errno or errno.EIO)
            return facts
        facts["api_call"] = "ok"
        facts["api_version"] = version
        if deep:
            try:
                vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
            except OSError as e:
                facts["create_vm"] = step(e.errno or errno.EIO)
            else:
                facts["create_vm"] = "ok"
                os.close(vm)
    finally:
        os.close(fd)
    return facts


def _access_rw(path: str) -> int:
    # faccessat(..., AT_EACCESS) as C does: the effective ids decide.
    effective = os.access in os.supports_effective_ids
    if os.access(path, os.R_OK | os.W_OK, effective_ids=effective):
        return 0
    try:  # access() gives no errno: open-free ways to tell absent from denied
        os.stat(path)
    except OSError as e:
        return e.errno or errno.EIO
    return errno.EACCES


# -- the plan's files -------------------------------------------------------------

class FileResult:
    """One plan entry's outcome: ``err`` (0 or an errno), ``mode``, the
    ``data`` read (read ops) or MSR ``value``."""

    __slots__ = ("err", "mode", "data", "value")

    def __init__(self, err: int = 0, mode: int = 0, data: "bytes | None" = None,
                 value: "int | None" = None) -> None:
        self.err = err
        self.mode = mode
        self.data = data
        self.value = value


def probe_file(path: str, op: str, msr: int, size: int) -> FileResult:
    """One entry, as C's probe_file handles it."""
    try:
        st = os.stat(path)
    except OSError as e:
        return FileResult(e.errno or errno.EIO)
    if op == "stat":
        return FileResult(0, st.st_mode)
    is_msr = op == "msr"

    def openable(st: os.stat_result) -> bool:
        return stat.S_ISREG(st.st_mode) or (is_msr and _is_device(st, MSR_MAJOR))

    if not openable(st):
        return FileResult(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL, st.st_mode)
    try:
        fd = _open(path, os.O_RDONLY)
    except OSError as e:
        return FileResult(e.errno or errno.EIO)
    try:
        st = os.fstat(fd)  # catches a swap between stat() and open()
        if not openable(st):
            return FileResult(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL, st.st_mode)
        if is_msr:
            raw = os.pread(fd, 8, msr)
            if len(raw) != 8:
                return FileResult(errno.ENODATA, st.st_mode)
            return FileResult(0, st.st_mode, value=int.from_bytes(raw, "little"))
        return FileResult(0, st.st_mode, data=_read(fd, size, op == "read_block"))
    except OSError as e:
        return FileResult(e.errno or errno.EIO, st.st_mode)
    finally:
        os.close(fd)


def _read(fd: int, size: int, block: bool) -> bytes:
    data = b""
    while len(data) < size:
        want = size - len(data)
        chunk = os.read(fd, min(want, BLOCK_STEP) if block else want)
        if not chunk:
            break
        data += chunk
        if block and b"\n\n" in data:
            break
    return data


def run_plan(entries: "list[list[Any]]", depends: "dict[str, str]") -> "dict[str, FileResult]":
    """Each entry ``[key, path, op, msr, size]`` in order; an entry whose
    DEPENDS parent failed is absent without a system call, as in C."""
    results: "dict[str, FileResult]" = {}
    for key, path, op, msr, size in entries:
        parent = results.get(depends.get(key, ""))
        if parent is not None and parent.err != 0:
            results[key] = FileResult(errno.ENOENT)
        else:
            results[key] = probe_file(path, op, msr, size)
    return results


# Bound of one file a glob finds (sysfs files are one page at most).
GLOB_FILE_MAX = 1 << 16


def collect_globs(globs: "list[list[str]]") -> "dict[str, tuple[bytes | None, int]]":
    """Every match of each ``[kind, pattern]`` (a part's "globs" capture, as
    the topology part declares them) as {path: (bytes, or None for a
    directory, mode)}: a "file" match that is a regular file, as read
    (bounded); a "dir" match that is a directory, as present.  What cannot
    be read is left out."""
    import glob

    out: "dict[str, tuple[bytes | None, int]]" = {}
    for kind, pattern in globs:
        for path in sorted(glob.glob(pattern)):
            if kind == "dir":
                if os.path.isdir(path):
                    out[path] = (None, 0o755)
                continue
            result = probe_file(path, "read", 0, GLOB_FILE_MAX)
            if result.err == 0 and result.data is not None:
                out[path] = (result.data, 0o644)
    return out


# -- CPUID through the cpuid driver ---------------------------------------------

def walk(read: "Callable[[int, int], Registers]") -> "Walked":
    """Every (leaf, subleaf, registers) of libvirt's x86 host probe
    (cpuidSet() in src/cpu/cpu_x86.c), ``read(leaf, subleaf)`` giving one
    leaf's (eax, ebx, ecx, edx): the basic leaves 0..max with their
    subleaves, the extended leaves 0x80000000..max, then, with the
    hypervisor bit (leaf 1 ECX bit 31), 0x40000000..max, subleaf 0 each.  A
    range's base leaf is kept even when its EAX is below the base.  Bounded
    whatever the CPU says: MAX_RANGE leaves a range, MAX_SUBLEAVES subleaves
    a leaf, so at most MAX_LINES entries.  The one walk in Python: the C
    module's capsfast_cpuid_walk is the same walk on the live CPU, and the
    tests hold the two to each other."""
    out: "Walked" = []
    put = out.append
    found = {"sgx": False, "hypervisor": False}

    def upto(leaf: int, regs: "Registers", last: int) -> None:
        # Subleaves 0..last (leaves 0x7, 0x14, 0x17: last is subleaf 0's EAX).
        put((leaf, 0, regs))
        for sub in range(1, min(last, MAX_SUBLEAVES - 1) + 1):
            put((leaf, sub, read(leaf, sub)))

    def masked(leaf: int, first: int, mask: int) -> None:
        for sub in range(first, 64):
            if mask >> sub & 1:
                put((leaf, sub, read(leaf, sub)))

    def basic(leaf: int, regs: "Registers") -> None:
        eax, ebx, ecx, edx = regs
        if leaf == 0x1:
            found["hypervisor"] = bool(ecx >> 31 & 1)
            put((leaf, 0, regs))
        elif leaf == 0x4:  # cache levels: on until one of type 0, which is kept
            put((leaf, 0, regs))
            sub = 1
            while regs[0] & 0x1F and sub < MAX_SUBLEAVES:
                regs = read(leaf, sub)
                put((leaf, sub, regs))
                sub += 1
        elif leaf == 0x7:
            found["sgx"] = bool(ebx >> 2 & 1)
            upto(leaf, regs, eax)
        elif leaf == 0xB:  # topology levels: a level type (ECX[15:8]) of 0 ends them, unkept, even at 0
            sub = 0
            while regs[2] & 0xFF00:
                put((leaf, sub, regs))
                sub += 1
                if sub == MAX_SUBLEAVES:
                    break
                regs = read(leaf, sub)
        elif leaf == 0xD:  # XSAVE: 0, 1, then each bit of both subleaves' masks
            put((leaf, 0, regs))
            sub1 = read(leaf, 1)
            put((leaf, 1, sub1))
            masked(leaf, 2, eax | edx << 32 | sub1[2] | sub1[3] << 32)
        elif leaf in (0xF, 0x10):  # RDT: resource n of the bitmap has subleaf n
            put((leaf, 0, regs))
            masked(leaf, 1, edx if leaf == 0xF else ebx)
        elif leaf == 0x12:  # SGX only: 0, 1, then until an EPC type (EAX[3:0]) of 0, unkept
            if found["sgx"]:
                put((leaf, 0, regs))
                put((leaf, 1, read(leaf, 1)))
                for sub in range(2, MAX_SUBLEAVES):
                    regs = read(leaf, sub)
                    if not regs[0] & 0xF:
                        break
                    put((leaf, sub, regs))
        elif leaf == 0x14:
            upto(leaf, regs, eax)
        elif leaf == 0x17:  # valid from EAX 3 on
            if eax >= 3:
                upto(leaf, regs, eax)
        else:
            put((leaf, 0, regs))

    def one_range(base: int) -> None:
        regs = read(base, 0)
        last = min(max(regs[0], base), base + MAX_RANGE - 1)
        for leaf in range(base, last + 1):
            if leaf != base:
                regs = read(leaf, 0)
            if base == 0:
                basic(leaf, regs)
            else:
                put((leaf, 0, regs))

    one_range(0x00000000)
    one_range(0x80000000)
    if found["hypervisor"]:  # leaves 0x40000000 and up mean something only under a hypervisor
        one_range(0x40000000)
    return out


def format_walk(walked: "Walked") -> str:
    """The walk as ``cpuid -r -1`` prints it: ``CPU:``, then the leaves
    and subleaves in ascending order."""
    lines = ["CPU:"]
    for leaf, sub, (eax, ebx, ecx, edx) in sorted(walked, key=lambda entry: (entry[0], entry[1])):
        lines.append("   0x%08x 0x%02x: eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x"
                     % (leaf, sub, eax, ebx, ecx, edx))
    return "\n".join(lines) + "\n"


def cpuid_dump(device: str = CPUID_DEVICE) -> "str | None":
    """The walk through the cpuid driver's node, or None where it is not
    there or not readable (no module is loaded for it)."""
    walked = cpuid_walk(device)
    return None if walked is None else format_walk(walked)


def cpuid_walk(device: str = CPUID_DEVICE) -> "Walked | None":
    """The walk through the cpuid driver's node (as ``cpuid_dump``), as entries."""
    try:
        st = os.stat(device)
        if not _is_device(st, CPUID_MAJOR):
            return None
        fd = _open(device, os.O_RDONLY)
    except OSError:
        return None

    def read(leaf: int, sub: int) -> "Registers":
        raw = os.pread(fd, 16, leaf | sub << 32)
        if len(raw) != 16:
            raise OSError(errno.EIO, "short read")
        return (int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4:8], "little"),
                int.from_bytes(raw[8:12], "little"), int.from_bytes(raw[12:16], "little"))

    try:
        if not _is_device(os.fstat(fd), CPUID_MAJOR):
            return None
        return walk(read)
    except OSError:
        return None  # a CPU the driver will not read: fall back to /proc/cpuinfo
    finally:
        os.close(fd)


# -- the host CPU's extras, as capsfast.parts.cpu_model.read reads them ---------------------

MSR_DEVICE = "/dev/cpu/0/msr"
ARCH_CAPABILITIES = 0x10A
KVM_GET_MSRS = 0xC008AE88
KVM_CREATE_VCPU = 0xAE41
KVM_GET_TSC_KHZ = 0xAEA3
KVM_CAP_TSC_CONTROL = 60
MAP_FILE_MAX = 4 << 20   # capsfast.cpu_map.x86_map.MAX_FILE
MAP_TOTAL_MAX = 32 << 20  # capsfast.cpu_map.x86_map.MAX_TOTAL


def host_cpu(kvm_path: str, walked: "Walked | None") -> "dict[str, Any]":
    """scenario.json's ``cpu_model``: IA32_ARCH_CAPABILITIES where CPUID
    shows arch-capabilities (leaf 7 EDX bit 29), from the msr driver when it
    opens, else KVM_GET_MSRS on the KVM device; the TSC where CPUID shows
    invariant TSC (leaf 0x80000007 EDX bit 8): a VM, a vCPU,
    KVM_GET_TSC_KHZ, KVM_CAP_TSC_CONTROL (capsfast.parts.cpu_model.read.decode_host)."""
    table = {(leaf, sub): regs for leaf, sub, regs in walked or []}
    want_msr = bool(table.get((7, 0), (0, 0, 0, 0))[3] >> 29 & 1)
    want_tsc = bool(table.get((0x80000007, 0), (0, 0, 0, 0))[3] >> 8 & 1)
    msr = None
    if want_msr:
        try:
            st = os.stat(MSR_DEVICE)
            if _is_device(st, MSR_MAJOR):
                fd = _open(MSR_DEVICE, os.O_RDONLY)
                try:
                    raw = os.pread(fd, 8, ARCH_CAPABILITIES)
                finally:
                    os.close(fd)
                if len(raw) == 8:
                    msr = int.from_bytes(raw, "little")
        except OSError:
            pass
    tsc = None
    if (want_msr and msr is None) or want_tsc:
        try:
            st = os.stat(kvm_path)
            fd = _open(kvm_path, os.O_RDWR) if _is_device(st, KVM_MAJOR, KVM_MINOR) else -1
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                if want_msr and msr is None:
                    msr = _kvm_msr(fd)
                if want_tsc:
                    tsc = _kvm_tsc(fd)
            finally:
                os.close(fd)
    return {"arch_capabilities": None if msr is None else "0x%x" % msr, "tsc": tsc}


def _kvm_msr(fd: int) -> "int | None":
    import struct

    buf = bytearray(struct.pack("=IIIIQ", 1, 0, ARCH_CAPABILITIES, 0, 0))
    try:
        if fcntl.ioctl(fd, KVM_GET_MSRS, buf, True) != 1:
            return None
    except OSError:
        return None
    return int(struct.unpack("=IIIIQ", bytes(buf))[4])


def _kvm_tsc(fd: int) -> "dict[str, Any] | None":
    try:
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
    except OSError:
        return None
    try:
        vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
        try:
            khz = fcntl.ioctl(vcpu, KVM_GET_TSC_KHZ, 0)
        finally:
            os.close(vcpu)
        scaling = fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL)
    except OSError:
        return None
    finally:
        os.close(vm)
    return {"frequency": khz * 1000, "scaling": "yes" if scaling else "no"}


def cpu_map_files(directory: str) -> "list[tuple[str, bytes]]":
    """The CPU map's regular ``*.xml`` files, bounded as capsfast.cpu_map.x86_map reads them."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    files = []
    total = 0
    for name in names:
        if not name.endswith(".xml") or "/" in name:
            continue
        try:
            fd = _open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            data = os.read(fd, MAP_FILE_MAX + 1)
        finally:
            os.close(fd)
        total += len(data)
        if len(data) > MAP_FILE_MAX or total > MAP_TOTAL_MAX:
            raise OSError(errno.EFBIG, "CPU map file %s is too large" % name)
        files.append((name, data))
    return files


# -- emulators ------------------------------------------------------------------

def emulators(path_env: str, prefix: str, qemu_kvm: str) -> "list[str]":
    """Paths of the executable ``<prefix>*`` in the PATH directories (each
    directory once, as capsfast.parts.guests.discover lists them) and ``qemu_kvm`` if
    executable."""
    found: "list[str]" = []
    seen: "set[tuple[int, int]]" = set()
    for entry in path_env.split(":"):
        if not entry.startswith("/"):
            continue  # relative entries name a working directory, not the host's
        directory = entry.rstrip("/") or "/"
        try:
            st = os.stat(directory)
            if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            names = sorted(name for name in os.listdir(directory) if name.startswith(prefix))
        except OSError:
            continue
        for name in names[:256]:
            if not name.isprintable():
                continue  # a name no recording may hold
            candidate = directory.rstrip("/") + "/" + name
            if _executable(candidate):
                found.append(candidate)
    if _executable(qemu_kvm):
        found.append(qemu_kvm)
    return found


def search_path(path_env: "str | None", default: str) -> str:
    """The PATH as the replay is to search it: absolute entries in their
    plain form ("/usr/../bin" and "//bin" are "/bin"), so that each one
    is a path a recording can hold; relative entries (never searched) and
    unprintable ones are left out."""
    if path_env is None:
        return default
    entries = []
    for entry in path_env.split(":"):
        if entry.startswith("/") and entry.isprintable():
            entries.append("/" + os.path.normpath(entry).lstrip("/"))
    return ":".join(entries)


def _executable(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


# -- QEMU's answers ----------------------------------------------------------------

def qmp_module() -> "Any":
    """The QMP conversation (capsfast.parts.domcaps.qmp) from the text the
    local side sent in ``QMP``, as a module of its own."""
    import types

    if not QMP:
        raise CollectorError("the plan asks QEMU, but no QMP conversation came with it")
    module = types.ModuleType("capsfast_qmp")
    exec(compile(QMP, "capsfast.parts.domcaps.qmp", "exec"), module.__dict__)
    return module


def qmp_emulator(spec: "dict[str, Any]", arch: str, found: "list[str]") -> "str | None":
    """The emulator whose answers the recording keeps: the plan's
    ``emulator`` where it names one, else the host architecture's own
    ``qemu-system-<target>`` among the emulators ``found`` (``targets``
    maps an architecture to its QEMU target where the two differ), else
    qemu-kvm; None where there is none."""
    if spec.get("emulator"):
        return str(spec["emulator"])
    want = "qemu-system-" + spec.get("targets", {}).get(arch, arch)
    for path in found:
        if os.path.basename(path) == want:
            return path
    qemu_kvm = spec.get("qemu_kvm")
    if qemu_kvm and qemu_kvm in found:
        return str(qemu_kvm)
    return None


def qmp_replies(spec: "dict[str, Any]", arch: str, found: "list[str]", qmp: "Any") -> "tuple[str, bytes]":
    """(emulator, its transcript as ``.replies`` text): libvirt's
    capabilities conversation with the chosen emulator, held by ``qmp``
    (the conversation's module).  CollectorError where there is no
    emulator or the conversation fails."""
    emulator = qmp_emulator(spec, arch, found)
    if emulator is None:
        raise CollectorError("no QEMU emulator for %s (qemu-system-%s) in %s"
                             % (arch, spec.get("targets", {}).get(arch, arch), os.environ.get("PATH", "")))
    try:
        processes = qmp.conversation(emulator, timeout=float(spec.get("timeout", qmp.DEFAULT_TIMEOUT)))
    except qmp.QmpError as e:
        raise CollectorError(str(e)) from None
    return emulator, qmp.replies_text(processes).encode("utf-8")


# -- the recording ----------------------------------------------------------------

def normalize_arch(name: str, aliases: "dict[str, str]") -> str:
    """libvirt's name for an architecture (as capsfast.parts.core.parse.normalize_arch)."""
    key = name.strip().lower()
    if key in aliases:
        return aliases[key]
    if key and len(key) <= 32 and key.replace("_", "").isalnum() and all(ord(c) < 128 for c in key):
        return key
    raise CollectorError("unrecognised architecture %r" % name.strip()[:40])


def collect(plan: "Plan", cpuid: "Callable[[], Walked | None] | None" = None,
            qmp: "Any" = None) -> "dict[str, tuple[bytes | None, int]]":
    """The recording, as {relative path: (bytes or None for a directory,
    mode)}.  ``plan`` is the union of the parts' captures (see
    capsfast.parts): each kind of capture present is taken, so a part made
    of files, globs, listings or access checks needs nothing here.
    ``cpuid``: where the CPUID walk comes from (default: the cpuid driver's
    node; ``capsfast record`` passes the CPU's own, through its C module).
    ``qmp``: the QMP conversation's module, for a plan that asks QEMU
    (default: the one sent in ``QMP``); its transcript is kept as
    ``qemu/<emulator's name>.replies``, as libvirt keeps its test data."""
    entries = plan.get("files", [])
    results = run_plan(entries, plan.get("depends", {}))
    files: "dict[str, tuple[bytes | None, int]]" = {}
    msr: "dict[str, str]" = {}

    def put(path: str, data: "bytes | None", mode: int = 0o644) -> None:
        files["root" + path] = (data, 0o755 if data is None else mode)

    arch_text = ""
    cpuinfo = False
    for key, path, op, number, _size in entries:
        result = results[key]
        if result.err != 0:
            if stat.S_ISDIR(result.mode) and op != "stat":
                put(path, None)  # replays as the same "not a regular file"
            continue
        if op == "msr":
            if result.value is not None:
                msr["0x%x" % number] = "0x%x" % result.value
        elif op == "stat":
            if stat.S_ISDIR(result.mode):
                put(path, None)
                put(path + "/.present", b"")  # an empty directory does not survive every copy
            else:
                put(path, b"")  # a device node stands in as an empty file
        elif result.data is not None:
            data = result.data
            if op == "read_block":
                end = data.find(b"\n\n")
                if end >= 0:
                    data = data[:end + 2]  # the first processor block and its blank line
                cpuinfo = True
            if key == plan.get("arch_key"):
                arch_text = data.decode("ascii", "replace").strip()
            put(path, data)

    for path, (found, mode) in collect_globs(plan.get("globs", [])).items():
        if found is None:
            put(path, None)
            put(path + "/.present", b"")  # an empty directory does not survive every copy
        elif "root" + path not in files:
            put(path, found, mode)
    for path in plan.get("list_dirs", ()):
        try:
            names = os.listdir(path)
        except OSError:
            continue  # absent or unreadable: the stat entry of the plan tells which
        for name in names:
            if not name.startswith("."):
                put(path + "/" + name, None)
                put(path + "/" + name + "/.present", b"")
    access: "dict[str, bool]" = {}
    for path in plan.get("access", ()):
        if os.path.exists(path):
            access[path] = _access_rw(path) == 0

    devices: "dict[str, Any]" = {}
    kvm_path = plan.get("kvm_device")
    if kvm_path:
        device = devices[kvm_path] = kvm_device(kvm_path, bool(plan.get("deep")), plan.get("kvm_caps"))
        if device["stat"] == "ok":
            put(kvm_path, b"")  # a placeholder: the facts are in scenario.json

    arch = normalize_arch(arch_text or os.uname()[4], plan.get("arch_aliases", {}))
    walked = None
    if plan.get("cpuid") and arch in X86:
        walked = (cpuid or cpuid_walk)()
    if walked:
        files["cpuid.txt"] = (format_walk(walked).encode("ascii"), 0o644)
    source = "cpuid" if walked else "cpuinfo" if cpuinfo else "none"
    scenario: "dict[str, Any]" = {
        "format": 1,
        "capsfast": plan.get("capsfast"),
        "description": plan.get("description"),
        "arch": arch,
        "cpu_source": source,
        "deep": bool(plan.get("deep")),
        "msr": msr,
        "devices": devices,
        "captured": plan.get("captured", []),
        "access": access,
    }
    if plan.get("cpu_device"):
        scenario["cpu_model"] = host_cpu(kvm_path or "", walked)
    if plan.get("cpu_map"):
        for name, data in cpu_map_files(plan["cpu_map"]):
            put(plan["cpu_map"] + "/" + name, data)
    found_emulators = plan.get("emulators")
    binaries: "list[str]" = []
    if found_emulators:
        path_env = search_path(os.environ.get("PATH"), found_emulators["default_path"])
        scenario["path"] = path_env
        binaries = emulators(path_env, found_emulators["prefix"], found_emulators["qemu_kvm"])
        for binary in binaries:
            put(binary, b"", 0o755)  # the replay looks for an executable file
    if plan.get("qmp"):
        emulator, replies = qmp_replies(plan["qmp"], arch, binaries, qmp or qmp_module())
        name = "qemu/%s.replies" % os.path.basename(emulator)
        files[name] = (replies, 0o644)
        scenario["qmp"] = {"emulator": emulator, "replies": name}

    text = json.dumps(scenario, indent=2, sort_keys=True) + "\n"
    files["scenario.json"] = (text.encode("utf-8"), 0o644)
    return files


def write_tar(files: "dict[str, tuple[bytes | None, int]]", out: "Any") -> None:
    """``files`` as an uncompressed tar stream on the binary file ``out``,
    each directory before what it holds."""
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        added: "set[str]" = set()

        def add_dir(name: str) -> None:
            if not name or name in added:
                return
            add_dir(name.rpartition("/")[0])
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = now
            tar.addfile(info)
            added.add(name)

        for name in sorted(files):
            data, mode = files[name]
            if data is None:
                add_dir(name)
                continue
            add_dir(name.rpartition("/")[0])
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))


def main(plan_text: str) -> int:
    """Collect by ``plan_text`` and write the tar to stdout; 0, or 3 after
    one line on stderr."""
    if not plan_text:
        sys.stderr.write("capsfast collector: no plan (it runs through capsfast --connect)\n")
        return 3
    try:
        buffer = io.BytesIO()
        write_tar(collect(json.loads(plan_text)), buffer)
        out = sys.stdout.buffer
        out.write(buffer.getvalue())
        out.flush()
    except BrokenPipeError:
        return 3  # the local side went away: nobody to tell
    except CollectorError as e:  # says what went wrong itself
        sys.stderr.write("capsfast collector: %s\n" % " ".join(str(e).split())[:400])
        return 3
    except Exception as e:  # anything at all: one line, never a traceback
        sys.stderr.write("capsfast collector: %s: %s\n" % (type(e).__name__, " ".join(str(e).split())[:300]))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(PLAN))
