"""libvirt capabilities XML, valid against libvirt's ``capability.rng``,
laid out as ``virsh capabilities`` prints it.

The host part holds what capsfast knows: the arch, the host ``<features>``
libvirt's schema allows (pae, nonpae, vmx, svm, in that order, from CPUID),
and the CPU's vendor and signature.  The guest part is one ``<guest>`` per
model ``Guest``, elements in the schema's order.

Written as text, as libvirt writes it (no lxml to import): two spaces per
level, and a blank line around ``<host>`` and each ``<guest>``.
"""
from capsfast.constants import X86_ARCHS
from capsfast.guests import FEATURE_ORDER, feature_toggle
from capsfast.render.xmltext import attr, name, text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Guest, Host, Machine

# CPUID vendor strings -> libvirt's vendor names (its cpu_map).
_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}
_RANK = {feature: i for i, feature in enumerate(FEATURE_ORDER)}


def host_features(host: "Host") -> tuple[str, ...]:
    """The host ``<features>`` names: pae, nonpae, vmx, svm from CPUID.
    ``nonpae`` marks an x86 CPU without PAE."""
    if host.arch not in X86_ARCHS or host.cpu.source == "none":
        return ()
    cpu = set(host.cpu.features)
    names = ["pae"] if "pae" in cpu else ["nonpae"]
    return tuple(names + [f for f in ("vmx", "svm") if f in cpu])


def _host(out: list[str], host: "Host") -> None:
    out += ["  <host>", "    <cpu>", "      <arch>%s</arch>" % text(host.arch)]
    features = host_features(host)
    if features:
        out.append("      <features>")
        out += ["        <%s/>" % f for f in features]
        out.append("      </features>")
    c = host.cpu
    vendor = _VENDORS.get(c.vendor or "")
    if vendor:
        out.append("      <vendor>%s</vendor>" % vendor)
    if c.family and c.model is not None and c.stepping is not None:
        out.append('      <signature family="%d" model="%d" stepping="%d"/>' % (c.family, c.model, c.stepping))
    out += ["    </cpu>", "  </host>"]


def _machine(machine: "Machine") -> str:
    attrs = ""
    if machine.canonical:
        attrs += ' canonical="%s"' % attr(machine.canonical)
    if machine.deprecated:
        attrs += ' deprecated="yes"'
    return "      <machine%s>%s</machine>" % (attrs, text(machine.name))


def _guest(out: list[str], guest: "Guest") -> None:
    out += [
        "  <guest>",
        "    <os_type>%s</os_type>" % text(guest.os_type),
        '    <arch name="%s">' % attr(guest.arch),
        "      <wordsize>%d</wordsize>" % guest.wordsize,
    ]
    if guest.emulator:
        out.append("      <emulator>%s</emulator>" % text(guest.emulator))
    if guest.loader:
        out.append("      <loader>%s</loader>" % text(guest.loader))
    out += [_machine(m) for m in guest.machines or ()]
    out += ['      <domain type="%s"/>' % attr(d) for d in guest.domains]
    out.append("    </arch>")
    if guest.features:
        out.append("    <features>")
        for feature in sorted(guest.features, key=lambda f: _RANK.get(f, len(_RANK))):
            toggle = feature_toggle(guest, feature)
            if toggle is None:
                out.append("      <%s/>" % name(feature))
            else:
                out.append('      <%s default="%s" toggle="%s"/>' % (name(feature), attr(toggle[0]), attr(toggle[1])))
        out.append("    </features>")
    out.append("  </guest>")


def render(host: "Host") -> str:
    """The host as libvirt capabilities XML text, ending in a newline."""
    out = ["<capabilities>", ""]
    _host(out, host)
    for guest in host.guests:
        out.append("")
        _guest(out, guest)
    out += ["", "</capabilities>", ""]
    return "\n".join(out)
