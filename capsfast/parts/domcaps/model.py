"""Domain capabilities as records, pure (no I/O): what one emulator,
arch, machine and virt type let a guest use, and the few host facts read
on every call.

Plain slotted classes, immutable once built, compared by value; each has
``as_dict()`` giving data ``json.dumps`` accepts.  Importing them costs
nothing measurable (no dataclasses, no typing at run time).
"""
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Record:
    """Fields named by ``__slots__``, set once by ``__init__``."""

    __slots__: "tuple[str, ...]" = ()

    def _set(self, **fields: "Any") -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, fields[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("%s is immutable" % type(self).__name__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self.__slots__))

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (f, getattr(self, f)) for f in self.__slots__))

    def as_dict(self) -> "dict[str, Any]":
        return {f: _plain(getattr(self, f)) for f in self.__slots__}


def _plain(value: object) -> object:
    as_dict = getattr(value, "as_dict", None)
    if as_dict is not None:
        return as_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class Environment(_Record):
    """The host facts libvirt reads on every domcapabilities call, never
    from its QEMU cache.

    ``kvm_max_vcpus``: KVM's vCPU limit, which bounds ``<vcpu max>`` for
    kvm: KVM_CHECK_EXTENSION on /dev/kvm for KVM_CAP_MAX_VCPUS, else
    KVM_CAP_NR_VCPUS, else 4; None where /dev/kvm cannot be opened (then
    only the qemu virt type can be answered);
    ``sev_asids``: (ECX, EDX) of CPUID 0x8000001F, the highest SEV ASID and
    the lowest one not reserved for SEV-ES; (0, 0) where the CPU has none;
    ``vfio``: PCI passthrough through VFIO is possible: an entry in
    /sys/kernel/iommu_groups and /dev/vfio/vfio present;
    ``swtpm``: swtpm, swtpm_setup and swtpm_ioctl are executables in PATH;
    ``swtpm_versions``: the TPM versions ("1.2", "2.0") that
    ``swtpm_setup --print-capabilities`` lists (tpm-1.2, tpm-2.0);
    ``privileged``: the caller is root (libvirt's system daemon), which
    decides where firmware descriptors are looked for."""

    __slots__ = ("kvm_max_vcpus", "sev_asids", "vfio", "swtpm", "swtpm_versions", "privileged")
    kvm_max_vcpus: "int | None"
    sev_asids: "tuple[int, int]"
    vfio: bool
    swtpm: bool
    swtpm_versions: "tuple[str, ...]"
    privileged: bool

    def __init__(self, *, kvm_max_vcpus: "int | None", sev_asids: "tuple[int, int]" = (0, 0), vfio: bool = False,
                 swtpm: bool = False, swtpm_versions: "tuple[str, ...]" = (), privileged: bool = False) -> None:
        self._set(kvm_max_vcpus=kvm_max_vcpus, sev_asids=tuple(sev_asids), vfio=vfio, swtpm=swtpm,
                  swtpm_versions=tuple(swtpm_versions), privileged=privileged)


class Enum(_Record):
    """One ``<enum name=...>``: the values in libvirt's enum-table order."""

    __slots__ = ("name", "values")
    name: str
    values: "tuple[str, ...]"

    def __init__(self, name: str, values: "tuple[str, ...]") -> None:
        self._set(name=name, values=tuple(values))


class Support(_Record):
    """An element that says ``supported='yes'`` or ``'no'`` and, when yes,
    lists its enums (memoryBacking, each device, gic, hyperv)."""

    __slots__ = ("name", "supported", "enums")
    name: str
    supported: bool
    enums: "tuple[Enum, ...]"

    def __init__(self, name: str, supported: bool, enums: "tuple[Enum, ...]" = ()) -> None:
        self._set(name=name, supported=supported, enums=tuple(enums))

    def enum(self, name: str) -> "tuple[str, ...]":
        """The values of the enum ``name``; () where it is not listed."""
        for e in self.enums:
            if e.name == name:
                return e.values
        return ()


class Sev(_Record):
    """AMD SEV as QEMU reports it, with the guest counts from CPUID."""

    __slots__ = ("cbitpos", "reduced_phys_bits", "max_guests", "max_es_guests", "cpu0_id")
    cbitpos: int
    reduced_phys_bits: int
    max_guests: int
    max_es_guests: int
    cpu0_id: "str | None"

    def __init__(self, *, cbitpos: int, reduced_phys_bits: int, max_guests: int, max_es_guests: int,
                 cpu0_id: "str | None" = None) -> None:
        self._set(cbitpos=cbitpos, reduced_phys_bits=reduced_phys_bits, max_guests=max_guests,
                  max_es_guests=max_es_guests, cpu0_id=cpu0_id)


class SgxSection(_Record):
    """One EPC section: its NUMA node and size in KiB."""

    __slots__ = ("node", "size_kib")
    node: int
    size_kib: int

    def __init__(self, node: int, size_kib: int) -> None:
        self._set(node=node, size_kib=size_kib)


class Sgx(_Record):
    """Intel SGX as QEMU reports it; sizes in KiB."""

    __slots__ = ("flc", "sgx1", "sgx2", "section_size_kib", "sections")
    flc: bool
    sgx1: bool
    sgx2: bool
    section_size_kib: int
    sections: "tuple[SgxSection, ...]"

    def __init__(self, *, flc: bool, sgx1: bool, sgx2: bool, section_size_kib: int,
                 sections: "tuple[SgxSection, ...]") -> None:
        self._set(flc=flc, sgx1=sgx1, sgx2=sgx2, section_size_kib=section_size_kib, sections=tuple(sections))


class Features(_Record):
    """``<features>``: ``gic``; ``simple`` the (name, supported) pairs
    (vmcoreinfo, genid, backingStoreInput, backup); ``sev`` and ``sgx``
    (None: not supported); ``hyperv`` (None: not reported at all)."""

    __slots__ = ("gic", "simple", "sev", "sgx", "hyperv")
    gic: Support
    simple: "tuple[tuple[str, bool], ...]"
    sev: "Sev | None"
    sgx: "Sgx | None"
    hyperv: "Support | None"

    def __init__(self, *, gic: Support, simple: "tuple[tuple[str, bool], ...]", sev: "Sev | None",
                 sgx: "Sgx | None", hyperv: "Support | None") -> None:
        self._set(gic=gic, simple=tuple(simple), sev=sev, sgx=sgx, hyperv=hyperv)

    def as_dict(self) -> "dict[str, Any]":
        data: "dict[str, Any]" = {"gic": self.gic.as_dict()}
        data.update((name, supported) for name, supported in self.simple)
        data.update(sev=_plain(self.sev), sgx=_plain(self.sgx), hyperv=_plain(self.hyperv))
        return data


class DomainCaps(_Record):
    """What a guest may use: ``virsh domcapabilities``' facts.

    ``domain`` is the virt type (kvm, qemu); ``vcpu_max`` 0 where QEMU did
    not say; ``os`` and ``cpu`` the firmware's and the CPU's records (each
    with ``as_dict()``); ``devices`` in libvirt's order (disk, graphics,
    video, hostdev, rng, filesystem, tpm, redirdev, channel)."""

    __slots__ = ("path", "domain", "machine", "arch", "vcpu_max", "iothreads", "os", "cpu",
                 "memory_backing", "devices", "features")
    path: str
    domain: str
    machine: "str | None"
    arch: str
    vcpu_max: int
    iothreads: bool
    os: "Any"
    cpu: "Any"
    memory_backing: Support
    devices: "tuple[Support, ...]"
    features: Features

    def __init__(self, *, path: str, domain: str, machine: "str | None", arch: str, vcpu_max: int,
                 iothreads: bool, os: "Any", cpu: "Any", memory_backing: Support,
                 devices: "tuple[Support, ...]", features: Features) -> None:
        self._set(path=path, domain=domain, machine=machine, arch=arch, vcpu_max=vcpu_max,
                  iothreads=iothreads, os=os, cpu=cpu, memory_backing=memory_backing,
                  devices=tuple(devices), features=features)

    def replace(self, **changes: "Any") -> "DomainCaps":
        """A copy with some fields changed."""
        fields = {f: getattr(self, f) for f in self.__slots__}
        fields.update(changes)
        return DomainCaps(**fields)

    def device(self, name: str) -> "Support | None":
        for d in self.devices:
            if d.name == name:
                return d
        return None
