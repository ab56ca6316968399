# Type checkers' view of capsfast.model: the records as NamedTuple classes.
# At run time they are lighter tuple subclasses (see model.py); the fields,
# their order and as_dict() are the same (tests/test_types.py checks it).
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, Optional, TypeVar

_T = TypeVar("_T")

class Lazy(Generic[_T]):
    def __init__(self, compute: Callable[[], _T]) -> None: ...
    @property
    def pending(self) -> bool: ...
    def get(self) -> _T: ...

class Cpu(NamedTuple):
    vendor: Optional[str]
    family: Optional[int]
    model: Optional[int]
    stepping: Optional[int]
    features: tuple[str, ...]
    source: str
    max_leaf: Optional[int]
    max_ext_leaf: Optional[int]
    def as_dict(self) -> dict[str, Any]: ...

class Hypervisor(NamedTuple):
    vendor: Optional[str]
    signature: Optional[str]
    def as_dict(self) -> dict[str, Any]: ...

class Kvm(NamedTuple):
    exists: bool
    char_device: bool
    accessible: bool
    usable: bool
    api_version: Optional[int]
    modules: tuple[str, ...]
    nested: Optional[bool]
    create_vm: Optional[bool]
    failure: Optional[str]
    error: Optional[str]
    def as_dict(self) -> dict[str, Any]: ...

class Kqemu(NamedTuple):
    exists: bool
    def as_dict(self) -> dict[str, Any]: ...

class Xen(NamedTuple):
    present: bool
    role: Optional[str]
    hypervisor_type: Optional[str]
    capabilities: tuple[str, ...]
    def as_dict(self) -> dict[str, Any]: ...

class Hvm(NamedTuple):
    type: Optional[str]
    status: str
    confidence: str
    bios_setting: Optional[str]
    evidence: tuple[str, ...]
    def as_dict(self) -> dict[str, Any]: ...

class Machine(NamedTuple):
    name: str
    canonical: Optional[str]
    deprecated: bool
    def as_dict(self) -> dict[str, Any]: ...

class Guest(NamedTuple):
    os_type: str
    arch: str
    wordsize: int
    emulator: Optional[str]
    domains: tuple[str, ...]
    features: tuple[str, ...]
    loader: Optional[str]
    machines: Optional[tuple[Machine, ...]]
    def as_dict(self) -> dict[str, Any]: ...

class CellPages(NamedTuple):
    size_kib: int
    number: int
    def as_dict(self) -> dict[str, Any]: ...

class CellDistance(NamedTuple):
    id: int
    value: int
    def as_dict(self) -> dict[str, Any]: ...

class CellCpu(NamedTuple):
    id: int
    socket_id: int
    die_id: int
    core_id: int
    siblings: tuple[int, ...]
    def as_dict(self) -> dict[str, Any]: ...

class NumaCell(NamedTuple):
    id: int
    memory_kib: Optional[int]
    pages: tuple[CellPages, ...]
    distances: tuple[CellDistance, ...]
    cpus: tuple[CellCpu, ...]
    def as_dict(self) -> dict[str, Any]: ...

class Topology(NamedTuple):
    sockets: Optional[int]
    dies: Optional[int]
    cores: Optional[int]
    threads: Optional[int]
    cells: Optional[tuple[NumaCell, ...]]
    def as_dict(self) -> dict[str, Any]: ...

class CacheBank(NamedTuple):
    id: int
    level: int
    type: str
    size_bytes: int
    cpus: tuple[int, ...]
    def as_dict(self) -> dict[str, Any]: ...

class Tsc(NamedTuple):
    frequency: int
    scaling: str
    def as_dict(self) -> dict[str, Any]: ...

class CpuModel(NamedTuple):
    name: Optional[str]
    vendor: Optional[str]
    features: tuple[str, ...]
    signature: Optional[tuple[int, int, int]]
    microcode: Optional[int]
    maxphysaddr: Optional[int]
    tsc: Optional[Tsc]
    cpu_map: Optional[str]
    def as_dict(self) -> dict[str, Any]: ...

class Host(NamedTuple):
    arch: str
    cpu: Cpu
    hypervisor: Hypervisor
    kvm: Kvm
    kqemu: Kqemu
    xen: Xen
    hvm: Hvm
    # Found on first read (a Lazy at run time, resolved by the property).
    guests: tuple[Guest, ...]
    kernel_flags: Optional[tuple[str, ...]]
    msr: tuple[tuple[int, int], ...]
    # Read on first access (a Lazy at run time): (name, answer) pairs, or
    # None where /dev/kvm cannot be opened.
    kvm_caps: Optional[tuple[tuple[str, Optional[int]], ...]]
    # Read on first access (a Lazy at run time): (module, loaded) for the
    # modules VMMs want (vhost, vhost_net, vhost_vsock); loaded is None where
    # it cannot be told; None where a recording did not capture them.
    vmm_modules: Optional[tuple[tuple[str, Optional[bool]], ...]]
    # Read from sysfs on first access (Lazy at run time; capsfast.parts.topology.decide).
    topology: Topology
    cache: Optional[tuple[CacheBank, ...]]
    pages: Optional[tuple[int, ...]]
    uuid: Optional[str]
    iommu_groups: Optional[bool]
    # Read together on first access of any (Lazy at run time).
    security: Security
    iommu: Iommu
    devices: Devices
    # Decoded on first read (a Lazy at run time).
    cpu_model: CpuModel
    def as_dict(self) -> dict[str, Any]: ...

class Tech(NamedTuple):
    status: str
    confidence: str
    evidence: tuple[str, ...]
    hint: Optional[str]
    def as_dict(self) -> dict[str, Any]: ...

class Sev(NamedTuple):
    status: str
    confidence: str
    evidence: tuple[str, ...]
    hint: Optional[str]
    cbitpos: Optional[int]
    reduced_phys_bits: Optional[int]
    max_guests: Optional[int]
    max_es_guests: Optional[int]
    def as_dict(self) -> dict[str, Any]: ...

class Sgx(NamedTuple):
    status: str
    confidence: str
    evidence: tuple[str, ...]
    hint: Optional[str]
    sgx1: Optional[bool]
    sgx2: Optional[bool]
    flc: Optional[bool]
    epc: Optional[tuple[tuple[int, int], ...]]
    def as_dict(self) -> dict[str, Any]: ...

class Security(NamedTuple):
    sev: Sev
    sev_es: Tech
    sev_snp: Tech
    tdx: Tech
    sgx: Sgx
    s390_pv: Tech
    def as_dict(self) -> dict[str, Any]: ...

class Iommu(NamedTuple):
    status: str
    confidence: str
    evidence: tuple[str, ...]
    hint: Optional[str]
    groups: Optional[int]
    acpi_table: Optional[str]
    units: tuple[str, ...]
    kernel_args: tuple[str, ...]
    vfio: Optional[bool]
    iommufd: Optional[bool]
    def as_dict(self) -> dict[str, Any]: ...

class Devices(NamedTuple):
    vhost_net: Optional[bool]
    tun: Optional[bool]
    vhost_vsock: Optional[bool]
    kvm_hv: Optional[bool]
    cgroup_version: Optional[str]
    cgroup_controllers: tuple[tuple[str, Optional[bool]], ...]
    def as_dict(self) -> dict[str, Any]: ...

class Requirement(NamedTuple):
    name: str
    ok: bool
    detail: str
    hint: Optional[str]
    def as_dict(self) -> dict[str, Any]: ...

class Readiness(NamedTuple):
    vmm: str
    title: str
    ok: bool
    failed: tuple[Requirement, ...]
    requirements: tuple[Requirement, ...]
    def as_dict(self) -> dict[str, Any]: ...

class Capabilities(NamedTuple):
    arch: Optional[str]
    host_features: tuple[str, ...]
    guests: tuple[Guest, ...]
    def as_dict(self) -> dict[str, Any]: ...

def guests_pending(host: Host) -> bool: ...
def kvm_caps_pending(host: Host) -> bool: ...
def kernel_flags_pending(host: Host) -> bool: ...
def same_for_xml(a: Host, b: Host) -> bool: ...
def resolve(host: Host) -> Host: ...
def cpu_model_pending(host: Host) -> bool: ...
