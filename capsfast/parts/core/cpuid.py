"""CPUID decoding: a data table of feature bits, the vendor and hypervisor
signatures, the reader and writer of ``cpuid -r -1`` dumps, and the full
CPUID walk that recordings keep.

The five leaves capsfast reads arrive as a tuple of register tuples
``(eax, ebx, ecx, edx)`` in the order of ``LEAVES``, from the C module or
from a dump through ``leaves_from_dump``; both gate the extended and
hypervisor leaves the same way, so a dump replays what the CPU would say.

A walk is a list of ``(leaf, subleaf, registers)`` in walk order: every
leaf and subleaf libvirt's x86 host CPU probe reads, plus the hypervisor
leaves.  ``walk`` is the reference algorithm in Python; the C module's
``capsfast_cpuid_walk`` (``_native.cpuid_walk``) is the same walk on the
live CPU, in one crossing, and never part of a probe.
"""
from capsfast.errors import CapsfastError
from capsfast.model import Cpu

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

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


def decode(leaves: "Sequence[Sequence[int]]", source: str) -> Cpu:
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


def _dump_lines(text: str, name: str) -> "Iterator[WalkEntry | None]":
    """Each line of a dump in turn: None for a CPU header, else its
    (leaf, subleaf, registers).  Raises CapsfastError naming the first line
    that is neither; lines after the caller stops are never read."""
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if words[0] == "CPU" or (words[0].startswith("CPU") and line.rstrip().endswith(":")):
            yield None
            continue
        try:
            entry = _parse_leaf_line(words)
        except ValueError:
            raise CapsfastError(
                "%s, line %d: not a 'cpuid -r' line: %r" % (name, number, line.strip()[:60])
            ) from None
        yield entry


def parse_dump(text: str, name: str = "CPUID dump") -> "dict[int, Registers]":
    """Leaf -> registers (subleaf 0) of the first CPU in ``cpuid -r -1`` output.

    Raises CapsfastError naming the first line that is not of that format,
    or when the dump has no leaf 0.  Callers read at most 1 MiB of a dump."""
    return {leaf: regs for (leaf, subleaf), regs in parse_dump_walk(text, name).items() if subleaf == 0}


def parse_dump_walk(text: str, name: str = "CPUID dump") -> "dict[tuple[int, int], Registers]":
    """(leaf, subleaf) -> registers of every line of the first CPU in
    ``cpuid -r -1`` output, in the dump's order (the first line wins).

    Raises CapsfastError as ``parse_dump`` does.  Callers read at most
    1 MiB of a dump."""
    table: dict[tuple[int, int], Registers] = {}
    seen_cpu = False
    for entry in _dump_lines(text, name):
        if entry is None:
            if seen_cpu and table:
                break  # only the first CPU counts
            seen_cpu = True
            continue
        leaf, subleaf, regs = entry
        table.setdefault((leaf, subleaf), regs)
    if (0, 0) not in table:
        raise CapsfastError("%s: no leaf 0x00000000 (is it 'cpuid -r -1' output?)" % name)
    return table


def _parse_leaf_line(words: "Sequence[str]") -> "tuple[int, int, Registers]":
    # "0x00000001 0x00: eax=0x000306a9 ebx=0x00100800 ecx=0x7fbae3ff edx=0xbfebfbff"
    if len(words) != 6 or not words[1].endswith(":"):
        raise ValueError
    leaf = int(words[0], 16)
    subleaf = int(words[1][:-1], 16)
    names = ("eax=", "ebx=", "ecx=", "edx=")
    eax, ebx, ecx, edx = (_register(word, name) for word, name in zip(words[2:], names))
    if not (0 <= leaf <= 0xFFFFFFFF and 0 <= subleaf <= 0xFFFFFFFF):
        raise ValueError
    return leaf, subleaf, (eax, ebx, ecx, edx)


def _register(word: str, name: str) -> int:
    # "eax=0x000306a9" -> 0x000306a9, a 32-bit value
    if not word.startswith(name):
        raise ValueError
    value = int(word[len(name):], 16)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError
    return value


def leaves_from_dump(text: str, name: str = "CPUID dump") -> "Leaves":
    """The five gated leaves from dump text; absent leaves read as zeros."""
    table = parse_dump(text, name)
    return gate(lambda leaf: table.get(leaf, ZERO))


_LINE = "   0x%08x 0x%02x: eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x"


def format_dump(entries: "Iterable[WalkEntry]") -> str:
    """A walk (``walk``, ``_native.cpuid_walk``) as ``cpuid -r -1`` prints
    it: a ``CPU:`` line, then every leaf and subleaf in ascending order,
    so that a recording lines up with the tool's dump of the same CPU."""
    lines = ["CPU:"]
    for leaf, subleaf, regs in sorted(entries, key=_leaf_and_subleaf):
        lines.append(_LINE % ((leaf, subleaf) + tuple(regs)))
    return "\n".join(lines) + "\n"


def _leaf_and_subleaf(entry: "WalkEntry") -> "tuple[int, int]":
    return entry[0], entry[1]


def walk(read: "Callable[[int, int], Registers]") -> "list[WalkEntry]":
    """The full CPUID walk, ``read(leaf, subleaf)`` answering for the CPU:
    the reference for the C module's ``capsfast_cpuid_walk``, which gives
    the same entries in the same order for the same CPU, within the same
    bounds, and executes one CPUID where this calls ``read`` once.

    libvirt's x86 host CPU probe (cpuidSet() in src/cpu/cpu_x86.c) sets the
    order and the subleaves: every basic leaf 0..max (leaf 0 EAX) with the
    subleaves below, the extended leaves 0x80000000..max, then, with the
    hypervisor bit (leaf 1 ECX bit 31), 0x40000000..max (its EAX), subleaf
    0 each.  A range's base leaf is kept even when its EAX is below the
    base; a range holds at most WALK_LEAVES leaves, a leaf at most
    WALK_SUBLEAVES subleaves, a walk at most WALK_MAX entries."""
    out: list[WalkEntry] = []
    put = out.append
    found = {"sgx": False, "hypervisor": False}

    def upto(leaf: int, r0: "Registers", last: int) -> None:
        # Subleaves 0..last, last cut to the bound.
        put((leaf, 0, r0))
        for sub in range(1, min(last, WALK_SUBLEAVES - 1) + 1):
            put((leaf, sub, read(leaf, sub)))

    def masked(leaf: int, first: int, mask: int) -> None:
        # Subleaf n, for n from first to 63, when bit n of mask is set.
        for sub in range(first, 64):
            if mask >> sub & 1:
                put((leaf, sub, read(leaf, sub)))

    def basic(leaf: int, r0: "Registers") -> None:
        if leaf == 0x1:
            found["hypervisor"] = bool(r0[ECX] >> 31 & 1)
            put((leaf, 0, r0))
        elif leaf == 0x4:
            # The subleaf whose cache type (EAX[4:0]) is 0 ends the list and is kept.
            put((leaf, 0, r0))
            r, sub = r0, 1
            while r[EAX] & 0x1F and sub < WALK_SUBLEAVES:
                r = read(leaf, sub)
                put((leaf, sub, r))
                sub += 1
        elif leaf == 0x7:
            found["sgx"] = bool(r0[EBX] >> 2 & 1)
            upto(leaf, r0, r0[EAX])
        elif leaf == 0xB:
            # A level type (ECX[15:8]) of 0 ends the list and is dropped, even at subleaf 0.
            r, sub = r0, 0
            while r[ECX] & 0xFF00:
                put((leaf, sub, r))
                sub += 1
                if sub == WALK_SUBLEAVES:
                    break
                r = read(leaf, sub)
        elif leaf == 0xD:
            # Subleaf 1 always; both subleaves' masks name the others.
            put((leaf, 0, r0))
            r1 = read(leaf, 1)
            put((leaf, 1, r1))
            masked(leaf, 2, r0[EAX] | r0[EDX] << 32 | r1[ECX] | r1[EDX] << 32)
        elif leaf in (0xF, 0x10):
            # Bit n of the resource bitmap: resource n has subleaf n.
            put((leaf, 0, r0))
            masked(leaf, 1, r0[EDX] if leaf == 0xF else r0[EBX])
        elif leaf == 0x12:
            # Without SGX subleaf 0 is dropped; with it, an EPC section type
            # (EAX[3:0]) of 0 ends the list from subleaf 2 on and is dropped.
            if found["sgx"]:
                put((leaf, 0, r0))
                put((leaf, 1, read(leaf, 1)))
                for sub in range(2, WALK_SUBLEAVES):
                    r = read(leaf, sub)
                    if not r[EAX] & 0xF:
                        break
                    put((leaf, sub, r))
        elif leaf == 0x14:
            upto(leaf, r0, r0[EAX])
        elif leaf == 0x17:
            # Valid only from EAX 3 on; otherwise subleaf 0 is dropped.
            if r0[EAX] >= 3:
                upto(leaf, r0, r0[EAX])
        else:
            put((leaf, 0, r0))

    def walk_range(base: int) -> None:
        r = read(base, 0)
        last = min(max(r[EAX], base), base + WALK_LEAVES - 1)
        for leaf in range(base, last + 1):
            if leaf != base:
                r = read(leaf, 0)
            if base == 0:
                basic(leaf, r)
            else:
                put((leaf, 0, r))

    walk_range(0x00000000)
    walk_range(0x80000000)
    # Leaves 0x40000000 and up mean something only under a hypervisor.
    if found["hypervisor"]:
        walk_range(0x40000000)
    return out
