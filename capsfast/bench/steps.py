"""capsfast's own figures: import and first probe in fresh interpreters,
repeated calls in this process, the floor (one empty call into C, one
CPUID, the probe's syscalls), the lazy parts, and how reads scale with
many CPUs.  Each step is registered in order with ``@step``."""
from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

import capsfast
from capsfast import _native
from capsfast import host as probing
from capsfast.bench.fixtures import fake_cpuinfo_root, fake_topology_root
from capsfast.bench.measure import FORBIDDEN_AT_IMPORT, Bench, Result, ratio_of, rounded, run_child, step
from capsfast.constants import KVM_DEVICE
from capsfast.parts.guests import discover as emulators

if TYPE_CHECKING:
    from collections.abc import Sequence

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
    from capsfast.sources.live import Live

    host = Live(capsfast.probe().arch)
    emulators.discover(host)
    b.keep(Result("emulators_repeat", "emulator discovery again (one stat per PATH directory), on reading guests",
                  b.per_call(lambda: emulators.discover(host), divisor=2)))


@step("cached probe()")
def probe_cached(b: Bench) -> None:
    capsfast.probe()
    b.keep(Result("probe_cached", "probe(), cached", b.per_call(capsfast.probe, times=10)))


@step("cached kvm_usable()")
def kvm_usable_cached(b: Bench) -> None:
    capsfast.kvm_usable()
    b.keep(Result("kvm_usable_cached", "kvm_usable(), cached", b.per_call(capsfast.kvm_usable, times=10)))


def _render_cached(b: Bench, fmt: "capsfast.Format") -> None:
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
    called, count = run_child(_CHILD_PROBE_TRIPWIRE, b.env)
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
        root, size = fake_cpuinfo_root(tmp, cpus)
        read = probing.cpuinfo_bytes_read(root)
        key = "fake_root_%d_cpus" % cpus
        b.keep(Result(key, "probe(root=fake) whose /proc/cpuinfo lists %d processors" % cpus,
                      b.per_call(lambda: capsfast.probe(root=root, arch="x86_64"), divisor=20, at_least=10)))
    b.scaling["cpus_%d" % cpus] = {"file_bytes": size, "bytes_read": read, "median_us": rounded(b.median(key))}


@step("/proc/cpuinfo with 2 processors")
def fake_root_2_cpus(b: Bench) -> None:
    _fake_root_probe(b, 2)


@step("/proc/cpuinfo with 1024 processors")
def fake_root_1024_cpus(b: Bench) -> None:
    _fake_root_probe(b, 1024)


# the host topology (capsfast.parts.topology.read): a fake sysfs of many CPUs

def _topology_read(b: Bench, cpus: int) -> None:
    from capsfast import _native
    from capsfast.parts.topology import read as topology
    from capsfast.sources import rounds as reads

    with tempfile.TemporaryDirectory(prefix="capsfast-bench-") as tmp:
        root = fake_topology_root(tmp, cpus)
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
                       "median_us": rounded(b.median(key)), "per_cpu_us": rounded(ratio_of(b.median(key), cpus))}


@step("host topology, 2 CPUs")
def topology_2_cpus(b: Bench) -> None:
    _topology_read(b, 2)


@step("host topology, 1024 CPUs")
def topology_1024_cpus(b: Bench) -> None:
    _topology_read(b, 1024)
