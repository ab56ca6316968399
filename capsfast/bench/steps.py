"""``capsfast bench``: what a probe costs on this host, against the floor
(CPUID and the probe's own syscalls, measured in the same run) and against
what a user would otherwise run.

The benchmark is a list of steps, registered in order with ``@step`` (as
archspec registers its ``@detection`` functions): each measures one thing
and keeps its results in the ``Bench`` they share; ``run()`` walks the list,
and the progress display counts the same list.

Each figure is the median of its runs with the lowest and highest run
beside it.  Targets are ratios to figures of the same run (the floor, one
empty call into C, ``python -c pass``) or counts, never absolute times,
which do not carry from one machine to another.  "First in a process"
figures come from fresh interpreters (``sys.executable``), each reporting
its own timing, so the parent's startup is not counted.  Nothing here
asserts a time: the targets are printed with the measured values.
"""
from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, TypedDict

import capsfast
from capsfast import _native
from capsfast.parts.guests import discover as emulators
from capsfast.parts.core import read as facts
from capsfast import host as probing
from capsfast.constants import KVM_DEVICE
from capsfast.cli.options import Option, format_options, parse_or_help
from capsfast.cli.options import error, out

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    Step = Callable[["Bench"], None]

OPTIONS = format_options(("text", "json"), "text") + (
    Option(("--quick",), "few runs (a smoke test; the figures are rough)"),
    Option(("--slow",), "also measure py-cpuinfo (about a second per run)"),
    Option(("--connect",), "also measure a remote query of this host over SSH (and virsh over "
           "qemu+ssh where a libvirt daemon answers there); the benchmark starts no sshd", metavar="URI"),
)
SUMMARY = (
    "Measure probe latency on this host: import, first and repeated probes,\n"
    "rendering, the floor (CPUID, syscalls) and the alternatives present here."
)
FORBIDDEN_AT_IMPORT = ("lxml", "argparse", "json", "re", "dataclasses", "typing", "threading")
SCHEMA_VERSION = 1
# virsh may take seconds a call (a daemon that re-probes QEMU each time):
# past this total it leaves the interleaved loop.
VIRSH_BUDGET_S = (2.0, 10.0)  # (--quick, full)

# Fresh-interpreter snippets; each prints one line of Python literals.
_CHILD_IMPORT = """
import sys, time
before = set(sys.modules)
t = time.perf_counter_ns()
import capsfast
t = time.perf_counter_ns() - t
print(repr((t / 1e3, sorted(m for m in %r if m in set(sys.modules) - before))))
""" % (FORBIDDEN_AT_IMPORT,)

_CHILD_FIRST_PROBE = """
import sys, time
import capsfast
from capsfast import _native
from capsfast.model import kernel_flags_pending
before = set(sys.modules)
n = _native.cpuid_executed()
t = time.perf_counter_ns()
host = capsfast.probe()
t = time.perf_counter_ns() - t
print(repr((t / 1e3, _native.cpuid_executed() - n, sorted(set(sys.modules) - before),
            not kernel_flags_pending(host))))
"""

# The first probe and its guests: what capabilities() needs, emulator
# discovery (a listing of each PATH directory) included.
_CHILD_FIRST_PROBE_GUESTS = """
import time
import capsfast
t = time.perf_counter_ns()
capsfast.probe().guests
print(repr(((time.perf_counter_ns() - t) / 1e3,)))
"""

# The first crossing as the first probe makes it, with no decoding: the
# hardware's cost for a first probe, at the same cold start.
_CHILD_COLD_FLOOR = """
import time
from capsfast import host as probing
batch = probing.live_batch()
want_cpu = probing.first_probe_wants_cpu()
t = time.perf_counter_ns()
batch.bare(want_cpu)
t = time.perf_counter_ns() - t
print(repr((t / 1e3,)))
"""

# A first probe with a tripwire on the full CPUID walk: whether the probe
# called it, and its CPUID count.
_CHILD_PROBE_TRIPWIRE = """
from capsfast import _native
called = []
walk = _native.cpuid_walk
def tripwire():
    called.append(True)
    return walk()
_native.cpuid_walk = tripwire
import capsfast
n = _native.cpuid_executed()
capsfast.probe()
print(repr((bool(called), _native.cpuid_executed() - n)))
"""

_CHILD_FIRST_RENDER = """
import time
import capsfast
host = capsfast.probe()
t = time.perf_counter_ns()
try:
    capsfast.capabilities(host, format=%r)
except ImportError as e:
    print(repr((None, "renderer not available: %%s" %% e)))
else:
    print(repr(((time.perf_counter_ns() - t) / 1e3, None)))
"""


# -- the JSON document ---------------------------------------------------------

class ResultRow(TypedDict):
    key: str
    what: str
    median_us: float | None
    low_us: float | None
    high_us: float | None
    runs: int
    note: str | None


class Target(TypedDict):
    target: str
    value: float | None
    limit: float | None
    unit: str  # "x" for a ratio, else what is counted
    met: bool | None


class Scale(TypedDict):
    file_bytes: int
    bytes_read: int
    median_us: float | None


class Machine(TypedDict):
    cpus: int | None
    kernel: str
    arch: str
    python: str
    executable: str
    cpu_model: str | None
    load_average: list[float]
    load_average_after: list[float]


class CpuidWalk(TypedDict):
    entries: int
    cpuid_instructions: int        # its entries, plus the subleaves it reads and drops
    ratio_to_one_cpuid: float | None
    run_by_first_probe: bool       # a fresh process's probe() called it, or ran more CPUIDs than its leaves


class TopologyScale(TypedDict):
    cpus: int
    rounds: int          # crossings into C, each asking for what the one before found
    files: int           # files and listings read
    median_us: float | None
    per_cpu_us: float | None


class Document(TypedDict):
    schema_version: int
    quick: bool
    machine: Machine
    import_forbidden_modules: list[str]
    cpuid_first_probe: int
    cpuid_walk: CpuidWalk
    modules_imported_by_first_probe: list[str]
    floor_first_probe_us: float | None
    kvm_caps_per_ioctl_us: float | None
    cpuinfo_scaling: dict[str, Scale]
    topology_scaling: dict[str, TopologyScale]
    alternatives: list[str]
    results: list[ResultRow]
    targets: list[Target]


def _median(samples: Sequence[float]) -> float | None:
    s = sorted(samples)
    if not s:
        return None
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    if isinstance(value, int):
        return value
    return round(value, 3) if value < 100 else round(value, 1)


class Result:
    """One measured figure: ``samples`` in microseconds."""

    __slots__ = ("key", "what", "samples", "note")

    def __init__(self, key: str, what: str, samples: Iterable[float], note: str | None = None) -> None:
        self.key = key
        self.what = what
        self.samples = sorted(samples)
        self.note = note

    @property
    def median(self) -> float | None:
        return _median(self.samples)

    def as_dict(self) -> ResultRow:
        s = self.samples
        return {
            "key": self.key,
            "what": self.what,
            "median_us": _round(self.median),
            "low_us": _round(s[0]) if s else None,
            "high_us": _round(s[-1]) if s else None,
            "runs": len(s),
            "note": self.note,
        }


# -- the steps -----------------------------------------------------------------

class Bench:
    """What the steps share: how much to measure, and what was measured."""

    def __init__(self, quick: bool, slow: bool, connect: str | None = None) -> None:
        self.quick = quick
        self.slow = slow
        self.connect = connect
        self.runs = 3 if quick else 15         # fresh interpreters per figure
        self.number = 200 if quick else 5000   # calls per sample
        self.repeat = 5 if quick else 15       # samples
        self.process_runs = 3 if quick else 20
        self.alt_runs = 1 if quick else 5
        self.env = _child_env()
        self.machine = _machine()
        self.results: dict[str, Result] = {}
        self.alternatives: list[str] = []
        self.import_forbidden: list[str] = []
        self.cpuid_first_probe = 0
        self.walk_entries = 0
        self.walk_cpuids = 0
        self.walk_in_first_probe = False
        self.kvm_caps_per_ioctl: float | None = None
        self.lazy_modules: list[str] = []
        self.first_probe_reads_cpu_files = False
        self.scaling: dict[str, Scale] = {}
        self.topology: dict[str, TopologyScale] = {}

    def keep(self, result: Result, alternative: bool = False) -> None:
        self.results[result.key] = result
        if alternative:
            self.alternatives.append(result.key)

    def median(self, key: str) -> float | None:
        r = self.results.get(key)
        return None if r is None else r.median

    def per_call(self, fn: Callable[[], object], divisor: int = 1, at_least: int = 1,
                 times: int = 1) -> list[float]:
        """Microseconds per call of ``fn``, in batches of number * times / divisor."""
        return _per_call(fn, max(self.number * times // divisor, at_least), self.repeat)

    def children(self, code: str) -> list[tuple[Any, ...]]:
        return [_child(code, self.env) for _ in range(self.runs)]


STEPS: list[tuple[str, Step]] = []


def step(label: str) -> Callable[[Step], Step]:
    """Register the decorated function as the next step; ``label`` is what
    the progress display says while it runs."""
    def register(fn: Step) -> Step:
        STEPS.append((label, fn))
        return fn
    return register


# capsfast in fresh interpreters

@step("import capsfast (fresh interpreters)")
def import_capsfast(b: Bench) -> None:
    samples, forbidden = [], set()
    for t, bad in b.children(_CHILD_IMPORT):
        samples.append(float(t))
        forbidden.update(bad)
    b.keep(Result("import", "import capsfast, in a fresh interpreter", samples))
    b.import_forbidden = sorted(forbidden)


@step("first probe() in a process")
def first_probe(b: Bench) -> None:
    samples, counts, lazy = [], set(), set()
    for t, count, imported, read_cpu_files in b.children(_CHILD_FIRST_PROBE):
        samples.append(float(t))
        counts.add(int(count))
        lazy.update(imported)
        b.first_probe_reads_cpu_files = bool(read_cpu_files)
    b.keep(Result("first_probe", "first probe() in a fresh process (CPUID, devices, decoding)", samples))
    b.cpuid_first_probe = max(counts)
    b.lazy_modules = sorted(lazy)


@step("first probe() and its guests in a process")
def first_probe_guests(b: Bench) -> None:
    b.keep(Result("first_probe_guests", "first probe() and its guests in a fresh process (lists the PATH)",
                  [float(r[0]) for r in b.children(_CHILD_FIRST_PROBE_GUESTS)]))


@step("cold floor (bare first crossing)")
def floor_cold(b: Bench) -> None:
    b.keep(Result("floor_cold", "the first probe's crossing alone, first thing in a fresh process",
                  [float(r[0]) for r in b.children(_CHILD_COLD_FLOOR)]))


def _render_first(b: Bench, fmt: str) -> None:
    samples, note = [], None
    for t, note in b.children(_CHILD_FIRST_RENDER % fmt):
        if t is not None:
            samples.append(float(t))
    b.keep(Result("render_%s_first" % fmt,
                  "first capabilities(format=%r) in a process (imports its renderer)" % fmt, samples, note))


@step("first libvirt rendering in a process")
def render_libvirt_first(b: Bench) -> None:
    _render_first(b, "libvirt")


@step("first json rendering in a process")
def render_json_first(b: Bench) -> None:
    _render_first(b, "json")


# in this process, repeated

@step("probe(refresh=True)")
def probe_refresh(b: Bench) -> None:
    capsfast.probe()
    b.keep(Result("probe_refresh", "probe(refresh=True): devices and files again, not the CPU",
                  b.per_call(lambda: capsfast.probe(refresh=True))))


@step("emulator discovery again")
def emulators_repeat(b: Bench) -> None:
    emulators.discover("/")
    b.keep(Result("emulators_repeat", "emulator discovery again (one stat per PATH directory), on reading guests",
                  b.per_call(lambda: emulators.discover("/"), divisor=2)))


@step("cached probe()")
def probe_cached(b: Bench) -> None:
    capsfast.probe()
    b.keep(Result("probe_cached", "probe(), cached", b.per_call(capsfast.probe, times=10)))


@step("cached kvm_usable()")
def kvm_usable_cached(b: Bench) -> None:
    capsfast.kvm_usable()
    b.keep(Result("kvm_usable_cached", "kvm_usable(), cached", b.per_call(capsfast.kvm_usable, times=10)))


def _render_cached(b: Bench, fmt: str) -> None:
    key, what = "render_%s_cached" % fmt, "capabilities(format=%r), cached probe" % fmt
    try:
        capsfast.capabilities(format=fmt)
    except ImportError as e:
        b.keep(Result(key, what, [], "renderer not available: %s" % e))
        return
    b.keep(Result(key, what, b.per_call(lambda: capsfast.capabilities(format=fmt), divisor=10, at_least=10)))


@step("cached libvirt rendering")
def render_libvirt_cached(b: Bench) -> None:
    _render_cached(b, "libvirt")


@step("cached json rendering")
def render_json_cached(b: Bench) -> None:
    _render_cached(b, "json")


# the floor

@step("floor: one empty call into C")
def crossing_empty(b: Bench) -> None:
    b.keep(Result("crossing_empty", "one call into C doing nothing (cffi's cost)",
                  b.per_call(lambda: _native.crossing(False))))


@step("floor: one CPUID")
def cpuid_one(b: Bench) -> None:
    count = _native.cpuid_per_crossing()
    one = Result("cpuid_one", "one CPUID instruction (a %d-CPUID crossing minus an empty one, / %d)"
                 % (count, count), [])
    empty = b.median("crossing_empty")
    if not count:
        one.note = "this build runs no CPUID (not x86)"
    elif empty is not None:
        with_cpuid = b.per_call(lambda: _native.crossing(True), divisor=10, at_least=20)
        one.samples = sorted(max(s - empty, 0.0) / count for s in with_cpuid)
    b.keep(one)


@step("the full CPUID walk (recordings only)")
def cpuid_walk(b: Bench) -> None:
    """What ``capsfast record`` adds: the walk of every leaf and subleaf, in
    one crossing; set against one CPUID of this run.  A fresh process's
    probe() must not run it: a tripwire on it, and the CPUID count."""
    before = _native.cpuid_executed()
    b.walk_entries = len(_native.cpuid_walk())
    b.walk_cpuids = _native.cpuid_executed() - before
    called, count = _child(_CHILD_PROBE_TRIPWIRE, b.env)
    b.walk_in_first_probe = bool(called) or int(count) > _native.cpuid_per_crossing()
    what = "the full CPUID walk of a recording, one crossing, results decoded"
    if not b.walk_entries:
        b.keep(Result("cpuid_walk", what, [], "this build runs no CPUID (not x86)"))
        return
    b.keep(Result("cpuid_walk", what, b.per_call(_native.cpuid_walk, divisor=100, at_least=5),
                  "%d entries, %d CPUID instructions" % (b.walk_entries, b.walk_cpuids)))


@step("KVM capabilities (lazy: Host.kvm_caps)")
def kvm_caps(b: Bench) -> None:
    """Every KVM_CHECK_EXTENSION of the table in one crossing (open, the
    ioctls, close), as Host.kvm_caps reads it; and the crossing alone, whose
    share per ioctl is what the table's length costs."""
    from capsfast.parts import kvm_caps as caps_part
    from capsfast.sources.live import Live

    what = "Host.kvm_caps: open /dev/kvm, %d KVM_CHECK_EXTENSION, close, decoded" % len(caps_part.KVM_CAPS)
    opened, _values = _native.kvm_caps(KVM_DEVICE, caps_part.KVM_CAP_NUMBERS)
    if not opened.ok:
        b.keep(Result("kvm_caps_read", what, [], "/dev/kvm does not open here (%s)" % opened.code))
        return
    b.keep(Result("kvm_caps_crossing", "the same crossing into C with its argument and answer arrays, unnamed",
                  b.per_call(lambda: _native.kvm_caps(KVM_DEVICE, caps_part.KVM_CAP_NUMBERS), divisor=10, at_least=20)))
    host, source = probing.probe(), Live(probing.probe().arch)
    b.keep(Result("kvm_caps_read", what, b.per_call(lambda: caps_part.fields(source, host), divisor=10,
                                                    at_least=20)))
    crossing = b.median("kvm_caps_crossing")
    if crossing is not None:
        b.kvm_caps_per_ioctl = crossing / len(caps_part.KVM_CAPS)


@step("host CPU model: CPU map load, decode, disk cache")
def cpu_model_decode(b: Bench) -> None:
    """Host.cpu_model's dear part apart: loading libvirt's CPU map (XML
    parsing), the decode itself, and the same answer from the disk cache
    (stat of each map file, the cache file read and checked).  The device
    reads (MSR, TSC: a VM and a vCPU) are measured apart; a fresh process
    pays them whether or not the cache answers."""
    from capsfast.cpu_map import x86_map as cpumap
    from capsfast.cpu_map import x86_decode as cpumodel
    from capsfast.parts.cpu_model import read as hostcpu
    from capsfast.sources.live import Live

    directory = hostcpu.map_directory("/", None)
    live = Live(probing.probe().arch)
    walk = live.walk()
    keys = ("cpu_map_load", "cpu_model_decode", "cpu_model_cached", "cpu_model_device")
    whats = ("load libvirt's CPU map (%s): read and parse its XML" % directory,
             "decode the host CPU against the loaded map (libvirt's x86Decode)",
             "the decoded model from the disk cache (map files stat'ed, cache file read and checked)",
             "the device reads of a decode: IA32_ARCH_CAPABILITIES and the TSC where libvirt reads them")
    if walk is None or not hostcpu.map_present(directory):
        note = "no CPUID here" if walk is None else "no CPU map at %s" % directory
        for key, what in zip(keys, whats):
            b.keep(Result(key, what, [], note))
        return
    loaded = cpumap.load(directory)
    data = cpumodel.cpu_data(walk, {})
    b.keep(Result(keys[0], whats[0], b.per_call(lambda: cpumap.load(directory), divisor=1000, at_least=3)))
    b.keep(Result(keys[1], whats[1], b.per_call(lambda: cpumodel.decode(data, loaded), divisor=1000,
                                                at_least=3)))
    device = live.cpu_device
    wants = (cpumodel.has_feature(data, loaded, "arch-capabilities"), cpumodel.has_feature(data, loaded, "invtsc"))
    saved = os.environ.get("XDG_CACHE_HOME")
    with tempfile.TemporaryDirectory(prefix="capsfast-bench-") as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        try:
            hostcpu.decode_host(walk, hostcpu.no_device, directory, None, "")  # fills the cache
            b.keep(Result(keys[2], whats[2], b.per_call(
                lambda: hostcpu.decode_host(walk, hostcpu.no_device, directory, None, ""), divisor=50, at_least=5)))
        finally:
            if saved is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = saved
    b.keep(Result(keys[3], whats[3], b.per_call(lambda: device(*wants), divisor=100, at_least=5),
                  "MSR %s, TSC %s" % ("read" if wants[0] else "not read", "read" if wants[1] else "not read")))


@step("security and IOMMU (lazy: Host.security, iommu, devices)")
def platform_read(b: Bench) -> None:
    """What the first read of Host.security (and iommu, devices) costs: the
    crossing for every file and listing, the CPUID walk, the decisions; and
    the crossing alone.  Never part of a probe."""
    from capsfast.parts.platform import ENTRIES, LISTINGS
    from capsfast.parts.platform import read as platform
    from capsfast.sources.live import Live

    host = probing.probe()
    entries = len(ENTRIES) + len(LISTINGS)
    batch = _native.Batch(None, platform.plan("/"))
    b.keep(Result("platform_crossing", "its crossing into C alone: %d stat/read/MSR/list entries, results unread"
                  % entries, b.per_call(batch.bare, divisor=10, at_least=20)))
    b.keep(Result("platform_read", "Host.security/iommu/devices: one crossing, the CPUID walk, decided",
                  b.per_call(lambda: platform.read(Live(host.arch), host),
                             divisor=10, at_least=20)))


@step("floor: the probe's device and file syscalls")
def syscalls_devices(b: Bench) -> None:
    batch = probing.live_batch()
    b.keep(Result("syscalls_devices", "the device and file syscalls of one probe, in C, results unread",
                  b.per_call(batch.bare)))


@step("floor: /proc/cpuinfo and MSR reads")
def syscalls_cpu_files(b: Bench) -> None:
    what = "the once-per-process reads of /proc/cpuinfo and the MSRs, in C"
    if not b.first_probe_reads_cpu_files:
        # Only where CPUID shows vmx or svm; elsewhere not part of the floor.
        b.keep(Result("syscalls_cpu_files", what, [], "not read by a first probe on this host"))
        return
    batch = probing.cpu_files_batch()
    b.keep(Result("syscalls_cpu_files", what, b.per_call(batch.bare, divisor=10, at_least=20)))


# /proc/cpuinfo with many processors: the probe reads one block

def _fake_root_probe(b: Bench, cpus: int) -> None:
    with tempfile.TemporaryDirectory(prefix="capsfast-bench-") as tmp:
        root, size = _fake_cpuinfo_root(tmp, cpus)
        read = probing.cpuinfo_bytes_read(root)
        key = "fake_root_%d_cpus" % cpus
        b.keep(Result(key, "probe(root=fake) whose /proc/cpuinfo lists %d processors" % cpus,
                      b.per_call(lambda: capsfast.probe(root=root, arch="x86_64"), divisor=20, at_least=10)))
    b.scaling["cpus_%d" % cpus] = {"file_bytes": size, "bytes_read": read, "median_us": _round(b.median(key))}


@step("/proc/cpuinfo with 2 processors")
def fake_root_2_cpus(b: Bench) -> None:
    _fake_root_probe(b, 2)


@step("/proc/cpuinfo with 1024 processors")
def fake_root_1024_cpus(b: Bench) -> None:
    _fake_root_probe(b, 1024)


# the host topology (capsfast.parts.topology.decide): a fake sysfs of many CPUs

def _topology_read(b: Bench, cpus: int) -> None:
    from capsfast import _native
    from capsfast.parts.topology import decide as topology
    from capsfast.sources import rounds as reads

    with tempfile.TemporaryDirectory(prefix="capsfast-bench-") as tmp:
        root = _fake_topology_root(tmp, cpus)
        key = "topology_%d_cpus" % cpus
        divisor = 50 if cpus > 64 else 1
        b.keep(Result(key, "host topology, NUMA cells and cache banks read and decided, fake sysfs of %d CPUs"
                      % cpus, b.per_call(lambda: topology.read(reads.fetch(root)), divisor=divisor * 20, at_least=3)))
        # The floor: the same rounds' reads in C, results unread.
        rounds: list[list[tuple[str, str]]] = []
        fetch = reads.fetch(root)

        def spy(requests: Sequence[tuple[str, str]]) -> list[Any]:
            rounds.append(list(requests))
            return fetch(requests)

        topology.collect(spy)
        batches = [_native.Batch(None, reads.batch_specs(root, r)) for r in rounds]

        def floor_read() -> None:
            for batch in batches:
                batch.bare()

        floor = "topology_%d_cpus_floor" % cpus
        b.keep(Result(floor, "its %d rounds of reads in C alone, results unread" % len(rounds),
                      b.per_call(floor_read, divisor=divisor * 20, at_least=3)))
    b.topology[key] = {"cpus": cpus, "rounds": len(rounds), "files": sum(len(r) for r in rounds),
                       "median_us": _round(b.median(key)), "per_cpu_us": _round(_ratio_of(b.median(key), cpus))}


@step("host topology, 2 CPUs")
def topology_2_cpus(b: Bench) -> None:
    _topology_read(b, 2)


@step("host topology, 1024 CPUs")
def topology_1024_cpus(b: Bench) -> None:
    _topology_read(b, 1024)


# the alternatives

@step("Python /proc/cpuinfo parse")
def alt_cpuinfo_python(b: Bench) -> None:
    what = "read and parse /proc/cpuinfo flags in Python (%s CPUs)" % os.cpu_count()
    if not os.path.exists("/proc/cpuinfo"):
        b.keep(Result("alt_cpuinfo_python", what, [], "no /proc/cpuinfo"), alternative=True)
        return
    b.keep(Result("alt_cpuinfo_python", what, b.per_call(_cpuinfo_parse, divisor=10, at_least=20)),
           alternative=True)


@step("libvirt-python getCapabilities()")
def alt_libvirt_python(b: Bench) -> None:
    b.keep(_libvirt_python(b), alternative=True)


def _alt_process(b: Bench, key: str, name: str, args: list[str], what: str) -> None:
    path = _which(name)
    if path is None:
        b.keep(Result(key, what, [], "%s is not installed" % name), alternative=True)
        return
    samples, status = [], 0
    for _ in range(b.alt_runs):
        t, status = _process_time([path] + args, None)
        samples.append(t)
    b.keep(Result(key, what, samples, "exit status %d" % status if status else None), alternative=True)


@step("kvm-ok")
def alt_kvm_ok(b: Bench) -> None:
    _alt_process(b, "alt_kvm_ok", "kvm-ok", [], "kvm-ok, a process")


@step("virt-host-validate")
def alt_virt_host_validate(b: Bench) -> None:
    _alt_process(b, "alt_virt_host_validate", "virt-host-validate", ["qemu"], "virt-host-validate qemu, a process")


@step("a remote query over SSH (--connect)")
def remote_query(b: Bench) -> None:
    what = "probe(connect=URI): one SSH connection, the collector, the replay here"
    if b.connect is None:
        b.keep(Result("remote_query", what, [], "only with --connect URI"), alternative=True)
        return
    import capsfast

    samples: list[float] = []
    for _ in range(b.alt_runs):
        start = time.perf_counter_ns()
        capsfast.probe(connect=b.connect).guests
        samples.append((time.perf_counter_ns() - start) / 1e3)
    b.keep(Result("remote_query", what, samples), alternative=True)
    virsh = _which("virsh")
    what = "virsh -c qemu+ssh://.../system capabilities, a process (the same host)"
    if virsh is None or not _libvirtd_running():
        b.keep(Result("alt_virsh_ssh", what, [], "no virsh, or no libvirt daemon running"), alternative=True)
        return
    from capsfast.recording import remote

    target = remote.parse_uri(b.connect)
    query = [q for q in (("keyfile=" + target.keyfile) if target.keyfile else "",
                         ("known_hosts=" + target.known_hosts) if target.known_hosts else "",
                         "no_verify=1" if target.no_verify else "") if q]
    uri = "qemu+ssh://%s%s%s/system%s" % (target.user + "@" if target.user else "", target.host,
                                         ":%d" % target.port if target.port else "",
                                         "?" + "&".join(query) if query else "")
    virsh_samples: list[float] = []
    status = 0
    for _ in range(b.alt_runs):
        took, status = _process_time([virsh, "-c", uri, "capabilities"], None)
        virsh_samples.append(took)
    b.keep(Result("alt_virsh_ssh", what, virsh_samples, "exit status %d" % status if status else None),
           alternative=True)


@step("py-cpuinfo")
def alt_py_cpuinfo(b: Bench) -> None:
    b.keep(_py_cpuinfo(b), alternative=True)


# whole processes

@step("whole processes, interleaved: python -c pass, capsfast, virsh")
def whole_processes(b: Bench) -> None:
    base = _capsfast_command()
    commands = (
        ("process_python_pass", "python -c pass, a process (same interpreter)", [sys.executable, "-c", "pass"]),
        ("process_check_q", "capsfast check -q, a process", base + ["check", "-q"]),
        ("process_check_firecracker", "capsfast check -q --for firecracker, a process",
         base + ["check", "-q", "--for", "firecracker"]),
        ("process_capabilities_json", "capsfast capabilities --format json, a process",
         base + ["capabilities", "--format", "json"]),
        ("process_capabilities_libvirt", "capsfast capabilities (the default command: libvirt XML), a process",
         base + ["capabilities"]),
    )
    samples: dict[str, list[float]] = {key: [] for key, _what, _argv in commands}
    failed: dict[str, int] = {}
    virsh, virsh_note = _virsh_command()
    virsh_samples: list[float] = []
    virsh_status = 0
    budget_us = VIRSH_BUDGET_S[0 if b.quick else 1] * 1e6
    for _ in range(b.process_runs):
        # Interleaved, so drifts in load hit every command alike.
        for key, _what, argv in commands:
            t, status = _process_time(argv, b.env)
            samples[key].append(t)
            if status and not (key.startswith("process_check") and status == 1):  # 1: check's "no"
                failed[key] = status
        if virsh is not None and sum(virsh_samples) < budget_us:
            t, virsh_status = _process_time(virsh, None)
            virsh_samples.append(t)
    for key, what, _argv in commands:
        b.keep(Result(key, what, samples[key], "exit status %d" % failed[key] if key in failed else None))
    if virsh is not None:
        notes = []
        if len(virsh_samples) < b.process_runs:
            notes.append("%d of %d rounds: over its %.0f s budget" % (len(virsh_samples), b.process_runs,
                                                                       budget_us / 1e6))
        if virsh_status:
            notes.append("exit status %d" % virsh_status)
        virsh_note = "; ".join(notes) or None
    b.keep(Result("alt_virsh", "virsh -c qemu:///system capabilities, a process (interleaved with capsfast's)",
                  virsh_samples, virsh_note), alternative=True)


def run(quick: bool = False, slow: bool = False, progress: Progress | None = None,
        connect: str | None = None) -> Document:
    """Every step in order; all measurements as the ``--json`` document."""
    b = Bench(quick, slow, connect)
    progress = progress or Progress(len(STEPS))
    for label, measure in STEPS:
        progress.step(label)
        measure(b)
    b.machine["load_average_after"] = _load_average()
    return _document(b)


def _floor_first_probe(b: Bench) -> float | None:
    """CPUID count x one CPUID + the syscalls of a first probe."""
    syscalls = b.median("syscalls_devices")
    if syscalls is None:
        return None
    if b.first_probe_reads_cpu_files:
        syscalls += b.median("syscalls_cpu_files") or 0.0
    return b.cpuid_first_probe * (b.median("cpuid_one") or 0.0) + syscalls


def _document(b: Bench) -> Document:
    return {
        "schema_version": SCHEMA_VERSION,
        "quick": b.quick,
        "machine": b.machine,
        "import_forbidden_modules": b.import_forbidden,
        "cpuid_first_probe": b.cpuid_first_probe,
        "cpuid_walk": {
            "entries": b.walk_entries,
            "cpuid_instructions": b.walk_cpuids,
            "ratio_to_one_cpuid": _round(_ratio_of(b.median("cpuid_walk"), b.median("cpuid_one"))),
            "run_by_first_probe": b.walk_in_first_probe,
        },
        "modules_imported_by_first_probe": b.lazy_modules,
        "floor_first_probe_us": _round(_floor_first_probe(b)),
        "kvm_caps_per_ioctl_us": _round(b.kvm_caps_per_ioctl),
        "cpuinfo_scaling": b.scaling,
        "topology_scaling": b.topology,
        "alternatives": b.alternatives,
        "results": [r.as_dict() for r in b.results.values()],
        "targets": _targets(b),
    }


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _ratio_of(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _bytes_read(b: Bench, cpus: int) -> int | None:
    scale = b.scaling.get("cpus_%d" % cpus)
    return None if scale is None else scale["bytes_read"]


def _targets(b: Bench) -> list[Target]:
    """What the product promises, each as a ratio to a figure of this run
    (or a count), with the measured value and whether it was met."""
    def row(name: str, value: float | None, limit: float, unit: str = "x") -> Target:
        value = _round(value)  # met as the printed value reads
        met = None if value is None else value <= limit
        return {"target": name, "value": value, "limit": limit, "unit": unit, "met": met}

    m = b.median
    first = m("first_probe")
    empty = m("crossing_empty")
    bare = m("process_python_pass")
    return [
        row("first probe() / its warm floor (CPUID count x one CPUID + its syscalls in C)",
            _ratio_of(first, _floor_first_probe(b)), 1.25),
        row("first probe() / its cold floor (the same crossing alone, first thing in a fresh process)",
            _ratio_of(first, m("floor_cold")), 1.25),
        row("modules imported lazily by the first probe()", len(b.lazy_modules), 0, "modules"),
        # Its five leaves at most: the full CPUID walk is for recordings only.
        row("CPUID instructions in a first probe() (never the full walk)", b.cpuid_first_probe, 5,
            "CPUID instructions"),
        # 10 us against 6.4 us of syscalls where first measured: a refresh
        # adds at most half its own system calls.
        row("probe(refresh=True) / its own syscalls in C, results unread",
            _ratio_of(m("probe_refresh"), m("syscalls_devices")), 1.5),
        # Cached answers never cross into C: less than one empty crossing.
        row("cached probe() / one empty call into C", _ratio_of(m("probe_cached"), empty), 1.0),
        row("cached kvm_usable() / one empty call into C", _ratio_of(m("kvm_usable_cached"), empty), 1.0),
        row("libvirt XML of a cached probe / one empty call into C (not rendered again)",
            _ratio_of(m("render_libvirt_cached"), empty), 1.0),
        row("modules among %s imported by import capsfast" % ", ".join(FORBIDDEN_AT_IMPORT),
            len(b.import_forbidden), 0, "modules"),
        row("capsfast check -q / python -c pass, whole processes", _ratio_of(m("process_check_q"), bare), 2.0),
        row("capsfast check -q --for firecracker / python -c pass, whole processes",
            _ratio_of(m("process_check_firecracker"), bare), 2.0),
        # Naming the answers adds at most half of what asking the kernel costs.
        row("Host.kvm_caps / its crossing into C (open, ioctls, close)",
            _ratio_of(m("kvm_caps_read"), m("kvm_caps_crossing")), 1.5),
        row("capsfast capabilities --format json / python -c pass, whole processes",
            _ratio_of(m("process_capabilities_json"), bare), 2.0),
        row("capsfast capabilities (libvirt XML) / python -c pass, whole processes",
            _ratio_of(m("process_capabilities_libvirt"), bare), 2.0),
        # The default command replaces virsh's: it must not be slower.
        row("capsfast capabilities / virsh -c qemu:///system capabilities, whole processes, interleaved",
            _ratio_of(m("process_capabilities_libvirt"), m("alt_virsh")), 1.0),
        # The disk cache makes a second process's host CPU model cheap.
        row("host CPU model from the disk cache / cold (CPU map load + decode)",
            _ratio_of(m("cpu_model_cached"), _sum(m("cpu_map_load"), m("cpu_model_decode"))), 0.05),
        row("/proc/cpuinfo bytes read, 1024 CPUs / 2 CPUs",
            _ratio_of(_bytes_read(b, 1024), _bytes_read(b, 2)), 1.0),
        # Reads, not interpreter time: 2.5x what C's reads cost where first
        # measured (12354 files and listings in four crossings, libvirt's
        # rules decided in Python), and no worse than linear in the CPUs.
        row("host topology of 1024 CPUs / its reads in C alone",
            _ratio_of(m("topology_1024_cpus"), m("topology_1024_cpus_floor")), 3.0),
        row("host topology of 1024 CPUs / 512 x that of 2 CPUs",
            _ratio_of(m("topology_1024_cpus"), 512 * (m("topology_2_cpus") or 0)), 1.0),
    ]


# -- helpers -------------------------------------------------------------------

class Progress:
    """One rewritten line on stderr, only when it is a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.on = sys.stderr is not None and sys.stderr.isatty()

    def step(self, text: str) -> None:
        self.done += 1
        if self.on:
            sys.stderr.write("\r\033[Kcapsfast bench [%d/%d] %s" % (self.done, self.total, text))
            sys.stderr.flush()

    def end(self) -> None:
        if self.on:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _per_call(fn: Callable[[], object], number: int, repeat: int) -> list[float]:
    """Microseconds per call, one sample per batch of ``number`` calls."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(repeat):
        t = clock()
        for _ in range(number):
            fn()
        samples.append((clock() - t) / 1e3 / number)
    return samples


def _child_env() -> dict[str, str]:
    """The environment for fresh interpreters: this capsfast first on the path."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _child(code: str, env: dict[str, str]) -> tuple[Any, ...]:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError("benchmark child failed: %s" % (done.stderr.strip().splitlines() or ["?"])[-1])
    value = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    if not isinstance(value, tuple):
        raise RuntimeError("benchmark child printed %r, not a tuple" % (value,))
    return value


def _process_time(argv: list[str], env: dict[str, str] | None, timeout: float = 120) -> tuple[float, int]:
    """Wall-clock microseconds of one whole process, and its exit status."""
    t = time.perf_counter_ns()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # A blocking wait: Popen.wait(timeout) polls with growing sleeps, which
    # rounds a 10 ms process up to the next poll.
    killed: list[bool] = []

    def kill() -> None:
        killed.append(True)
        child.kill()

    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    try:
        status = child.wait()
    finally:
        watchdog.cancel()
    if killed:
        raise subprocess.TimeoutExpired(argv, timeout)
    return (time.perf_counter_ns() - t) / 1e3, status


def _capsfast_command() -> list[str]:
    """The installed ``capsfast`` script beside this interpreter, else the
    same entry through ``python -c``."""
    script = os.path.join(os.path.dirname(sys.executable), "capsfast")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-c", "from capsfast.cli import run; run()"]


def _virsh_command() -> tuple[list[str] | None, str | None]:
    """virsh's capabilities command, or None and why it is not measured."""
    virsh = _which("virsh")
    if virsh is None:
        return None, "virsh is not installed"
    if not _libvirtd_running():
        return None, "no libvirt daemon is running; not started by the benchmark"
    return [virsh, "-c", "qemu:///system", "capabilities"], None


def _which(name: str) -> str | None:
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _cpuinfo_parse() -> bool:
    """What a script does without capsfast: read /proc/cpuinfo whole and
    look for vmx/svm in the flags of every processor."""
    with open("/proc/cpuinfo") as f:
        text = f.read()
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            found.update(line.partition(":")[2].split())
    return "vmx" in found or "svm" in found


def _fake_topology_root(directory: str, cpus: int) -> str:
    """A fake root whose sysfs shows ``cpus`` CPUs: two threads a core,
    one socket, NUMA node and L3 cache per 128 CPUs (or one in all)."""
    root = os.path.join(directory, "topology-root")
    system = root + "/sys/devices/system"
    per_node = min(cpus, 128)
    nodes = max(cpus // per_node, 1)

    def put(path: str, text: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    put(system + "/cpu/present", "0-%d\n" % (cpus - 1))
    put(system + "/cpu/online", "0-%d\n" % (cpus - 1))
    for cpu in range(cpus):
        base = "%s/cpu/cpu%d/" % (system, cpu)
        node, first = cpu // per_node, cpu - cpu % 2
        put(base + "topology/physical_package_id", "%d\n" % node)
        put(base + "topology/die_id", "0\n")
        put(base + "topology/core_id", "%d\n" % (cpu % per_node // 2))
        put(base + "topology/thread_siblings_list", "%d-%d\n" % (first, first + 1))
        for index, level, kind in ((0, 1, "Data"), (3, 3, "Unified")):
            cache = base + "cache/index%d/" % index
            put(cache + "level", "%d\n" % level)
            put(cache + "id", "%d\n" % (node if level == 3 else cpu // 2))
            put(cache + "type", kind + "\n")
            put(cache + "size", "32768K\n" if level == 3 else "48K\n")
            put(cache + "shared_cpu_list", "%d-%d\n" % ((node * per_node, node * per_node + per_node - 1)
                                                        if level == 3 else (first, first + 1)))
    for node in range(nodes):
        base = "%s/node/node%d" % (system, node)
        for cpu in range(node * per_node, (node + 1) * per_node):
            os.makedirs(base + "/cpu%d" % cpu)
        put(base + "/cpulist", "%d-%d\n" % (node * per_node, (node + 1) * per_node - 1))
        put(base + "/distance", " ".join("10" if n == node else "20" for n in range(nodes)) + "\n")
        put(base + "/meminfo", "Node %d MemTotal:       4194304 kB\n" % node)
        put(base + "/hugepages/hugepages-2048kB/nr_hugepages", "0\n")
        put(base + "/hugepages/hugepages-2048kB/free_hugepages", "0\n")
    put(root + "/proc/meminfo", "MemTotal:        %d kB\n" % (4194304 * nodes))
    return root


def _fake_cpuinfo_root(directory: str, cpus: int) -> tuple[str, int]:
    """A fake root whose /proc/cpuinfo lists ``cpus`` processors, each block
    a copy of this host's first (or a plausible one)."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            block = f.read(65536).split(b"\n\n")[0]
    except OSError:
        block = b""
    if b"flags" not in block:
        block = (b"processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
                 b"stepping\t: 7\nflags\t\t: fpu pae lm nx vmx")
    lines = block.split(b"\n")[1:]
    text = b"".join(
        b"processor\t: %d\n" % n + b"\n".join(lines) + b"\n\n" for n in range(cpus)
    )
    root = os.path.join(directory, "cpus-%d" % cpus)
    os.makedirs(os.path.join(root, "proc"))
    with open(os.path.join(root, "proc", "cpuinfo"), "wb") as f:
        f.write(text)
    return root, len(text)


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _machine() -> Machine:
    uname = os.uname()
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    load = _load_average()
    return {"cpus": os.cpu_count(), "kernel": uname.release, "arch": uname.machine,
            "python": sys.version.split()[0], "executable": sys.executable, "cpu_model": cpu_model,
            "load_average": load, "load_average_after": load}


_DAEMONS = ("libvirtd", "virtqemud")


def _libvirtd_running() -> bool:
    """Whether a libvirt daemon answers locally: its socket exists and the
    daemon runs.  A socket alone may be systemd's, which would start the
    daemon on the first connection; the benchmark never starts one."""
    sockets = ("/run/libvirt/libvirt-sock", "/var/run/libvirt/libvirt-sock",
               "/run/libvirt/virtqemud-sock", "/run/libvirt/libvirt-sock-ro")
    if not any(os.path.exists(sock) for sock in sockets):
        return False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() in _DAEMONS:
                    return True
        except OSError:
            continue
    return False


def _libvirt_python(b: Bench) -> Result:
    what = "libvirt-python getCapabilities(), in-process, connection open"
    try:
        import libvirt  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return Result("alt_libvirt_python", what, [], "libvirt-python is not importable")
    if not _libvirtd_running():
        return Result("alt_libvirt_python", what, [], "no libvirt daemon is running; not started by the benchmark")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.openReadOnly("qemu:///system")
        conn.getCapabilities()
    except libvirt.libvirtError as e:
        return Result("alt_libvirt_python", what, [], "cannot connect: %s" % str(e).splitlines()[0])
    try:
        return Result("alt_libvirt_python", what, _per_call(conn.getCapabilities, 3 if b.quick else 50, b.repeat))
    finally:
        conn.close()


def _py_cpuinfo(b: Bench) -> Result:
    what = "py-cpuinfo get_cpu_info(), in-process"
    if not b.slow:
        return Result("alt_py_cpuinfo", what, [], "only with --slow")
    try:
        import cpuinfo  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return Result("alt_py_cpuinfo", what, [], "py-cpuinfo is not importable")
    return Result("alt_py_cpuinfo", what, _per_call(cpuinfo.get_cpu_info, 1, 1 if b.quick else 3))


# -- output --------------------------------------------------------------------

def format_text(doc: Document) -> str:
    """The results as a readable table."""
    from capsfast.parts.kvm_caps import KVM_CAPS

    mach = doc["machine"]
    lines = [
        "capsfast bench%s on %s (%s CPUs, %s), Linux %s, Python %s; load %s before, %s after"
        % (" --quick" if doc["quick"] else "", mach["cpu_model"] or mach["arch"], mach["cpus"], mach["arch"],
           mach["kernel"], mach["python"], " ".join("%.2f" % x for x in mach["load_average"]),
           " ".join("%.2f" % x for x in mach["load_average_after"])),
        "",
        "%-12s %-12s %-12s %5s  %s" % ("median", "low", "high", "runs", "what"),
    ]
    by_key = {r["key"]: r for r in doc["results"]}
    alternatives = set(doc["alternatives"])

    def fmt(r: ResultRow) -> str:
        if r["median_us"] is None:
            return "%-12s %-12s %-12s %5s  %s: %s" % ("-", "-", "-", 0, r["what"], r["note"])
        note = "  (%s)" % r["note"] if r["note"] else ""
        return "%-12s %-12s %-12s %5d  %s%s" % (
            _human(r["median_us"]), _human(r["low_us"]), _human(r["high_us"]), r["runs"], r["what"], note)

    lines += [fmt(r) for r in doc["results"] if r["key"] not in alternatives]
    walk = doc["cpuid_walk"]
    lines += ["", "CPUID instructions in a first probe: %d; floor of a first probe: %s"
              % (doc["cpuid_first_probe"], _human(doc["floor_first_probe_us"])),
              "full CPUID walk (recordings only): %d entries, %d CPUID instructions, %s one CPUID; "
              "run by a first probe: %s"
              % (walk["entries"], walk["cpuid_instructions"],
                 "-" if walk["ratio_to_one_cpuid"] is None else _ratio(walk["ratio_to_one_cpuid"]) + "x",
                 "yes" if walk["run_by_first_probe"] else "no"),
              "KVM_CHECK_EXTENSION (Host.kvm_caps, %d capabilities, one crossing): %s per capability"
              % (len(KVM_CAPS), _human(doc["kvm_caps_per_ioctl_us"])),
              "modules the first probe imported: %s" % (", ".join(doc["modules_imported_by_first_probe"]) or "none"),
              "forbidden modules after import capsfast: %s" % (", ".join(doc["import_forbidden_modules"]) or "none")]
    s2, s1024 = doc["cpuinfo_scaling"]["cpus_2"], doc["cpuinfo_scaling"]["cpus_1024"]
    lines.append("/proc/cpuinfo of 2 CPUs (%d bytes): %d bytes read; of 1024 CPUs (%d bytes): %d bytes read"
                 % (s2["file_bytes"], s2["bytes_read"], s1024["file_bytes"], s1024["bytes_read"]))
    for scale in doc["topology_scaling"].values():
        lines.append("host topology of %d CPUs: %d rounds, %d files, %s (%s a CPU)"
                     % (scale["cpus"], scale["rounds"], scale["files"], _human(scale["median_us"]),
                        _human(scale["per_cpu_us"])))
    lines += ["", "alternatives (x = median / probe(refresh=True) of this run):"]
    refresh = by_key["probe_refresh"]["median_us"]
    for key in doc["alternatives"]:
        r = by_key[key]
        line = fmt(r)
        if r["median_us"] is not None and refresh:
            line += "  [%sx]" % _ratio(r["median_us"] / refresh)
        lines.append(line)
    lines += ["", "targets (x = ratio to a figure of this run):"]
    for t in doc["targets"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append("  %-6s %-10s (limit %s)  %s" % (
            verdict, _amount(t["value"], t["unit"]), _amount(t["limit"], t["unit"]), t["target"]))
    return "\n".join(lines) + "\n"


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return _ratio(value) + "x"
    return "%g %s" % (value, unit)


def _human(us: float | None) -> str:
    if us is None:
        return "-"
    if us >= 1e6:
        return "%.2f s" % (us / 1e6)
    if us >= 1e3:
        return "%.2f ms" % (us / 1e3)
    return "%.2f us" % us


def _ratio(x: float) -> str:
    return "%.0f" % x if x >= 100 else "%.2f" % x


def main(argv: Sequence[str]) -> int:
    values = parse_or_help("capsfast bench", OPTIONS, (), argv, SUMMARY)
    if values is None:
        return 0
    progress = Progress(len(STEPS))
    try:
        doc = run(quick=bool(values["quick"]), slow=bool(values["slow"]), progress=progress,
                  connect=None if values["connect"] is None else str(values["connect"]))
    except (RuntimeError, subprocess.SubprocessError) as e:
        error("bench: %s" % e)
        return 1
    finally:
        progress.end()
    # bench is not on the start-up path: the standard json module serves.
    out(json.dumps(doc, indent=2) + "\n" if values["format"] == "json" else format_text(doc))
    return 0
