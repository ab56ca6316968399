"""JSON rendering: the keys of ``schemas/capabilities.schema.json``, ``schema_version`` 1.

A small encoder of our own instead of the ``json`` module: the values are
only dicts, lists, strings, ints, bools and None, and ``import json`` costs
about 12 ms on a VM (it pulls in ``re``), more than the whole probe.  String
escaping is CPython's own C routine where it exists.
"""
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsfast.model import Host, Iommu, Sev, Sgx, Tech


def _quote_in_python(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code > 0xFFFF:
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 | code >> 10, 0xDC00 | code & 0x3FF))
        else:
            out.append("\\u%04x" % code)
    out.append('"')
    return "".join(out)


_quote: "Callable[[str], str]"
try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - other Pythons
    _quote = _quote_in_python

SCHEMA_VERSION = 1


def _msr_key(number: int) -> str:
    return "0x%x" % number


def _topology(host: "Host") -> dict[str, object]:
    t = host.topology
    if t is None:  # a Host made by hand, without it
        return {"sockets": None, "dies": None, "cores": None, "threads": None, "cells": None}
    return {
        "sockets": t.sockets,
        "dies": t.dies,
        "cores": t.cores,
        "threads": t.threads,
        "cells": None if t.cells is None else [
            {
                "id": c.id,
                "memory_kib": c.memory_kib,
                "pages": [{"size_kib": p.size_kib, "count": p.number} for p in c.pages],
                "distances": [{"id": d.id, "value": d.value} for d in c.distances],
                "cpus": [{"id": u.id, "socket_id": u.socket_id, "die_id": u.die_id, "core_id": u.core_id,
                          "siblings": list(u.siblings)} for u in c.cpus],
            }
            for c in t.cells
        ],
    }


def _layout(host: "Host") -> dict[str, object]:
    """host.topology, host.cache, host.pages and host.uuid (one reading of sysfs)."""
    return {
        "topology": _topology(host),
        "cache": None if host.cache is None else [
            {"id": b.id, "level": b.level, "type": b.type, "size_bytes": b.size_bytes, "cpus": list(b.cpus)}
            for b in host.cache
        ],
        "pages": None if host.pages is None else list(host.pages),
        "uuid": host.uuid,
    }


def host_dict(host: "Host", layout: bool = True, cpu_model: bool = True) -> dict[str, object]:
    """The model as plain JSON-ready values: the document README describes
    and ``capsfast/schemas/capabilities.schema.json`` specifies.  Without
    ``layout``, the host's topology, cache, pages and UUID are left out
    (and unread): ``capsfast watch`` follows what events can change, not
    the memory of a cell drifting with a balloon.  Without ``cpu_model``,
    ``host.cpu_model`` is null and never decoded (``check`` and ``watch``:
    the model is dear and cannot change while the system runs)."""
    cpu, hv, kvm, xen, hvm = host.cpu, host.hypervisor, host.kvm, host.xen, host.hvm
    caps = host.kvm_caps
    vmm_modules = host.vmm_modules
    model = host.cpu_model if cpu_model else None
    return {
        "schema_version": SCHEMA_VERSION,
        "host": {
            "arch": host.arch,
            "cpu": {
                "vendor": cpu.vendor,
                "family": cpu.family,
                "model": cpu.model,
                "stepping": cpu.stepping,
                "features": list(cpu.features),
                "source": cpu.source,
            },
            "hypervisor": {"vendor": hv.vendor, "signature": hv.signature},
            "kvm": {
                "exists": kvm.exists,
                "char_device": kvm.char_device,
                "accessible": kvm.accessible,
                "usable": kvm.usable,
                "api_version": kvm.api_version,
                "modules": list(kvm.modules),
                "nested": kvm.nested,
                "create_vm": kvm.create_vm,
                "failure": kvm.failure,
                "error": kvm.error,
                "mode": kvm.mode,
                "group": kvm.group,
                # KVM_CHECK_EXTENSION answers; null where /dev/kvm cannot be
                # opened (never zeros, which would read as "unsupported").
                "caps": None if caps is None else dict(caps),
            },
            "kqemu": {"exists": host.kqemu.exists},
            "xen": {
                "present": xen.present,
                "role": xen.role,
                "hypervisor_type": xen.hypervisor_type,
                "capabilities": list(xen.capabilities),
            },
            "hvm": {
                "type": hvm.type,
                "status": hvm.status,
                "confidence": hvm.confidence,
                "bios_setting": hvm.bios_setting,
                "evidence": list(hvm.evidence),
            },
            "vmm_modules": None if vmm_modules is None else dict(vmm_modules),
            "security": security_dict(host),
            "iommu": iommu_dict(host),
            "devices": devices_dict(host),
            "kernel_flags_read": host.kernel_flags is not None,
            "msr": {_msr_key(n): _msr_key(v) for n, v in host.msr},
            **(_layout(host) if layout else {}),
            "cpu_model": None if model is None else {
                "name": model.name,
                "features": list(model.features),
                "microcode": model.microcode,
                "maxphysaddr": model.maxphysaddr,
                "tsc": None if model.tsc is None else {"frequency": model.tsc.frequency,
                                                       "scaling": model.tsc.scaling == "yes"},
            },
        },
        "guests": [
            {
                "os_type": g.os_type,
                "arch": g.arch,
                "wordsize": g.wordsize,
                "emulator": g.emulator,
                "domains": list(g.domains),
                "features": list(g.features),
                "loader": g.loader,
                "machines": None if g.machines is None else [
                    {"name": m.name, "canonical": m.canonical, "deprecated": m.deprecated}
                    for m in g.machines
                ],
            }
            for g in host.guests
        ],
    }


def _verdict(tech: "Tech | Sev | Sgx | Iommu") -> dict[str, object]:
    return {"status": tech.status, "confidence": tech.confidence, "evidence": list(tech.evidence),
            "hint": tech.hint}


def security_dict(host: "Host") -> dict[str, object]:
    """``host.security``: one verdict per confidential-computing technology."""
    sec = host.security
    sev = dict(_verdict(sec.sev), cbitpos=sec.sev.cbitpos, reduced_phys_bits=sec.sev.reduced_phys_bits,
               max_guests=sec.sev.max_guests, max_es_guests=sec.sev.max_es_guests)
    sgx = sec.sgx
    return {
        "sev": sev,
        "sev_es": _verdict(sec.sev_es),
        "sev_snp": _verdict(sec.sev_snp),
        "tdx": _verdict(sec.tdx),
        "sgx": dict(_verdict(sgx), sgx1=sgx.sgx1, sgx2=sgx.sgx2, flc=sgx.flc,
                    epc=None if sgx.epc is None else [{"base": b, "size_bytes": n} for b, n in sgx.epc]),
        "s390_pv": _verdict(sec.s390_pv),
    }


def iommu_dict(host: "Host") -> dict[str, object]:
    iommu = host.iommu
    return dict(_verdict(iommu), groups=iommu.groups, acpi_table=iommu.acpi_table, units=list(iommu.units),
                kernel_args=list(iommu.kernel_args), vfio=iommu.vfio, iommufd=iommu.iommufd)


def devices_dict(host: "Host") -> dict[str, object]:
    dev = host.devices
    return {
        "vhost_net": dev.vhost_net,
        "tun": dev.tun,
        "vhost_vsock": dev.vhost_vsock,
        "kvm_hv": dev.kvm_hv,
        "cgroup": {"version": dev.cgroup_version, "controllers": dict(dev.cgroup_controllers)},
    }


def dumps(value: object, indent: str = "", step: str = "  ") -> str:
    """``value`` (dicts, lists, str, int, bool, None) as indented JSON."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int):
        return str(int(value))
    inner = indent + step
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (inner + _quote(str(k)) + ": " + dumps(v, inner, step) for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if all(isinstance(v, str) for v in value):
            return "[" + ", ".join(_quote(v) for v in value) + "]"
        return "[\n" + ",\n".join(inner + dumps(v, inner, step) for v in value) + "\n" + indent + "]"
    raise TypeError("cannot encode %r as JSON" % type(value).__name__)


def render(host: "Host") -> str:
    """The host as JSON text, ending in a newline."""
    return dumps(host_dict(host)) + "\n"
