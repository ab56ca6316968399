"""Reading the topology part: rounds of reads through the source, decided
by libvirt's rules (``decide``); one reading serves the five fields."""
from capsfast.parts.topology import decide

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Host
    from capsfast.sources.base import Source


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    layout = decide.read(source.rounds(), host.arch)
    return {"topology": layout.topology, "cache": layout.cache, "pages": layout.pages, "uuid": layout.uuid,
            "iommu_groups": layout.iommu_groups}
