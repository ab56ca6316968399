"""A Source: where every fact a part of ``Host`` reads comes from.

A part asks its source, never the C module, a root prefix or a recording:
files (stat, read, list and MSR entries in one crossing), rounds of reads,
the full CPUID walk, the first block of ``/proc/cpuinfo``, the KVM
device's capabilities, the MSR and TSC the device tells the CPU decode,
read-write access of device nodes, and whether a recording captured a
part.  The walk and the ``/proc/cpuinfo`` block are read once per source,
whichever parts ask.

``Source`` itself is a directory of files (a fake root; CPUID from a dump
or none; no device); ``capsfast.sources.live`` is the running host,
``capsfast.sources.replay`` a recording.
"""
from capsfast import _native
# What a source answers with, named for the parts and the recording (which
# never reach the C module themselves).
from capsfast._native import LIST as LIST, MSR as MSR, READ as READ, READ_BLOCK as READ_BLOCK, STAT as STAT
from capsfast._native import NOT_TRIED as NOT_TRIED, OK as OK
from capsfast._native import FileResult as FileResult, KvmDevice as KvmDevice, Outcome as Outcome
from capsfast.constants import KVM_DEVICE, X86_ARCHS
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from capsfast._native import Batch as Batch, FileSpec as FileSpec, Leaves as Leaves, Results as Results
    from capsfast.model import Tsc

    Registers = tuple[int, int, int, int]
    Walk = dict[tuple[int, int], Registers]
    # (key, path as on the probed host, op, msr number, buffer size)
    Entry = tuple[str, str, str, int, int]

    from capsfast.sources.rounds import Fetch

CPUINFO = "/proc/cpuinfo"
ARCH_CAPABILITIES_MSR = 0x10A  # IA32_ARCH_CAPABILITIES
CPUINFO_BLOCK = 16384  # one processor's block, with room for a long flags line
DEFAULT_CPU_MAP = "/usr/share/libvirt/cpu_map"

_UNREAD = object()


def under(root: str, path: str) -> str:
    """``path`` (absolute, as on the probed host) inside ``root``."""
    return path if root == "/" else root.rstrip("/") + path


def specs(root: str, plan: "Sequence[Entry]", depends: "Mapping[str, str]") -> "list[FileSpec]":
    """``plan`` as the crossing's file entries under ``root``, ``depends``
    (key -> the key of an entry whose file must exist for this one to be
    looked at) as indices: C skips the system calls for a child of
    something absent."""
    index = {row[0]: i for i, row in enumerate(plan)}
    return [
        (under(root, path), op, msr, size, index.get(depends.get(key, "")))
        for key, path, op, msr, size in plan
    ]


class _Pool:
    """Free Batches per (root, plan): a Batch is built once per plan and
    thread and reused, so a probe allocates no C memory."""

    __slots__ = ("_free",)

    def __init__(self) -> None:
        self._free: "dict[tuple[str, int], list[Batch]]" = {}

    def take(self, key: "tuple[str, int]") -> "Batch | None":
        free = self._free.get(key)
        if free:
            try:
                return free.pop()
            except IndexError:  # another thread took the last one meanwhile
                pass
        if len(self._free) > 64:  # many fake roots: drop the old plans
            self._free.clear()
        return None

    def give(self, key: "tuple[str, int]", batch: "Batch") -> None:
        self._free.setdefault(key, []).append(batch)

    def plans(self) -> int:
        return len(self._free)


POOL = _Pool()


class Source:
    """The host under ``root`` (a directory, or "/" with a CPUID dump or a
    forced architecture): its files, CPUID from ``dump`` or none, no device
    of its own.  ``cpu_map``: a CPU map directory laid over the host's own
    (``--cpu-map``); ``path_env``: the PATH searched for emulators (None:
    this process's)."""

    kind = "root"
    has_cpu = False  # a CPU of its own to run CPUID on

    def __init__(self, root: str, arch: str, dump: "str | None" = None, cpu_map: "str | None" = None,
                 path_env: "str | None" = None) -> None:
        self.root = root
        self.arch = arch
        self.dump = dump
        self.cpu_map = cpu_map
        self.path_env = path_env
        self.machines = False  # the guests' machine types too (runs each emulator once)
        self._walk: "Walk | None | object" = _UNREAD
        self._cpuinfo: "FileResult | object" = _UNREAD

    def under(self, path: str) -> str:
        """Where ``path`` of the probed host is on this machine."""
        return under(self.root, path)

    def check(self) -> None:
        """CapsfastError unless the root is a directory."""
        root = self.root
        if root == "/":
            return
        if "\0" in root:
            raise CapsfastError("root %r: a path cannot hold a NUL byte" % root)
        import os

        try:
            st = os.stat(root)
        except OSError as e:
            raise CapsfastError("root %s: %s" % (root, e.strerror), errno=e.errno) from None
        if not (st.st_mode & 0o170000 == 0o040000):
            raise CapsfastError("root %s: not a directory" % root)

    def probe(self, plan: "tuple[Entry, ...]", depends: "Mapping[str, str]", want_cpu: bool,
              deep: bool) -> "tuple[Results, Walk | None]":
        """What the core part reads, in one go: the root checked, the dump's
        walk (its faults are the probe's), and one crossing for the KVM
        device, ``plan`` (a constant: its Batch is pooled by identity) and,
        with ``want_cpu``, the probe's CPUID leaves where there is a CPU.
        The first /proc/cpuinfo block read there serves the parts too."""
        self.check()
        walk = self.dump_walk()
        results = self.cross(plan, depends, want_cpu, deep)
        for (_key, path, _op, _msr, _size), result in zip(plan, results.files):
            if path == CPUINFO and self._cpuinfo is _UNREAD:
                self._cpuinfo = result
        return results, walk

    def cross(self, plan: "tuple[Entry, ...]", depends: "Mapping[str, str]", want_cpu: bool,
              deep: bool) -> "Results":
        key = (self.root, id(plan))
        batch = POOL.take(key) or _native.Batch(self.under(KVM_DEVICE), specs(self.root, plan, depends))
        try:
            return batch.run(want_cpu and self.has_cpu, deep)
        finally:
            POOL.give(key, batch)

    def dump_walk(self) -> "Walk | None":
        """The walk of the dump, read now (its faults are the probe's); the
        parts' ``walk()`` then serves it."""
        if self.dump is None:
            return None
        from capsfast.sources import cpuid_dump

        walk = self._walk = cpuid_dump.read_walk(self.dump)
        return walk

    def with_cpu_map(self, directory: str) -> "Source":
        """This source with ``directory`` laid over the host's CPU map
        (what it read stays read)."""
        self.cpu_map = directory
        return self

    def cpu_map_directory(self) -> str:
        """The CPU map directory the host's CPU is named against: the
        overlay, else the host's own."""
        return self.cpu_map or self.under(DEFAULT_CPU_MAP)

    # -- files ------------------------------------------------------------------

    def files(self, plan: "Sequence[Entry]", depends: "Mapping[str, str]" = {}) -> "list[FileResult]":
        """Each entry of ``plan``'s result, in one crossing."""
        return _native.Batch(None, specs(self.root, plan, depends)).run().files

    def rounds(self) -> "Fetch":
        """Rounds of (path, op) reads, one crossing a round."""
        from capsfast.sources import rounds

        return rounds.fetch(self.root)

    def cpuinfo(self) -> "FileResult":
        """The first processor's block of /proc/cpuinfo, read once."""
        got = self._cpuinfo
        if got is _UNREAD:
            got = self._cpuinfo = self.files((("cpuinfo", CPUINFO, READ_BLOCK, 0, CPUINFO_BLOCK),))[0]
        return got  # type: ignore[return-value]

    def cpuinfo_bytes(self) -> "bytes | None":
        """``cpuinfo()``'s bytes, None where absent or unreadable."""
        result = self.cpuinfo()
        return result.data if result.outcome.ok else None

    # -- CPUID ------------------------------------------------------------------

    def walk(self) -> "Walk | None":
        """The full CPUID walk, read once; None where there is no CPUID."""
        got = self._walk
        if got is _UNREAD:
            got = self._walk = self._read_walk() if self.arch in X86_ARCHS else None
        return got  # type: ignore[return-value]

    def _read_walk(self) -> "Walk | None":
        if self.dump is None:
            return None
        from capsfast.sources import cpuid_dump

        return cpuid_dump.read_walk(self.dump)

    # -- the KVM device and what only a device tells ----------------------------

    def kvm_caps(self, caps: "Sequence[tuple[str, int]]") -> "list[int | None] | None":
        """KVM_CHECK_EXTENSION of each (name, number) of ``caps`` on the KVM
        device; None where it cannot be opened (absent, denied, a
        placeholder)."""
        opened, values = _native.kvm_caps(self.under(KVM_DEVICE), [number for _name, number in caps])
        return values if opened.ok else None

    def cpu_device(self, want_msr: bool, want_tsc: bool) -> "tuple[int | None, Tsc | None]":
        """IA32_ARCH_CAPABILITIES (ARCH_CAPABILITIES_MSR) and the TSC, each
        where wanted, as libvirt's host CPU decode reads them: only the
        running CPU has a device to ask."""
        return None, None

    def access(self, path: str) -> "bool | None":
        """Read-write access to the device node ``path`` for this process,
        by its effective ids (as a VMM's open() is decided); None where it
        cannot be told (a fake root's placeholders are not devices)."""
        if self.root != "/":
            return None
        import os

        try:
            return os.access(path, os.R_OK | os.W_OK, effective_ids=os.access in os.supports_effective_ids)
        except (OSError, ValueError):
            return None

    def recorded_msr(self) -> "dict[int, int] | None":
        """The MSR values a recording holds (None: read the msr driver)."""
        return None

    def captured(self, part: str) -> bool:
        """Whether this source holds the facts of ``part`` (a recording
        made before the part existed does not: it reads as unknown)."""
        return True
