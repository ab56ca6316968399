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

``decode_guest`` is libvirt's decode of a guest CPU (the host-model CPU of
domain capabilities, a baseline): models marked ``decode guest='off'`` are
skipped instead, a model may lack features of the CPU (they are listed as
disabled, with the hypervisor's blockers and the model's removed
features), and candidates are weighed by libvirt's penalty for disabled
features.
"""
from capsfast.cpu_map.x86_map import CPUID, MSR, add_item

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

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


def _prepare(data: "Data", cpu_map: "CpuMap") -> "tuple[Data, str | None, int, tuple[int, int, int]]":
    """x86Decode's start: a copy of ``data`` without the vendor's bits (and
    without broken TSX), the vendor, the masked signature and its parts."""
    data = dict(data)
    vendor = _take_vendor(data, cpu_map)
    signature = data.get((CPUID, 1, 0), 0) & 0xFFFFFFFF & _SIGNATURE_MASK
    _filter_tsx(data, vendor, cpu_map)
    return data, vendor, signature, _signature_parts(signature)


def decode(data: "Data", cpu_map: "CpuMap") -> Decoded:
    """libvirt's host CPU decode of ``data`` (``cpu_data``) against ``cpu_map``."""
    data, vendor, signature, parts = _prepare(data, cpu_map)
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


# libvirt's own feature table beside the map (x86_kvm_features): Hyper-V
# enlightenments a QEMU expansion may name; their bits join the CPU data
# but no map feature lists them.
INTERNAL_FEATURES: "dict[str, Data]" = {
    name: {(CPUID, leaf, 0): eax | edx << 96}
    for name, leaf, eax, edx in (
        ("kvm_pv_unhalt", 0x40000001, 0x80, 0),
        ("hv-runtime", 0x40000003, 0x1, 0), ("hv-synic", 0x40000003, 0x4, 0),
        ("hv-stimer", 0x40000003, 0x8, 0), ("hv-relaxed", 0x40000003, 0x20, 0),
        ("hv-vapic", 0x40000003, 0x30, 0), ("hv-vpindex", 0x40000003, 0x40, 0),
        ("hv-reset", 0x40000003, 0x80, 0), ("hv-frequencies", 0x40000003, 0x800, 0),
        ("hv-reenlightenment", 0x40000003, 0x2000, 0), ("hv-tlbflush", 0x40000004, 0x4, 0),
        ("hv-avic", 0x40000004, 0x200, 0), ("hv-ipi", 0x40000004, 0x400, 0),
        ("hv-evmcs", 0x40000004, 0x4000, 0), ("hv-stimer-direct", 0x40000003, 0, 0x80000),
    )
}


def feature_data(cpu_map: "CpuMap", name: str) -> "Data | None":
    """A feature's CPU data as libvirt finds it: the map's, else its own table's."""
    data = cpu_map.feature(name)
    return data if data is not None else INTERNAL_FEATURES.get(name)


def is_msr_feature(cpu_map: "CpuMap", name: str) -> bool:
    """virCPUx86FeatureIsMSR: the feature is (partly) an MSR bit."""
    data = feature_data(cpu_map, name)
    return data is not None and any(key[0] == MSR and value for key, value in data.items())


def make_signature(family: int, model: int, stepping: int) -> int:
    """x86MakeSignature: leaf 1 EAX of a (family, model, stepping)."""
    family &= 0xFFFFFFFF
    model &= 0xFFFFFFFF
    sig = 0
    if family > 0xF:
        sig |= ((family - 0xF) << 20) & 0xFFFFFFFF
        family = 0xF
    sig |= (model >> 4) << 16
    sig |= family << 8
    sig |= (model & 0xF) << 4
    sig |= stepping & 0xF
    return sig & 0xFFFFFFFF


class GuestCpu:
    """A guest decode's result: ``model``, ``vendor`` (or None) and
    ``features``, (policy, name) pairs with policy 'require' or 'disable',
    in libvirt's order."""

    __slots__ = ("model", "vendor", "features")

    def __init__(self, model: str, vendor: "str | None", features: "tuple[tuple[str, str], ...]") -> None:
        self.model = model
        self.vendor = vendor
        self.features = features

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GuestCpu) and (self.model, self.vendor, self.features) == (
            other.model, other.vendor, other.features)

    def __repr__(self) -> str:
        return "GuestCpu(%r, %r, %r)" % (self.model, self.vendor, self.features)


def _take_vendor(data: "Data", cpu_map: "CpuMap") -> "str | None":
    # x86DataToVendor: the first map vendor whose string leaf 0 holds; its bits leave the data.
    leaf0 = data.get((CPUID, 0, 0), 0)
    for name, item in cpu_map.vendors:
        if leaf0 & item == item:
            data[(CPUID, 0, 0)] = leaf0 & ~item
            return name
    return None


def _filter_tsx(data: "Data", vendor: "str | None", cpu_map: "CpuMap") -> None:
    # x86DataFilterTSX: Intel CPUs with broken TSX lose hle and rtm.
    if vendor != "Intel":
        return
    family, number, stepping = _signature_parts(data.get((CPUID, 1, 0), 0) & 0xFFFFFFFF)
    if family == 6 and ((number == 63 and stepping < 4) or number in (60, 69, 70)):
        for name in ("hle", "rtm"):
            feature = cpu_map.feature(name)
            if feature is not None:
                _subtract(data, feature)


def _guest_candidate(data: "Data", model: "Model", cpu_map: "CpuMap",
                     blockers: "tuple[str, ...] | None") -> "list[tuple[str, str]]":
    """x86DataToCPU for a guest CPU: the features ``data`` adds to ``model``
    (require), those of ``model`` it lacks or the hypervisor blocks
    (disable), then the model's removed features (disable) not yet named."""
    extra = dict(data)
    _subtract(extra, model.data)
    lacking = dict(model.data)
    _subtract(lacking, data)
    for blocker in blockers or ():
        feature = cpu_map.feature(blocker)
        if feature is not None and not is_subset(extra, feature):
            for key, value in feature.items():
                add_item(lacking, key, value)
    features = [("require", name) for name in _features(extra, cpu_map)]
    features += [("disable", name) for name in _features(lacking, cpu_map)]
    named = {name for _policy, name in features}
    for name in model.removed:
        if name not in named:
            named.add(name)
            features.append(("disable", name))
    return features


_BASE_PENALTY = 2


def _weight(features: "list[tuple[str, str]]") -> "tuple[int, int]":
    """virCPUx86CompareCandidateFeatureList's (total, disabled) of a guest
    candidate.  Each disabled feature costs a growing penalty instead of
    one; libvirt's loop shrinks its own bound as it counts, so disabled
    features near the end can go uncounted: copied as it is, since the
    choice of model depends on it."""
    enabled = len(features)
    disabled = 0
    penalty = _BASE_PENALTY
    i = 0
    while i < enabled:
        if features[i][0] == "disable":
            enabled -= 1
            disabled += penalty
            penalty += 1
        i += 1
    return enabled + disabled, disabled


def _better(current: "list[tuple[str, str]]", candidate: "list[tuple[str, str]]", preferred: bool) -> bool:
    # virCPUx86CompareCandidateFeatureList for guest candidates
    total, disabled = _weight(candidate)
    current_total, current_disabled = _weight(current)
    if total < current_total or (total == current_total and disabled < current_disabled):
        return True
    return preferred and disabled < current_disabled


def decode_guest(data: "Data", cpu_map: "CpuMap", hypervisor_models: "Mapping[str, tuple[str, ...]] | None",
                 preferred: "Sequence[str]" = (), migratable: bool = False) -> "GuestCpu | None":
    """libvirt's guest CPU decode (``x86Decode`` for a guest CPU) of
    ``data`` against ``cpu_map``.  ``hypervisor_models``: the models the
    hypervisor offers (name -> the features blocking it, CPU map names),
    or None for every map model.  ``preferred``: model names to favour (one
    name: that model, wherever it may be used); ``migratable``: drop the
    map's non-migratable features.  None where no model fits."""
    data, vendor, signature, parts = _prepare(data, cpu_map)
    only = preferred[0] if len(preferred) == 1 else None
    best: "Model | None" = None
    best_features: list[tuple[str, str]] = []
    for candidate in reversed(cpu_map.models):
        blockers = None
        if hypervisor_models is not None:
            if candidate.name not in hypervisor_models:
                continue  # libvirt then falls back to the closest model the hypervisor has
            blockers = hypervisor_models[candidate.name]
        if vendor is not None and candidate.vendor is not None and candidate.vendor != vendor:
            continue
        if not candidate.decode_guest:
            continue
        features = _guest_candidate(data, candidate, cpu_map, blockers)
        if candidate.name == only:
            best, best_features = candidate, features
            break
        if best is not None:
            if signature:
                best_matches = _signature_matches(best, parts)
                matches = _signature_matches(candidate, parts)
                if best_matches and not matches:
                    continue
                if matches and not best_matches:
                    best, best_features = candidate, features
                    continue
            if not _better(best_features, features, candidate.name in preferred):
                continue
        best, best_features = candidate, features
    if best is None:
        return None
    if migratable:
        best_features = [f for f in best_features if f[1] not in cpu_map.migrate_blockers]
    return GuestCpu(best.name, vendor, tuple(best_features))
