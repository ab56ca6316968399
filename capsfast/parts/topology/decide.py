"""libvirt's rules for the topology part: the host's CPU topology, NUMA
cells, cache banks, page sizes, UUID and IOMMU groups, from the sysfs and
procfs files ``read`` read, as libvirt 9 decides them for the ``<host>``
of ``virsh capabilities``.

Pure: the values come in (``Reads``), parsed by ``parse``; a file that
cannot be read or parsed makes its part unknown (None), never a guess.

The libvirt functions followed (src/util/virhostcpu.c, virnuma.c,
src/conf/capabilities.c, and libnuma where libvirt calls it) are named on
each function.
"""
from capsfast.sources.rounds import ABSENT, Missing as _Missing
from capsfast.model import CacheBank, CellCpu, CellDistance, CellPages, NumaCell, Topology
from capsfast.parts.topology import (CPU_DIR, DMI_UUID_FILES, HUGEPAGES_DIR, IOMMU_GROUPS_DIR, MACHINE_ID,
                                      MEMINFO, NODE_DIR)
from capsfast.parts.topology.parse import (MAX_NODE_ID, ascii_text, hugepage_size, listing, meminfo_total, names,
                                            parse_cpulist, parse_uuid, read_bitmap, read_count, read_int,
                                            read_scaled, read_uint, trim_newlines)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Protocol

    class Reads(Protocol):
        """What the rules are given (``read`` gathers it): a file's bytes
        or a listing's NUL-separated names by path, ABSENT or FAILED where
        there are none (FAILED for a path never asked), and for each
        online CPU the CPU whose caches were read for it."""

        cache_readers: "dict[int, int]"

        def read(self, path: str) -> "bytes | _Missing": ...

        def list(self, path: str) -> "bytes | _Missing": ...

# libvirt lists caches of this level and up (virCapabilitiesInitCaches).
CACHE_MIN_LEVEL = 3
# The kernel's cache type names -> libvirt's (virCacheKernel, virCache).
CACHE_TYPES = {"Unified": "both", "Instruction": "code", "Data": "data"}


class Layout:
    """Everything the part reads, decided: ``topology`` (a Topology),
    ``cache`` (CacheBank tuple or None), ``pages`` (sizes in KiB or None),
    ``uuid`` (str or None), ``iommu_groups`` (bool or None)."""

    __slots__ = ("topology", "cache", "pages", "uuid", "iommu_groups")

    def __init__(self, topology: "Topology", cache: "tuple[CacheBank, ...] | None",
                 pages: "tuple[int, ...] | None", uuid: "str | None", iommu_groups: "bool | None") -> None:
        self.topology = topology
        self.cache = cache
        self.pages = pages
        self.uuid = uuid
        self.iommu_groups = iommu_groups


class _Failed(Exception):
    """libvirt's -1 inside a computation: the part it belongs to fails."""


def _ok(value: "object") -> "object":
    if isinstance(value, _Missing):
        raise _Failed
    return value


class _Cpus:
    """Per-CPU facts, as libvirt's virHostCPUGet{Socket,Die,Core,SiblingsList,Online}."""

    __slots__ = ("_reads", "s390", "_sockets")

    def __init__(self, reads: "Reads", s390: bool = False) -> None:
        self._reads = reads
        self.s390 = s390
        self._sockets: "dict[int, int]" = {}  # asked up to three times a CPU

    def _file(self, cpu: int, name: str) -> "bytes | _Missing":
        return self._reads.read("%s/cpu%d/topology/%s" % (CPU_DIR, cpu, name))

    def socket(self, cpu: int) -> int:
        known = self._sockets.get(cpu)
        if known is None:
            known = self._sockets[cpu] = self._socket(cpu)
        return known

    def _id(self, cpu: int, name: str, parse: "Callable[[bytes | _Missing], int | _Missing]") -> int:
        """A topology id file as libvirt reads it: absent is 0, unreadable
        or malformed fails the part."""
        value = parse(self._file(cpu, name))
        if value is ABSENT:
            return 0
        number = _ok(value)
        assert isinstance(number, int)
        return number

    def _socket(self, cpu: int) -> int:
        return max(self._id(cpu, "physical_package_id", read_int), 0)  # -1: no sockets, so all one socket

    def die(self, cpu: int) -> int:
        return max(self._id(cpu, "die_id", read_int), 0)

    def core(self, cpu: int) -> int:
        if self.s390:
            return cpu  # a logical CPU is a core on s390
        return self._id(cpu, "core_id", read_uint)

    def core_id(self, cpu: int) -> int:
        """The core_id file as the NUMA cells print it (s390 included)."""
        return self._id(cpu, "core_id", read_uint)

    def siblings(self, cpu: int) -> "tuple[int, ...]":
        value = read_bitmap(self._file(cpu, "thread_siblings_list"))
        if value is ABSENT:
            return (cpu,)  # the thread is its only sibling
        ids = _ok(value)
        assert isinstance(ids, tuple)
        return ids

    def online(self, cpu: int) -> bool:
        value = read_uint(self._reads.read("%s/cpu%d/online" % (CPU_DIR, cpu)))
        if value is ABSENT:
            return True  # no online file: the CPU cannot go offline
        number = _ok(value)
        return bool(number)


def _parse_node(cpu_names: "Iterable[int]", present: "tuple[int, ...]", online: "set[int]",
                cpus: _Cpus) -> "tuple[int, int, int, int, int]":
    """virHostCPUParseNode (no POWER subcores): (processors, sockets,
    cores, threads, offline) of the CPUs a directory lists."""
    present_set = set(present)
    npresent = present[-1] + 1 if present else 0
    node_cpus = set()
    sockets: "set[int]" = set()
    for cpu in cpu_names:
        if cpu not in present_set:
            continue
        node_cpus.add(cpu)
        if cpu in online:
            sockets.add(cpus.socket(cpu))
    processors = offline = threads = 0
    cores: "dict[int, set[int]]" = {}
    for cpu in range(npresent):
        if cpu not in node_cpus:
            continue
        if cpu not in online:
            offline += 1
            continue
        processors += 1
        sock = cpus.socket(cpu)
        if sock not in sockets:
            raise _Failed  # "CPU socket topology has changed"
        cores.setdefault(sock, set()).add(cpus.core(cpu))
        threads = max(threads, len(cpus.siblings(cpu)))
    max_cores = max((len(c) for c in cores.values()), default=0)
    return processors, len(sockets), max_cores, threads, offline


def node_info(reads: "Reads", s390: bool = False) -> "tuple[int, int, int, int, int, int]":
    """virHostCPUGetInfoPopulateLinux: (cpus, nodes, sockets, cores,
    threads, offline), its fallback for an implausible product included;
    raises _Failed where libvirt fails."""
    cpus = _Cpus(reads, s390)
    present = read_bitmap(reads.read(CPU_DIR + "/present"))
    online = read_bitmap(reads.read(CPU_DIR + "/online"))
    if isinstance(present, _Missing) or isinstance(online, _Missing):
        raise _Failed
    online_set = set(online)
    total = nodes = sockets = cores = threads = offline = 0
    node_listing = reads.list(NODE_DIR)
    if not isinstance(node_listing, _Missing):
        for node, name in names(node_listing, "node"):
            nodes += 1
            listed = reads.list("%s/%s" % (NODE_DIR, name))
            if isinstance(listed, _Missing):
                raise _Failed
            n, s, c, t, off = _parse_node([i for i, _ in names(listed, "cpu")], present, online_set, cpus)
            offline += off
            total += n
            sockets, cores, threads = max(sockets, s), max(cores, c), max(threads, t)
    if not (total and nodes):
        listed = reads.list(CPU_DIR)
        if isinstance(listed, _Missing):
            raise _Failed
        # libvirt keeps the offline CPUs the node directories counted.
        total, sockets, cores, threads, off = _parse_node([i for i, _ in names(listed, "cpu")], present,
                                                          online_set, cpus)
        offline += off
        nodes = 1
    if total == 0 or sockets == 0 or threads == 0:
        raise _Failed  # "no CPUs found", "no sockets found", "no threads found"
    if nodes * sockets * cores * threads != total + offline:
        nodes, sockets, cores, threads = 1, 1, total + offline, 1
    return total, nodes, sockets, cores, threads, offline


def _hugepage_counts(reads: "Reads", base: str) -> "tuple[list[tuple[int, int]], int]":
    """virNumaGetPages' huge page half: [(size KiB, pool)] and the bytes
    the pools take; raises _Failed as libvirt fails."""
    listed = reads.list(base)
    if listed is ABSENT:
        return [], 0
    if isinstance(listed, _Missing):
        raise _Failed
    out = []
    taken = 0
    for name in listing(listed):
        if not name.startswith("hugepages-"):
            continue
        size = hugepage_size(name)
        if size is None:
            raise _Failed  # "unable to parse hugepages-..."
        counts = []
        for f in ("nr_hugepages", "free_hugepages"):
            count = read_count(reads.read("%s/%s/%s" % (base, name, f)))
            if count is None:
                raise _Failed
            counts.append(count)
        out.append((size, counts[0]))
        taken += 1024 * size * counts[0]
    return out, taken


def _pages(reads: "Reads", base: str, memory_bytes: "int | None", page_kib: int) -> "list[tuple[int, int]]":
    """virNumaGetPages: (size KiB, count) ascending by size, the base page
    size counting the memory outside the huge page pools."""
    huge, taken = _hugepage_counts(reads, base)
    if memory_bytes is None:
        raise _Failed
    pages = huge + [(page_kib, max(memory_bytes - taken, 0) // (page_kib * 1024))]
    return sorted(pages, key=lambda p: p[0])


def _distances(reads: "Reads", node: int, nodes: "set[int]", max_node: int) -> "list[tuple[int, int]]":
    """numa_distance(node, i) for every i, as libnuma fills its table: the
    n-th number of a node's distance file is the distance to node n;
    zeros (no such node) left out.  A file that cannot be read spoils the
    whole table, as in libnuma."""
    if node not in nodes:
        return []
    rows = {}
    for n in sorted(nodes):
        text = ascii_text(reads.read("%s/node%d/distance" % (NODE_DIR, n)))
        if text is None:
            return []
        values = []
        for word in text.split()[:max_node + 1]:
            if not word.isdigit() or len(word) > 9:
                break
            values.append(int(word))
        rows[n] = values
    return [(i, v) for i, v in enumerate(rows[node]) if v]


def _real_cells(reads: "Reads", page_kib: int) -> "list[NumaCell]":
    """virCapabilitiesHostNUMAInitReal with libnuma's reading of sysfs."""
    cpus = _Cpus(reads)
    nodes = {n for n, _ in names(reads.list(NODE_DIR), "node") if n <= MAX_NODE_ID}
    max_node = max(nodes, default=0)
    cells = []
    for n in range(max_node + 1):
        if n not in nodes:
            continue
        base = "%s/node%d" % (NODE_DIR, n)
        text = ascii_text(reads.read(base + "/cpulist"))
        members = parse_cpulist(text) if text is not None else None
        if members is None:
            continue  # numa_node_to_cpus failed: libvirt leaves the cell out
        cell_cpus = tuple(CellCpu(id=cpu, socket_id=cpus.socket(cpu), die_id=cpus.die(cpu),
                                  core_id=cpus.core_id(cpu), siblings=cpus.siblings(cpu)) for cpu in members)
        distances = _distances(reads, n, nodes, max_node)
        memory = meminfo_total(reads.read(base + "/meminfo"))
        pages = _pages(reads, base + "/hugepages", memory, page_kib)
        cells.append(NumaCell(
            id=n,
            memory_kib=None if memory is None else memory >> 10,
            pages=tuple(CellPages(size_kib=s, number=c) for s, c in pages),
            distances=tuple(CellDistance(id=i, value=v) for i, v in distances),
            cpus=cell_cpus,
        ))
    return cells


def _fake_cells(reads: "Reads", info: "tuple[int, int, int, int, int, int]") -> "list[NumaCell]":
    """virCapabilitiesHostNUMAInitFake: one cell per node of the topology
    (all numbered 0, as libvirt numbers them), the CPUs numbered through
    sockets, cores and threads, offline ones left out; memory from
    /proc/meminfo."""
    cpus = _Cpus(reads)
    _total, nodes, sockets, cores, threads, _offline = info
    memory = meminfo_total(reads.read(MEMINFO))
    if memory is None:
        raise _Failed  # virHostMemGetInfo fails: so does the fake
    cells = []
    cpu_id = 0
    for _n in range(nodes):
        members = []
        for s in range(sockets):
            for c in range(cores):
                siblings = tuple(range(cpu_id, cpu_id + threads))
                for _t in range(threads):
                    if cpus.online(cpu_id):
                        members.append(CellCpu(id=cpu_id, socket_id=s, die_id=0, core_id=c, siblings=siblings))
                    cpu_id += 1
        cells.append(NumaCell(id=0, memory_kib=memory >> 10, pages=(), distances=(), cpus=tuple(members)))
    return cells


def _caches(reads: "Reads") -> "tuple[CacheBank, ...]":
    """virCapabilitiesInitCaches without resctrl: the level 3+ banks of
    the online CPUs, each once, by level then id."""
    online = _ok(read_bitmap(reads.read(CPU_DIR + "/online")))
    assert isinstance(online, tuple)
    banks: "dict[tuple[object, ...], CacheBank]" = {}
    readers = reads.cache_readers
    for cpu in online:
        if readers.get(cpu, cpu) != cpu:
            # A later thread of a core: the banks of its first thread,
            # already counted (banks are kept once).
            continue
        base = "%s/cpu%d/cache" % (CPU_DIR, cpu)
        listed = reads.list(base)
        if listed is ABSENT:
            continue
        if isinstance(listed, _Missing):
            raise _Failed
        for name in listing(listed):
            if not name.startswith("index"):
                continue
            path = "%s/%s/" % (base, name)
            level = _ok(read_uint(reads.read(path + "level")))
            assert isinstance(level, int)
            if level < CACHE_MIN_LEVEL:
                continue
            bank_id = read_uint(reads.read(path + "id"))
            kind = reads.read(path + "type")
            size = read_scaled(reads.read(path + "size"))
            shared = read_bitmap(reads.read(path + "shared_cpu_list"))
            if ABSENT in (bank_id, kind, size, shared):
                continue  # a missing file: libvirt skips the index
            if isinstance(bank_id, _Missing) or isinstance(kind, _Missing) or isinstance(size, _Missing) \
                    or isinstance(shared, _Missing):
                raise _Failed
            kind_text = ascii_text(kind)
            type_name = CACHE_TYPES.get(trim_newlines(kind_text)) if kind_text is not None else None
            if type_name is None:
                raise _Failed  # "Unknown cache type"
            key = (bank_id, level, type_name, size, shared)
            if key not in banks:
                banks[key] = CacheBank(id=bank_id, level=level, type=type_name, size_bytes=size, cpus=shared)
    return tuple(sorted(banks.values(), key=lambda b: (b.level, b.id)))


def _host_pages(reads: "Reads", page_kib: int) -> "tuple[int, ...]":
    """virCapabilitiesInitPages: the huge page sizes and the base size."""
    huge, _taken = _hugepage_counts(reads, HUGEPAGES_DIR)
    if meminfo_total(reads.read(MEMINFO)) is None:
        raise _Failed  # virHostMemGetInfo, for the base pages
    return tuple(sorted([size for size, _count in huge] + [page_kib]))


def _uuid(reads: "Reads") -> "str | None":
    for path in DMI_UUID_FILES:
        data = reads.read(path)
        # virFileReadBufQuiet(path, buf, 37) must give exactly 36 bytes.
        if isinstance(data, bytes) and len(data) >= 36:
            text = ascii_text(data[:36])
            uuid = None if text is None else parse_uuid(text)
            if uuid is not None:
                return uuid
    # libvirt invents a random UUID here; capsfast keeps one per machine.
    text = ascii_text(reads.read(MACHINE_ID))
    if text is None:
        return None
    text = text.strip()
    return parse_uuid(text) if len(text) == 32 else None


def _iommu_groups(reads: "Reads") -> "bool | None":
    """virHostHasIOMMU: does /sys/kernel/iommu_groups list anything."""
    listed = reads.list(IOMMU_GROUPS_DIR)
    if listed is ABSENT:
        # No groups on a host with sysfs: no IOMMU.  A root without sysfs
        # (a hand-made tree) says nothing.
        return None if isinstance(reads.list(CPU_DIR), _Missing) else False
    if isinstance(listed, _Missing):
        return None  # unreadable: unknown, not "no"
    # Hidden names are a recording's markers, never a kernel's group.
    return any(not name.startswith(".") for name in listing(listed))


def _guarded(compute: "Callable[[], object]") -> "object":
    try:
        return compute()
    except _Failed:
        return None


def decide(reads: "Reads", page_kib: int, s390: bool = False) -> Layout:
    """The Layout the reads give, by libvirt's rules, on a host whose base
    pages are ``page_kib`` KiB (on s390 libvirt counts each CPU as a core)."""
    try:
        info: "tuple[int, int, int, int, int, int] | None" = node_info(reads, s390)
    except _Failed:
        info = None
    cells: "list[NumaCell] | None" = None
    if not isinstance(reads.list(NODE_DIR), _Missing):
        try:
            cells = _real_cells(reads, page_kib)
        except _Failed:
            cells = None  # libvirt fakes a single cell then
    if cells is None and info is not None:
        try:
            cells = _fake_cells(reads, info)
        except _Failed:
            cells = None
    if info is None:
        topology = Topology(sockets=None, dies=None, cores=None, threads=None,
                            cells=None if cells is None else tuple(cells))
    else:
        topology = Topology(sockets=info[2], dies=1, cores=info[3], threads=info[4],
                            cells=None if cells is None else tuple(cells))
    cache = _guarded(lambda: _caches(reads))
    pages = _guarded(lambda: _host_pages(reads, page_kib))
    return Layout(topology, cache, pages, _uuid(reads), _iommu_groups(reads))  # type: ignore[arg-type]

