"""The draft XML: the shape first proposed for libvirt's capabilities (the
seed thread), validated by ``capsfast/schemas/draft.rng``.

    <capabilities>
      <domain_type>qemu</domain_type>        every guest offers these
      <host_features>
        <hvm>yes</hvm>                       the CPU offers vmx or svm
        <type>vmx</type>
        <bios_setting>enabled</bios_setting>
        <status>enabled</status>             capsfast's verdict
      </host_features>
      <guest_architectures>
        <guest_architecture>
          <domain_type>kvm</domain_type>     what this arch adds
          <model>x86_64</model>
          <bits>64</bits>
          <features><hvm/><accelerated/></features>
        </guest_architecture>
      </guest_architectures>
    </capabilities>

A guest with an accelerated domain type (kvm, kqemu, xen) has
``<accelerated/>``, and ``<hvm/>`` when its OS type is hvm (a Xen PV guest
has only ``<accelerated/>``); the others are ``<emulated/>``.  i686 guests
add ``<pae/>`` and ``<nonpae/>`` where they apply.

Written as text, two spaces per level: importing lxml to write it would
cost more than the probe.
"""
import os

from capsfast.render.xmltext import text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from capsfast.model import Guest, Host

# Our RelaxNG schema for this format, shipped in the package.
SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas", "draft.rng")
ACCELERATED = ("kvm", "kqemu", "xen")


def common_domains(guests: "Sequence[Guest]") -> tuple[str, ...]:
    """The domain types every guest offers, in first-seen order."""
    if not guests:
        return ()
    common = [d for d in guests[0].domains if all(d in g.domains for g in guests[1:])]
    return tuple(common)


def _guest(out: list[str], guest: "Guest", top: tuple[str, ...]) -> None:
    out.append("    <guest_architecture>")
    out += ["      <domain_type>%s</domain_type>" % text(d) for d in guest.domains if d not in top]
    out += [
        "      <model>%s</model>" % text(guest.arch),
        "      <bits>%d</bits>" % guest.wordsize,
        "      <features>",
    ]
    if any(d in ACCELERATED for d in guest.domains):
        if guest.os_type == "hvm":
            out.append("        <hvm/>")
        out.append("        <accelerated/>")
    else:
        out.append("        <emulated/>")
    out += ["        <%s/>" % f for f in ("pae", "nonpae") if f in guest.features]
    out += ["      </features>", "    </guest_architecture>"]


def render(host: "Host") -> str:
    """The host as draft XML text, ending in a newline."""
    top = common_domains(host.guests)
    out = ["<capabilities>"]
    out += ["  <domain_type>%s</domain_type>" % text(d) for d in top]
    hvm = host.hvm
    out += ["  <host_features>", "    <hvm>%s</hvm>" % ("yes" if hvm.type else "no")]
    if hvm.type:
        out.append("    <type>%s</type>" % text(hvm.type))
    if hvm.bios_setting:
        out.append("    <bios_setting>%s</bios_setting>" % text(hvm.bios_setting))
    out += ["    <status>%s</status>" % text(hvm.status), "  </host_features>"]
    if host.guests:
        out.append("  <guest_architectures>")
        for guest in host.guests:
            _guest(out, guest, top)
        out.append("  </guest_architectures>")
    else:
        out.append("  <guest_architectures/>")
    out += ["</capabilities>", ""]
    return "\n".join(out)
