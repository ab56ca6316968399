"""Probing: picks the Source (``capsfast.sources``), reads the core part in
one crossing into C, assembles the Host from the parts (``capsfast.parts``)
in one loop, and keeps the live host.

The live host (root "/", the running CPU) is kept per process in one
``LiveCache``: CPUID and the CPU files cannot change while the system runs,
so ``refresh=True`` re-reads only the devices and files, and when their
results are byte for byte those of the last crossing, the last decoding
serves again.  The cache is guarded by a lock (renewed in a forked child);
each thread takes its own C buffers from a pool, so concurrent probes never
share them.
"""
import os
import _thread

from capsfast import parts
from capsfast.parts.core import parse
from capsfast.parts.core import read as facts
from capsfast.constants import KVM_DEVICE, X86_ARCHS
from capsfast.errors import CapsfastError
from capsfast.model import Host, Lazy, guests_pending, resolve
from capsfast.sources import live
from capsfast.sources.base import POOL, Source
from capsfast.sources.live import Live

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.sources.base import Batch, Leaves, Results
    from capsfast.parts.core.read import CpuFacts, DeviceFacts
    from capsfast.recording.remote import Recording
    from capsfast.sources.boot import Store
    from collections.abc import Callable, Collection
    from types import ModuleType

# Host fields the probe fills (the core part's); a part fills each other
# one when first read.
_CORE = ("arch", "cpu", "hypervisor", "kvm", "kqemu", "xen", "hvm", "msr")
_LAZY = tuple(name for name in Host._fields if name not in _CORE)


def assemble(arch: str, cpu: "CpuFacts", devices: "DeviceFacts", source: "Callable[[], Source]") -> "Host":
    """The Host: the core part's facts as read by the probe, and every
    other field filled by its part (``capsfast.parts``) when first read,
    each part read once for all of its fields, all through one source
    (``source()``, called on the first such read: the running host's
    parts see its CPU and files as they are then, never a past Host's)."""
    kvm, kqemu, xen, hvm = devices
    made: list[Host] = []  # the Host itself: parts read its core facts
    read: dict[str, dict[str, object]] = {}
    opened: list[Source] = []
    stores: "list[Store | None]" = []  # the per-boot file, opened on the first part that keeps facts there

    def value(field: str) -> object:
        part = parts.owner(field)
        got = read.get(part.NAME)
        if got is None:
            if not opened:
                opened.append(source())
            got = read[part.NAME] = _read_part(part, opened[0], made[0], stores)
        return got[field]

    def lazy(field: str) -> "Lazy[object]":
        # A closure, not functools.partial: importing functools (and the
        # collections it pulls in) costs more than the whole first probe.
        return Lazy(lambda: value(field))

    fields: dict[str, object] = {name: lazy(name) for name in _LAZY}
    fields.update(arch=arch, cpu=cpu.cpu or facts.NO_CPU, hypervisor=cpu.hypervisor, kvm=kvm,
                  kqemu=kqemu, xen=xen, hvm=hvm, msr=cpu.msr_items)
    if cpu.kernel_flags is not None:
        # Read by the probe where CPUID shows vmx or svm (the verdict needs them).
        fields["kernel_flags"] = cpu.kernel_flags
    host: Host = Host(**fields)  # type: ignore[arg-type]  # Lazy fields resolve on read
    made.append(host)
    return host


def _live_kvm_group() -> "str | None":
    return live.live_group(KVM_DEVICE)


def _read_part(part: "ModuleType", source: "Source", host: "Host", stores: "list[Store | None]") -> "dict[str, object]":
    """The fields of ``part``: from the per-boot cache where the part keeps
    facts there and the part's key read now is the kept one, else read
    (and kept, where the host has a per-boot cache)."""
    reader = parts.reader(part)
    if not hasattr(reader, "boot_facts"):
        return reader.fields(source, host)  # type: ignore[no-any-return]
    if not stores:
        from capsfast.sources.boot import open_store

        stores.append(open_store(source))
    store = stores[0]
    if store is None:
        return reader.fields(source, host)  # type: ignore[no-any-return]
    kept = store.get(part.NAME)
    if kept is not None:
        key, facts = kept
        try:
            if reader.boot_key(source, facts) == key:
                return reader.from_boot_facts(source, host, facts)  # type: ignore[no-any-return]
        except ValueError:
            pass  # facts of another shape: read again, and replace them
    key, facts = reader.boot_facts(source, host)
    store.put(part.NAME, key, facts)
    return reader.from_boot_facts(source, host, facts)  # type: ignore[no-any-return]


def _live_batch() -> "Batch":
    return live.batch(facts.DEVICE_FILES, facts.DEPENDS)


class LiveCache:
    """The running host, kept: its architecture and CPU facts (read once),
    the last Host, the last crossing's snapshot with its decoding, and the
    free C buffers of its plan (one per thread probing at once)."""

    __slots__ = ("lock", "arch", "cpu", "host", "snapshot", "devices", "last", "batches", "source")

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        # Made while importing (about 25 us of cffi field writes), so that
        # the first probe pays only for the probing.
        self.batches = [_live_batch()]
        self.forget()

    def forget(self) -> None:
        """Drop everything (tests use it to start as a new process would)."""
        self.arch: str | None = None
        self.source: "Callable[[], Source] | None" = None  # a Live source for each Host's lazy parts
        self.cpu: CpuFacts | None = None
        self.host: Host | None = None        # what probe() hands out
        self.snapshot: bytes | None = None   # the last crossing's snapshot,
        self.devices: DeviceFacts | None = None  # what it meant,
        self.last: Host | None = None        # and the Host made of it

    def after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock at fork time; it does
        # not exist here, so the lock would never be released.
        self.lock = _thread.allocate_lock()

    def probe(self, deep: bool) -> "Host":
        """The running host.  Every call crosses into C once and re-reads the
        devices and files; unchanged results reuse the last decoding."""
        cpu = self.cpu
        if cpu is None:
            with self.lock:
                if self.cpu is None:
                    return self._first(deep)
                cpu = self.cpu
        free = self.batches
        try:
            batch = free.pop()
        except IndexError:  # another thread is probing with it
            batch = _live_batch()
        try:
            snapshot = batch.cross(False, deep)
            unchanged = not deep and snapshot == self.snapshot
            if not unchanged:
                results = batch.results()
        finally:
            free.append(batch)
        last = self.last
        if unchanged and self.devices is not None and last is not None:
            # The last Host serves again while its guests are still to be
            # found (once found, they may have gone stale).
            if guests_pending(last):
                return last
            return self._remember(snapshot, cpu, self.devices, deep)
        return self._remember(snapshot, cpu, self._decode(cpu, results, deep), deep)

    def _first(self, deep: bool) -> "Host":
        """The first live probe of the process (the caller holds the lock):
        CPUID and the devices in one crossing."""
        arch = self.arch = parse.normalize_arch(os.uname().machine)
        self.source = lambda: Live(arch)
        want_cpu = live.HAS_CPUID and arch in X86_ARCHS
        batch = self.batches.pop() if self.batches else _live_batch()
        try:
            snapshot = batch.cross(want_cpu, deep)
            results = batch.results()
        finally:
            self.batches.append(batch)
        cpu = self.cpu = _live_cpu_facts(arch, results.cpu)
        return self._remember(snapshot, cpu, self._decode(cpu, results, deep), deep)

    def _decode(self, cpu: "CpuFacts", results: "Results", deep: bool) -> "DeviceFacts":
        assert results.kvm is not None  # the live plan always asks for the device
        return facts.device_facts(cpu, results.kvm, facts.keyed(facts.DEVICE_FILES, results.files), deep, "/",
                                  _live_kvm_group)

    def _remember(self, snapshot: bytes, cpu: "CpuFacts", devices: "DeviceFacts", deep: bool) -> "Host":
        assert self.arch is not None and self.source is not None
        host = assemble(self.arch, cpu, devices, self.source)
        if not deep:
            self.snapshot, self.devices, self.last = snapshot, devices, host
        return host


_live = LiveCache()
os.register_at_fork(after_in_child=_live.after_fork_in_child)


def _live_cpu_facts(arch: str, leaves: "Leaves | None") -> "CpuFacts":
    """CPU facts of the running host from its first crossing's CPUID."""
    # Kernel flags and MSRs matter only where CPUID shows vmx or svm (a
    # firmware lock); elsewhere the second crossing is saved.
    if leaves is not None and not parse.shows_vmx_or_svm(leaves):
        return facts.cpu_facts("/", arch, leaves, "cpuid", {})
    plan = facts.CPU_FILES
    return facts.cpu_facts("/", arch, leaves, "cpuid", facts.keyed(plan, Live(arch).files(plan, facts.DEPENDS)))


def _source(root: str, dump: "str | None", arch: "str | None", cpu_map: "str | None",
            machines: bool) -> "Source":
    """The Source of a probe's inputs: the running host for root "/"
    without a dump (its architecture forced or not), else the directory."""
    source = Live(arch or "", cpu_map) if root == "/" and dump is None else Source(root, arch or "", dump, cpu_map)
    source.machines = machines
    return source


def _probe_other(source: "Source", deep: bool) -> "Host":
    """A fake root, a dump, a forced arch, a CPU map overlay or a
    recording: nothing kept but its source (``source_of``)."""
    cpu, devices = facts.read_core(source, deep)
    return _remember_source(assemble(source.arch, cpu, devices, lambda: source), source)


# The sources of the last Hosts that are not the live one: what reads
# beyond the Host's fields (domain capabilities) reads through them.
_other_sources: "list[tuple[Host, Source]]" = []


def _remember_source(host: "Host", source: "Source") -> "Host":
    _other_sources.append((host, source))
    del _other_sources[:-8]
    return host


def source_of(host: "Host") -> "Source":
    """The source ``host`` was read through: a root's or a recording's as
    probe() made it, else the running host's."""
    for made, source in reversed(_other_sources):
        if made is host:
            return source
    return Live(host.arch)


def _replay(directory: str, deep: bool, cpu_map: "str | None" = None) -> "Host":
    from capsfast.recording import format as recording

    replay = recording.read(directory)
    if deep and not replay.deep:
        raise CapsfastError("replay %s: the recording was made without --deep (KVM_CREATE_VM was not tried)"
                            % directory)
    replay.cpu_map = cpu_map
    try:
        return _probe_other(replay, replay.deep)
    except CapsfastError as e:  # the recording's fault: said as such
        raise e if str(e).startswith("replay ") else CapsfastError("replay %s: %s" % (directory, e),
                                                                    errno=e.errno) from None


def check_recorded_inputs(root: object, cpuid: object, arch: object, replay: object, connect: object,
                          machines: bool = False) -> None:
    """CapsfastError for inputs a recording or a remote host cannot take
    (it brings its own root, CPUID and arch)."""
    if root != "/" or cpuid is not None or arch is not None:
        raise CapsfastError("a recording or a remote host brings its own root, CPUID and arch: "
                            "replay and connect take no root, cpuid or arch")
    if replay is not None and connect is not None:
        raise CapsfastError("replay a recording or connect to a host, not both")
    if machines:
        raise CapsfastError("machine types come from running each emulator: not from a recording "
                            "or a remote host")


def replay_temporary(recording: "Recording", deep: bool = False, cpu_map: "str | None" = None,
                     skip: "Collection[str]" = ()) -> "Host":
    """The host a temporary recording (fetched over SSH, read from a
    stream) captured; its lazy parts, but those named in ``skip`` (which
    then cannot be read), are resolved before it is removed."""
    with recording as directory:
        try:
            return resolve(_replay(directory, deep, cpu_map), skip)
        except CapsfastError as e:
            # Named by where it came from, not by a directory gone with it;
            # a file of its root by its path on the recorded host, its own
            # files (cpuid.txt) by their names.
            base = directory.rstrip("/")
            text = str(e).replace(base + "/root/", "/").replace(base + "/", "").replace(base, recording.name)
            raise CapsfastError(text, errno=e.errno) from None


def connect_host(uri: str, deep: bool, cpu_map: "str | None" = None, skip: "Collection[str]" = ()) -> "Host":
    """The remote host ``uri`` names, fetched and replayed; the lazy fields
    in ``skip`` are never read (see ``replay_temporary``)."""
    from capsfast.recording import remote

    if cpu_map is not None and not os.path.isdir(cpu_map):
        raise CapsfastError("CPU map %s: not a directory" % cpu_map)
    with remote.ending_cleanly():
        return replay_temporary(remote.fetch(uri, deep=deep), deep, cpu_map, skip)


def probe(root: "str | os.PathLike[str]" = "/", cpuid: "str | os.PathLike[str] | None" = None,
          arch: "str | None" = None, deep: bool = False, refresh: bool = False,
          machines: bool = False, replay: "str | os.PathLike[str] | None" = None,
          connect: "str | None" = None, cpu_map: "str | os.PathLike[str] | None" = None) -> "Host":
    """What this host (or the one under ``root``) offers for virtualization.

    ``cpuid``: path to a ``cpuid -r -1`` dump to use instead of the live CPU.
    ``arch``: force the host architecture.  ``deep``: also try
    ``KVM_CREATE_VM``.  The plain live call is cached; ``refresh=True``
    re-reads the devices and files (not the CPU, which cannot change).
    ``machines``: also list each emulator's machine types (runs each
    emulator once, then answers from an on-disk cache).  ``replay``: the
    host a recording (``capsfast record``) captured, as it answered then.
    ``connect``: a remote host (``ssh://[user@]host[:port]`` or
    ``qemu+ssh://[user@]host[:port]/system``), recorded over SSH and
    replayed here; nothing but Python is needed there.  ``cpu_map``: the
    libvirt CPU map directory ``Host.cpu_model`` decodes against (default
    ``$CAPSFAST_CPU_MAP``, else the host's /usr/share/libvirt/cpu_map)."""
    if root == "/" and cpuid is None and arch is None and replay is None and connect is None and not machines \
            and cpu_map is None:
        # The live host: the call agents make many times a second.
        if deep:
            return _live.probe(True)
        cached = _live.host
        if cached is None or refresh:
            cached = _live.host = _live.probe(False)
        return cached
    map_dir = None
    if cpu_map is not None:
        # Laid over the source's own map; named by the caller, so a typo is
        # bad input, not "no model".
        map_dir = os.fspath(cpu_map)
        if not os.path.isdir(map_dir):
            raise CapsfastError("CPU map %s: not a directory" % map_dir)
    if replay is not None or connect is not None:
        check_recorded_inputs(root, cpuid, arch, replay, connect, machines)
        return (_replay(os.fspath(replay), deep, map_dir) if replay is not None
                else connect_host(str(connect), deep, map_dir))
    source = _source(os.fspath(root), None if cpuid is None else os.fspath(cpuid), arch, map_dir, machines)
    cpu, devices = facts.read_core(source, deep)
    host = _remember_source(assemble(source.arch, cpu, devices, lambda: source), source)
    if machines:
        host.guests  # asked for: the emulators run now, not on a later read
    return host


def kvm_usable() -> bool:
    """True if this process can run KVM guests now (cached live probe)."""
    host = _live.host
    if host is None:
        host = probe()
    return host.kvm.usable


# -- for the benchmark and the tests: the mechanism's parts, by name ----------

def forget_live() -> None:
    """Drop the live cache, as in a new process."""
    with _live.lock:
        _live.forget()


def live_lock() -> "_thread.LockType":
    """The live cache's lock (tests hold it across a fork)."""
    return _live.lock


def live_leaves() -> "Leaves | None":
    """The CPUID leaves the live probe read, once it has."""
    return None if _live.cpu is None else _live.cpu.leaves


def first_probe_wants_cpu() -> bool:
    """Whether the first live probe of a process runs CPUID."""
    return live.HAS_CPUID and parse.normalize_arch(os.uname().machine) in X86_ARCHS


def live_batch() -> "Batch":
    """A Batch of the live plan (devices and files) of its own, for
    measuring the crossing alone (``Batch.bare``)."""
    return _live_batch()


def cpu_files_batch() -> "Batch":
    """A Batch of the once-per-process CPU files (/proc/cpuinfo, MSRs)."""
    return live.batch(facts.CPU_FILES, facts.DEPENDS, device=False)


def cpuinfo_bytes_read(root: str) -> int:
    """Bytes of ``root``/proc/cpuinfo that a probe of that root reads."""
    results = Source(root, "").cross(facts.PLAN, facts.DEPENDS, False, False)
    data = facts.keyed(facts.PLAN, results.files)["cpuinfo"][1].data
    return 0 if data is None else len(data)


def plans_pooled() -> int:
    """How many plans hold pooled Batches (bounded: tests check it)."""
    return POOL.plans()
