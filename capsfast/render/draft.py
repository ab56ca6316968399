"""The draft XML: the shape first proposed for libvirt's capabilities (the
seed thread), validated by ``capsfast/schemas/draft.rng``.

    <capabilities>
      <domain_type>qemu</domain_type>        every guest offers these
      <host_features>
        <hvm>yes</hvm>                       the CPU offers vmx or svm
        <type>vmx</type>
        <bios_setting>enabled</bios_setting>
        <status>enabled</status>             capsfast's verdict (DESIGN 5)
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
"""
import os

from lxml import etree

# Our RelaxNG schema for this format, shipped in the package.
SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas", "draft.rng")
ACCELERATED = ("kvm", "kqemu", "xen")


def common_domains(guests):
    """The domain types every guest offers, in first-seen order."""
    if not guests:
        return ()
    common = [d for d in guests[0].domains if all(d in g.domains for g in guests[1:])]
    return tuple(common)


def _sub(parent, tag, text=None):
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def tree(host):
    root = etree.Element("capabilities")
    top = common_domains(host.guests)
    for domain in top:
        _sub(root, "domain_type", domain)
    features = _sub(root, "host_features")
    hvm = host.hvm
    _sub(features, "hvm", "yes" if hvm.type else "no")
    if hvm.type:
        _sub(features, "type", hvm.type)
    if hvm.bios_setting:
        _sub(features, "bios_setting", hvm.bios_setting)
    _sub(features, "status", hvm.status)
    archs = _sub(root, "guest_architectures")
    for guest in host.guests:
        element = _sub(archs, "guest_architecture")
        for domain in guest.domains:
            if domain not in top:
                _sub(element, "domain_type", domain)
        _sub(element, "model", guest.arch)
        _sub(element, "bits", str(guest.wordsize))
        box = _sub(element, "features")
        if any(d in ACCELERATED for d in guest.domains):
            if guest.os_type == "hvm":
                _sub(box, "hvm")
            _sub(box, "accelerated")
        else:
            _sub(box, "emulated")
        for name in ("pae", "nonpae"):
            if name in guest.features:
                _sub(box, name)
    etree.indent(root, space="  ")
    return root


def render(host):
    """The host as draft XML text, ending in a newline."""
    return etree.tostring(tree(host), encoding="unicode") + "\n"
