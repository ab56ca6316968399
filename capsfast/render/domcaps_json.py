"""Domain capabilities as JSON: the facts of ``virsh domcapabilities``
with the keys of ``schemas/domcapabilities.schema.json``,
``schema_version`` 1."""
from capsfast.render.json import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsfast.parts.domcaps.model import DomainCaps, Features, Sev, Sgx, Support

SCHEMA_VERSION = 1
# libvirt's camelCase element names as this document's snake_case keys.
_KEYS = {"backingStoreInput": "backing_store_input"}


def support_dict(s: "Support") -> "dict[str, Any]":
    """``{"supported": bool, "enums": {name: [values]}}``; the enums of an
    unsupported element are empty."""
    return {"supported": s.supported, "enums": {e.name: list(e.values) for e in s.enums}}


def _sev(sev: "Sev | None") -> "dict[str, Any] | None":
    if sev is None:
        return None
    return {"cbitpos": sev.cbitpos, "reduced_phys_bits": sev.reduced_phys_bits, "max_guests": sev.max_guests,
            "max_es_guests": sev.max_es_guests, "cpu0_id": sev.cpu0_id}


def _sgx(sgx: "Sgx | None") -> "dict[str, Any] | None":
    if sgx is None:
        return None
    return {"flc": sgx.flc, "sgx1": sgx.sgx1, "sgx2": sgx.sgx2, "section_size_kib": sgx.section_size_kib,
            "sections": [{"node": s.node, "size_kib": s.size_kib} for s in sgx.sections]}


def _features(f: "Features") -> "dict[str, Any]":
    data: "dict[str, Any]" = {"gic": support_dict(f.gic)}
    data.update((_KEYS.get(name, name), supported) for name, supported in f.simple)
    data["sev"] = _sev(f.sev)
    data["sgx"] = _sgx(f.sgx)
    data["hyperv"] = None if f.hyperv is None else support_dict(f.hyperv)
    return data


def _part(record: "Any") -> "Any":
    # The firmware and CPU parts' records give their own plain data.
    return None if record is None else record.as_dict()


def _cpu(modes: "Any") -> "Any":
    # The CPU part's record is rendered by its own renderer.
    if modes is None:
        return None
    from capsfast.render.domcaps_cpu import cpu_json

    return cpu_json(modes)


def caps_dict(caps: "DomainCaps") -> "dict[str, Any]":
    return {
        "schema_version": SCHEMA_VERSION,
        "path": caps.path,
        "domain": caps.domain,
        "machine": caps.machine,
        "arch": caps.arch,
        "vcpu_max": caps.vcpu_max or None,
        "iothreads": caps.iothreads,
        "os": _part(caps.os),
        "cpu": _cpu(caps.cpu),
        "memory_backing": support_dict(caps.memory_backing),
        "devices": {d.name: support_dict(d) for d in caps.devices},
        "features": _features(caps.features),
    }


def render(caps: "DomainCaps") -> str:
    """The document as JSON text, ending in a newline."""
    return dumps(caps_dict(caps)) + "\n"
