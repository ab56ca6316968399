"""Reading libvirt capabilities XML back into capsfast's model, for clients
that receive ``virsh capabilities`` output from elsewhere (a remote host, a
bug report) and want the same ``Guest`` values capsfast computes.

Kept: the host arch and host ``<features>``; per guest the os type, arch,
word size, emulator, loader, machines, domain types and feature names.
Dropped: per-domain emulator and machine overrides (old QEMU drivers),
``maxCpus``, feature toggles (they follow from the driver), and everything
else about the host (topology, cache, secmodel, ...).
"""
from lxml import etree

from capsfast.errors import CapsfastError
from capsfast.model import Capabilities, Guest, Machine


def _text(element, path):
    found = element.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _guest(element):
    arch = element.find("arch")
    if arch is None or not arch.get("name"):
        raise CapsfastError("libvirt XML: <guest> without <arch name=...>")
    try:
        wordsize = int(_text(arch, "wordsize"))
    except (TypeError, ValueError):
        raise CapsfastError("libvirt XML: guest %s has no valid <wordsize>" % arch.get("name")) from None
    machines = tuple(
        Machine(m.text.strip(), m.get("canonical"), m.get("deprecated") == "yes")
        for m in arch.findall("machine") if m.text and m.text.strip()
    )
    domains = tuple(dict.fromkeys(d.get("type") for d in arch.findall("domain") if d.get("type")))
    features = element.find("features")
    names = () if features is None else tuple(
        child.tag for child in features if isinstance(child.tag, str)
    )
    return Guest(
        os_type=_text(element, "os_type"),
        arch=arch.get("name"),
        wordsize=wordsize,
        emulator=_text(arch, "emulator"),
        domains=domains,
        features=names,
        loader=_text(arch, "loader"),
        machines=machines or None,
    )


def read(data):
    """``Capabilities`` from libvirt capabilities XML (str or bytes).
    CapsfastError for text that is not such a document."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        # lxml's messages can span lines; ours are one.
        raise CapsfastError("libvirt XML: %s" % " ".join(str(e).split())) from None
    if root.tag != "capabilities":
        raise CapsfastError("libvirt XML: root element is <%s>, not <capabilities>" % root.tag)
    cpu = root.find("host/cpu")
    arch = _text(cpu, "arch") if cpu is not None else None
    features = cpu.find("features") if cpu is not None else None
    host_features = () if features is None else tuple(
        child.tag for child in features if isinstance(child.tag, str)
    )
    guests = tuple(_guest(g) for g in root.findall("guest"))
    return Capabilities(arch, host_features, guests)
