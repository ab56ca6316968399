"""A Source: where every fact a part of ``Host`` reads comes from.

A part asks its source, never the C module, a root prefix or a recording:
files (stat, read, list and MSR entries in one crossing), rounds of reads,
single stats and directory listings (the PATH's emulators),
the full CPUID walk, the first block of ``/proc/cpuinfo``, the KVM
device's capabilities, the MSR and TSC the device tells the CPU decode,
read-write access of device nodes, and whether a recording captured a
part.  The walk and the ``/proc/cpuinfo`` block are read once per source,
whichever parts ask.

``Source`` itself is a directory of files (a fake root; CPUID from a dump
or none; no device); ``capsfast.sources.live`` is the running host,
``capsfast.sources.replay`` a recording.
"""
import os as _os  # loaded with the interpreter: importing it costs nothing

from capsfast import _native
# What a source answers with, named for the parts and the recording (which
# never reach the C module themselves).
from capsfast._native import LIST as LIST, MSR as MSR, READ as READ, READ_BLOCK as READ_BLOCK, STAT as STAT
from capsfast._native import NOT_TRIED as NOT_TRIED, OK as OK
from capsfast._native import FileResult as FileResult, KvmDevice as KvmDevice, Outcome as Outcome
from capsfast.constants import DEFAULT_PATH, KVM_DEVICE, X86_ARCHS
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import TypeVar

    from capsfast._native import Batch as Batch, FileSpec as FileSpec, Leaves as Leaves, Results as Results
    from capsfast.model import Tsc

    Registers = tuple[int, int, int, int]
    Walk = dict[tuple[int, int], Registers]
    # (key, path as on the probed host, op, msr number, buffer size)
    Entry = tuple[str, str, str, int, int]

    from capsfast.sources.rounds import Fetch

    T = TypeVar("T")

CPUINFO = "/proc/cpuinfo"
ARCH_CAPABILITIES_MSR = 0x10A  # IA32_ARCH_CAPABILITIES
CPUINFO_BLOCK = 16384  # one processor's block, with room for a long flags line
DEFAULT_CPU_MAP = "/usr/share/libvirt/cpu_map"
ENV_CPU_MAP = "CAPSFAST_CPU_MAP"

_UNREAD = object()


def under(root: str, path: str) -> str:
    """``path`` (absolute, as on the probed host) inside ``root``, its links
    followed inside the root as a chroot would (``inside``)."""
    return path if root == "/" else inside(root, path)


# -- paths under a root ---------------------------------------------------------
#
# Paths of a host whose files are under a root directory (``--root``, a
# recording's ``root/``), looked up as a chroot would look them up.
#
# A symbolic link inside the root is followed inside it: an absolute target
# starts again at the root, ``..`` stops at the root, so ``ln -s
# /proc/cpuinfo ROOT/proc/cpuinfo`` names the root's own /proc/cpuinfo (here
# itself: a loop), never this machine's.  The C batch and every Python read
# get the resolved path, whose every component below the root is then no
# link.  (A tree that changes between the lookup and the read is not
# guarded against: a root is the caller's own directory, not an adversary
# racing it.)  The live host (root "/") pays nothing: its paths are used as
# they are.

# Linux's MAXSYMLINKS: a lookup following more links fails with ELOOP.
MAX_LINKS = 40
# What a path becomes whose links loop through an absolute target or a
# '..' stopped at the root (which the kernel, given the path, would follow
# out of the root): every system call fails on the empty path with
# ENOENT, so it reads as absent, and nothing outside the root is looked
# at.  A loop of relative links that stay inside the root is left to the
# kernel, which says ELOOP as a chroot would.
UNRESOLVABLE = ""


def inside(root: str, path: str) -> str:
    """``path`` (absolute, as on the probed host) as a path on this machine
    inside ``root``, with its links followed inside the root; the part of
    it from the first component that does not exist on is kept as given
    (a lookup fails there anyway).  ``UNRESOLVABLE`` for a link loop."""
    if root == "/":
        return path
    base = root.rstrip("/")
    pending = path.split("/")
    pending.reverse()  # popped from the end: the next component last
    resolved: list[str] = []
    links = 0
    kernel_safe = True  # no link so far that the kernel would follow out of the root
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            if resolved:
                resolved.pop()
            elif links:
                kernel_safe = False  # a link's '..' at the root: the kernel would climb out
            continue  # at the root: stays there, as in a chroot
        here = base + "/" + "/".join(resolved + [name])
        try:
            st = _os.lstat(here)
        except OSError:
            # Absent (or below something that is no directory): the
            # kernel's lookup fails right here too, whatever follows, so
            # the rest is kept as it is.
            pending.reverse()
            return "/".join([here] + pending)
        if st.st_mode & 0o170000 != 0o120000:  # not a symbolic link
            resolved.append(name)
            continue
        links += 1
        if links > MAX_LINKS:
            return base + path if kernel_safe else UNRESOLVABLE
        try:
            target = _os.readlink(here)
        except OSError:
            return UNRESOLVABLE
        if target.startswith("/"):
            resolved = []
            kernel_safe = False
        parts = target.split("/")
        parts.reverse()
        pending.extend(parts)
    return base + "/" + "/".join(resolved) if resolved else base + "/"


def _group_name(group_file: str, gid: int) -> str:
    """The name /etc/group text gives ``gid``, else the number as text."""
    for line in group_file.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].strip() == str(gid) and fields[0]:
            return fields[0]
    return str(gid)


def map_directory(root: str, cpu_map: "str | None") -> str:
    """The CPU map directory to use for the host under ``root``: ``cpu_map``
    given, else ``$CAPSFAST_CPU_MAP``, else the root's own."""
    if cpu_map:
        return cpu_map
    import os

    named = os.environ.get(ENV_CPU_MAP)
    if named:
        if not os.path.isdir(named):  # named by the user: a typo is bad input, not "no model"
            raise CapsfastError("CPU map %s (%s): not a directory" % (named, ENV_CPU_MAP))
        return named
    return under(root, DEFAULT_CPU_MAP)


def kvm_supported_cpuid(root: str) -> "tuple[Outcome, list[tuple[int, int, Registers]]]":
    """KVM_GET_SUPPORTED_CPUID on the KVM device under ``root``: its
    outcome, and (leaf, subleaf, registers) for each entry."""
    return _native.kvm_supported_cpuid(under(root, KVM_DEVICE))


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
        self._free: "dict[tuple[object, ...], list[Batch]]" = {}

    def take(self, key: "tuple[object, ...]") -> "Batch | None":
        free = self._free.get(key)
        if free:
            try:
                return free.pop()
            except IndexError:  # another thread took the last one meanwhile
                pass
        if len(self._free) > 64:  # many fake roots: drop the old plans
            self._free.clear()
        return None

    def give(self, key: "tuple[object, ...]", batch: "Batch") -> None:
        self._free.setdefault(key, []).append(batch)

    def plans(self) -> int:
        return len(self._free)


POOL = _Pool()


class Source:
    """The host under ``root`` (a directory, or "/" with a CPUID dump or a
    forced architecture): its files, CPUID from ``dump`` or none, no device
    of its own.  ``cpu_map``: a CPU map directory laid over the host's own
    (``--cpu-map``); ``path_env``: the PATH programs are looked up in (None:
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
        if self.root == "/":
            key: "tuple[object, ...]" = (self.root, id(plan))
            batch = POOL.take(key) or _native.Batch(KVM_DEVICE, specs("/", plan, depends))
        else:
            # Under a root the paths are resolved afresh each time (a link
            # may have changed): a pooled Batch serves only the same paths.
            device, entries = self.under(KVM_DEVICE), specs(self.root, plan, depends)
            key = (self.root, id(plan), device, tuple(entry[0] for entry in entries))
            batch = POOL.take(key) or _native.Batch(device, entries)
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

        root = self.root
        return rounds.fetch(root, None if root == "/" else lambda path: inside(root, path))

    def stat(self, path: str) -> "_os.stat_result | None":
        """``os.stat`` of ``path`` of the probed host, its links followed
        inside the root as a chroot would; None where it cannot be
        stat'ed.  (Emulator discovery: one call per PATH directory on a
        repeated reading, so no crossing into C.)"""
        try:
            return _os.stat(self.under(path))
        except (OSError, ValueError):
            return None

    def search_path(self) -> str:
        """The PATH programs are looked up in on the probed host: the
        recorded one, else this process's; where PATH is unset, glib's
        default, as libvirt takes it."""
        if self.path_env is not None:
            return self.path_env
        found = _os.environ.get("PATH")
        return DEFAULT_PATH if found is None else found

    def find_program(self, name: str) -> "str | None":
        """``name`` looked up as libvirt's virFindFileInPath does: an absolute
        name as is, else in each directory of ``search_path()`` in turn (an
        empty one is the working directory); the first regular file this
        user may run, as the probed host names it, under the root."""
        candidates = [name] if name.startswith("/") else [
            _os.path.join(directory or ".", name) for directory in self.search_path().split(":")]
        for path in candidates:
            real = self.under(path)
            if _os.path.isfile(real) and _os.access(real, _os.X_OK):
                return path if path.startswith("/") else _os.path.abspath(path)
        return None

    def listdir(self, path: str) -> "list[str] | None":
        """The names in the directory ``path`` of the probed host (resolved
        as ``stat`` resolves it); None where it cannot be listed."""
        try:
            # listdir, not scandir: names alone, a quarter faster on a
            # /usr/bin of a thousand entries.
            return _os.listdir(self.under(path))
        except (OSError, ValueError):
            return None

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

    def device_group(self, path: str) -> "str | None":
        """The name of the group of the device node ``path``, as the probed
        host names it (its own /etc/group; the number where it has no
        name); None where the node cannot be looked at."""
        try:
            gid = _os.stat(self.under(path)).st_gid
        except (OSError, ValueError):
            return None
        try:
            with open(self.under("/etc/group"), "rb") as f:
                text = f.read(1 << 20).decode("utf-8", "replace")
        except (OSError, ValueError):
            text = ""
        return _group_name(text, gid)

    def recorded_msr(self) -> "dict[int, int] | None":
        """The MSR values a recording holds (None: read the msr driver)."""
        return None

    def captured(self, part: str) -> bool:
        """Whether this source holds the facts of ``part`` (a recording
        made before the part existed does not: it reads as unknown)."""
        return True

    # -- what domain capabilities ask ----------------------------------------------

    def qmp_transcript(self, emulator: str, converse: "Callable[[str], T]", parse: "Callable[[str], T]") -> "T":
        """``emulator``'s QMP transcript: a fake root runs nothing, it
        answers only from ``qemu/<emulator basename>.replies`` in the root
        (libvirt's .replies format, read by ``parse``); CapsfastError
        where it holds none."""
        import os

        return parse(self._recorded_text(os.path.join(self.root, "qemu", replies_name(emulator)),
                                         "root %s" % self.root, emulator))

    def swtpm_capabilities(self) -> "bytes | None":
        """What ``swtpm_setup --print-capabilities`` printed (b"" where it
        failed); None where swtpm, swtpm_setup and swtpm_ioctl are not all
        in the PATH.  A fake root runs no program: its
        ``swtpm_setup.capabilities`` file, if any."""
        import os

        return _read_optional(os.path.join(self.root, SWTPM_CAPABILITIES))

    @staticmethod
    def _recorded_text(path: str, where: str, emulator: str) -> str:
        import os

        from capsfast.errors import printable

        try:
            with open(path, "rb") as f:
                data = f.read(MAX_REPLIES + 1)
        except FileNotFoundError:
            raise CapsfastError("%s holds no QMP transcript of %s (%s): nothing runs the emulator there"
                                % (printable(where), printable(emulator), printable(os.path.basename(path)))) \
                from None
        except OSError as e:
            raise CapsfastError("%s: %s" % (printable(path), e.strerror), errno=e.errno) from None
        if len(data) > MAX_REPLIES:
            raise CapsfastError("%s: larger than %d bytes" % (printable(path), MAX_REPLIES))
        return data.decode("utf-8", "replace")


# Where a recording (or a fake root) keeps what domain capabilities ask.
QEMU_DIR = "qemu"
SWTPM_CAPABILITIES = "swtpm_setup.capabilities"
MAX_REPLIES = 64 << 20


def replies_name(emulator: str) -> str:
    """``qemu/<this>``: the emulator's base name, as libvirt names its
    test transcripts."""
    import os

    return os.path.basename(emulator) + ".replies"


def _read_optional(path: str) -> "bytes | None":
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return None
