"""``Host.cpu_model``: the inputs of libvirt's host CPU decode, read when
first asked for, and the disk cache that makes a second process cheap.

The inputs, as libvirt 9.0's ``virCPUx86GetHost`` gathers them:

- the full CPUID walk (live, from a ``cpuid -r -1`` dump, or a
  recording's ``cpuid.txt``);
- IA32_ARCH_CAPABILITIES (MSR 0x10a), only where CPUID shows the
  arch-capabilities feature: from ``/dev/cpu/0/msr`` when it is already
  readable, else ``KVM_GET_MSRS`` on the KVM device's system fd;
- the TSC counter, only where CPUID shows invariant TSC: a VM and a vCPU
  on the KVM device, ``KVM_GET_TSC_KHZ``, ``KVM_CAP_TSC_CONTROL``;
- ``microcode`` and ``address sizes`` of the first processor in
  ``/proc/cpuinfo``;
- the CPU map: ``cpu_map`` given (``--cpu-map``), else ``$CAPSFAST_CPU_MAP``,
  else the probed host's ``/usr/share/libvirt/cpu_map``.

The device is asked only for the live CPU: a dump or a fake root has no
device of its own, and a recording brings the values it read.

The decoded model is kept in ``$XDG_CACHE_HOME/capsfast`` (as machine
types are), keyed on the CPUID walk, the MSR value and each map file's
identity (name, size, mtime, ctime, inode): any difference is a miss, and
the map is read and decoded again.  A corrupt or foreign cache file is a
miss too; ``CAPSFAST_CACHE=off`` turns the cache off
(``capsfast.sources.cache``: what every cache shares).
"""
import os

from capsfast.constants import X86_ARCHS
from capsfast.model import CpuModel, Tsc
from capsfast.sources import cache
from capsfast.sources.base import DEFAULT_CPU_MAP, under
# Where the CPU map is found, and a walk as cache key text: shared with the
# QMP transcript cache, so they live below the parts.
from capsfast.sources.base import ENV_CPU_MAP as ENV_CPU_MAP, map_directory as map_directory
from capsfast.sources.cache import VOLATILE_CPUID as _VOLATILE, walk_key as _walk_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from capsfast.cpu_map.x86_map import CpuMap
    from capsfast.model import Host
    from capsfast.sources.base import Source

    Walk = Mapping[tuple[int, int], tuple[int, int, int, int]]
    # (MSR value or None, Tsc or None) for (MSR wanted, TSC wanted)
    DeviceReader = Callable[[bool, bool], "tuple[int | None, Tsc | None]"]

CACHE_VERSION = 1
_CACHE_MAGIC = b"capsfast cpu model cache %d" % CACHE_VERSION
_MAX_CACHE = 1 << 20


def map_present(directory: str) -> bool:
    """Whether ``directory`` holds a CPU map at all (its index.xml exists):
    one stat, for ``capsfast check``'s note."""
    return os.path.exists(os.path.join(directory, "index.xml"))


# -- /proc/cpuinfo ----------------------------------------------------------------

def cpuinfo_facts(text: str) -> "tuple[int | None, int | None]":
    """(microcode, physical address bits) as libvirt reads them: the first
    ``microcode`` value (strtoul base 0; 0 means unknown) and the first
    ``address sizes`` number."""
    microcode = bits = None
    at = text.find("microcode")
    if at >= 0:
        colon = text.find(":", at)
        if colon >= 0:
            words = text[colon + 1:].split(None, 1)
            word = words[0] if words else ""
            try:
                value = int(word[2:], 16) if word[:2].lower() == "0x" else int(word, 10)
            except ValueError:
                value = 0
            microcode = value if 0 < value < 1 << 32 else None
    for line in text.splitlines():
        if line.startswith("address sizes"):
            colon = line.find(":")
            digits = line[colon + 1:].lstrip() if colon >= 0 else ""
            end = 0
            while end < len(digits) and digits[end].isdigit():
                end += 1
            if end and int(digits[:end]) < 1 << 32:
                bits = int(digits[:end])
            break
    return microcode, bits




def no_device(want_msr: bool, want_tsc: bool) -> "tuple[int | None, Tsc | None]":
    """A DeviceReader for a CPU with no device to ask (a dump, a fake root)."""
    return None, None


# -- the cache --------------------------------------------------------------------

def cache_dir() -> str:
    return cache.directory()


def _volatile_free(cpu_map: "CpuMap") -> bool:
    """Whether no feature of the map reads a per-CPU bit: only then may the
    key leave them out."""
    for _name, data in cpu_map.features:
        for (kind, leaf, sub), value in data.items():
            if kind != 0:
                continue
            masks = _VOLATILE.get((leaf, sub)) or _VOLATILE.get((leaf, None))
            if masks is None:
                continue
            kept = masks[0] | masks[1] << 32 | masks[2] << 64 | masks[3] << 96
            if value & ~kept:
                return False
    return True


def _identities(directory: str, names: "list[str]") -> "list[str | None]":
    """Each map file's identity (name, size, mtime, ctime, inode), or None
    where it cannot be stat'ed; the names resolved in the directory once."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return [None] * len(names)
    out: list[str | None] = []
    try:
        for name in names:
            try:
                st = os.stat(name, dir_fd=fd)
            except OSError:
                out.append(None)
                continue
            out.append("%s %d %d %d %d" % (name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    finally:
        os.close(fd)
    return out


def _cache_file(directory: str) -> str:
    """One cache file per CPU map directory (its last walk)."""
    return os.path.join(cache.directory(), "cpumodel-%d-%s.txt" % (CACHE_VERSION, cache.file_name(directory)))


class _Entry:
    __slots__ = ("wants_msr", "msr", "wants_tsc", "model", "vendor", "features")

    def __init__(self, wants_msr: bool, msr: "int | None", wants_tsc: bool, model: "str | None",
                 vendor: "str | None", features: "tuple[str, ...]") -> None:
        self.wants_msr = wants_msr
        self.msr = msr
        self.wants_tsc = wants_tsc
        self.model = model
        self.vendor = vendor
        self.features = features


def _load(path: str, directory: str, walk: "Walk") -> "_Entry | None":
    """The cached entry at ``path`` when its map and walk are these and each
    map file is as it was; None otherwise (absent, corrupt, stale)."""
    body = cache.load(path, _CACHE_MAGIC, _map_line(directory), _MAX_CACHE)
    if body is None:
        return None
    try:
        fields: dict[str, str] = {}
        files: list[str] = []
        for line in body.decode("utf-8", "surrogateescape").split("\n"):
            key, _sep, value = line.partition(" ")
            if key == "file":
                files.append(value)
            elif key:
                fields[key] = value
        if not files:
            return None
        if fields.get("walk") != _walk_text(walk, fields.get("stable") == "1"):
            return None
        if _identities(directory, [recorded.split(" ", 1)[0] for recorded in files]) != files:
            return None
        msr = fields["msr"]
        model, vendor = fields["model"], fields["vendor"]
        return _Entry(fields["wants_msr"] == "1", None if msr == "-" else int(msr, 16), fields["wants_tsc"] == "1",
                      None if model == "-" else model, None if vendor == "-" else vendor,
                      tuple(fields["features"].split()))
    except (KeyError, ValueError, IndexError):
        return None


def _map_line(directory: str) -> bytes:
    return ("map " + directory).encode("utf-8", "surrogateescape")


def _save(path: str, directory: str, walk: "Walk", cpu_map: "CpuMap", entry: _Entry) -> None:
    """Write the entry atomically; a read-only home just means no cache."""
    names = ([entry.model or "-", entry.vendor or "-"] + list(entry.features) + [directory]
             + list(cpu_map.files))
    if any(not n or any(c.isspace() for c in n) for n in names[:-len(cpu_map.files) - 1]) or "\n" in directory:
        return  # names a line format cannot hold: decode again next time
    stable = _volatile_free(cpu_map)
    identities = _identities(directory, list(cpu_map.files))
    if any(i is None for i in identities):
        return
    lines = ["file %s" % i for i in identities] + [
        "stable %d" % stable,
        "walk " + _walk_text(walk, stable),
        "wants_msr %d" % entry.wants_msr,
        "msr %s" % ("-" if entry.msr is None else "%x" % entry.msr),
        "wants_tsc %d" % entry.wants_tsc,
        "model " + (entry.model or "-"),
        "vendor " + (entry.vendor or "-"),
        "features " + " ".join(entry.features),
        "",
    ]
    cache.save(path, _CACHE_MAGIC, _map_line(directory), "\n".join(lines).encode("utf-8", "surrogateescape"))


# -- the decode -------------------------------------------------------------------

def _no_model(microcode: "int | None", bits: "int | None") -> CpuModel:
    return CpuModel(None, None, (), None, microcode, bits, None, None)


def decode_host(walk: "Walk | None", read_device: "DeviceReader", directory: str, root: "str | None",
                cpuinfo: str, use_cache: bool = True) -> CpuModel:
    """The CpuModel of a CPUID walk (None: no CPUID) with the device values
    ``read_device`` gives and the CPU map in ``directory`` (None of it when
    there is no map there; CapsfastError for a map that is there but bad)."""
    microcode, bits = cpuinfo_facts(cpuinfo)
    if not walk or (0, 0) not in walk or not map_present(directory):
        return _no_model(microcode, bits)
    cache_path = _cache_file(directory) if use_cache and cache.enabled() else None
    entry = _load(cache_path, directory, walk) if cache_path is not None else None
    if entry is not None:
        msr, tsc = read_device(entry.wants_msr, entry.wants_tsc)
        if msr != entry.msr:
            entry = None  # the MSR is part of the key
    if entry is None:
        from capsfast.cpu_map import x86_map as cpumap
        from capsfast.cpu_map import x86_decode as cpumodel

        loaded = cpumap.load(directory, root)
        data = cpumodel.cpu_data(walk, {})
        wants_msr = cpumodel.has_feature(data, loaded, "arch-capabilities")
        wants_tsc = cpumodel.has_feature(data, loaded, "invtsc")
        msr, tsc = read_device(wants_msr, wants_tsc)
        msrs = {} if msr is None else {cpumodel.ARCH_CAPABILITIES_MSR: msr}
        decoded = cpumodel.decode(cpumodel.cpu_data(walk, msrs), loaded)
        entry = _Entry(wants_msr, msr, wants_tsc, decoded.model, decoded.vendor, decoded.features)
        if cache_path is not None:
            _save(cache_path, directory, walk, loaded, entry)
    eax1 = walk.get((1, 0), (0, 0, 0, 0))[0] & 0x0FFF3FFF
    family = ((eax1 >> 20) & 0xFF) + ((eax1 >> 8) & 0xF)
    signature = (family, ((eax1 >> 12) & 0xF0) + ((eax1 >> 4) & 0xF), eax1 & 0xF) if entry.model else None
    # As libvirt: the counter does not depend on a model being found.
    return CpuModel(entry.model, entry.vendor if entry.model else None, entry.features, signature,
                    microcode, bits, tsc, directory)


def read(source: "Source", arch: str) -> CpuModel:
    """``Host.cpu_model`` of the host ``source`` reads: its CPUID walk, the
    MSR and TSC its device tells, its first /proc/cpuinfo block, and its
    CPU map (an overlay, else the host's own).  libvirt decodes x86 CPUs
    only."""
    if arch not in X86_ARCHS:
        return CpuModel(None, None, (), None, None, None, None, None)
    root = source.root
    directory = map_directory(root, source.cpu_map)
    # The root's own copy must stay inside the root; a map named by the
    # caller is a directory of this machine.
    own = root != "/" and directory == under(root, DEFAULT_CPU_MAP)
    text = (source.cpuinfo_bytes() or b"").decode("utf-8", "replace")
    # A recording's map (kept or temporary) is not this host's: the cache
    # would only fill with entries no later run looks up.
    return decode_host(source.walk(), source.cpu_device, directory, root if own else None, text,
                       use_cache=source.kind != "replay")


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    return {"cpu_model": read(source, host.arch)}


# -- per boot -------------------------------------------------------------------------
# The decoded model, its TSC and MSR included, stays what it is until the
# microcode, the CPU map or the CPU dump changes (the boot and the KVM
# device are the per-boot file's own key): those are this part's key.

def boot_facts(source: "Source", host: "Host") -> "tuple[str, object]":
    """(the key, read before the model is), the model."""
    key = boot_key(source, None)
    return key, read(source, host.arch)


def boot_key(source: "Source", facts: object) -> str:
    from capsfast.sources import boot

    if source.arch not in X86_ARCHS:
        return "not x86"
    directory = map_directory(source.root, source.cpu_map)
    microcode, _bits = cpuinfo_facts((source.cpuinfo_bytes() or b"").decode("utf-8", "replace"))
    dump = "-" if source.dump is None else boot.stamps([source.dump])
    return "microcode %s\ndump %s\nmap %s\n%s" % (microcode, dump, directory, boot.directory_stamps(directory))


def from_boot_facts(source: "Source", host: "Host", facts: object) -> "dict[str, object]":
    if not isinstance(facts, CpuModel):
        raise ValueError("not the cpu_model part's facts")
    return {"cpu_model": facts}
