"""What a probe reads and what the results mean: the plans for one
crossing (data), ``read_core`` asking the source for them, and the
functions that turn the named results into model values (whether a file
is there, its bytes or text; the CPU and device facts).  No I/O but
through the source; decoding bytes and CPUID leaves is
``capsfast.parts.core.parse``'s, decisions (is KVM usable, the HVM
verdict) are ``capsfast.parts.core.decide``'s.

A missing file is data (absent); any other failure to read a file that
should be readable is bad input and raises CapsfastError.
"""
import os

from capsfast.parts.core import parse
from capsfast.parts.core import decide as verdict
from capsfast.constants import KVM_DEVICE, MSR_DEVICE, MSR_FEATURE_CONTROL, MSR_VM_CR, X86_ARCHS
from capsfast.errors import CapsfastError
from capsfast.model import Cpu, Hypervisor, Kqemu
from capsfast.sources.base import CPUINFO_BLOCK, MSR, READ, READ_BLOCK, STAT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from capsfast.sources.base import FileResult, KvmDevice, Leaves
    from capsfast.model import CpuSource, Hvm, Kvm, Xen
    from capsfast.model import Host
    from capsfast.sources.base import Entry, Source

    # plan key -> (path as on the probed host, its result)
    Files = Mapping[str, tuple[str, FileResult]]
    DeviceFacts = tuple[Kvm, Kqemu, Xen, Hvm]

# -- what a probe reads ---------------------------------------------------------

SMALL = 4096           # sysfs and procfs files of interest are a line or two

KVM_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm")

DEVICE_FILES: "tuple[Entry, ...]" = (
    ("kqemu", "/dev/kqemu", STAT, 0, 0),
    ("proc_xen", "/proc/xen", STAT, 0, 0),
    ("xen_caps", "/proc/xen/capabilities", READ, 0, SMALL),
    ("hv_type", "/sys/hypervisor/type", READ, 0, SMALL),
    ("hv_caps", "/sys/hypervisor/properties/capabilities", READ, 0, SMALL),
) + tuple(
    ("module." + m, "/sys/module/" + m, STAT, 0, 0) for m in KVM_MODULES
) + (
    ("nested.kvm_intel", "/sys/module/kvm_intel/parameters/nested", READ, 0, SMALL),
    ("nested.kvm_amd", "/sys/module/kvm_amd/parameters/nested", READ, 0, SMALL),
)
# key -> the key of an entry whose file must exist for this one to be
# looked at: C skips the system calls for a child of something absent.
DEPENDS = {
    "xen_caps": "proc_xen",
    "nested.kvm_intel": "module.kvm_intel",
    "nested.kvm_amd": "module.kvm_amd",
}

# Facts of the CPU that cannot change while the system runs: read once for
# the live host.
CPU_FILES: "tuple[Entry, ...]" = (
    ("cpuinfo", "/proc/cpuinfo", READ_BLOCK, 0, CPUINFO_BLOCK),
    ("msr.feature_control", MSR_DEVICE, MSR, MSR_FEATURE_CONTROL, 0),
    ("msr.vm_cr", MSR_DEVICE, MSR, MSR_VM_CR, 0),
)
ARCH_FILE: "Entry" = ("arch", "/proc/sys/kernel/arch", READ, 0, SMALL)





# The probe's plans, fixed (their Batches are pooled by identity): the
# device files, with the CPU files, and with the arch file for a root that
# does not say its architecture otherwise.
PLAN = DEVICE_FILES + CPU_FILES
PLAN_WITH_ARCH = PLAN + (ARCH_FILE,)


def keyed(plan: "Sequence[Entry]", results: "Sequence[FileResult]") -> "Files":
    """The results of ``plan`` by key."""
    return {entry[0]: (entry[1], r) for entry, r in zip(plan, results)}


# -- what the results mean ----------------------------------------------------

NO_HYPERVISOR = Hypervisor(None, None)
NO_CPU = Cpu(None, None, None, None, (), "none", None, None)


def shown(root: str, path: str) -> str:
    """``path`` of the probed host as the user named it, for a message:
    under the root given, links not followed (the source follows them
    inside the root when it reads)."""
    return path if root == "/" else root.rstrip("/") + path


def present(root: str, path: str, result: "FileResult") -> bool:
    """True if the stat found the path, False if it is absent.  A device
    node this process cannot even stat (a /dev it may not search) counts as
    absent: inaccessible devices are data, as for /dev/kvm."""
    code = result.outcome.code
    if code == "ok":
        return True
    if code == "absent" or path.startswith("/dev/"):
        return False
    raise result.outcome.error("cannot read %s" % shown(root, path))


def data(root: str, path: str, result: "FileResult") -> "bytes | None":
    """The bytes read, or None if the file is absent; CapsfastError if it
    exists but could not be read (not a regular file, permission, ...)."""
    outcome = result.outcome
    if outcome.code == "absent":
        return None
    if not outcome.ok:
        raise outcome.error("cannot read %s" % shown(root, path))
    return result.data


def text(root: str, path: str, result: "FileResult") -> "str | None":
    """The file's text, or None if it is absent.  Undecodable bytes and
    control characters become U+FFFD rather than an error: the tokens we look
    for are ASCII.  A file larger than the buffer is refused."""
    raw = data(root, path, result)
    if raw is None:
        return None
    if result.truncated:
        raise CapsfastError("cannot read %s: larger than %d bytes" % (shown(root, path), SMALL))
    return parse.decode(raw)


class CpuFacts:
    """What the CPU is: kept for the live host, gathered per call otherwise.
    ``cpu`` is None where no CPU facts exist (not x86, nothing to read);
    ``msr`` maps MSR numbers to the values that could be read."""

    __slots__ = ("cpu", "hypervisor", "kernel_flags", "msr", "leaves", "msr_items")

    def __init__(self, cpu: "Cpu | None", hypervisor: Hypervisor, kernel_flags: "tuple[str, ...] | None",
                 msr: dict[int, int], leaves: "Leaves | None") -> None:
        self.cpu = cpu
        self.hypervisor = hypervisor
        self.kernel_flags = kernel_flags
        self.msr = msr
        self.leaves = leaves
        self.msr_items = tuple(sorted(msr.items()))  # Host.msr, made once


def cpu_facts(root: str, arch: str, leaves: "Leaves | None", source: "CpuSource", files: "Files",
              msr: "dict[int, int] | None" = None) -> "CpuFacts":
    """CPU, hypervisor, kernel flags and MSRs from CPUID leaves (or, with
    none, the root's /proc/cpuinfo) and the CPU files' results; ``msr``
    given (a recording's) stands for the MSR files.

    With CPUID, the kernel's flags and the MSRs count only where it shows
    vmx or svm (they tell a firmware lock, nothing else), as for the live
    host, which reads them only then: a dump answers as its host did."""
    block = None
    if "cpuinfo" in files:
        path, result = files["cpuinfo"]
        # Only the first block is read: a cut-off rest is expected, not an error.
        block = parse.cpuinfo_first_block(data(root, path, result))
    flags = parse.kernel_flags(block)
    if msr is not None:
        # A recording holds every MSR read (the security facts' too): only
        # these two are the CPU facts'.
        msr = {n: v for n, v in msr.items() if n in (MSR_FEATURE_CONTROL, MSR_VM_CR)}
    else:
        msr = {}
        for key, number in (("msr.feature_control", MSR_FEATURE_CONTROL), ("msr.vm_cr", MSR_VM_CR)):
            if key in files:
                # An MSR is evidence, never required: unreadable means unused.
                value = files[key][1].value
                if value is not None:
                    msr[number] = value
    if leaves is not None and not parse.shows_vmx_or_svm(leaves):
        flags, msr = None, {}
    if arch not in X86_ARCHS:
        return CpuFacts(None, NO_HYPERVISOR, flags, msr, None)
    if leaves is not None:
        cpu = parse.cpu_from_leaves(leaves, source)
        signature = parse.hypervisor_signature(leaves)
        hypervisor = Hypervisor(parse.hypervisor_vendor(signature), signature)
        return CpuFacts(cpu, hypervisor, flags, msr, leaves)
    if block is None or flags is None:
        return CpuFacts(None, NO_HYPERVISOR, flags, msr, None)
    cpu = parse.cpu_from_cpuinfo(block, flags)
    # /proc/cpuinfo has the hypervisor bit but not the signature.
    hypervisor = Hypervisor("unknown", None) if "hypervisor" in flags else NO_HYPERVISOR
    return CpuFacts(cpu, hypervisor, flags, msr, None)


def device_facts(cpu: "CpuFacts", kvm_device: "KvmDevice", files: "Files", deep: bool, root: str,
                 group: "Callable[[], str | None]" = lambda: None) -> "DeviceFacts":
    """(kvm, kqemu, xen, hvm): what the device and file results mean, with
    the decisions on them; ``group`` names the device's group, asked only
    where this process may not open it (the hint for that case names it)."""
    def is_present(key: str) -> bool:
        path, result = files[key]
        return present(root, path, result)

    def read(key: str) -> "str | None":
        path, result = files[key]
        return text(root, path, result)

    modules = tuple(m for m in KVM_MODULES if is_present("module." + m))
    nested = None
    for value in (read("nested.kvm_intel"), read("nested.kvm_amd")):
        if value is not None:
            nested = bool(nested) or value.strip() in ("Y", "y", "1")
    denied = kvm_device.stat.ok and kvm_device.open.code == "denied"
    kvm = verdict.kvm(kvm_device, modules, nested, deep, group() if denied else None)
    xen = parse.xen_facts(is_present("proc_xen"), read("xen_caps"), read("hv_type"), read("hv_caps"))
    kqemu = Kqemu(exists=is_present("kqemu"))
    hvm = verdict.decide(cpu.cpu, kvm, xen, cpu.kernel_flags, cpu.msr)
    return kvm, kqemu, xen, hvm


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    """The core part's lazy field: the kernel's flags, from the first
    processor's /proc/cpuinfo block."""
    return {"kernel_flags": parse.kernel_flags(parse.cpuinfo_first_block(source.cpuinfo_bytes()))}


def read_core(source: "Source", deep: bool) -> "tuple[CpuFacts, DeviceFacts]":
    """The core part of a host other than the kept live one (a directory, a
    dump, a forced arch, a recording), in one crossing through ``source``,
    which learns the host's architecture."""
    root, dump = source.root, source.dump
    arch = parse.normalize_arch(source.arch) if source.arch else None
    recorded = source.kind == "replay"  # its arch and dump are the recording's, not flags
    if arch is not None and dump is not None and arch not in X86_ARCHS:
        raise CapsfastError(("its architecture %s contradicts its CPUID walk (cpuid.txt): CPUID exists on x86 only"
                             if recorded else "--arch %s contradicts the CPUID dump %s: CPUID exists on x86 only")
                            % ((arch,) if recorded else (arch, dump)))
    if arch is not None and source.kind == "live":
        machine = parse.normalize_arch(os.uname().machine)
        if parse.cpu_family(arch) != parse.cpu_family(machine):
            raise CapsfastError("--arch %s contradicts this machine (%s), whose live CPU is probed: give another "
                                "host's files with --root, a dump with --cpuid-dump, or a recording with --replay"
                                % (arch, machine))
    if arch is None and root == "/":
        arch = parse.normalize_arch(os.uname().machine)
    plan = PLAN if arch is not None else PLAN_WITH_ARCH
    results, walk = source.probe(plan, DEPENDS, dump is None and arch in X86_ARCHS, deep)
    files = keyed(plan, results.files)
    if arch is None:
        path, result = files["arch"]
        arch_text = text(root, path, result)
        if not arch_text:
            path, result = files["cpuinfo"]
            arch_text = parse.arch_from_cpuinfo(parse.cpuinfo_first_block(data(root, path, result)))
        arch = parse.normalize_arch(arch_text or os.uname().machine)
        if dump is not None and arch not in X86_ARCHS:
            raise CapsfastError("its CPUID walk (cpuid.txt) is of an x86 CPU, but its root is of %s" % arch
                                if recorded else "the CPUID dump %s is of an x86 CPU, but the host under %s is %s"
                                % (dump, root, arch))
    source.arch = arch
    leaves: "Leaves | None" = results.cpu  # the running CPU's, where the source has one
    kind: "CpuSource" = "cpuid"
    if walk is not None:
        leaves, kind = parse.gate(lambda leaf: walk.get((leaf, 0), parse.ZERO)), "dump"
    cpu = cpu_facts(root, arch, leaves, kind, files, source.recorded_msr())
    assert results.kvm is not None  # the plan asks for the device
    return cpu, device_facts(cpu, results.kvm, files, deep, root, lambda: source.device_group(KVM_DEVICE))
