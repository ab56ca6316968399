"""The host's CPU topology, NUMA cells, cache banks, page sizes, UUID and
IOMMU groups, read from sysfs and procfs as libvirt 9 reads them for the
``<host>`` of ``virsh capabilities``.

Reading is a few rounds of reads through the source (each round asks
for what the one before found: CPUs and nodes, then their files, then the
cache banks), so a host with 1024 CPUs costs reads, not interpreter time.
Deciding is libvirt's rules on the bytes read, in the pure functions
below; a file that cannot be read or parsed makes its part unknown (None),
never a guess.

The libvirt functions followed (src/util/virhostcpu.c, virnuma.c,
src/conf/capabilities.c, and libnuma where libvirt calls it) are named on
each function.
"""
from capsfast.sources.rounds import ABSENT, FAILED, LIST, READ, Missing as _Missing
from capsfast.model import CacheBank, CellCpu, CellDistance, CellPages, NumaCell, Topology

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from capsfast.sources.rounds import Fetch

from capsfast.parts.topology import (CPU_DIR, DMI_UUID_FILES, HUGEPAGES_DIR, IOMMU_GROUPS_DIR, MACHINE_ID,
                                      MEMINFO, NODE_DIR)

# libvirt lists caches of this level and up (virCapabilitiesInitCaches).
CACHE_MIN_LEVEL = 3
# The kernel's cache type names -> libvirt's (virCacheKernel, virCache).
CACHE_TYPES = {"Unified": "both", "Instruction": "code", "Data": "data"}
# CPU ids above this are refused as garbage: a "0-4294967295" list would
# otherwise cost gigabytes.  Linux's NR_CPUS is at most 8192.
MAX_CPU_ID = 65535
MAX_NODE_ID = 4095





class Layout:
    """Everything this module reads, decided: ``topology`` (a Topology),
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


# -- parsing, as libvirt's virFileReadValue* and virBitmapParse parse ----------

def _text(value: "bytes | _Missing") -> "str | None":
    if isinstance(value, _Missing):
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None


def _trim(text: str) -> str:
    # virStringTrimOptionalNewline: every trailing newline.
    return text.rstrip("\n")


def _integer(text: str, signed: bool) -> "int | None":
    """strtol/strtoul of the whole string, as virStrToLong_i/_uip: leading
    blanks and a sign allowed, nothing after the digits; None otherwise or
    out of 32-bit range (a negative unsigned is refused, as _uip does)."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s or not s.isdigit() or not s.isascii() or len(s) > 12:
        return None
    value = sign * int(s)
    if signed:
        return value if -(1 << 31) <= value < (1 << 31) else None
    return value if 0 <= value < (1 << 32) else None


def read_int(value: "bytes | _Missing") -> "int | _Missing":
    """virFileReadValueInt: the number, ABSENT, or FAILED."""
    if value is ABSENT:
        return ABSENT
    if isinstance(value, bytes):
        plain = value.rstrip(b"\n")
        if plain.isdigit() and len(plain) < 10:  # what sysfs writes: no need to look closer
            return int(plain)
    text = _text(value)
    number = None if text is None else _integer(_trim(text), True)
    return FAILED if number is None else number


def read_uint(value: "bytes | _Missing") -> "int | _Missing":
    """virFileReadValueUint: the number, ABSENT, or FAILED."""
    if value is ABSENT:
        return ABSENT
    if isinstance(value, bytes):
        plain = value.rstrip(b"\n")
        if plain.isdigit() and len(plain) < 10:
            return int(plain)
    text = _text(value)
    number = None if text is None else _integer(_trim(text), False)
    return FAILED if number is None else number


def parse_cpulist(text: str, limit: int = MAX_CPU_ID) -> "tuple[int, ...] | None":
    """A kernel CPU list ("0-3,8,10-11") as ascending ids; "" is the empty
    set; None for anything malformed or above ``limit``."""
    text = text.strip()
    if not text:
        return ()
    ids: "set[int]" = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not (first.isdigit() and first.isascii()) or (dash and not (last.isdigit() and last.isascii())):
            return None
        if len(first) > 6 or len(last) > 6:
            return None
        low = int(first)
        high = int(last) if dash else low
        if high < low or high > limit:
            return None
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


_BITMAPS: "dict[bytes, tuple[int, ...] | _Missing]" = {}


def read_bitmap(value: "bytes | _Missing") -> "tuple[int, ...] | _Missing":
    """virFileReadValueBitmap: the ids, ABSENT, or FAILED (the same lists
    recur, CPU after CPU: each text is parsed once)."""
    if isinstance(value, _Missing):
        return value
    known = _BITMAPS.get(value)
    if known is None:
        text = _text(value)
        ids = None if text is None else parse_cpulist(text)
        known = FAILED if ids is None else ids
        if len(_BITMAPS) > 4096:
            _BITMAPS.clear()
        _BITMAPS[value] = known
    return known


_SCALES = {"": 1, "b": 1, "byte": 1, "bytes": 1}
for _i, _p in enumerate("kmgtpe", 1):
    _SCALES[_p] = _SCALES[_p + "ib"] = 1024 ** _i
    _SCALES[_p + "b"] = 1000 ** _i


def read_scaled(value: "bytes | _Missing") -> "int | _Missing":
    """virFileReadValueScaledInt (a cache size such as "32768K") in bytes."""
    if value is ABSENT:
        return ABSENT
    text = _text(value)
    if text is None:
        return FAILED
    s = _trim(text).strip()
    digits = len(s) - len(s.lstrip("0123456789"))
    if digits == 0 or digits > 20:
        return FAILED
    scale = _SCALES.get(s[digits:].lower())
    if scale is None:
        return FAILED
    size = int(s[:digits]) * scale
    return size if size < 1 << 64 else FAILED


def names(value: "bytes | _Missing", prefix: str) -> "list[tuple[int, str]]":
    """The entries of a listing named ``prefix`` and a decimal number, as
    (number, name), in the listing's order."""
    if isinstance(value, _Missing):
        return []
    out = []
    start = prefix.encode()
    skip = len(start)
    for raw in value.split(b"\0"):
        if raw.startswith(start) and len(raw) > skip:
            tail = raw[skip:]
            if tail.isdigit() and len(tail) <= 6:
                out.append((int(tail), raw.decode("ascii")))
    return out


def listing(value: "bytes | _Missing") -> "list[str]":
    """Every name of a listing (undecodable names left out)."""
    if isinstance(value, _Missing):
        return []
    return [raw.decode("utf-8") for raw in value.split(b"\0") if raw and raw.isascii()]


def meminfo_total(value: "bytes | _Missing") -> "int | None":
    """MemTotal in bytes from /proc/meminfo or a node's meminfo ("Node 0
    MemTotal:  5204180 kB", numa_node_size64's reading); None if absent."""
    text = _text(value)
    if text is None:
        return None
    for line in text.splitlines():
        if "MemTotal" in line and "kB" in line:
            before = line[:line.index("kB")].split()
            if before and before[-1].isdigit():
                return int(before[-1]) << 10
            return None
    return None


class _Reads:
    """The values read so far, by (path, op); ``ask`` runs one round."""

    __slots__ = ("_fetch", "_got", "cache_readers")

    def __init__(self, fetch: "Fetch") -> None:
        self._fetch = fetch
        self._got: "dict[tuple[str, str], bytes | _Missing]" = {}
        # Each online CPU -> the CPU whose caches were read for it (collect).
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
        text = _text(reads.read(base + "/cpulist"))
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
            text = _text(value)
            shown = text is not None and text.endswith("\n") and text[:-1].isdigit() and len(text) <= 21
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


# -- deciding: libvirt's rules -------------------------------------------------

class _Failed(Exception):
    """libvirt's -1 inside a computation: the part it belongs to fails."""


def _ok(value: "object") -> "object":
    if isinstance(value, _Missing):
        raise _Failed
    return value


class _Cpus:
    """Per-CPU facts, as libvirt's virHostCPUGet{Socket,Die,Core,SiblingsList,Online}."""

    __slots__ = ("_reads", "s390", "_sockets")

    def __init__(self, reads: _Reads, s390: bool = False) -> None:
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


def node_info(reads: _Reads, s390: bool = False) -> "tuple[int, int, int, int, int, int]":
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


def _hugepage_counts(reads: _Reads, base: str) -> "tuple[list[tuple[int, int]], int]":
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
        size_text = name[len("hugepages-"):]
        digits = len(size_text) - len(size_text.lstrip("0123456789"))
        size = _integer(size_text[:digits], False) if digits else None
        if size is None or size_text[digits:].lower() != "kb":
            raise _Failed  # "unable to parse hugepages-..."
        counts = []
        for f in ("nr_hugepages", "free_hugepages"):
            text = _text(reads.read("%s/%s/%s" % (base, name, f)))
            # virStrToLong_ull then *end == '\n'
            if text is None or not text.endswith("\n") or not text[:-1].isdigit() or len(text) > 21:
                raise _Failed
            counts.append(int(text[:-1]))
        out.append((size, counts[0]))
        taken += 1024 * size * counts[0]
    return out, taken


def _pages(reads: _Reads, base: str, memory_bytes: "int | None", page_kib: int) -> "list[tuple[int, int]]":
    """virNumaGetPages: (size KiB, count) ascending by size, the base page
    size counting the memory outside the huge page pools."""
    huge, taken = _hugepage_counts(reads, base)
    if memory_bytes is None:
        raise _Failed
    pages = huge + [(page_kib, max(memory_bytes - taken, 0) // (page_kib * 1024))]
    return sorted(pages, key=lambda p: p[0])


def _distances(reads: _Reads, node: int, nodes: "set[int]", max_node: int) -> "list[tuple[int, int]]":
    """numa_distance(node, i) for every i, as libnuma fills its table: the
    n-th number of a node's distance file is the distance to node n;
    zeros (no such node) left out.  A file that cannot be read spoils the
    whole table, as in libnuma."""
    if node not in nodes:
        return []
    rows = {}
    for n in sorted(nodes):
        text = _text(reads.read("%s/node%d/distance" % (NODE_DIR, n)))
        if text is None:
            return []
        values = []
        for word in text.split()[:max_node + 1]:
            if not word.isdigit() or len(word) > 9:
                break
            values.append(int(word))
        rows[n] = values
    return [(i, v) for i, v in enumerate(rows[node]) if v]


def _real_cells(reads: _Reads, page_kib: int) -> "list[NumaCell]":
    """virCapabilitiesHostNUMAInitReal with libnuma's reading of sysfs."""
    cpus = _Cpus(reads)
    nodes = {n for n, _ in names(reads.list(NODE_DIR), "node") if n <= MAX_NODE_ID}
    max_node = max(nodes, default=0)
    cells = []
    for n in range(max_node + 1):
        if n not in nodes:
            continue
        base = "%s/node%d" % (NODE_DIR, n)
        text = _text(reads.read(base + "/cpulist"))
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


def _fake_cells(reads: _Reads, info: "tuple[int, int, int, int, int, int]") -> "list[NumaCell]":
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


def _caches(reads: _Reads) -> "tuple[CacheBank, ...]":
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
            kind_text = _text(kind)
            type_name = CACHE_TYPES.get(_trim(kind_text)) if kind_text is not None else None
            if type_name is None:
                raise _Failed  # "Unknown cache type"
            key = (bank_id, level, type_name, size, shared)
            if key not in banks:
                banks[key] = CacheBank(id=bank_id, level=level, type=type_name, size_bytes=size, cpus=shared)
    return tuple(sorted(banks.values(), key=lambda b: (b.level, b.id)))


def _host_pages(reads: _Reads, page_kib: int) -> "tuple[int, ...]":
    """virCapabilitiesInitPages: the huge page sizes and the base size."""
    huge, _taken = _hugepage_counts(reads, HUGEPAGES_DIR)
    if meminfo_total(reads.read(MEMINFO)) is None:
        raise _Failed  # virHostMemGetInfo, for the base pages
    return tuple(sorted([size for size, _count in huge] + [page_kib]))


def parse_uuid(text: str) -> "str | None":
    """virUUIDParse (32 hex digits, '-' and ' ' allowed between pairs,
    blanks around) and virUUIDIsValid (not all bytes equal), formatted as
    virUUIDFormat does; None otherwise."""
    s = text.strip(" \t\n\v\f\r")
    digits: "list[str]" = []
    i = 0
    while len(digits) < 16:
        if i >= len(s):
            return None
        if s[i] in "- ":
            i += 1
            continue
        pair = s[i:i + 2]
        if len(pair) < 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            return None
        digits.append(pair.lower())
        i += 2
    if s[i:].strip():
        return None
    if len(set(digits)) == 1:
        return None
    h = "".join(digits)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def _uuid(reads: _Reads) -> "str | None":
    for path in DMI_UUID_FILES:
        data = reads.read(path)
        # virFileReadBufQuiet(path, buf, 37) must give exactly 36 bytes.
        if isinstance(data, bytes) and len(data) >= 36:
            text = _text(data[:36])
            uuid = None if text is None else parse_uuid(text)
            if uuid is not None:
                return uuid
    # libvirt invents a random UUID here; capsfast keeps one per machine.
    text = _text(reads.read(MACHINE_ID))
    if text is None:
        return None
    text = text.strip()
    return parse_uuid(text) if len(text) == 32 else None


def _iommu_groups(reads: _Reads) -> "bool | None":
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


def decide(reads: _Reads, page_kib: "int | None" = None, s390: bool = False) -> Layout:
    """The Layout the reads give, by libvirt's rules."""
    if page_kib is None:
        page_kib = PAGE_KIB
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
    layout = decide(reads, s390=bool(arch) and str(arch).startswith("s390"))
    digest, requests = _live_digest(reads)
    return layout, digest, requests
