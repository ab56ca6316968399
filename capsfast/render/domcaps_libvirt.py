"""Domain capabilities as libvirt 9.0's ``virsh domcapabilities`` prints
them, byte for byte: text built line by line, two spaces per level."""
from capsfast.render.xmltext import libvirt_value


def text(s: str) -> str:
    """``s`` escaped as libvirt escapes a value it prints (well-formed:
    see ``xmltext.libvirt_value``)."""
    return libvirt_value(s)


TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.parts.domcaps.model import DomainCaps, Enum, Features, Support


def _enum(e: "Enum", pad: str) -> "list[str]":
    if not e.values:
        return ["%s<enum name='%s'/>" % (pad, e.name)]
    return (["%s<enum name='%s'>" % (pad, e.name)]
            + ["%s  <value>%s</value>" % (pad, text(v)) for v in e.values]
            + ["%s</enum>" % pad])


def support_lines(s: "Support", pad: str) -> "list[str]":
    """An element with ``supported='yes'`` and its enums, or ``'no'``."""
    if not s.supported:
        return ["%s<%s supported='no'/>" % (pad, s.name)]
    lines = ["%s<%s supported='yes'>" % (pad, s.name)]
    for e in s.enums:
        lines += _enum(e, pad + "  ")
    lines.append("%s</%s>" % (pad, s.name))
    return lines


def _features(f: "Features", pad: str) -> "list[str]":
    inner = pad + "  "
    lines = support_lines(f.gic, inner)
    lines += ["%s<%s supported='%s'/>" % (inner, name, "yes" if ok else "no") for name, ok in f.simple]
    if f.sev is None:
        lines.append(inner + "<sev supported='no'/>")
    else:
        sev = f.sev
        lines += [inner + "<sev supported='yes'>",
                  "%s  <cbitpos>%d</cbitpos>" % (inner, sev.cbitpos),
                  "%s  <reducedPhysBits>%d</reducedPhysBits>" % (inner, sev.reduced_phys_bits),
                  "%s  <maxGuests>%d</maxGuests>" % (inner, sev.max_guests),
                  "%s  <maxESGuests>%d</maxESGuests>" % (inner, sev.max_es_guests)]
        if sev.cpu0_id is not None:
            lines.append("%s  <cpu0Id>%s</cpu0Id>" % (inner, text(sev.cpu0_id)))
        lines.append(inner + "</sev>")
    if f.sgx is None:
        lines.append(inner + "<sgx supported='no'/>")
    else:
        sgx = f.sgx
        yn = {True: "yes", False: "no"}
        lines += [inner + "<sgx supported='yes'>",
                  "%s  <flc>%s</flc>" % (inner, yn[sgx.flc]),
                  "%s  <sgx1>%s</sgx1>" % (inner, yn[sgx.sgx1]),
                  "%s  <sgx2>%s</sgx2>" % (inner, yn[sgx.sgx2]),
                  "%s  <section_size unit='KiB'>%d</section_size>" % (inner, sgx.section_size_kib)]
        if sgx.sections:
            lines.append(inner + "  <sections>")
            lines += ["%s    <section node='%d' size='%d' unit='KiB'/>" % (inner, s.node, s.size_kib)
                      for s in sgx.sections]
            lines.append(inner + "  </sections>")
        lines.append(inner + "</sgx>")
    if f.hyperv is not None:
        lines += support_lines(f.hyperv, inner)
    if len(lines) == 0:
        return [pad + "<features/>"]
    return [pad + "<features>"] + lines + [pad + "</features>"]


def render(caps: "DomainCaps") -> str:
    """libvirt's ``<domainCapabilities>`` document, newline-terminated."""
    pad = "  "
    lines = ["<domainCapabilities>",
             "%s<path>%s</path>" % (pad, text(caps.path)),
             "%s<domain>%s</domain>" % (pad, caps.domain)]
    if caps.machine is not None:
        lines.append("%s<machine>%s</machine>" % (pad, text(caps.machine)))
    lines.append("%s<arch>%s</arch>" % (pad, caps.arch))
    if caps.vcpu_max:
        lines.append("%s<vcpu max='%d'/>" % (pad, caps.vcpu_max))
    lines.append("%s<iothreads supported='%s'/>" % (pad, "yes" if caps.iothreads else "no"))
    if caps.os is not None:
        from capsfast.render.domcaps_os import os_lines  # type: ignore[import-not-found,unused-ignore]

        lines += os_lines(caps.os)
    if caps.cpu is not None:
        from capsfast.render.domcaps_cpu import cpu_lines  # type: ignore[import-not-found,unused-ignore]

        lines += cpu_lines(caps.cpu)
    lines += support_lines(caps.memory_backing, pad)
    lines.append(pad + "<devices>")
    for device in caps.devices:
        lines += support_lines(device, pad + "  ")
    lines.append(pad + "</devices>")
    lines += _features(caps.features, pad)
    lines.append("</domainCapabilities>")
    return "\n".join(lines) + "\n"
