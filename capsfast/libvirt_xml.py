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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union


def _text(element: "etree._Element", path: str) -> "Optional[str]":
    found = element.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _tags(element: "Optional[etree._Element]") -> tuple[str, ...]:
    """The names of ``element``'s child elements (processing instructions,
    which remain, have a function as their tag)."""
    if element is None:
        return ()
    return tuple(child.tag for child in element if isinstance(child.tag, str))


def _guest(element: "etree._Element") -> Guest:
    arch = element.find("arch")
    name = None if arch is None else arch.get("name")
    if arch is None or not name:
        raise CapsfastError("libvirt XML: <guest> without <arch name=...>")
    try:
        wordsize = int(_text(arch, "wordsize") or "")
    except ValueError:
        raise CapsfastError("libvirt XML: guest %s has no valid <wordsize>" % name) from None
    # Required by libvirt's schema, and a str in the model.
    os_type = _text(element, "os_type")
    if os_type is None:
        raise CapsfastError("libvirt XML: guest %s has no <os_type>" % name)
    machines = tuple(
        Machine(m.text.strip(), m.get("canonical"), m.get("deprecated") == "yes")
        for m in arch.findall("machine") if m.text and m.text.strip()
    )
    types = [d.get("type") for d in arch.findall("domain")]
    return Guest(
        os_type=os_type,
        arch=name,
        wordsize=wordsize,
        emulator=_text(arch, "emulator"),
        domains=tuple(dict.fromkeys(t for t in types if t)),
        features=_tags(element.find("features")),
        loader=_text(arch, "loader"),
        machines=machines or None,
    )


def read(data: "Union[str, bytes]") -> Capabilities:
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
    host_features = _tags(cpu.find("features") if cpu is not None else None)
    guests = tuple(_guest(g) for g in root.findall("guest"))
    return Capabilities(arch, host_features, guests)
