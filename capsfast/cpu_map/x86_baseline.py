"""libvirt's x86 baseline CPU and feature expansion (``virCPUx86Baseline``
and ``virCPUx86ExpandFeatures`` in ``src/cpu/cpu_x86.c``): the CPU every
one of several CPU definitions can run, and a definition with its model's
features spelled out, as ``virsh hypervisor-cpu-baseline --features``
prints them.  Pure: definitions and a CPU map in, a definition out.

A definition is a ``capsfast.cpu_map.x86_decode.GuestCpu``: a model, a
vendor (or None) and (policy, feature) pairs; a host CPU's features are
all 'require'.
"""
from capsfast.cpu_map.x86_decode import GuestCpu, _features, _subtract, decode_guest
from capsfast.cpu_map.x86_map import CPUID, add_item
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from capsfast.cpu_map.x86_map import CpuMap, Data


def _model_data(cpu: GuestCpu, cpu_map: "CpuMap") -> "tuple[Data, str | None]":
    """x86ModelFromCPU (every policy): the model's data with the required
    features added and the disabled ones removed, and the model's vendor."""
    model = cpu_map.model(cpu.model)
    if model is None:
        raise CapsfastError("unknown CPU model %s" % cpu.model)
    data = dict(model.data)
    for policy, name in cpu.features:
        feature = cpu_map.feature(name)
        if feature is None:
            raise CapsfastError("unknown CPU feature %s" % name)
        if policy in ("require", "force"):
            for key, value in feature.items():
                add_item(data, key, value)
        elif policy in ("disable", "forbid"):
            _subtract(data, feature)
    return data, model.vendor


def _intersect(data: "Data", other: "Data") -> None:
    # x86DataIntersect: an item other lacks is cleared
    for key in data:
        data[key] &= other.get(key, 0)


def _known_vendor(cpu_map: "CpuMap", name: str) -> int:
    for vendor, item in cpu_map.vendors:
        if vendor == name:
            return item
    raise CapsfastError("unknown CPU vendor %s" % name)


def baseline(cpus: "Sequence[GuestCpu]", cpu_map: "CpuMap",
             hypervisor_models: "Mapping[str, tuple[str, ...]] | None" = None,
             features: "Sequence[str] | None" = None, migratable: bool = False) -> "tuple[GuestCpu, bool]":
    """The baseline of ``cpus`` and whether its model is forbidden to fall
    back (it is the one model all of them named).  ``hypervisor_models``:
    the models the hypervisor offers, with their blockers (see
    ``decode_guest``); ``features``: the only features the hypervisor knows
    (None: any).  CapsfastError where libvirt refuses."""
    if not cpus:
        raise CapsfastError("no CPUs given")
    base, _vendor = _model_data(cpus[0], cpu_map)
    vendor = cpus[0].vendor
    output_vendor = vendor is not None
    if vendor is not None:
        _known_vendor(cpu_map, vendor)
    names = [cpus[0].model]
    for cpu in cpus[1:]:
        if cpu.model not in names:
            names.append(cpu.model)
        data, model_vendor = _model_data(cpu, cpu_map)
        if cpu.vendor is not None and model_vendor is not None and cpu.vendor != model_vendor:
            raise CapsfastError("CPU vendor %s of model %s differs from vendor %s"
                                % (model_vendor, cpu.model, cpu.vendor))
        name = cpu.vendor
        if name is None:
            output_vendor = False
            name = model_vendor
        if name is not None:
            if vendor is None:
                _known_vendor(cpu_map, name)
                vendor = name
            elif vendor != name:
                raise CapsfastError("CPU vendors do not match")
        _intersect(base, data)
    if features is not None:
        known: Data = {}
        for feature_name in features:
            for key, value in (cpu_map.feature(feature_name) or {}).items():
                add_item(known, key, value)
        _intersect(base, known)
    if not any(base.values()):
        raise CapsfastError("CPUs are incompatible")
    if vendor is not None:
        add_item(base, (CPUID, 0, 0), _known_vendor(cpu_map, vendor))
    decoded = decode_guest(base, cpu_map, hypervisor_models, names, migratable)
    if decoded is None:
        raise CapsfastError("cannot find a CPU model for the baseline of the given CPUs")
    forbid = len(names) == 1 and decoded.model == names[0]
    if not output_vendor:
        decoded = GuestCpu(decoded.model, None, decoded.features)
    return decoded, forbid


def expand(cpu: GuestCpu, cpu_map: "CpuMap") -> GuestCpu:
    """virCPUx86ExpandFeatures for a guest CPU, then libvirt's sort by name:
    every feature of the model required, the definition's own policies
    over them, the model's removed features disabled unless named."""
    model = cpu_map.model(cpu.model)
    if model is None:
        raise CapsfastError("unknown CPU model %s" % cpu.model)
    policies = {name: "require" for name in _features(dict(model.data), cpu_map)}
    for policy, name in cpu.features:
        if policy in ("require", "disable"):
            policies[name] = policy
    for name in model.removed:
        policies.setdefault(name, "disable")
    return GuestCpu(cpu.model, cpu.vendor, tuple((policies[name], name) for name in sorted(policies)))
