"""The ``<cpu>`` element of domain capabilities as libvirt 9.0 prints it
(``virDomainCapsCPUFormat`` in ``src/conf/domain_capabilities.c``), as
lines indented from the document's root."""
from capsfast.render.xmltext import libvirt_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.cpu_map.x86_decode import GuestCpu
    from capsfast.parts.domcaps.cpu import CpuModes


def _escape(value: str) -> str:
    return libvirt_value(value)


def _migratable_mode(name: str, enum: str, values: "tuple[str, ...]") -> "list[str]":
    if not values:
        return ["    <mode name='%s' supported='no'/>" % name]
    lines = ["    <mode name='%s' supported='yes'>" % name, "      <enum name='%s'>" % enum]
    lines += ["        <value>%s</value>" % value for value in values]
    lines += ["      </enum>", "    </mode>"]
    return lines


def cpu_lines(modes: "CpuModes") -> "list[str]":
    """The ``<cpu>...</cpu>`` lines, two spaces deep as inside ``<domainCapabilities>``."""
    lines = ["  <cpu>"]
    lines += _migratable_mode("host-passthrough", "hostPassthroughMigratable", modes.host_passthrough)
    lines += _migratable_mode("maximum", "maximumMigratable", modes.maximum)
    host = modes.host_model
    if host is None:
        lines.append("    <mode name='host-model' supported='no'/>")
    else:
        lines.append("    <mode name='host-model' supported='yes'>")
        lines += ["    " + line for line in guest_cpu_lines(host, modes.host_model_fallback)[1:-1]]
        lines.append("    </mode>")
    if not modes.custom:
        lines.append("    <mode name='custom' supported='no'/>")
    else:
        lines.append("    <mode name='custom' supported='yes'>")
        for model in modes.custom:
            lines.append("      <model usable='%s'%s vendor='%s'>%s</model>" % (
                model.usable, " deprecated='yes'" if model.deprecated else "",
                _escape(model.vendor) if model.vendor is not None else "unknown", _escape(model.name)))
        lines.append("    </mode>")
    lines.append("  </cpu>")
    return lines


def guest_cpu_lines(cpu: "GuestCpu", fallback: str = "forbid") -> "list[str]":
    """A guest CPU definition as libvirt prints one on its own (what
    ``virsh hypervisor-cpu-baseline`` prints), from ``<cpu>`` at the left."""
    lines = ["<cpu mode='custom' match='exact'>",
             "  <model fallback='%s'>%s</model>" % (fallback, _escape(cpu.model))]
    if cpu.vendor is not None:
        lines.append("  <vendor>%s</vendor>" % _escape(cpu.vendor))
    lines += ["  <feature policy='%s' name='%s'/>" % (policy, _escape(name)) for policy, name in cpu.features]
    lines.append("</cpu>")
    return lines


def guest_cpu_json(cpu: "GuestCpu", fallback: str = "forbid") -> "dict[str, object]":
    """The facts of ``guest_cpu_lines`` as plain JSON-ready data."""
    return {"model": cpu.model, "fallback": fallback, "vendor": cpu.vendor,
            "features": [{"policy": policy, "name": name} for policy, name in cpu.features]}


def cpu_json(modes: "CpuModes") -> "dict[str, object]":
    """The facts of ``cpu_lines`` as plain JSON-ready data (dicts, lists,
    strings, bools, None), keyed by libvirt's mode names."""
    host = modes.host_model
    return {
        "host-passthrough": {"supported": bool(modes.host_passthrough), "migratable": list(modes.host_passthrough)},
        "maximum": {"supported": bool(modes.maximum), "migratable": list(modes.maximum)},
        "host-model": dict({"supported": host is not None},
                           **(guest_cpu_json(host, modes.host_model_fallback) if host is not None else {})),
        "custom": {"supported": bool(modes.custom),
                   "models": [{"name": m.name, "usable": m.usable, "deprecated": m.deprecated, "vendor": m.vendor}
                              for m in modes.custom]},
    }
