"""Probing the platform part of a Host: confidential computing, device
assignment (the IOMMU), and the other devices and cgroup controllers
virt-host-validate checks.  Never on the default probe path: ``Host``
reads it on first use of ``security``, ``iommu`` or ``devices``.

One crossing into C reads every file of ``ENTRIES``; the two IOMMU
directories are listed once each; CPUID leaves 7, 0x12 and 0x8000001F come
from the full CPUID walk (the live CPU in one crossing, or the dump).  What
the facts mean is ``capsfast.parts.platform.confidential``'s (pure).

An unreadable file is a fact of its own ("unreadable"), never "absent":
a verdict built on it says ``unknown``.
"""
import os

from capsfast import _native
from capsfast.parts.platform import confidential as security
from capsfast._native import LIST, MSR, READ, READ_BLOCK, STAT
from capsfast.constants import MSR_DEVICE, MSR_SYSCFG, X86_ARCHS
from capsfast.parts.core.read import CPUINFO_BLOCK, SMALL, specs, under

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from capsfast.parts.core.cpuid import Registers
    from capsfast.parts.core.read import Entry
    from capsfast.model import Devices, Host, Iommu, Security
    from capsfast.recording.format import Replay

    Walk = dict[tuple[int, int], Registers]

CMDLINE_SIZE = 8192  # COMMAND_LINE_SIZE is 2048 on x86, 4096 on s390 and arm64

# Device nodes whose presence is checked; those a VMM opens are also
# checked for read-write access (ACCESS).
DEVICE_NODES = {
    "dev.sev": "/dev/sev",
    "dev.sgx_enclave": "/dev/sgx_enclave",
    "dev.sgx_provision": "/dev/sgx_provision",
    "dev.sgx_vepc": "/dev/sgx_vepc",
    "dev.vfio": "/dev/vfio/vfio",
    "dev.iommu": "/dev/iommu",
    "dev.vhost_net": "/dev/vhost-net",
    "dev.tun": "/dev/net/tun",
    "dev.vhost_vsock": "/dev/vhost-vsock",
}
ACCESS = ("/dev/sev", "/dev/sgx_vepc", "/dev/vfio/vfio", "/dev/vhost-net", "/dev/net/tun")

PARAMETERS = (
    ("kvm_amd", "sev"), ("kvm_amd", "sev_es"), ("kvm_amd", "sev_snp"), ("kvm_intel", "tdx"),
)

ENTRIES: "tuple[Entry, ...]" = (
    ("cpuinfo", "/proc/cpuinfo", READ_BLOCK, 0, CPUINFO_BLOCK),
    ("cmdline", "/proc/cmdline", READ, 0, CMDLINE_SIZE),
    ("module.kvm_amd", "/sys/module/kvm_amd", STAT, 0, 0),
    ("module.kvm_intel", "/sys/module/kvm_intel", STAT, 0, 0),
    ("module.kvm_hv", "/sys/module/kvm_hv", STAT, 0, 0),  # POWER's KVM for guests at full speed
) + tuple(
    ("param.%s.%s" % (module, name), "/sys/module/%s/parameters/%s" % (module, name), READ, 0, SMALL)
    for module, name in PARAMETERS
) + tuple(
    (key, path, STAT, 0, 0) for key, path in DEVICE_NODES.items()
) + (
    ("misc.capacity", "/sys/fs/cgroup/misc.capacity", READ, 0, SMALL),
    ("uv", "/sys/firmware/uv", STAT, 0, 0),
    ("uv.prot_virt_host", "/sys/firmware/uv/prot_virt_host", READ, 0, SMALL),
    ("msr.syscfg", MSR_DEVICE, MSR, MSR_SYSCFG, 0),
    ("acpi.DMAR", "/sys/firmware/acpi/tables/DMAR", STAT, 0, 0),
    ("acpi.IVRS", "/sys/firmware/acpi/tables/IVRS", STAT, 0, 0),
    ("acpi.IORT", "/sys/firmware/acpi/tables/IORT", STAT, 0, 0),
    ("iommu_groups", "/sys/kernel/iommu_groups", STAT, 0, 0),
    ("class_iommu", "/sys/class/iommu", STAT, 0, 0),
    ("pci_devices", "/sys/bus/pci/devices", STAT, 0, 0),  # s390x: device assignment needs PCI devices online
    ("proc_cgroups", "/proc/cgroups", READ, 0, SMALL),
    ("cgroup2", "/sys/fs/cgroup/cgroup.controllers", READ, 0, SMALL),
    ("cgroup2.unified", "/sys/fs/cgroup/unified/cgroup.controllers", READ, 0, SMALL),
)
DEPENDS = {
    "param.kvm_amd.sev": "module.kvm_amd",
    "param.kvm_amd.sev_es": "module.kvm_amd",
    "param.kvm_amd.sev_snp": "module.kvm_amd",
    "param.kvm_intel.tdx": "module.kvm_intel",
    "uv.prot_virt_host": "uv",
}
# Directories whose entries are counted (iommu_groups) or named (class/iommu).
LISTED = ("/sys/kernel/iommu_groups", "/sys/class/iommu", "/sys/bus/pci/devices")
_LISTED_BY_KEY = {"iommu_groups": LISTED[0], "class_iommu": LISTED[1], "pci_devices": LISTED[2]}
# ... listed in the same crossing as the files (a recording copies them as
# directories instead: see capsfast.recording.format).  A group name is at most 5
# bytes: 64 KiB holds over 10,000 groups.
LISTINGS: "tuple[Entry, ...]" = (
    ("list.iommu_groups", LISTED[0], LIST, 0, 65536),
    ("list.class_iommu", LISTED[1], LIST, 0, 16384),
    ("list.pci_devices", LISTED[2], LIST, 0, 65536),
)

# The CPUID leaves read: (leaf, subleaf) in the walk.
LEAF_SEV = 0x8000001F
LEAF_SGX = 0x12


def plan(root: str) -> "list[_native.FileSpec]":
    """ENTRIES and LISTINGS as the crossing's file entries under ``root``."""
    rows = ENTRIES + LISTINGS
    index = {row[0]: i for i, row in enumerate(rows)}
    return [(spec[0], spec[1], spec[2], spec[3], index.get(DEPENDS.get(row[0], "")))
            for spec, row in zip(specs(root, rows), rows)]


def _file(result: "_native.FileResult") -> "security.FileFact":
    code = result.outcome.code
    if code == "absent":
        return security.ABSENT
    if code != "ok":
        return ("unreadable", None)
    if result.truncated:
        return ("truncated", result.data)
    return ("ok", result.data)


def _names(result: "_native.FileResult") -> "list[str] | None":
    """A LIST result's names (sorted, dot files left out), [] for an absent
    directory, None for one that could not be read."""
    code = result.outcome.code
    if code == "absent":
        return []
    if code != "ok" or result.data is None:
        return None
    names = result.data.decode("utf-8", "surrogateescape").split("\0")
    return sorted(name for name in names if name and not name.startswith("."))


def list_dir(path: str) -> "list[str] | None":
    """The names in directory ``path`` (sorted; dot files, such as a
    recording's ``.present`` marker, left out), [] where it is absent, None
    where it cannot be read."""
    try:
        return sorted(name for name in os.listdir(path) if not name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError:
        return None


def access_of(path: str) -> "bool | None":
    """Read-write access for this process, by its effective ids (as a VMM's
    open() is decided); None where it cannot be asked."""
    try:
        return os.access(path, os.R_OK | os.W_OK, effective_ids=os.access in os.supports_effective_ids)
    except (OSError, ValueError):
        return None


def gather(root: str, walk: "Callable[[], Walk | None]", replay: "Replay | None" = None) -> "security.Facts":
    """The raw facts under ``root`` (one crossing for the files), the
    CPUID walk from ``walk()``; a recording's MSR and device access facts
    stand for what no file can hold."""
    if replay is not None and "platform" not in replay.captured:
        # A recording that did not capture these files (an older capsfast's,
        # or a hand-made tree without them) cannot tell: unknown, never "no".
        return security.Facts({key: ("unreadable", None) for key, *_ in ENTRIES},
                              {key: None for key, *_ in ENTRIES}, {key: None for key in _LISTED_BY_KEY},
                              {path: None for path in ACCESS}, None, walk())
    results = _native.Batch(None, plan(root)).run()
    files: dict[str, security.FileFact] = {}
    present: dict[str, bool | None] = {}
    msr_value = None
    listed: dict[str, list[str] | None] = {}
    for (key, path, op, _msr, _size), result in zip(ENTRIES + LISTINGS, results.files):
        if op == LIST:
            listed[key[len("list."):]] = _names(result)
        elif op == STAT:
            code = result.outcome.code
            present[key] = True if code == "ok" else False if code == "absent" else None
        elif op == MSR:
            msr_value = result.value
        else:
            files[key] = _file(result)
    rw: dict[str, bool | None] = {}
    if replay is not None:
        msr_value = replay.msr.get(MSR_SYSCFG)
        rw = {path: replay.access.get(path) for path in ACCESS}
    else:
        for path in ACCESS:
            key = next(k for k, p in DEVICE_NODES.items() if p == path)
            rw[path] = access_of(under(root, path)) if present.get(key) and root == "/" else None
    return security.Facts(files, present, listed, rw, msr_value, walk())


def walk_source(root: str, arch: str, dump: "str | None") -> "Callable[[], Walk | None]":
    """Where the CPUID walk comes from: the dump if given, else the live CPU
    for the live root on x86, else nowhere."""
    def from_dump() -> "Walk | None":
        from capsfast.parts.core import cpuid
        from capsfast.errors import CapsfastError

        assert dump is not None
        try:
            with open(dump, "rb") as f:
                text = f.read(1 << 20).decode("utf-8", "replace")
        except OSError as e:
            raise CapsfastError("cannot read CPUID dump %s: %s" % (dump, e.strerror), errno=e.errno) from None
        return cpuid.parse_dump_walk(text, "CPUID dump %s" % dump)

    def live() -> "Walk | None":
        return {(leaf, sub): regs for leaf, sub, regs in _native.cpuid_walk()}

    if dump is not None:
        return from_dump
    if root == "/" and _native.HAS_CPUID and arch in X86_ARCHS:
        return live
    return lambda: None


def read(root: str, arch: str, dump: "str | None", replay: "Replay | None",
         host: "Host") -> "tuple[Security, Iommu, Devices]":
    """The platform part of ``host`` (probed under ``root``): its facts
    gathered and decided; the Host's CPU, hypervisor, MSRs and KVM
    capabilities count too."""
    return security.decide(gather(root, walk_source(root, arch, dump), replay), host)
