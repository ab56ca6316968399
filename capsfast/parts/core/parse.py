"""CPUID decoding: a data table of feature bits, the vendor and hypervisor
signatures, and the probe's five leaves from a ``cpuid -r -1`` dump.

The five leaves capsfast reads arrive as a tuple of register tuples
``(eax, ebx, ecx, edx)`` in the order of ``LEAVES``, from the C module or
from a dump through ``leaves_from_dump``; both gate the extended and
hypervisor leaves the same way, so a dump replays what the CPU would say.

The full CPUID walk (every leaf and subleaf libvirt's x86 host CPU probe
reads) is a source's (``capsfast.sources``): the C module's on the live
CPU, the collector's (``capsfast.recording.collector.walk``) anywhere else;
a dump's text is read and written by ``capsfast.sources.cpuid_dump``.
"""
from capsfast.model import Cpu

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from capsfast.model import CpuSource

    # (eax, ebx, ecx, edx) of one leaf
    Registers = tuple[int, int, int, int]
    # the five gated leaves, in the order of LEAVES
    Leaves = tuple[Registers, Registers, Registers, Registers, Registers]
    # (leaf, subleaf, registers): one entry of a walk
    WalkEntry = tuple[int, int, Registers]

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


def decode(leaves: "Sequence[Sequence[int]]", source: "CpuSource") -> Cpu:
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
