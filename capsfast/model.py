"""Immutable value classes for what a probe found.

Each record is declared once, below, as a class whose annotated fields a
type checker reads as a ``typing.NamedTuple``.  At run time the same class
statement builds a lighter tuple subclass (``_RecordType``): importing
``typing``, ``dataclasses`` or ``collections`` costs 7-15 ms on a VM, more
than the probe itself, and pulls in ``re`` and ``inspect``; the
annotations stay unevaluated strings.  Equality, hashing and pickling come
from tuple; ``as_dict()`` gives plain data (lazy fields resolved) that
``json.dumps`` accepts.
"""
# The C module behind operator: operator.py itself, all Python fallbacks,
# costs about 0.3 ms to import and adds nothing used here.
from _operator import itemgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any, Generic, Literal, NamedTuple as Record, TypeVar

    _T = TypeVar("_T")

    # The values a text field or argument can take, for a checker: a
    # misspelt format or VMM name fails there.  Type-checking names only:
    # import them under ``if TYPE_CHECKING:``.
    Format = Literal["libvirt", "draft", "json"]
    VmmName = Literal["firecracker", "cloud-hypervisor", "qemu", "kata"]
    HvmStatus = Literal["enabled", "disabled_by_firmware", "not_exposed", "unsupported", "unknown"]
    TechStatus = Literal["enabled", "disabled_by_firmware", "disabled_in_kernel", "not_exposed", "unsupported",
                         "unknown"]
    IommuStatus = Literal["enabled", "disabled_in_kernel", "absent", "unknown"]
    Confidence = Literal["certain", "likely", "unknown"]
    BiosSetting = Literal["enabled", "disabled"]
    CpuSource = Literal["cpuid", "dump", "cpuinfo", "none"]
    XenRole = Literal["dom0", "domU"]
    CgroupVersion = Literal["v1", "v2", "hybrid"]
else:
    # Lazy's base ``Generic[_T]`` is the checker's; at run time that
    # subscript is this lookup, and the base is plain object.
    _T = None
    Generic = {_T: object}


class Lazy(Generic[_T]):
    """A field value computed on first read, then kept.

    ``Host.guests`` is one: finding emulators lists the PATH directories,
    which a caller asking only whether KVM works should not pay for.  It
    compares, hashes and prints as its value."""

    __slots__ = ("_compute", "_value")

    _value: "_T"  # set before _compute is cleared

    def __init__(self, compute: "Callable[[], _T]") -> None:
        self._compute: Callable[[], _T] | None = compute

    @property
    def pending(self) -> bool:
        """True until the value has been computed."""
        return self._compute is not None

    def get(self) -> "_T":
        compute = self._compute
        if compute is not None:
            # Two threads may both compute; both get equal values.
            self._value = compute()
            self._compute = None
        return self._value

    def __eq__(self, other: object) -> bool:
        return bool(self.get() == (other.get() if isinstance(other, Lazy) else other))

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.get())

    def __repr__(self) -> str:
        return repr(self.get())


def _plain(value: object) -> object:
    """``value`` as data ``json.dumps`` accepts: records become dicts,
    tuples lists, dict keys strings."""
    if isinstance(value, tuple):
        as_dict = getattr(value, "as_dict", None)
        if as_dict is not None:
            return as_dict()
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _as_dict(record: "tuple[object, ...]") -> "dict[str, Any]":
    """A record's fields by name, as plain data (lazy fields resolved)."""
    fields: tuple[str, ...] = getattr(record, "_fields")
    return {f: _plain(getattr(record, f)) for f in fields}


def _lazy_getter(index: int) -> "Callable[[tuple[object, ...]], object]":
    def get(self: "tuple[object, ...]") -> object:
        value = tuple.__getitem__(self, index)
        return value.get() if isinstance(value, Lazy) else value

    return get


# What every record shares, set on ``Record`` at run time (the checker has
# NamedTuple's own).

def _fields_of(record: "tuple[object, ...]") -> "tuple[str, ...]":
    fields: tuple[str, ...] = getattr(record, "_fields")
    return fields


def _repr(self: "tuple[object, ...]") -> str:
    return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (f, getattr(self, f)) for f in _fields_of(self)))


def _replace(self: "tuple[object, ...]", **changes: object) -> "tuple[object, ...]":
    record: Any = type(self)  # a record class: its __new__ takes the fields
    replaced: tuple[object, ...] = record(*[changes.pop(f, v) for f, v in zip(_fields_of(self), self)], **changes)
    return replaced


def _getnewargs(self: "tuple[object, ...]") -> "tuple[object, ...]":
    return tuple(getattr(self, f) for f in _fields_of(self))


# The field properties, one per position, shared by every record.
_FIELDS_AT: "list[property]" = []


class _RecordType(type):
    """Makes each ``class X(Record)`` statement a tuple subclass whose items
    are reachable by field name: the annotated names, in order."""

    def __new__(mcs, name: str, bases: "tuple[type, ...]", namespace: "dict[str, Any]") -> "_RecordType":
        if bases == (tuple,):  # Record itself
            return type.__new__(mcs, name, bases, namespace)
        fields = tuple(namespace["__annotations__"])
        # Every field by name, as the probe builds them: one C-level lookup.
        by_name: Callable[[dict[str, object]], tuple[object, ...]] = \
            itemgetter(*fields) if len(fields) > 1 else (lambda kw: (kw[fields[0]],))

        def __new__(cls: type, *args: object, **kwargs: object) -> "tuple[object, ...]":
            if kwargs and not args and len(kwargs) == len(fields):
                try:
                    return tuple.__new__(cls, by_name(kwargs))
                except KeyError:
                    pass  # a misspelt field: the path below names it
            values = list(args)
            if kwargs:
                values += [None] * (len(fields) - len(args))
                for key, value in kwargs.items():
                    try:
                        values[fields.index(key)] = value
                    except ValueError:
                        raise TypeError("%s has no field %r" % (name, key)) from None
            if len(values) != len(fields):
                raise TypeError("%s takes %d fields, got %d" % (name, len(fields), len(values)))
            return tuple.__new__(cls, values)

        # The class statement's own namespace (fresh for each statement);
        # its __annotations__ stay, as strings, for run-time introspection.
        while len(_FIELDS_AT) < len(fields):
            _FIELDS_AT.append(property(itemgetter(len(_FIELDS_AT)), doc="field %d" % len(_FIELDS_AT)))
        namespace.update(zip(fields, _FIELDS_AT))
        namespace.update(__slots__=(), _fields=fields, __new__=__new__)
        return type.__new__(mcs, name, bases, namespace)


if not TYPE_CHECKING:
    class Record(tuple, metaclass=_RecordType):
        """The base of every record (``typing.NamedTuple`` for the checker)."""

        __slots__ = ()
        _lazy = ()
        __repr__ = _repr
        _replace = _replace
        __getnewargs__ = _getnewargs


def _lazy_fields(record: type, names: "tuple[str, ...]") -> None:
    """Let ``record``'s fields ``names`` hold a ``Lazy``, resolved when read."""
    fields: tuple[str, ...] = getattr(record, "_fields")
    for name in names:
        setattr(record, name, property(_lazy_getter(fields.index(name)), doc="field %d" % fields.index(name)))
    setattr(record, "_lazy", names)


class Cpu(Record):
    """The CPU as CPUID (or a dump, or /proc/cpuinfo) shows it.

    ``features`` is a sorted tuple of names; ``source`` is ``cpuid``, ``dump``,
    ``cpuinfo`` or ``none``."""

    vendor: "str | None"
    family: "int | None"
    model: "int | None"
    stepping: "int | None"
    features: "tuple[str, ...]"
    source: "CpuSource"
    max_leaf: "int | None"
    max_ext_leaf: "int | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Hypervisor(Record):
    """The hypervisor this OS runs under: a short name and the raw CPUID
    signature, both None without the hypervisor bit."""

    vendor: "str | None"
    signature: "str | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Kvm(Record):
    """/dev/kvm as this process sees it.

    ``usable``: a character device, read-write accessible, opens, API version
    12 (and with ``deep``, ``KVM_CREATE_VM`` worked).  ``create_vm`` is None
    unless ``deep``.  ``failure`` is the first failing step as a stable code
    (see ``KVM_FAILURES`` in ``capsfast.parts.core.decide``), ``error`` the same for
    people, with the system's reason; both None when usable.  ``mode``: the
    permission bits of the character device (None for anything else);
    ``group``: the name of its group, looked up only where this process may
    not open it (``not_accessible``), else None."""

    exists: "bool"
    char_device: "bool"
    accessible: "bool"
    usable: "bool"
    api_version: "int | None"
    modules: "tuple[str, ...]"
    nested: "bool | None"
    create_vm: "bool | None"
    failure: "str | None"
    error: "str | None"
    mode: "int | None"
    group: "str | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Kqemu(Record):
    """/dev/kqemu, the historical QEMU accelerator."""

    exists: "bool"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Xen(Record):
    """Xen as /proc/xen and /sys/hypervisor show it; ``role`` is ``dom0``,
    ``domU`` or None; ``capabilities`` the hypervisor's tokens."""

    present: "bool"
    role: "XenRole | None"
    hypervisor_type: "str | None"
    capabilities: "tuple[str, ...]"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Hvm(Record):
    """The hardware virtualization verdict: ``type`` vmx, svm or None;
    ``status`` enabled, disabled_by_firmware, not_exposed, unsupported or
    unknown; ``confidence`` certain, likely or unknown; ``bios_setting``
    enabled, disabled or None; ``evidence`` the codes of the facts that
    decided it (README, "The verdict")."""

    type: "Literal['vmx', 'svm'] | None"
    status: "HvmStatus"
    confidence: "Confidence"
    bios_setting: "BiosSetting | None"
    evidence: "tuple[str, ...]"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Guest(Record):
    """One guest kind the host can run: os type and arch, with its domain
    types and the features libvirt would print for it."""

    os_type: "str"
    arch: "str"
    wordsize: "int"
    emulator: "str | None"
    domains: "tuple[str, ...]"
    features: "tuple[str, ...]"
    loader: "str | None"
    machines: "tuple[Machine, ...] | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Machine(Record):
    """One machine type of an emulator: its name, the machine it is an
    alias of (or None), and whether QEMU marks it deprecated."""

    name: "str"
    canonical: "str | None"
    deprecated: "bool"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class CellPages(Record):
    """One page size of a NUMA cell and how many pages of it the cell holds
    (huge pages: the pool; the base size: the cell's memory outside it)."""

    size_kib: "int"
    number: "int"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class CellDistance(Record):
    """The distance from a NUMA cell to cell ``id`` (10 is local)."""

    id: "int"
    value: "int"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class CellCpu(Record):
    """One CPU of a NUMA cell: its socket, die and core, and the CPU ids of
    its thread siblings (itself included), ascending."""

    id: "int"
    socket_id: "int"
    die_id: "int"
    core_id: "int"
    siblings: "tuple[int, ...]"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class NumaCell(Record):
    """One NUMA cell as libvirt lists it: ``memory_kib`` None where unread,
    ``pages`` CellPages by size, ``distances`` CellDistance, ``cpus``
    CellCpu by id."""

    id: "int"
    memory_kib: "int | None"
    pages: "tuple[CellPages, ...]"
    distances: "tuple[CellDistance, ...]"
    cpus: "tuple[CellCpu, ...]"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Topology(Record):
    """The host CPU topology as libvirt reckons it: ``sockets``, ``dies``,
    ``cores``, ``threads`` (each None where libvirt's count fails; its
    fallback when their product is not the CPU count included), and the
    NUMA ``cells`` (None where they cannot be read)."""

    sockets: "int | None"
    dies: "int | None"
    cores: "int | None"
    threads: "int | None"
    cells: "tuple[NumaCell, ...] | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class CacheBank(Record):
    """One CPU cache bank (level 3 and up, as libvirt lists them): ``type``
    ``both``, ``code`` or ``data``; ``cpus`` the ids sharing it."""

    id: "int"
    level: "int"
    type: "str"
    size_bytes: "int"
    cpus: "tuple[int, ...]"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Tsc(Record):
    """The TSC counter libvirt prints for the host: ``frequency`` in Hz (a
    vCPU's KVM_GET_TSC_KHZ), ``scaling`` ``yes`` or ``no`` (KVM_CAP_TSC_CONTROL)."""

    frequency: "int"
    scaling: "str"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class CpuModel(Record):
    """The host CPU as libvirt names it (``capsfast.cpu_map.x86_decode``): ``name``
    the CPU map's model (None without a CPU map, a CPUID walk, or a fitting
    model), ``vendor`` the map's vendor name, ``features`` the names
    libvirt lists beyond the model, in its order; ``signature``
    (family, model, stepping) or None; ``microcode`` the revision (None
    where unknown or 0); ``maxphysaddr`` the physical address bits (None
    where unknown); ``tsc`` a ``Tsc`` where libvirt would print one, else
    None; ``cpu_map`` the CPU map directory used, or None."""

    name: "str | None"
    vendor: "str | None"
    features: "tuple[str, ...]"
    signature: "tuple[int, int, int] | None"
    microcode: "int | None"
    maxphysaddr: "int | None"
    tsc: "Tsc | None"
    cpu_map: "str | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Host(Record):
    """Everything one probe found.  ``guests`` is found on first read (it
    lists the PATH directories); ``kvm_caps`` too (it opens /dev/kvm and
    asks KVM_CHECK_EXTENSION): ``(name, answer)`` pairs in the order of
    ``capsfast.parts.kvm_caps.KVM_CAPS``, an answer None where its check failed, or
    None where /dev/kvm cannot be opened; ``kernel_flags`` is the tuple of the first
    processor's /proc/cpuinfo flags, or None where they cannot be read (read
    by the probe where CPUID shows vmx or svm, else on first access); ``msr`` holds
    ``(number, value)`` pairs of the MSRs that could be read; ``vmm_modules``
    is read on first access too: ``(name, loaded)`` for the kernel modules
    VMMs want besides KVM's (``capsfast.parts.vmm_modules.VMM_MODULES``), loaded None
    where it cannot be told, or None where a recording did not capture
    them.
    Read from sysfs on first access, all together (``capsfast.parts.topology.read``):
    ``topology`` (a Topology), ``cache`` (CacheBank tuple), ``pages`` (the
    page sizes in KiB), ``uuid`` (the DMI product UUID, else /etc/machine-id
    as a UUID), ``iommu_groups`` (whether the kernel lists an IOMMU group);
    each None where it cannot be read.  ``security``, ``iommu`` and
    ``devices`` (confidential computing, device assignment, the other devices
    and cgroup controllers virt-host-validate checks) are read together on
    first read of any of them (``capsfast.parts.platform.read``).  ``cpu_model`` (a
    ``CpuModel``) is decoded on first read."""

    arch: "str"
    cpu: "Cpu"
    hypervisor: "Hypervisor"
    kvm: "Kvm"
    kqemu: "Kqemu"
    xen: "Xen"
    hvm: "Hvm"
    guests: "tuple[Guest, ...]"
    kernel_flags: "tuple[str, ...] | None"
    msr: "tuple[tuple[int, int], ...]"
    kvm_caps: "tuple[tuple[str, int | None], ...] | None"
    vmm_modules: "tuple[tuple[str, bool | None], ...] | None"
    topology: "Topology"
    cache: "tuple[CacheBank, ...] | None"
    pages: "tuple[int, ...] | None"
    uuid: "str | None"
    iommu_groups: "bool | None"
    security: "Security"
    iommu: "Iommu"
    devices: "Devices"
    cpu_model: "CpuModel"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)




# The fields a probe may fill with a Lazy: the dear parts, read on first access.
_lazy_fields(Host, ("guests", "kernel_flags", "kvm_caps", "vmm_modules", "topology", "cache", "pages", "uuid",
                    "iommu_groups", "security", "iommu", "devices", "cpu_model"))


class Tech(Record):
    """One confidential-computing technology's verdict (``capsfast.parts.platform.decide``):
    ``status`` enabled, disabled_by_firmware, disabled_in_kernel,
    not_exposed, unsupported or unknown; ``confidence`` certain, likely or
    unknown; ``evidence`` the codes of the facts that decided it; ``hint``
    what to do (None when enabled and nothing is missing)."""

    status: "TechStatus"
    confidence: "Confidence"
    evidence: "tuple[str, ...]"
    hint: "str | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Sev(Record):
    """AMD SEV's verdict, as ``Tech``, with what CPUID 0x8000001F tells (None
    without it): the C-bit position, the physical address bits lost, and
    the SEV and SEV-ES guests the ASIDs allow, as libvirt computes them."""

    status: "TechStatus"
    confidence: "Confidence"
    evidence: "tuple[str, ...]"
    hint: "str | None"
    cbitpos: "int | None"
    reduced_phys_bits: "int | None"
    max_guests: "int | None"
    max_es_guests: "int | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Sgx(Record):
    """Intel SGX's verdict, as ``Tech``, with CPUID leaves 7 and 0x12 (None
    without them): SGX1, SGX2, flexible launch control, and the EPC
    sections as ``(base, size)`` byte pairs."""

    status: "TechStatus"
    confidence: "Confidence"
    evidence: "tuple[str, ...]"
    hint: "str | None"
    sgx1: "bool | None"
    sgx2: "bool | None"
    flc: "bool | None"
    epc: "tuple[tuple[int, int], ...] | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Security(Record):
    """The confidential-computing verdicts: ``sev`` a ``Sev``, ``sgx`` an
    ``Sgx``, the others ``Tech``."""

    sev: "Sev"
    sev_es: "Tech"
    sev_snp: "Tech"
    tdx: "Tech"
    sgx: "Sgx"
    s390_pv: "Tech"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Iommu(Record):
    """Device assignment: ``status`` enabled (IOMMU groups populated),
    disabled_in_kernel (a firmware table, no groups), absent or unknown;
    ``groups`` the number of IOMMU groups (None where unreadable);
    ``acpi_table`` DMAR, IVRS or IORT (or None); ``units`` the names under
    /sys/class/iommu; ``kernel_args`` the IOMMU arguments on the kernel
    command line; ``vfio`` and ``iommufd`` whether /dev/vfio/vfio and
    /dev/iommu exist (None: cannot be told)."""

    status: "IommuStatus"
    confidence: "Confidence"
    evidence: "tuple[str, ...]"
    hint: "str | None"
    groups: "int | None"
    acpi_table: "str | None"
    units: "tuple[str, ...]"
    kernel_args: "tuple[str, ...]"
    vfio: "bool | None"
    iommufd: "bool | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Devices(Record):
    """The other things virt-host-validate checks: whether /dev/vhost-net,
    /dev/net/tun and /dev/vhost-vsock exist and POWER's kvm_hv module is
    loaded (None: cannot be told); the cgroup layout (``v1``,
    ``v2``, ``hybrid`` or None); ``(controller, available)`` pairs for
    memory, cpu, cpuacct, cpuset, devices and blkio, available None where
    it cannot be told."""

    vhost_net: "bool | None"
    tun: "bool | None"
    vhost_vsock: "bool | None"
    kvm_hv: "bool | None"
    cgroup_version: "CgroupVersion | None"
    cgroup_controllers: "tuple[tuple[str, bool | None], ...]"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


class Requirement(Record):
    """One requirement of a VMM on a host (``capsfast.readiness``): its name
    (``kvm``, ``cpu.vmx-or-svm``, ``KVM_CAP_...``, ``arch``), whether it is
    met, what was found, and (when not met) what to do.  It tests true
    exactly when met (``ok``)."""

    name: "str"
    ok: "bool"
    detail: "str"
    hint: "str | None"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)

    def __bool__(self) -> bool:
        return self.ok


class Readiness(Record):
    """A VMM's verdict for a host (``capsfast.ready``): ``ok`` when every
    requirement is met; ``requirements`` all of them in profile order,
    ``failed`` those not met.  It tests true exactly when the VMM can run
    (``ok``): ``if capsfast.ready("kata"):``."""

    vmm: "VmmName"
    title: "str"
    ok: "bool"
    failed: "tuple[Requirement, ...]"
    requirements: "tuple[Requirement, ...]"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)

    def __bool__(self) -> bool:
        return self.ok


class Capabilities(Record):
    """What a libvirt capabilities document says (``capsfast.libvirt_xml``):
    the host arch, the host ``<features>`` names, and the guests as
    ``Guest`` values."""

    arch: "str | None"
    host_features: "tuple[str, ...]"
    guests: "tuple[Guest, ...]"

    def as_dict(self) -> "dict[str, Any]":
        return _as_dict(self)


# The Host fields the XML renderings never show: lazy parts that a
# comparison would otherwise read.
_NOT_IN_XML = frozenset(("kernel_flags", "kvm_caps", "vmm_modules", "security", "iommu", "devices"))
_XML_FIELDS = itemgetter(*[i for i, f in enumerate(Host._fields) if f not in _NOT_IN_XML])
_HOST_GUESTS = Host._fields.index("guests")
_HOST_KVM_CAPS = Host._fields.index("kvm_caps")
_HOST_KERNEL_FLAGS = Host._fields.index("kernel_flags")
_HOST_CPU_MODEL = Host._fields.index("cpu_model")


def same_for_xml(a: "Host", b: "Host") -> bool:
    """Whether Hosts ``a`` and ``b`` render the same XML: equal in every
    field but those the XML formats do not show (left unread)."""
    return bool(_XML_FIELDS(a) == _XML_FIELDS(b))


def resolve(host: "Host", skip: "Collection[str]" = ()) -> "Host":
    """Read every lazy part of ``host`` now (before the files of a temporary
    recording go away), but those named in ``skip``, which from now on
    raise CapsfastError when read (their files are gone); returns ``host``."""
    for name in getattr(host, "_lazy"):
        if name not in skip:
            getattr(host, name)
            continue
        value = tuple.__getitem__(host, Host._fields.index(name))
        if isinstance(value, Lazy) and value.pending:
            value._compute = _gone(name)
    return host


def _gone(name: str) -> "Callable[[], object]":
    def fail() -> object:
        from capsfast.errors import CapsfastError

        raise CapsfastError("%s was not read before its temporary recording was removed" % name)

    return fail


def _pending(host: "Host", index: int) -> bool:
    value = tuple.__getitem__(host, index)
    return isinstance(value, Lazy) and value.pending


def guests_pending(host: "Host") -> bool:
    """True while ``host.guests`` has not been read (nothing listed yet)."""
    return _pending(host, _HOST_GUESTS)


def kvm_caps_pending(host: "Host") -> bool:
    """True while ``host.kvm_caps`` has not been read (/dev/kvm not asked)."""
    return _pending(host, _HOST_KVM_CAPS)


def kernel_flags_pending(host: "Host") -> bool:
    """True while ``host.kernel_flags`` waits for its first read (the probe
    did not need them)."""
    return _pending(host, _HOST_KERNEL_FLAGS)


def cpu_model_pending(host: "Host") -> bool:
    """True while ``host.cpu_model`` has not been read (nothing decoded)."""
    return _pending(host, _HOST_CPU_MODEL)
