"""Reading the topology part: rounds of reads through the source, decided
by libvirt's rules (``decide``); one reading serves the five fields.

Per boot (``capsfast.sources.boot``) the fields are kept with the digest of
their live inputs (CPU lists, node memory, huge page pools, IOMMU groups):
a later process reads only those, and reads everything again when they
differ."""
from capsfast.parts.topology import FIELDS, decide

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Host
    from capsfast.sources.base import Source


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    return from_boot_facts(source, host, boot_facts(source, host)[1])


def boot_facts(source: "Source", host: "Host") -> "tuple[str, object]":
    """(the live inputs' digest, the five fields' values), from one reading."""
    layout, live = decide.read_keyed(source.rounds(), host.arch)
    return live, (layout.topology, layout.cache, layout.pages, layout.uuid, layout.iommu_groups)


def boot_key(source: "Source", facts: object) -> str:
    return decide.live_inputs(source.rounds())


def from_boot_facts(source: "Source", host: "Host", facts: object) -> "dict[str, object]":
    if not isinstance(facts, tuple) or len(facts) != len(FIELDS):
        raise ValueError("not the topology part's facts")
    return dict(zip(FIELDS, facts))
