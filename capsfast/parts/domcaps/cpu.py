"""Pure rules (no I/O) for the ``<cpu>`` of domain capabilities, apart
from ``decide`` because they need libvirt's CPU map and nothing else does.

Which CPU modes a guest of one emulator and virt type may use, decided as
libvirt 9.0 decides them (``virQEMUCapsFillDomainCPUCaps`` in
``src/qemu/qemu_capabilities.c``) from the emulator's QMP transcript and
libvirt's CPU map (loaded by ``read``).

- host-passthrough: an accelerated virt type on a host of the emulator's
  own arch; ``migratable='on'`` where QEMU's max CPU has that property.
- maximum: where QEMU lists a ``max`` CPU model.
- host-model: QEMU's static expansion of ``host`` (``max`` under TCG)
  decoded as libvirt decodes a guest CPU (``capsfast.cpu_map.x86_decode.decode_guest``).
- custom: QEMU's CPU models that the CPU map knows, in QEMU's order, with
  QEMU's verdict on each and the map's vendor.

The probe of each virt type is a process of the transcript: the first one
(KVM where it was usable), and the TCG-only one libvirt starts after it.
"""
from capsfast.cpu_map.x86_decode import GuestCpu
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsfast.cpu_map.x86_map import CpuMap, Data
    from capsfast.parts.domcaps.parse import Transcript

X86_ARCHES = ("x86_64", "i686")

# virQEMUCapsCPUFeaturesX86: QEMU's spelling -> the CPU map's.
_FROM_QEMU = {
    "cmp-legacy": "cmp_legacy", "ds-cpl": "ds_cpl", "fxsr-opt": "fxsr_opt",
    "kvm-pv-eoi": "kvm_pv_eoi", "kvm-pv-unhalt": "kvm_pv_unhalt", "lahf-lm": "lahf_lm",
    "nodeid-msr": "nodeid_msr", "pclmulqdq": "pclmuldq", "perfctr-core": "perfctr_core",
    "perfctr-nb": "perfctr_nb", "tsc-adjust": "tsc_adjust",
}


def feature_from_qemu(name: str) -> str:
    """A QEMU CPU feature name in the CPU map's spelling."""
    return _FROM_QEMU.get(name, name)


class CustomModel:
    """One named CPU model a guest may ask for: ``name``, ``usable`` (QEMU's
    verdict: 'yes', 'no' or 'unknown'), ``deprecated``, ``vendor`` (the CPU
    map's, or None) and ``blockers`` (the features QEMU says it lacks here,
    in the map's spelling; not printed, but they shape a baseline)."""

    __slots__ = ("name", "usable", "deprecated", "vendor", "blockers")

    def __init__(self, name: str, usable: str, deprecated: bool, vendor: "str | None",
                 blockers: "tuple[str, ...]" = ()) -> None:
        self.name = name
        self.usable = usable
        self.deprecated = deprecated
        self.vendor = vendor
        self.blockers = blockers

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomModel) and self._key() == other._key()

    def _key(self) -> "tuple[str, str, bool, str | None, tuple[str, ...]]":
        return self.name, self.usable, self.deprecated, self.vendor, self.blockers

    def __repr__(self) -> str:
        return "CustomModel(%r, %r, %r, %r, %r)" % self._key()


class CpuModes:
    """The CPU modes: ``host_passthrough`` and ``maximum`` (each the
    migratable values offered, an empty tuple where the mode is not
    supported), ``host_model`` (a guest CPU definition, None where not
    supported), ``custom`` (empty where not supported) and
    ``qemu_features``, every CPU feature QEMU's host expansion names, set
    or not (the map's spelling), and ``host_model_fallback``, 'forbid'
    for a host-model from QEMU's expansion, 'allow' for one decoded from
    the host's CPU data."""

    __slots__ = ("host_passthrough", "maximum", "host_model", "custom", "qemu_features", "host_model_fallback")

    def __init__(self, host_passthrough: "tuple[str, ...]", maximum: "tuple[str, ...]",
                 host_model: "GuestCpu | None", custom: "tuple[CustomModel, ...]",
                 qemu_features: "tuple[str, ...]" = (), host_model_fallback: str = "forbid") -> None:
        self.host_passthrough = host_passthrough
        self.maximum = maximum
        self.host_model = host_model
        self.custom = custom
        self.qemu_features = qemu_features
        self.host_model_fallback = host_model_fallback

    def __repr__(self) -> str:
        return "CpuModes(%r, %r, %r, %r)" % (self.host_passthrough, self.maximum, self.host_model, self.custom)


def _names(value: "Any") -> "set[str]":
    if not isinstance(value, list):
        return set()
    return {item["name"] for item in value if isinstance(item, dict) and isinstance(item.get("name"), str)}


def _process_for(transcript: "Transcript", virttype: str) -> int:
    """The transcript process that probed ``virttype`` (virQEMUCapsGetAccel)."""
    kvm = transcript.value("query-kvm")
    kvm_used = isinstance(kvm, dict) and kvm.get("enabled") is True
    if virttype == "kvm":
        if not kvm_used:
            raise CapsfastError("virt type kvm: the emulator could not use KVM when it was probed")
        return 0
    if virttype == "qemu":
        return 1 if kvm_used else 0
    raise CapsfastError("virt type %s is not supported by a QEMU emulator (kvm or qemu)" % virttype)


class _Prop:
    __slots__ = ("name", "value")

    def __init__(self, name: str, value: "bool | int | str") -> None:
        self.name = name
        self.value = value


def _props(model: "dict[str, Any]") -> "list[_Prop]":
    """qemuMonitorJSONParseCPUModel's properties: booleans, integers and
    strings; anything else is skipped."""
    props = model.get("props")
    if not isinstance(props, dict):
        return []
    out = []
    for name, value in props.items():
        if isinstance(value, (bool, str)) or (isinstance(value, int) and -(1 << 63) <= value < 1 << 63):
            out.append(_Prop(name, value))
    return out


def _expansions(transcript: "Transcript", process: int, static_full: bool) -> "list[_Prop] | None":
    """virQEMUCapsProbeQMPHostCPU's host CPU properties of ``process``, or
    None where QEMU gave none.  A feature only the non-migratable
    expansion sets is set: the host-model CPU libvirt reports is not the
    migratable one (its ``migratable='no'`` marks matter to no answer
    here, so they are not kept).  The
    expansions are read in the order libvirt asked them: the migratable
    one, then the non-migratable one (each followed by its full expansion
    where QEMU predates canonical feature names)."""
    replies = [reply for _command, reply in transcript.replies("query-cpu-model-expansion", process)]
    position = 0

    def one() -> "dict[str, Any] | None":
        nonlocal position
        if position >= len(replies):
            return None
        reply = replies[position]
        position += 1
        value = reply.get("return")
        if not isinstance(value, dict) or not isinstance(value.get("model"), dict):
            return None
        model: dict[str, Any] = value["model"]
        return model

    def expansion() -> "dict[str, Any] | None":
        model = one()
        if model is not None and static_full:
            model = one()
        return model

    first = expansion()
    if first is None or not isinstance(first.get("props"), dict):
        return None
    props = _props(first)
    second = expansion()
    if second is not None:
        by_name = {prop.name: prop for prop in props}
        for other in _props(second):
            prop = by_name.get(other.name)
            if prop is None or not isinstance(prop.value, bool) or not isinstance(other.value, bool):
                continue
            if other.value:
                prop.value = True  # usable, though not where the guest must migrate
    return props


def _cpu_data(props: "list[_Prop]", cpu_map: "CpuMap") -> "Data | None":
    """virQEMUCapsGetCPUModelX86Data (not migratable-only): the CPU data of
    the true features, the vendor and the signature; None for a vendor
    string libvirt refuses."""
    from capsfast.cpu_map.x86_decode import feature_data, make_signature
    from capsfast.cpu_map.x86_map import CPUID, add_item, vendor_item

    data: Data = {}
    signature = {"family": 0, "model": 0, "stepping": 0}
    for prop in props:
        name = feature_from_qemu(prop.name)
        if isinstance(prop.value, bool):
            if prop.value:
                feature = feature_data(cpu_map, name)
                for key, value in (feature or {}).items():
                    add_item(data, key, value)
        elif isinstance(prop.value, str):
            if name == "vendor":
                if len(prop.value.encode("utf-8", "replace")) != 12:
                    return None
                add_item(data, (CPUID, 0, 0), vendor_item(prop.value))
        elif name in signature:
            signature[name] = prop.value & 0xFFFFFFFF
    add_item(data, (CPUID, 1, 0), make_signature(signature["family"], signature["model"], signature["stepping"]))
    return data


def _blockers(definition: "dict[str, Any]") -> "tuple[str, ...]":
    """The features QEMU says block a CPU model here, in the map's spelling."""
    blockers = definition.get("unavailable-features")
    if not isinstance(blockers, list):
        return ()
    return tuple(feature_from_qemu(name) for name in blockers if isinstance(name, str))


# virQEMUCapsCPUFilterFeatures: never passed to QEMU
_NOT_FOR_QEMU = frozenset(("cmt", "mbm_total", "mbm_local", "osxsave", "ospke"))


def _decode_host(props: "list[_Prop] | None", definitions: "list[dict[str, Any]] | None",
                 cpu_map: "CpuMap", canonical: bool, host_cpu: "Data | None" = None) -> "GuestCpu | None":
    """virQEMUCapsInitHostCPUModel's reported CPU: QEMU's expansion decoded,
    or, where QEMU gave none, the host's own CPU data (``host_cpu``,
    ``capsfast.cpu_map.x86_decode.cpu_data``) decoded over QEMU's models,
    less the features QEMU never takes."""
    from capsfast.cpu_map.x86_decode import decode_guest, is_msr_feature

    offered: "dict[str, tuple[str, ...]] | None" = None
    if definitions is not None:
        offered = {}
        for definition in definitions:
            offered.setdefault(definition["name"], _blockers(definition))
    if props is not None:
        data = _cpu_data(props, cpu_map)
        if data is None:
            return None
        decoded = decode_guest(data, cpu_map, offered)
    elif host_cpu is not None:
        decoded = decode_guest(host_cpu, cpu_map, offered)
        if decoded is not None:
            decoded = GuestCpu(decoded.model, decoded.vendor,
                               tuple(f for f in decoded.features if f[1] not in _NOT_FOR_QEMU))
    else:
        return None
    if decoded is None or canonical:
        return decoded
    # QEMU without unavailable-features cannot take MSR features
    return GuestCpu(decoded.model, decoded.vendor,
                    tuple(f for f in decoded.features if not is_msr_feature(cpu_map, f[1])))


def host_model(transcript: "Transcript", process: int, cpu_map: "CpuMap", *,
               canonical: bool = True) -> "GuestCpu | None":
    """The host-model CPU of one probe ``process``: libvirt's guest decode
    of QEMU's expansion of its host CPU over the CPU models QEMU lists there
    (every map model where it lists none).  ``canonical``: QEMU names CPU
    features canonically (it has ``unavailable-features``); where not,
    libvirt asked a full expansion after each static one and drops MSR
    features.  None where QEMU gave no expansion or no model fits."""
    props = _expansions(transcript, process, static_full=not canonical)
    return _decode_host(props, _definitions(transcript, process), cpu_map, canonical)


def _definitions(transcript: "Transcript", process: int) -> "list[dict[str, Any]] | None":
    value = transcript.value("query-cpu-definitions", process)
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, dict) and isinstance(item.get("name"), str)]


def _usable(definition: "dict[str, Any]") -> str:
    blockers = definition.get("unavailable-features")
    if not isinstance(blockers, list):
        return "unknown"
    return "no" if blockers else "yes"


def _is_native(host_arch: str, emulator_arch: str) -> bool:
    # virQEMUCapsGuestIsNative, for the x86 arches this module decides
    return host_arch == emulator_arch or (host_arch == "x86_64" and emulator_arch == "i686")


def cpu_modes(transcript: "Transcript", *, virttype: str, arch: str, cpu_map: "CpuMap",
              host_arch: "str | None" = None, host_cpu: "Data | None" = None) -> CpuModes:
    """The CPU modes a guest of ``arch`` may use with this emulator (its
    ``transcript``) and ``virttype`` ('kvm' or 'qemu'), on a host of
    ``host_arch`` (by default the emulator's own arch).  ``host_cpu``: the
    host's CPU data (``capsfast.cpu_map.x86_decode.cpu_data``), which
    libvirt decodes for host-model only where QEMU gave no expansion of
    its host CPU.  CapsfastError for an arch or virt type not decided
    here."""
    target = transcript.value("query-target")
    emulator_arch = target.get("arch") if isinstance(target, dict) else None
    if emulator_arch == "i386":
        emulator_arch = "i686"  # virQEMUCapsArchFromString
    if arch not in X86_ARCHES:
        raise CapsfastError("domain capabilities: CPU modes of %s guests are not yet supported" % arch)
    if emulator_arch not in X86_ARCHES:
        raise CapsfastError("domain capabilities: CPU modes of an emulator for %r are not yet supported"
                            % (emulator_arch,))
    process = _process_for(transcript, virttype)
    if host_arch is None:
        host_arch = emulator_arch
    # libvirt asks for this type on every x86 emulator
    max_cpu_props = _names(transcript.value("qom-list-properties", 0, {"typename": "max-x86_64-cpu"}))
    # QEMU_CAPS_CPU_UNAVAILABLE_FEATURES; libvirt takes canonical names from it
    canonical = "unavailable-features" in max_cpu_props
    native = _is_native(host_arch, emulator_arch)

    passthrough: tuple[str, ...] = ()
    if virttype != "qemu" and native:
        passthrough = ("on", "off") if "migratable" in max_cpu_props else ("off",)
    has_max = any("max" in _names(transcript.value("query-cpu-definitions", p))
                  for p in range(len(transcript.processes)))
    maximum: tuple[str, ...] = ("on", "off") if has_max else ()

    definitions = _definitions(transcript, process)
    props = _expansions(transcript, process, static_full=not canonical)
    host = _decode_host(props, definitions, cpu_map, canonical, host_cpu) if native else None

    custom: list[CustomModel] = []
    known = {model.name: model.vendor for model in cpu_map.models}
    for definition in definitions or ():
        name = definition["name"]
        if name not in known or name == "host":
            continue
        custom.append(CustomModel(name, _usable(definition), definition.get("deprecated") is True, known[name],
                                  _blockers(definition)))
    qemu_features = tuple(feature_from_qemu(prop.name) for prop in props or ())
    # libvirt forbids falling back from a model QEMU itself expanded
    fallback = "forbid" if props is not None else "allow"
    return CpuModes(passthrough, maximum, host, tuple(custom), qemu_features, fallback)


def expand_features(modes: CpuModes, cpu_map: "CpuMap") -> GuestCpu:
    """The host-model CPU as ``virsh hypervisor-cpu-baseline --features``
    gives it for the host-model ``<cpu>`` of domain capabilities (what
    KubeVirt labels nodes with): libvirt's baseline of that one CPU over
    the models and features QEMU offers, every feature of its model then
    spelled out, sorted by name.  CapsfastError where libvirt refuses."""
    from capsfast.cpu_map.x86_baseline import baseline, expand

    if modes.host_model is None:
        raise CapsfastError("no host-model CPU here to expand")
    if not modes.custom:
        raise CapsfastError("QEMU offers no CPU models for this virt type")
    offered: dict[str, tuple[str, ...]] = {}
    for model in modes.custom:
        offered.setdefault(model.name, model.blockers)
    cpu, _forbid = baseline([modes.host_model], cpu_map, offered, modes.qemu_features)
    # libvirt's hypervisor baseline forbids fallback whatever the model
    return expand(cpu, cpu_map)
