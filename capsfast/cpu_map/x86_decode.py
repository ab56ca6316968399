"""The host CPU as libvirt 9.0 names it: the model and feature list its
x86 decoder (``x86Decode`` in ``src/cpu/cpu_x86.c``, for a host CPU) picks
from a CPU map for a CPUID walk and the IA32_ARCH_CAPABILITIES MSR.

Pure: the CPUID data, the MSR value and the map (``capsfast.cpu_map.x86_map``) in,
a ``Decoded`` out.  The rules, each libvirt's:

- The vendor is the first map vendor whose string leaf 0 holds; a model of
  another vendor is never a candidate.
- Intel family 6 models 60, 69, 70 and 63 below stepping 4 have broken
  TSX: hle and rtm are dropped first (``x86DataFilterTSX``).
- Models are tried newest first (the map's last first); one marked
  ``decode host='off'`` is never used for a host, nor one the CPU lacks a
  feature of.
- A model whose signature (family, model, stepping; reserved bits masked
  off) matches the CPU's beats one whose does not; among equals, the one
  leaving fewer extra features wins, and on a tie the newer stays.
- The features are those of the CPU the model lacks, in the map's feature
  order, each feature's bits removed before the next is tried.
"""
from capsfast.cpu_map.x86_map import CPUID, MSR, add_item

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from capsfast.cpu_map.x86_map import CpuMap, Data, Model

    Registers = tuple[int, int, int, int]

ARCH_CAPABILITIES_MSR = 0x10A
# libvirt's SIGNATURE_MASK: the reserved bits of leaf 1 EAX off.
_SIGNATURE_MASK = 0x0FFF3FFF


class Decoded:
    """A decode's result: ``model`` (None when no model fits), ``vendor``
    (the map's vendor name, or None), ``features`` (names, libvirt's order)
    and ``signature`` ((family, model, stepping) as libvirt computes it)."""

    __slots__ = ("model", "vendor", "features", "signature")

    def __init__(self, model: "str | None", vendor: "str | None", features: "tuple[str, ...]",
                 signature: "tuple[int, int, int]") -> None:
        self.model = model
        self.vendor = vendor
        self.features = features
        self.signature = signature

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decoded) and (self.model, self.vendor, self.features, self.signature) == (
            other.model, other.vendor, other.features, other.signature)

    def __repr__(self) -> str:
        return "Decoded(%r, %r, %r, %r)" % (self.model, self.vendor, self.features, self.signature)


def cpu_data(walk: "Mapping[tuple[int, int], Registers]", msrs: "Mapping[int, int]") -> "Data":
    """libvirt's CPU data of a CPUID walk ((leaf, subleaf) -> registers)
    and the feature MSRs read (index -> value; a host gives at most
    IA32_ARCH_CAPABILITIES)."""
    data: Data = {}
    for (leaf, subleaf), (eax, ebx, ecx, edx) in walk.items():
        add_item(data, (CPUID, leaf, subleaf), eax | ebx << 32 | ecx << 64 | edx << 96)
    for index, value in msrs.items():
        add_item(data, (MSR, index, 0), value & 0xFFFFFFFFFFFFFFFF)
    return data


def is_subset(data: "Data", subset: "Data") -> bool:
    """x86DataIsSubset: every non-zero item of ``subset`` has its bits in ``data``."""
    for key, mask in subset.items():
        if mask and (data.get(key, 0) & mask) != mask:
            return False
    return True


def has_feature(data: "Data", cpu_map: "CpuMap", name: str) -> bool:
    """virCPUx86DataCheckFeature: the map's feature ``name`` is in ``data``."""
    feature = cpu_map.feature(name)
    return feature is not None and is_subset(data, feature)


def wants_arch_capabilities(walk: "Mapping[tuple[int, int], Registers]", cpu_map: "CpuMap") -> bool:
    """libvirt reads MSR 0x10a only where CPUID shows arch-capabilities."""
    return has_feature(cpu_data(walk, {}), cpu_map, "arch-capabilities")


def _subtract(data: "Data", other: "Data") -> None:
    # x86DataSubtract: only items data holds are touched.
    for key, value in data.items():
        if value:
            mask = other.get(key)
            if mask:
                data[key] = value & ~mask


def _features(data: "Data", cpu_map: "CpuMap") -> "list[str]":
    """x86DataToCPUFeatures: map order, each found feature's bits removed."""
    found = []
    for name, feature in cpu_map.features:
        if is_subset(data, feature):
            _subtract(data, feature)
            found.append(name)
    return found


def _signature_parts(eax: int) -> "tuple[int, int, int]":
    # virCPUx86SignatureFromCPUID: the extended model counts for every family.
    return ((eax >> 20) & 0xFF) + ((eax >> 8) & 0xF), ((eax >> 12) & 0xF0) + ((eax >> 4) & 0xF), eax & 0xF


def _signature_matches(model: "Model", signature: "tuple[int, int, int]") -> bool:
    family, number, stepping = signature
    return any(f == family and m == number and (steps is None or stepping in steps)
               for f, m, steps in model.signatures)


def decode(data: "Data", cpu_map: "CpuMap") -> Decoded:
    """libvirt's host CPU decode of ``data`` (``cpu_data``) against ``cpu_map``."""
    data = dict(data)
    leaf0 = data.get((CPUID, 0, 0), 0)
    vendor = None
    for name, item in cpu_map.vendors:
        if leaf0 & item == item:
            vendor = name
            data[(CPUID, 0, 0)] = leaf0 & ~item
            break
    eax1 = data.get((CPUID, 1, 0), 0) & 0xFFFFFFFF
    signature = eax1 & _SIGNATURE_MASK
    parts = _signature_parts(signature)
    if vendor == "Intel":
        family, number, stepping = _signature_parts(eax1)
        if family == 6 and ((number == 63 and stepping < 4) or number in (60, 69, 70)):
            for name in ("hle", "rtm"):
                feature = cpu_map.feature(name)
                if feature is not None:
                    _subtract(data, feature)
    best: "Model | None" = None
    best_features: list[str] = []
    best_matches = False
    for candidate in reversed(cpu_map.models):
        if vendor is not None and candidate.vendor is not None and candidate.vendor != vendor:
            continue
        if not candidate.decode_host:
            continue
        missing = dict(candidate.data)
        _subtract(missing, data)
        if any(is_subset(missing, feature) for _name, feature in cpu_map.features):
            continue  # the CPU lacks a feature of the model: a host CPU cannot disable it
        extra = dict(data)
        _subtract(extra, candidate.data)
        features = _features(extra, cpu_map)
        matches = bool(signature) and _signature_matches(candidate, parts)
        if best is not None:
            if signature and best_matches and not matches:
                continue
            if not (signature and matches and not best_matches) and len(features) >= len(best_features):
                continue
        best, best_features, best_matches = candidate, features, matches
    if best is None:
        return Decoded(None, vendor, (), parts)
    return Decoded(best.name, vendor, tuple(best_features), parts)
