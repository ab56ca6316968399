"""Reading the topology part: rounds of reads through the source, parsed
by ``parse`` and decided by libvirt's rules (``decide``); one reading
serves the five fields.

Reading is a few rounds of reads (each round asks for what the one before
found: CPUs and nodes, then their files, then the cache banks), so a host
with 1024 CPUs costs reads, not interpreter time.

Per boot (``capsfast.sources.boot``) the fields are kept with the digest of
their live inputs (CPU lists, node memory, huge page pools, IOMMU groups):
a later process reads only those, and reads everything again when they
differ."""
from capsfast.sources.rounds import FAILED, LIST, READ, Missing as _Missing
from capsfast.parts.topology import (CPU_DIR, DMI_UUID_FILES, FIELDS, HUGEPAGES_DIR, IOMMU_GROUPS_DIR, MACHINE_ID,
                                      MEMINFO, NODE_DIR)
from capsfast.parts.topology.decide import CACHE_MIN_LEVEL, Layout, decide
from capsfast.parts.topology.parse import (MAX_CPU_ID, MAX_NODE_ID, ascii_text, listing, meminfo_total, names,
                                            parse_cpulist, read_bitmap, read_count, read_uint)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from capsfast.model import Host
    from capsfast.sources.base import Source
    from capsfast.sources.rounds import Fetch


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    return from_boot_facts(source, host, boot_facts(source, host)[1])


def boot_facts(source: "Source", host: "Host") -> "tuple[str, object]":
    """(the live inputs' digest, the five fields' values and the requests
    that read the live inputs), from one reading."""
    layout, live, requests = read_keyed(source.rounds(), host.arch)
    return live, (layout.topology, layout.cache, layout.pages, layout.uuid, layout.iommu_groups, requests)


def boot_key(source: "Source", facts: object) -> str:
    requests = _checked(facts)[len(FIELDS)]
    assert isinstance(requests, tuple)
    known = [(r[0], r[1]) for r in requests
             if isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], str) and isinstance(r[1], str)]
    return live_inputs(source.rounds(), known)


def from_boot_facts(source: "Source", host: "Host", facts: object) -> "dict[str, object]":
    return dict(zip(FIELDS, _checked(facts)))


def _checked(facts: object) -> "tuple[object, ...]":
    if not isinstance(facts, tuple) or len(facts) != len(FIELDS) + 1 or not isinstance(facts[-1], tuple):
        raise ValueError("not the topology part's facts")
    return facts


class _Reads:
    """The values read so far, by (path, op); ``ask`` runs one round.  What
    ``decide`` is given (its ``Reads``)."""

    __slots__ = ("_fetch", "_got", "cache_readers")

    def __init__(self, fetch: "Fetch") -> None:
        self._fetch = fetch
        self._got: "dict[tuple[str, str], bytes | _Missing]" = {}
        # Each online CPU -> the CPU whose caches were read for it (collect),
        # which decide's rules need.
        self.cache_readers: "dict[int, int]" = {}

    def ask(self, requests: "Iterable[tuple[str, str]]") -> None:
        wanted = [r for r in dict.fromkeys(requests) if r not in self._got]
        if wanted:
            self._got.update(zip(wanted, self._fetch(wanted)))

    def read(self, path: str) -> "bytes | _Missing":
        return self._got.get((path, READ), FAILED)

    def same(self, path: str, like: str, op: str) -> None:
        """``path`` holds what ``like`` held, when that was read: a file
        the kernel makes identical, left unread."""
        got = self._got.get((like, op))
        if got is not None:
            self._got.setdefault((path, op), got)

    def list(self, path: str) -> "bytes | _Missing":
        return self._got.get((path, LIST), FAILED)


def _cpu_files(cpu: int) -> "list[tuple[str, str]]":
    base = "%s/cpu%d" % (CPU_DIR, cpu)
    return [(base + "/online", READ)] + [
        ("%s/topology/%s" % (base, name), READ)
        for name in ("physical_package_id", "die_id", "core_id", "thread_siblings_list")]


_CACHE_FILES = ("id", "type", "size", "shared_cpu_list")


def _cache_dir(cpu: int) -> str:
    return "%s/cpu%d/cache" % (CPU_DIR, cpu)


def _core_readers(reads: _Reads, online: "Sequence[int]") -> "dict[int, int]":
    """Each online CPU -> the CPU whose caches are read for it: the first
    online CPU of its core.  The threads of a core share every cache, at
    the same index: where two online CPUs' thread_siblings_list read the
    same and name both, libvirt would read the same files twice.  Any
    other CPU (its list unreadable, or not naming it) is read itself."""
    first: "dict[bytes, int]" = {}
    readers: "dict[int, int]" = {}
    online_set = set(online)
    for cpu in online:
        raw = reads.read("%s/cpu%d/topology/thread_siblings_list" % (CPU_DIR, cpu))
        reader = cpu
        if isinstance(raw, bytes):
            known = first.get(raw)
            if known is None:
                siblings = read_bitmap(raw)
                if isinstance(siblings, tuple) and cpu in siblings:
                    first[raw] = cpu
            else:
                siblings = read_bitmap(raw)
                if isinstance(siblings, tuple) and cpu in siblings and known in siblings \
                        and known in online_set:
                    reader = known
        readers[cpu] = reader
    return readers


def collect(fetch: "Fetch") -> _Reads:
    """Every file the Layout needs, read through ``fetch`` in rounds.

    Caches are read per core and per cache bank, as libvirt's answer
    comes out the same: a thread's caches are its core's first online
    thread's (``_core_readers``), and where cores list a level 3+ index
    with the same name, level and shared_cpu_list, that bank's id, type and
    size are read once.  The kernel makes sibling and sharing lists so; a
    hand-made tree may not, and then libvirt could differ: CPUs that do not
    name each other are read apart, offline CPUs are not read (libvirt
    reads the caches of online CPUs only), and a file of a CPU or bank left
    unread that would have failed to read does not fail the caches here."""
    reads = _Reads(fetch)
    R, L = READ, LIST
    # 1: the CPU and node lists, page sizes, IOMMU groups, UUID sources.
    reads.ask([(CPU_DIR + "/present", R), (CPU_DIR + "/online", R), (CPU_DIR, L), (NODE_DIR, L),
               (HUGEPAGES_DIR, L), (IOMMU_GROUPS_DIR, L), (MEMINFO, R), (MACHINE_ID, R)]
              + [(path, R) for path in DMI_UUID_FILES])
    cpus = [n for n, _name in names(reads.list(CPU_DIR), "cpu") if n <= MAX_CPU_ID]
    nodes = [n for n, _name in names(reads.list(NODE_DIR), "node") if n <= MAX_NODE_ID]
    # 2: each CPU's and node's files.
    second = [f for cpu in cpus for f in _cpu_files(cpu)]
    for node in nodes:
        base = "%s/node%d" % (NODE_DIR, node)
        second += [(base, L), (base + "/cpulist", R), (base + "/distance", R), (base + "/meminfo", R),
                   (base + "/hugepages", L)]
    second += [("%s/%s/%s" % (HUGEPAGES_DIR, name, f), R) for name in listing(reads.list(HUGEPAGES_DIR))
               for f in ("nr_hugepages", "free_hugepages")]
    reads.ask(second)
    # 3: CPUs a node lists that the CPU directory did not; huge pages per
    # node; the cache listing of each core's first online thread.
    third = []
    for node in nodes:
        base = "%s/node%d" % (NODE_DIR, node)
        text = ascii_text(reads.read(base + "/cpulist"))
        for cpu in (parse_cpulist(text) or ()) if text is not None else ():
            third += _cpu_files(cpu)
        third += [("%s/hugepages/%s/%s" % (base, name, f), R) for name in listing(reads.list(base + "/hugepages"))
                  for f in ("nr_hugepages", "free_hugepages")]
    online = read_bitmap(reads.read(CPU_DIR + "/online"))
    online_ids = online if isinstance(online, tuple) else ()
    readers = _core_readers(reads, online_ids)
    cores = sorted(set(readers.values()))
    third += [(_cache_dir(cpu), L) for cpu in cores]
    reads.ask(third)
    # 4: each index's level; 5: the shared_cpu_list of those of level 3 and
    # up; 6: id, type and size, once a bank.
    indexes = [(cpu, name) for cpu in cores for name in listing(reads.list(_cache_dir(cpu)))
               if name.startswith("index")]
    reads.ask(("%s/%s/level" % (_cache_dir(cpu), name), R) for cpu, name in indexes)
    listed = []
    for cpu, name in indexes:
        level = read_uint(reads.read("%s/%s/level" % (_cache_dir(cpu), name)))
        if isinstance(level, int) and level >= CACHE_MIN_LEVEL:
            listed.append((cpu, name))
    reads.ask(("%s/%s/shared_cpu_list" % (_cache_dir(cpu), name), R) for cpu, name in listed)
    bank_readers: "dict[tuple[str, bytes, bytes], int]" = {}
    same_bank: "list[tuple[int, int, str]]" = []
    sixth = []
    for cpu, name in listed:
        path = "%s/%s/" % (_cache_dir(cpu), name)
        level_raw, shared_raw = reads.read(path + "level"), reads.read(path + "shared_cpu_list")
        first = cpu
        if isinstance(level_raw, bytes) and isinstance(shared_raw, bytes):
            shared = read_bitmap(shared_raw)
            if isinstance(shared, tuple) and cpu in shared:
                # The same bytes: the first CPU was checked in this list too.
                first = bank_readers.setdefault((name, level_raw, shared_raw), cpu)
        if first == cpu:
            sixth += [(path + f, R) for f in _CACHE_FILES[:3]]
        else:
            same_bank.append((cpu, first, name))
    reads.ask(sixth)
    for cpu, first, name in same_bank:
        for f in _CACHE_FILES[:3]:
            reads.same("%s/%s/%s" % (_cache_dir(cpu), name, f), "%s/%s/%s" % (_cache_dir(first), name, f), R)
    reads.cache_readers = readers
    return reads


def _live_requests(reads: _Reads) -> "list[list[tuple[str, str]]]":
    """The rounds that read what of the layout can change while the system
    runs: the CPU lists, the nodes with their memory and huge page pools,
    the host's memory and pools, the IOMMU groups and the machine id."""
    R, L = READ, LIST
    first = [(CPU_DIR + "/present", R), (CPU_DIR + "/online", R), (NODE_DIR, L), (HUGEPAGES_DIR, L),
             (IOMMU_GROUPS_DIR, L), (MEMINFO, R), (MACHINE_ID, R)]
    reads.ask(first)
    nodes = ["%s/node%d" % (NODE_DIR, n) for n, _name in names(reads.list(NODE_DIR), "node") if n <= MAX_NODE_ID]
    second = [(base + "/meminfo", R) for base in nodes] + [(base + "/hugepages", L) for base in nodes]
    second += [("%s/%s/%s" % (HUGEPAGES_DIR, name, f), R) for name in listing(reads.list(HUGEPAGES_DIR))
               for f in ("nr_hugepages", "free_hugepages")]
    reads.ask(second)
    third = [("%s/hugepages/%s/%s" % (base, name, f), R) for base in nodes
             for name in listing(reads.list(base + "/hugepages")) for f in ("nr_hugepages", "free_hugepages")]
    reads.ask(third)
    return [first, second, third]


def _live_digest(reads: _Reads) -> "tuple[str, tuple[tuple[str, str], ...]]":
    """The live inputs as the layout uses them, and the requests that read
    them: a meminfo file by its total (its free counts move all the time),
    a pool's free count by whether it parses, everything else byte for
    byte."""
    requests = tuple(request for batch in _live_requests(reads) for request in batch)
    out = []
    for path, op in requests:
        value = reads.read(path) if op == READ else reads.list(path)
        if path.endswith("meminfo"):
            shown: object = meminfo_total(value)
        elif path.endswith("/free_hugepages"):
            shown = read_count(value) is not None
        else:
            shown = value
        out.append("%s %s %r" % (op, path, shown))
    return "\n".join(out), requests


def live_inputs(fetch: "Fetch", known: "Iterable[tuple[str, str]]" = ()) -> str:
    """What of the layout can change while the system runs, read now:
    ``known`` (the requests of an earlier reading) in one round, then
    whatever the listings read show is still missing (nothing while the
    nodes and pools are the same).  Equal to ``read_keyed``'s digest while
    none of it changed."""
    reads = _Reads(fetch)
    reads.ask(known)
    return _live_digest(reads)[0]


# The base page size of the live host; a recording or fake root is taken
# to have the same (x86 and most others: 4 KiB).
try:
    import os as _os

    PAGE_KIB = max(_os.sysconf("SC_PAGESIZE") // 1024, 1)
except (ValueError, OSError, AttributeError):  # pragma: no cover - no sysconf
    PAGE_KIB = 4


def read(fetch: "Fetch", arch: "str | None" = None) -> Layout:
    """The Layout of the host ``fetch`` reads (of architecture ``arch``:
    on s390 libvirt counts each CPU as a core)."""
    return read_keyed(fetch, arch)[0]


def read_keyed(fetch: "Fetch", arch: "str | None" = None) -> "tuple[Layout, str, tuple[tuple[str, str], ...]]":
    """``read``'s Layout with the digest of its live inputs (``live_inputs``)
    taken from the same reads, so the two always agree, and the requests
    that read them."""
    reads = collect(fetch)
    layout = decide(reads, PAGE_KIB, s390=bool(arch) and str(arch).startswith("s390"))
    digest, requests = _live_digest(reads)
    return layout, digest, requests
