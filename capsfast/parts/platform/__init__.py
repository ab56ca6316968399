"""The platform part of Host: confidential computing (``security``),
device assignment (``iommu``) and the other devices and cgroup controllers
(``devices``) virt-host-validate checks (``read``: the facts through the
source; ``parse``: their values, pure; ``decide``: what they mean, pure).
The first block of /proc/cpuinfo and the CPUID walk come from the source
too."""
from capsfast.constants import MSR_DEVICE, MSR_SYSCFG
from capsfast.sources.base import LIST, MSR, READ, STAT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.sources.base import Entry

SMALL = 4096
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



NAME = "platform"
FIELDS = ("security", "iommu", "devices")
# The files, the listed directories' entries, the device nodes' access.
CAPTURE: "dict[str, object]" = {
    "files": [list(entry) for entry in ENTRIES],
    "depends": dict(DEPENDS),
    "list_dirs": list(LISTED),
    "access": list(ACCESS),
}
# Without its facts (an older recording) each verdict is decided on
# unreadable facts: unknown, with the reason.
UNKNOWN = None
