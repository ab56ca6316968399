"""The core part's pure decoding, from what a probe read to values: the
five CPUID leaves, architecture names, /proc/cpuinfo's first block and
the Xen files' text.  No I/O: ``read`` hands the bytes and leaves in.

The five leaves capsfast reads arrive as a tuple of register tuples
``(eax, ebx, ecx, edx)`` in the order of ``LEAVES``, from the C module or
from a dump through ``leaves_from_dump``; both gate the extended and
hypervisor leaves the same way, so a dump replays what the CPU would say.

The full CPUID walk (every leaf and subleaf libvirt's x86 host CPU probe
reads) is a source's (``capsfast.sources``): the C module's on the live
CPU, the collector's (``capsfast.recording.collector.walk``) anywhere else;
a dump's text is read and written by ``capsfast.sources.cpuid_dump``.
"""
from capsfast.errors import CapsfastError
from capsfast.model import Cpu, Xen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from capsfast.model import CpuSource, XenRole

    # (eax, ebx, ecx, edx) of one leaf
    Registers = tuple[int, int, int, int]
    # the five gated leaves, in the order of LEAVES
    Leaves = tuple[Registers, Registers, Registers, Registers, Registers]
    # (leaf, subleaf, registers): one entry of a walk
    WalkEntry = tuple[int, int, Registers]

# -- CPUID ----------------------------------------------------------------------

LEAVES = (0x00000000, 0x00000001, 0x80000000, 0x80000001, 0x40000000)
BASIC0, BASIC1, EXT0, EXT1, HV0 = range(5)
EAX, EBX, ECX, EDX = range(4)

# (slot in LEAVES, register, bit, name): the CPU features capsfast reports.
FEATURE_BITS = (
    (BASIC1, ECX, 5, "vmx"),
    (BASIC1, ECX, 31, "hypervisor"),
    (BASIC1, EDX, 6, "pae"),
    (EXT1, ECX, 2, "svm"),
    (EXT1, EDX, 20, "nx"),
    (EXT1, EDX, 29, "lm"),
)
FEATURE_NAMES = frozenset(name for _slot, _reg, _bit, name in FEATURE_BITS)

# Signatures of leaf 0x40000000 (EBX, ECX, EDX), trailing NULs stripped;
# the list systemd's virt.c keeps.
HYPERVISORS = {
    "KVMKVMKVM": "kvm",
    "Linux KVM Hv": "kvm",
    "XenVMMXenVMM": "xen",
    "Microsoft Hv": "hyperv",
    "VMwareVMware": "vmware",
    "TCGTCGTCGTCG": "qemu-tcg",
    "bhyve bhyve ": "bhyve",
    "VBoxVBoxVBox": "virtualbox",
    "ACRNACRNACRN": "acrn",
    "QNXQVMBSQG": "qnx",
    " lrpepyh  vr": "parallels",
    "VirtualApple": "apple",
    "___ NVMM ___": "nvmm",
    "SRESRESRESRE": "sre",
}

ZERO: "Registers" = (0, 0, 0, 0)

# The walk's bounds, as in csrc/capsfast.h: leaves per range (base up to
# base + 255) and subleaves per leaf (0..63), whatever the CPU claims; no
# walk holds more than WALK_MAX entries.
WALK_LEAVES = 256
WALK_SUBLEAVES = 64
WALK_MAX = 3 * WALK_LEAVES + 7 * (WALK_SUBLEAVES - 1) + 2 * 31


# Printable ASCII stays; any other byte of a register string (from a dump
# or an odd hypervisor) becomes U+FFFD, which every output format can carry.
_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0xFF for b in range(256))


def _text(*registers: int) -> str:
    raw = b"".join(r.to_bytes(4, "little") for r in registers).rstrip(b"\0")
    return raw.translate(_PRINTABLE).decode("ascii", "replace")


def cpu_from_leaves(leaves: "Sequence[Sequence[int]]", source: "CpuSource") -> Cpu:
    """Cpu facts from the five gated leaves."""
    basic0, basic1, ext0 = leaves[BASIC0], leaves[BASIC1], leaves[EXT0]
    features = sorted(
        name for slot, reg, bit, name in FEATURE_BITS if leaves[slot][reg] >> bit & 1
    )
    eax = basic1[EAX]
    family = eax >> 8 & 0xF
    model = eax >> 4 & 0xF
    if family == 0xF:
        family += eax >> 20 & 0xFF
    if family in (6, 0xF) or family > 0xF:
        model += (eax >> 16 & 0xF) << 4
    vendor = _text(basic0[EBX], basic0[EDX], basic0[ECX]) or None
    return Cpu(vendor, family, model, eax & 0xF, tuple(features), source, basic0[EAX], ext0[EAX])


def hypervisor_signature(leaves: "Sequence[Sequence[int]]") -> "str | None":
    """The signature of leaf 0x40000000, or None without the hypervisor bit."""
    if not leaves[BASIC1][ECX] >> 31 & 1:
        return None
    hv = leaves[HV0]
    return _text(hv[EBX], hv[ECX], hv[EDX])


def hypervisor_vendor(signature: "str | None") -> "str | None":
    """A short name for a signature; unknown signatures keep their text."""
    if signature is None:
        return None
    return HYPERVISORS.get(signature, signature.strip() or "unknown")


def shows_vmx_or_svm(leaves: "Leaves") -> bool:
    """Whether CPUID offers hardware virtualization: only then can the
    kernel's flags or an MSR tell that the firmware locked it off."""
    return bool(leaves[BASIC1][ECX] >> 5 & 1 or leaves[EXT1][ECX] >> 2 & 1)


def gate(read: "Callable[[int], Registers]") -> "Leaves":
    """The five leaves as the C module gathers them, ``read(leaf)`` giving
    the registers of one leaf: the extended leaf only if 0x80000000 allows
    it, the hypervisor leaf only with the hypervisor bit."""
    basic0 = read(0)
    basic1 = read(1) if basic0[EAX] >= 1 else ZERO
    ext0 = read(0x80000000)
    if ext0[EAX] & 0xFFFF0000 != 0x80000000:
        ext0 = ZERO
    ext1 = read(0x80000001) if ext0[EAX] >= 0x80000001 else ZERO
    hv0 = read(0x40000000) if basic1[ECX] >> 31 & 1 else ZERO
    return (basic0, basic1, ext0, ext1, hv0)


def parse_dump(text: str, name: str = "CPUID dump") -> "dict[int, Registers]":
    """Leaf -> registers (subleaf 0) of the first CPU in ``cpuid -r -1`` output.

    Raises CapsfastError naming the first line that is not of that format,
    or when the dump has no leaf 0.  Callers read at most 1 MiB of a dump."""
    from capsfast.sources.cpuid_dump import parse_dump_walk  # a dump's reader is the sources'

    return {leaf: regs for (leaf, subleaf), regs in parse_dump_walk(text, name).items() if subleaf == 0}


def leaves_from_dump(text: str, name: str = "CPUID dump") -> "Leaves":
    """The five gated leaves from dump text; absent leaves read as zeros."""
    table = parse_dump(text, name)
    return gate(lambda leaf: table.get(leaf, ZERO))


# -- architecture names ----------------------------------------------------------

# Kernel and uname spellings -> libvirt's architecture names.
ARCH_ALIASES = {
    "i386": "i686", "i486": "i686", "i586": "i686", "i686": "i686", "x86": "i686",
    "amd64": "x86_64", "x86_64": "x86_64",
    "arm64": "aarch64", "aarch64": "aarch64",
    "armv6l": "armv6l", "armv7l": "armv7l", "armv7": "armv7l", "arm": "armv7l",
    "ppc64": "ppc64", "ppc64le": "ppc64le", "ppc": "ppc",
    "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64", "ia64": "ia64",
}


def normalize_arch(name: str) -> str:
    """libvirt's name for an architecture; CapsfastError for nonsense."""
    key = name.strip().lower()
    if key in ARCH_ALIASES:
        return ARCH_ALIASES[key]
    if key and len(key) <= 32 and key.replace("_", "").isalnum() and key.isascii():
        return key
    raise CapsfastError("unrecognised architecture %r" % name.strip()[:40])


# The architectures one CPU runs natively (a 64-bit x86 CPU runs i686
# too, and so on): an --arch of the live host must be of its CPU's family.
_FAMILIES = {"i686": "x86_64", "armv7l": "aarch64", "armv6l": "aarch64", "ppc64le": "ppc64", "ppc": "ppc64",
             "ppcle": "ppc64", "s390": "s390x"}


def cpu_family(arch: str) -> str:
    """The architecture of the CPU family ``arch`` runs natively on."""
    return _FAMILIES.get(arch, arch)


def arch_from_cpuinfo(block: "Mapping[str, str] | None") -> "str | None":
    """The architecture a /proc/cpuinfo block was written by, where its
    keys tell (for a root without proc/sys/kernel/arch); None otherwise."""
    if not block:
        return None
    if "flags" in block and "vendor_id" in block:  # x86: lm is long mode
        return "x86_64" if "lm" in block["flags"].split() else "i686"
    arm = block.get("CPU architecture", "").strip()
    if arm:
        # An AArch32 kernel on an ARMv8 CPU says 8 too, but names an ARMv7 model.
        v7 = "ARMv7" in block.get("model name", "") or "ARMv7" in block.get("Processor", "")
        return "aarch64" if arm in ("8", "AArch64") and not v7 else "armv7l"
    if block.get("vendor_id", "").startswith("IBM/S390"):
        return "s390x"
    if block.get("isa", "").startswith("rv64"):
        return "riscv64"
    return None


# -- file text -------------------------------------------------------------------

# Control bytes other than tab, newline and carriage return become 0xFF,
# which never starts a UTF-8 sequence, so decoding with "replace" turns them
# into U+FFFD: facts then hold no character that XML or a terminal rejects.
CONTROL_TO_FF = bytes(
    0xFF if (b < 0x20 and b not in (9, 10, 13)) or b == 0x7F else b for b in range(256)
)


def decode(data: bytes) -> str:
    """File bytes as text: invalid UTF-8 and control characters as U+FFFD."""
    return data.translate(CONTROL_TO_FF).decode("utf-8", "replace")


def cpuinfo_first_block(data: "bytes | None") -> "dict[str, str] | None":
    """``{key: value}`` of the first processor block of /proc/cpuinfo bytes
    (keys such as ``flags``, ``vendor_id``, ``cpu family``); None if ``data``
    is None."""
    if data is None:
        return None
    end = data.find(b"\n\n")
    block = data if end < 0 else data[:end]
    fields: dict[str, str] = {}
    for line in decode(block).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def kernel_flags(block: "Mapping[str, str] | None") -> "tuple[str, ...] | None":
    """The kernel's CPU flags (x86's ``flags`` line), or None if absent."""
    if not block or "flags" not in block:
        return None
    return tuple(block["flags"].split())


def cpu_from_cpuinfo(block: "Mapping[str, str]", flags: tuple[str, ...]) -> Cpu:
    """Cpu facts from a /proc/cpuinfo block and its flags (no CPUID at hand)."""
    def number(key: str) -> "int | None":
        try:
            return int(block.get(key, ""))
        except ValueError:
            return None

    features = tuple(sorted(FEATURE_NAMES.intersection(flags)))
    return Cpu(block.get("vendor_id") or None, number("cpu family"), number("model"),
               number("stepping"), features, "cpuinfo", None, None)


def xen_facts(proc_xen: bool, xen_caps: "str | None", hv_type: "str | None", hv_caps: "str | None") -> Xen:
    """Xen from /proc/xen and /sys/hypervisor."""
    hv_type = hv_type.strip() if hv_type is not None else None
    present = proc_xen or hv_type == "xen"
    role: "XenRole | None" = None
    if proc_xen and xen_caps is not None:
        role = "dom0" if "control_d" in xen_caps.split() else "domU"
    tokens = tuple(hv_caps.split()) if hv_caps is not None else ()
    return Xen(present=present, role=role, hypervisor_type=hv_type or None, capabilities=tokens)
