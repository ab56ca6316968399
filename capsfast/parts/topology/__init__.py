"""The ``topology`` part of Host: CPU topology, NUMA cells, cache banks,
page sizes, the UUID and whether IOMMU groups exist, read from sysfs and
procfs as libvirt reads them (``read``: the rounds of reads; ``parse``:
the files' text to values; ``decide``: libvirt's rules)."""
SYSTEM = "/sys/devices/system"
CPU_DIR = SYSTEM + "/cpu"
NODE_DIR = SYSTEM + "/node"
HUGEPAGES_DIR = "/sys/kernel/mm/hugepages"
IOMMU_GROUPS_DIR = "/sys/kernel/iommu_groups"
# libvirt's getDMISystemUUID() tries these in this order.
DMI_UUID_FILES = ("/sys/devices/virtual/dmi/id/product_uuid", "/sys/class/dmi/id/product_uuid")
MACHINE_ID = "/etc/machine-id"
MEMINFO = "/proc/meminfo"

# What a recording keeps so that a replay reads the same (``capsfast
# record`` and the remote collector expand these globs on the recorded
# host): ("file", pattern) files as read, ("dir", pattern) directories as
# present (their listings are what ``read`` reads).
_CPU = CPU_DIR + "/cpu[0-9]*"
_NODE = NODE_DIR + "/node[0-9]*"
RECORD_GLOBS: "tuple[tuple[str, str], ...]" = (
    ("file", CPU_DIR + "/present"),
    ("file", CPU_DIR + "/online"),
    ("dir", _CPU),
    ("file", _CPU + "/online"),
    ("file", _CPU + "/topology/physical_package_id"),
    ("file", _CPU + "/topology/die_id"),
    ("file", _CPU + "/topology/core_id"),
    ("file", _CPU + "/topology/thread_siblings_list"),
    ("dir", _CPU + "/cache"),
    ("dir", _CPU + "/cache/index[0-9]*"),
    ("file", _CPU + "/cache/index[0-9]*/level"),
) + tuple(("file", _CPU + "/cache/index[0-9]*/" + name) for name in ("id", "type", "size", "shared_cpu_list")) + (
    ("dir", NODE_DIR),
    ("dir", _NODE),
    ("dir", _NODE + "/cpu[0-9]*"),
    ("file", _NODE + "/cpulist"),
    ("file", _NODE + "/distance"),
    ("file", _NODE + "/meminfo"),
    ("dir", _NODE + "/hugepages"),
    ("dir", _NODE + "/hugepages/hugepages-*"),
    ("file", _NODE + "/hugepages/hugepages-*/nr_hugepages"),
    ("file", _NODE + "/hugepages/hugepages-*/free_hugepages"),
    ("dir", HUGEPAGES_DIR),
    ("dir", HUGEPAGES_DIR + "/hugepages-*"),
    ("file", HUGEPAGES_DIR + "/hugepages-*/nr_hugepages"),
    ("file", HUGEPAGES_DIR + "/hugepages-*/free_hugepages"),
    ("dir", IOMMU_GROUPS_DIR),
    ("dir", IOMMU_GROUPS_DIR + "/[0-9]*"),
    ("file", DMI_UUID_FILES[0]),
    ("file", DMI_UUID_FILES[1]),
    ("file", MACHINE_ID),
    ("file", MEMINFO),
)

NAME = "topology"
FIELDS = ("topology", "cache", "pages", "uuid", "iommu_groups")
CAPTURE: "dict[str, object]" = {"globs": [list(row) for row in RECORD_GLOBS]}
UNKNOWN = {"topology": None, "cache": None, "pages": None, "uuid": None, "iommu_groups": None}
