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
    """(the live inputs' digest, the five fields' values and the requests
    that read the live inputs), from one reading."""
    layout, live, requests = decide.read_keyed(source.rounds(), host.arch)
    return live, (layout.topology, layout.cache, layout.pages, layout.uuid, layout.iommu_groups, requests)


def boot_key(source: "Source", facts: object) -> str:
    requests = _checked(facts)[len(FIELDS)]
    assert isinstance(requests, tuple)
    known = [(r[0], r[1]) for r in requests
             if isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], str) and isinstance(r[1], str)]
    return decide.live_inputs(source.rounds(), known)


def from_boot_facts(source: "Source", host: "Host", facts: object) -> "dict[str, object]":
    return dict(zip(FIELDS, _checked(facts)))


def _checked(facts: object) -> "tuple[object, ...]":
    if not isinstance(facts, tuple) or len(facts) != len(FIELDS) + 1 or not isinstance(facts[-1], tuple):
        raise ValueError("not the topology part's facts")
    return facts
