"""Immutable value classes for what a probe found.

Each class is a tuple subclass with named, read-only fields, built by
``_record`` below rather than by dataclasses or typing.NamedTuple: on a VM
those imports cost 7-15 ms, more than the probe itself, and they pull in
``re`` and ``inspect``.  Equality, hashing and pickling come from tuple;
``as_dict()`` gives plain data (lazy fields resolved) that ``json.dumps``
accepts.  Type checkers read ``model.pyi`` beside this file, which declares
the same records as ``NamedTuple`` classes (a test keeps the two equal).
"""
# The C module behind operator: operator.py itself, all Python fallbacks,
# costs about 0.3 ms to import and adds nothing used here.
from _operator import itemgetter


class Lazy:
    """A field value computed on first read, then kept.

    ``Host.guests`` is one: finding emulators lists the PATH directories,
    which a caller asking only whether KVM works should not pay for.  It
    compares, hashes and prints as its value."""

    __slots__ = ("_compute", "_value")

    def __init__(self, compute):
        self._compute = compute
        self._value = None

    @property
    def pending(self):
        """True until the value has been computed."""
        return self._compute is not None

    def get(self):
        compute = self._compute
        if compute is not None:
            # Two threads may both compute; both get equal values.
            self._value = compute()
            self._compute = None
        return self._value

    def __eq__(self, other):
        return self.get() == (other.get() if isinstance(other, Lazy) else other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.get())

    def __repr__(self):
        return repr(self.get())


def _plain(value):
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


def _lazy_field(index):
    def get(self):
        value = tuple.__getitem__(self, index)
        return value.get() if value.__class__ is Lazy else value

    return get


def _record(name, fields, doc, lazy=()):
    """A tuple subclass ``name`` whose items are reachable by field name;
    the ``lazy`` fields may hold a ``Lazy``, resolved when read."""

    # Every field by name, as the probe builds them: one C-level lookup.
    by_name = itemgetter(*fields) if len(fields) > 1 else (lambda kw: (kw[fields[0]],))

    def __new__(cls, *args, **kwargs):
        if kwargs and not args and len(kwargs) == len(fields):
            try:
                return tuple.__new__(cls, by_name(kwargs))
            except KeyError:
                pass  # a misspelt field: the path below names it
        if kwargs:
            values = list(args) + [None] * (len(fields) - len(args))
            for key, value in kwargs.items():
                try:
                    values[fields.index(key)] = value
                except ValueError:
                    raise TypeError("%s has no field %r" % (name, key)) from None
            args = values
        if len(args) != len(fields):
            raise TypeError("%s takes %d fields, got %d" % (name, len(fields), len(args)))
        return tuple.__new__(cls, args)

    def __repr__(self):
        return "%s(%s)" % (name, ", ".join("%s=%r" % (f, getattr(self, f)) for f in fields))

    def _replace(self, **changes):
        return type(self)(*[changes.pop(f, v) for f, v in zip(fields, self)], **changes)

    def __getnewargs__(self):
        return tuple(getattr(self, f) for f in fields)

    def as_dict(self):
        return {f: _plain(getattr(self, f)) for f in fields}

    namespace = {
        "__slots__": (),
        "__doc__": doc,
        "__module__": __name__,
        "_fields": fields,
        "_lazy": tuple(lazy),
        "__new__": __new__,
        "__repr__": __repr__,
        "__getnewargs__": __getnewargs__,
        "_replace": _replace,
        "as_dict": as_dict,
    }
    for index, field in enumerate(fields):
        getter = _lazy_field(index) if field in lazy else itemgetter(index)
        namespace[field] = property(getter, doc="field %d" % index)
    return type(name, (tuple,), namespace)


Cpu = _record(
    "Cpu",
    ("vendor", "family", "model", "stepping", "features", "source", "max_leaf", "max_ext_leaf"),
    """The CPU as CPUID (or a dump, or /proc/cpuinfo) shows it.

    ``features`` is a sorted tuple of names; ``source`` is ``cpuid``, ``dump``,
    ``cpuinfo`` or ``none``.""",
)

Hypervisor = _record(
    "Hypervisor",
    ("vendor", "signature"),
    """The hypervisor this OS runs under: a short name and the raw CPUID
    signature, both None without the hypervisor bit.""",
)

Kvm = _record(
    "Kvm",
    ("exists", "char_device", "accessible", "usable", "api_version", "modules", "nested", "create_vm",
     "failure", "error"),
    """/dev/kvm as this process sees it.

    ``usable``: a character device, read-write accessible, opens, API version
    12 (and with ``deep``, ``KVM_CREATE_VM`` worked).  ``create_vm`` is None
    unless ``deep``.  ``failure`` is the first failing step as a stable code
    (see ``KVM_FAILURES`` in ``capsfast.parts.core.decide``), ``error`` the same for
    people, with the system's reason; both None when usable.""",
)

Kqemu = _record("Kqemu", ("exists",), "/dev/kqemu, the historical QEMU accelerator.")

Xen = _record(
    "Xen",
    ("present", "role", "hypervisor_type", "capabilities"),
    """Xen as /proc/xen and /sys/hypervisor show it; ``role`` is ``dom0``,
    ``domU`` or None; ``capabilities`` the hypervisor's tokens.""",
)

Hvm = _record(
    "Hvm",
    ("type", "status", "confidence", "bios_setting", "evidence"),
    """The hardware virtualization verdict: ``type`` vmx, svm or None;
    ``status`` enabled, disabled_by_firmware, not_exposed, unsupported or
    unknown; ``confidence`` certain, likely or unknown; ``bios_setting``
    enabled, disabled or None; ``evidence`` the codes of the facts that
    decided it (README, "The verdict").""",
)

Guest = _record(
    "Guest",
    ("os_type", "arch", "wordsize", "emulator", "domains", "features", "loader", "machines"),
    """One guest kind the host can run: os type and arch, with its domain
    types and the features libvirt would print for it.""",
)

Machine = _record(
    "Machine",
    ("name", "canonical", "deprecated"),
    """One machine type of an emulator: its name, the machine it is an
    alias of (or None), and whether QEMU marks it deprecated.""",
)

CellPages = _record(
    "CellPages",
    ("size_kib", "number"),
    """One page size of a NUMA cell and how many pages of it the cell holds
    (huge pages: the pool; the base size: the cell's memory outside it).""",
)

CellDistance = _record(
    "CellDistance",
    ("id", "value"),
    """The distance from a NUMA cell to cell ``id`` (10 is local).""",
)

CellCpu = _record(
    "CellCpu",
    ("id", "socket_id", "die_id", "core_id", "siblings"),
    """One CPU of a NUMA cell: its socket, die and core, and the CPU ids of
    its thread siblings (itself included), ascending.""",
)

NumaCell = _record(
    "NumaCell",
    ("id", "memory_kib", "pages", "distances", "cpus"),
    """One NUMA cell as libvirt lists it: ``memory_kib`` None where unread,
    ``pages`` CellPages by size, ``distances`` CellDistance, ``cpus``
    CellCpu by id.""",
)

Topology = _record(
    "Topology",
    ("sockets", "dies", "cores", "threads", "cells"),
    """The host CPU topology as libvirt reckons it: ``sockets``, ``dies``,
    ``cores``, ``threads`` (each None where libvirt's count fails; its
    fallback when their product is not the CPU count included), and the
    NUMA ``cells`` (None where they cannot be read).""",
)

CacheBank = _record(
    "CacheBank",
    ("id", "level", "type", "size_bytes", "cpus"),
    """One CPU cache bank (level 3 and up, as libvirt lists them): ``type``
    ``both``, ``code`` or ``data``; ``cpus`` the ids sharing it.""",
)

Tsc = _record(
    "Tsc",
    ("frequency", "scaling"),
    """The TSC counter libvirt prints for the host: ``frequency`` in Hz (a
    vCPU's KVM_GET_TSC_KHZ), ``scaling`` ``yes`` or ``no`` (KVM_CAP_TSC_CONTROL).""",
)

CpuModel = _record(
    "CpuModel",
    ("name", "vendor", "features", "signature", "microcode", "maxphysaddr", "tsc", "cpu_map"),
    """The host CPU as libvirt names it (``capsfast.cpu_map.x86_decode``): ``name``
    the CPU map's model (None without a CPU map, a CPUID walk, or a fitting
    model), ``vendor`` the map's vendor name, ``features`` the names
    libvirt lists beyond the model, in its order; ``signature``
    (family, model, stepping) or None; ``microcode`` the revision (None
    where unknown or 0); ``maxphysaddr`` the physical address bits (None
    where unknown); ``tsc`` a ``Tsc`` where libvirt would print one, else
    None; ``cpu_map`` the CPU map directory used, or None.""",
)

Host = _record(
    "Host",
    ("arch", "cpu", "hypervisor", "kvm", "kqemu", "xen", "hvm", "guests", "kernel_flags", "msr", "kvm_caps",
     "vmm_modules", "topology", "cache", "pages", "uuid", "iommu_groups", "security", "iommu", "devices",
     "cpu_model"),
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
    Read from sysfs on first access, all together (``capsfast.parts.topology.decide``):
    ``topology`` (a Topology), ``cache`` (CacheBank tuple), ``pages`` (the
    page sizes in KiB), ``uuid`` (the DMI product UUID, else /etc/machine-id
    as a UUID), ``iommu_groups`` (whether the kernel lists an IOMMU group);
    each None where it cannot be read.  ``security``, ``iommu`` and
    ``devices`` (confidential computing, device assignment, the other devices
    and cgroup controllers virt-host-validate checks) are read together on
    first read of any of them (``capsfast.parts.platform.read``).  ``cpu_model`` (a
    ``CpuModel``) is decoded on first read.""",
    lazy=("guests", "kernel_flags", "kvm_caps", "vmm_modules", "topology", "cache", "pages", "uuid",
          "iommu_groups", "security", "iommu", "devices", "cpu_model"),
)
_HOST_GUESTS = Host._fields.index("guests")
_HOST_KVM_CAPS = Host._fields.index("kvm_caps")
_HOST_KERNEL_FLAGS = Host._fields.index("kernel_flags")
_HOST_CPU_MODEL = Host._fields.index("cpu_model")

Tech = _record(
    "Tech",
    ("status", "confidence", "evidence", "hint"),
    """One confidential-computing technology's verdict (``capsfast.parts.platform.decide``):
    ``status`` enabled, disabled_by_firmware, disabled_in_kernel,
    not_exposed, unsupported or unknown; ``confidence`` certain, likely or
    unknown; ``evidence`` the codes of the facts that decided it; ``hint``
    what to do (None when enabled and nothing is missing).""",
)

Sev = _record(
    "Sev",
    ("status", "confidence", "evidence", "hint", "cbitpos", "reduced_phys_bits", "max_guests", "max_es_guests"),
    """AMD SEV's verdict, as ``Tech``, with what CPUID 0x8000001F tells (None
    without it): the C-bit position, the physical address bits lost, and
    the SEV and SEV-ES guests the ASIDs allow, as libvirt computes them.""",
)

Sgx = _record(
    "Sgx",
    ("status", "confidence", "evidence", "hint", "sgx1", "sgx2", "flc", "epc"),
    """Intel SGX's verdict, as ``Tech``, with CPUID leaves 7 and 0x12 (None
    without them): SGX1, SGX2, flexible launch control, and the EPC
    sections as ``(base, size)`` byte pairs.""",
)

Security = _record(
    "Security",
    ("sev", "sev_es", "sev_snp", "tdx", "sgx", "s390_pv"),
    """The confidential-computing verdicts: ``sev`` a ``Sev``, ``sgx`` an
    ``Sgx``, the others ``Tech``.""",
)

Iommu = _record(
    "Iommu",
    ("status", "confidence", "evidence", "hint", "groups", "acpi_table", "units", "kernel_args", "vfio",
     "iommufd"),
    """Device assignment: ``status`` enabled (IOMMU groups populated),
    disabled_in_kernel (a firmware table, no groups), absent or unknown;
    ``groups`` the number of IOMMU groups (None where unreadable);
    ``acpi_table`` DMAR, IVRS or IORT (or None); ``units`` the names under
    /sys/class/iommu; ``kernel_args`` the IOMMU arguments on the kernel
    command line; ``vfio`` and ``iommufd`` whether /dev/vfio/vfio and
    /dev/iommu exist (None: cannot be told).""",
)

Devices = _record(
    "Devices",
    ("vhost_net", "tun", "vhost_vsock", "kvm_hv", "cgroup_version", "cgroup_controllers"),
    """The other things virt-host-validate checks: whether /dev/vhost-net,
    /dev/net/tun and /dev/vhost-vsock exist and POWER's kvm_hv module is
    loaded (None: cannot be told); the cgroup layout (``v1``,
    ``v2``, ``hybrid`` or None); ``(controller, available)`` pairs for
    memory, cpu, cpuacct, cpuset, devices and blkio, available None where
    it cannot be told.""",
)

Requirement = _record(
    "Requirement",
    ("name", "ok", "detail", "hint"),
    """One requirement of a VMM on a host (``capsfast.readiness``): its name
    (``kvm``, ``cpu.vmx-or-svm``, ``KVM_CAP_...``, ``arch``), whether it is
    met, what was found, and (when not met) what to do.""",
)

Readiness = _record(
    "Readiness",
    ("vmm", "title", "ok", "failed", "requirements"),
    """A VMM's verdict for a host (``capsfast.ready``): ``ok`` when every
    requirement is met; ``requirements`` all of them in profile order,
    ``failed`` those not met.""",
)

Capabilities = _record(
    "Capabilities",
    ("arch", "host_features", "guests"),
    """What a libvirt capabilities document says (``capsfast.libvirt_xml``):
    the host arch, the host ``<features>`` names, and the guests as
    ``Guest`` values.""",
)


# The Host fields the XML renderings never show: lazy parts that a
# comparison would otherwise read.
_NOT_IN_XML = frozenset(("kernel_flags", "kvm_caps", "vmm_modules", "security", "iommu", "devices"))
_XML_FIELDS = itemgetter(*[i for i, f in enumerate(Host._fields) if f not in _NOT_IN_XML])


def same_for_xml(a, b):
    """Whether Hosts ``a`` and ``b`` render the same XML: equal in every
    field but those the XML formats do not show (left unread)."""
    return _XML_FIELDS(a) == _XML_FIELDS(b)


def resolve(host):
    """Read every lazy part of ``host`` now (before the files of a temporary
    recording go away); returns ``host``."""
    for name in host._lazy:
        getattr(host, name)
    return host


def guests_pending(host):
    """True while ``host.guests`` has not been read (nothing listed yet)."""
    value = tuple.__getitem__(host, _HOST_GUESTS)
    return value.__class__ is Lazy and value.pending


def kvm_caps_pending(host):
    """True while ``host.kvm_caps`` has not been read (/dev/kvm not asked)."""
    value = tuple.__getitem__(host, _HOST_KVM_CAPS)
    return value.__class__ is Lazy and value.pending


def kernel_flags_pending(host):
    """True while ``host.kernel_flags`` waits for its first read (the probe
    did not need them)."""
    value = tuple.__getitem__(host, _HOST_KERNEL_FLAGS)
    return value.__class__ is Lazy and value.pending


def cpu_model_pending(host):
    """True while ``host.cpu_model`` has not been read (nothing decoded)."""
    value = tuple.__getitem__(host, _HOST_CPU_MODEL)
    return value.__class__ is Lazy and value.pending
