"""libvirt capabilities XML (DESIGN section 7), valid against libvirt's
``capability.rng``, laid out as ``virsh capabilities`` prints it.

The host part holds what capsfast knows: the arch, the host ``<features>``
libvirt's schema allows (pae, nonpae, vmx, svm, in that order, from CPUID),
and the CPU's vendor and signature.  The guest part is one ``<guest>`` per
model ``Guest``, elements in the schema's order.
"""
from lxml import etree

from capsfast.guests import FEATURE_ORDER, feature_toggle

# CPUID vendor strings -> libvirt's vendor names (its cpu_map).
_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}
_X86 = ("i686", "x86_64")


def host_features(host):
    """The host ``<features>`` names: pae, nonpae, vmx, svm from CPUID.
    ``nonpae`` marks an x86 CPU without PAE."""
    if host.arch not in _X86 or host.cpu.source == "none":
        return ()
    cpu = set(host.cpu.features)
    names = ["pae"] if "pae" in cpu else ["nonpae"]
    return tuple(names + [f for f in ("vmx", "svm") if f in cpu])


def _sub(parent, tag, text=None, **attrs):
    element = etree.SubElement(parent, tag)
    for key, value in attrs.items():
        element.set(key, value)
    if text is not None:
        element.text = text
    return element


def _host(root, host):
    element = _sub(root, "host")
    cpu = _sub(element, "cpu")
    _sub(cpu, "arch", host.arch)
    features = host_features(host)
    if features:
        box = _sub(cpu, "features")
        for name in features:
            _sub(box, name)
    vendor = _VENDORS.get(host.cpu.vendor)
    if vendor:
        _sub(cpu, "vendor", vendor)
    c = host.cpu
    if c.family and c.model is not None and c.stepping is not None:
        _sub(cpu, "signature", family=str(c.family), model=str(c.model), stepping=str(c.stepping))


def _machine(parent, machine):
    element = _sub(parent, "machine", machine.name)
    if machine.canonical:
        element.set("canonical", machine.canonical)
    if machine.deprecated:
        element.set("deprecated", "yes")


def _guest(root, guest):
    element = _sub(root, "guest")
    _sub(element, "os_type", guest.os_type)
    arch = _sub(element, "arch", name=guest.arch)
    _sub(arch, "wordsize", str(guest.wordsize))
    if guest.emulator:
        _sub(arch, "emulator", guest.emulator)
    if guest.loader:
        _sub(arch, "loader", guest.loader)
    for machine in guest.machines or ():
        _machine(arch, machine)
    for domain in guest.domains:
        _sub(arch, "domain", type=domain)
    if guest.features:
        box = _sub(element, "features")
        rank = {name: i for i, name in enumerate(FEATURE_ORDER)}
        for name in sorted(guest.features, key=lambda f: rank.get(f, len(rank))):
            feature = _sub(box, name)
            toggle = feature_toggle(guest, name)
            if toggle is not None:
                feature.set("default", toggle[0])
                feature.set("toggle", toggle[1])


def tree(host):
    """The capabilities document as an lxml element."""
    root = etree.Element("capabilities")
    _host(root, host)
    for guest in host.guests:
        _guest(root, guest)
    etree.indent(root, space="  ")
    # libvirt separates <host> and each <guest> by a blank line.
    root.text = "\n\n  "
    for child in root:
        child.tail = "\n\n  "
    root[-1].tail = "\n\n"
    return root


def render(host):
    """The host as libvirt capabilities XML text, ending in a newline."""
    return etree.tostring(tree(host), encoding="unicode") + "\n"
