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
the map is read and decoded again (``capsfast.parts.cpu_model.cache``).  A
corrupt or foreign cache file is a miss too; ``CAPSFAST_CACHE=off`` turns
the cache off (``capsfast.sources.cache``: what every cache shares).
/proc/cpuinfo's values are ``capsfast.parts.cpu_model.parse``'s, the
CpuModel a decode gives ``capsfast.parts.cpu_model.decide``'s.
"""
import os

from capsfast.constants import X86_ARCHS
from capsfast.model import CpuModel
from capsfast.parts.cpu_model import cache as model_cache
from capsfast.parts.cpu_model import decide
from capsfast.parts.cpu_model.parse import cpuinfo_facts
from capsfast.sources import cache
from capsfast.sources.base import DEFAULT_CPU_MAP, under
# Where the CPU map is found: shared with the QMP transcript cache, so it
# lives below the parts.
from capsfast.sources.base import ENV_CPU_MAP as ENV_CPU_MAP, map_directory as map_directory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from capsfast.model import Host, Tsc
    from capsfast.sources.base import Source

    Walk = Mapping[tuple[int, int], tuple[int, int, int, int]]
    # (MSR value or None, Tsc or None) for (MSR wanted, TSC wanted)
    DeviceReader = Callable[[bool, bool], "tuple[int | None, Tsc | None]"]


def map_present(directory: str) -> bool:
    """Whether ``directory`` holds a CPU map at all (its index.xml exists):
    one stat, for ``capsfast check``'s note."""
    return os.path.exists(os.path.join(directory, "index.xml"))


def no_device(want_msr: bool, want_tsc: bool) -> "tuple[int | None, Tsc | None]":
    """A DeviceReader for a CPU with no device to ask (a dump, a fake root)."""
    return None, None


# -- the decode -------------------------------------------------------------------

def decode_host(walk: "Walk | None", read_device: "DeviceReader", directory: str, root: "str | None",
                cpuinfo: str, use_cache: bool = True) -> CpuModel:
    """The CpuModel of a CPUID walk (None: no CPUID) with the device values
    ``read_device`` gives and the CPU map in ``directory`` (None of it when
    there is no map there; CapsfastError for a map that is there but bad)."""
    microcode, bits = cpuinfo_facts(cpuinfo)
    if not walk or (0, 0) not in walk or not map_present(directory):
        return decide.no_model(microcode, bits)
    cache_path = model_cache.path(directory) if use_cache and cache.enabled() else None
    entry = model_cache.load(cache_path, directory, walk) if cache_path is not None else None
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
        entry = model_cache.Entry(wants_msr, msr, wants_tsc, decoded.model, decoded.vendor, decoded.features)
        if cache_path is not None:
            model_cache.save(cache_path, directory, walk, loaded.files, loaded.features, entry)
    return decide.host_model(walk, entry.model, entry.vendor, entry.features, microcode, bits, tsc, directory)


def read(source: "Source", arch: str) -> CpuModel:
    """``Host.cpu_model`` of the host ``source`` reads: its CPUID walk, the
    MSR and TSC its device tells, its first /proc/cpuinfo block, and its
    CPU map (an overlay, else the host's own).  libvirt decodes x86 CPUs
    only."""
    if arch not in X86_ARCHS:
        return decide.no_model(None, None)
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
