"""Pure rules (no I/O): domain capabilities decided from a QMP transcript
and the host facts read on every call.

The rules are libvirt 9.0's (its QEMU driver fills the same document from
the same QEMU answers): which QEMU capability each reply grants, which
machine is preferred, and how each element of ``<domainCapabilities>``
follows from those.  ``<os>`` comes from ``firmware`` and ``<cpu>``
from ``cpu``; ``domain_caps`` joins them.
"""
from capsfast.errors import CapsfastError, printable
from capsfast.parts.domcaps import qapi
from capsfast.parts.domcaps.model import DomainCaps, Enum, Environment, Features, Sev, Sgx, SgxSection, Support

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable

    from capsfast.parts.domcaps.parse import Transcript

ARCHES = ("x86_64", "i686")
VIRTTYPES = ("kvm", "qemu")
# QEMU's target names for the arches served.
_TARGET_ARCH = {"x86_64": "x86_64", "i386": "i686"}
# The machine libvirt prefers over QEMU's own default, per arch.
_PREFERRED_MACHINE = {"x86_64": "pc", "i686": "pc"}

# --- libvirt's enum tables, in their order: an enum lists its values so.
_DISK_DEVICE = ("disk", "cdrom", "floppy", "lun")
_DISK_BUS = ("none", "ide", "fdc", "scsi", "virtio", "xen", "usb", "uml", "sata", "sd")
_DISK_MODEL = ("default", "virtio", "virtio-transitional", "virtio-non-transitional")
_GRAPHICS = ("sdl", "vnc", "rdp", "desktop", "spice", "egl-headless", "dbus")
_VIDEO = ("default", "vga", "cirrus", "vmvga", "xen", "vbox", "qxl", "parallels", "virtio", "gop", "none",
          "bochs", "ramfb")
_HOSTDEV_MODE = ("subsystem", "capabilities")
_STARTUP_POLICY = ("default", "mandatory", "requisite", "optional")
_HOSTDEV_SUBSYS = ("usb", "pci", "scsi", "scsi_host", "mdev")
_PCI_BACKEND = ("default", "kvm", "vfio", "xen")
_RNG_MODEL = ("virtio", "virtio-transitional", "virtio-non-transitional")
_RNG_BACKEND = ("random", "egd", "builtin")
_TPM_MODEL = ("default", "tpm-tis", "tpm-crb", "tpm-spapr", "spapr-tpm-proxy")
_TPM_BACKEND = ("passthrough", "emulator", "external")
_TPM_VERSION = ("default", "1.2", "2.0")
_FS_DRIVER = ("default", "path", "handle", "loop", "nbd", "ploop", "virtiofs")
_CHR_TYPE = ("null", "vc", "pty", "dev", "file", "pipe", "stdio", "udp", "tcp", "unix", "spicevmc",
             "spiceport", "nmdm", "qemu-vdagent", "dbus")
_MEMORY_SOURCE = ("none", "file", "anonymous", "memfd")
HYPERV = ("relaxed", "vapic", "spinlocks", "vpindex", "runtime", "synic", "stimer", "reset", "vendor_id",
          "frequencies", "reenlightenment", "tlbflush", "ipi", "evmcs", "avic")

# --- Which reply grants which QEMU capability (libvirt's flag names), for
# the capabilities the document reads.
_TRANSITIONAL = tuple(
    "%s-%s" % (dev, kind)
    for dev in ("virtio-blk-pci", "virtio-net-pci", "vhost-scsi-pci", "virtio-rng-pci", "virtio-9p-pci",
                "virtio-balloon-pci", "vhost-vsock-pci", "virtio-scsi-pci", "virtio-serial-pci")
    for kind in ("transitional", "non-transitional"))
OBJECT_TYPES = {
    "iothread": "iothread", "vmcoreinfo": "vmcoreinfo", "vmgenid": "vmgenid",
    "memory-backend-memfd": "memory-backend-memfd", "usb-storage": "usb-storage", "ich9-ahci": "ich9-ahci",
    "VGA": "VGA", "cirrus-vga": "cirrus-vga", "vmware-svga": "vmware-svga", "qxl": "qxl",
    "virtio-gpu-pci": "virtio-gpu", "virtio-gpu-device": "virtio-gpu", "bochs-display": "bochs-display",
    "ramfb": "ramfb", "piix3-usb-uhci": "piix3-usb-uhci", "piix4-usb-uhci": "piix4-usb-uhci",
    "usb-ehci": "usb-ehci", "ich9-usb-ehci1": "ich9-usb-ehci1", "vt82c686b-usb-uhci": "vt82c686b-usb-uhci",
    "pci-ohci": "pci-ohci", "nec-usb-xhci": "nec-usb-xhci", "qemu-xhci": "qemu-xhci", "vfio-pci": "vfio-pci",
    "virtio-rng-pci": "virtio-rng", "virtio-rng-ccw": "virtio-rng", "virtio-rng-device": "virtio-rng",
    "rng-egd": "rng-egd", "rng-random": "rng-random", "rng-builtin": "rng-builtin",
    "vhost-user-fs-device": "vhost-user-fs", "tpm-spapr": "tpm-spapr", "spapr-tpm-proxy": "spapr-tpm-proxy",
    "usb-redir": "usb-redir", "sev-guest": "sev-guest", "sgx-epc": "sgx-epc",
}
OBJECT_TYPES.update((name, "virtio-pci-non-transitional") for name in _TRANSITIONAL)
COMMANDS = {"query-vnc": "vnc", "blockdev-reopen": "blockdev-reopen",
            "query-cpu-model-expansion": "query-cpu-model-expansion"}
SCHEMA_QUERIES = {
    "query-display-options/ret-type/+sdl": "sdl",
    "query-display-options/ret-type/+egl-headless": "egl-headless",
    "query-display-options/ret-type/+dbus": "display-dbus",
    "migrate-set-parameters/arg-type/block-bitmap-mapping/bitmaps/transform":
        "migration-param.block-bitmap-mapping",
}
TPM_MODELS = {"tpm-tis": "tpm-tis", "tpm-crb": "tpm-crb", "tpm-spapr": "tpm-spapr"}
TPM_TYPES = {"passthrough": "tpm-passthrough", "emulator": "tpm-emulator"}
COMMAND_LINE = {"spice": "spice"}
# Every flag the rules above can grant, plus kvm: what a test may compare
# with libvirt's own list.
FLAGS = frozenset(OBJECT_TYPES.values()) | frozenset(COMMANDS.values()) | frozenset(SCHEMA_QUERIES.values()) \
    | frozenset(TPM_MODELS.values()) | frozenset(TPM_TYPES.values()) | frozenset(COMMAND_LINE.values()) \
    | {"kvm", "incremental-backup"}


def _bad(what: str) -> CapsfastError:
    return CapsfastError("malformed QMP transcript: %s" % what)


def _dicts(value: "Any", what: str) -> "list[dict[str, Any]]":
    """``value`` as a list of objects; an absent reply is an empty list."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad("%s is not a list of objects" % what)
    return value


def _names(value: "Any", what: str, key: str = "name") -> "set[str]":
    return {v[key] for v in _dicts(value, what) if isinstance(v.get(key), str)}


def _strings(value: "Any", what: str) -> "set[str]":
    if value is None:
        return set()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad("%s is not a list of strings" % what)
    return set(value)


def kvm_used(transcript: "Transcript") -> bool:
    """QEMU ran its first process with KVM (query-kvm: present and enabled)."""
    state = transcript.value("query-kvm")
    return isinstance(state, dict) and state.get("present") is True and state.get("enabled") is True


def qemu_flags(transcript: "Transcript") -> "frozenset[str]":
    """The QEMU capabilities (libvirt's names, among ``FLAGS``) the first
    process's replies grant."""
    flags: "set[str]" = set()
    if kvm_used(transcript):
        flags.add("kvm")
    schema = qapi.schema(_dicts(transcript.value("query-qmp-schema"), "query-qmp-schema"))
    flags.update(flag for query, flag in SCHEMA_QUERIES.items() if qapi.has(schema, query))
    commands = _names(transcript.value("query-commands"), "query-commands")
    flags.update(flag for name, flag in COMMANDS.items() if name in commands)
    types = _names(transcript.value("qom-list-types"), "qom-list-types")
    flags.update(flag for name, flag in OBJECT_TYPES.items() if name in types)
    models = _strings(transcript.value("query-tpm-models"), "query-tpm-models")
    flags.update(flag for name, flag in TPM_MODELS.items() if name in models)
    tpm_types = _strings(transcript.value("query-tpm-types"), "query-tpm-types")
    flags.update(flag for name, flag in TPM_TYPES.items() if name in tpm_types)
    options = _names(transcript.value("query-command-line-options"), "query-command-line-options", "option")
    flags.update(flag for name, flag in COMMAND_LINE.items() if name in options)
    # QEMU built with SEV or SGX but unable to use it answers with an error.
    if transcript.value("query-sev-capabilities") is None:
        flags.discard("sev-guest")
    if _sgx_reply(transcript) is None:
        flags.discard("sgx-epc")
    if "blockdev-reopen" in flags and "migration-param.block-bitmap-mapping" in flags:
        flags.add("incremental-backup")
    return frozenset(flags)


# --- Machines.

class Machine:
    """One machine type of ``query-machines``: ``max_cpus`` 0 where unsaid."""

    __slots__ = ("name", "alias", "max_cpus")

    def __init__(self, name: str, alias: "str | None", max_cpus: int) -> None:
        self.name = name
        self.alias = alias
        self.max_cpus = max_cpus

    def __repr__(self) -> str:
        return "Machine(%r, %r, %r)" % (self.name, self.alias, self.max_cpus)


def machines(transcript: "Transcript", virttype: str, arch: str) -> "list[Machine]":
    """The machine types for ``virttype``, libvirt's preferred one first
    (the arch's historical default where QEMU has it, else QEMU's own)."""
    process = 0
    if virttype == "qemu" and kvm_used(transcript):
        if len(transcript.processes) < 2:
            raise _bad("KVM was used but the TCG-only process is missing")
        process = 1
    listed: "list[Machine]" = []
    preferred = default = -1
    wanted = _PREFERRED_MACHINE.get(arch)
    for entry in _dicts(transcript.value("query-machines", process), "query-machines"):
        name, alias, cpu_max = entry.get("name"), entry.get("alias"), entry.get("cpu-max", 0)
        if not isinstance(name, str) or (alias is not None and not isinstance(alias, str)):
            raise _bad("a machine without a name")
        if not isinstance(cpu_max, int) or isinstance(cpu_max, bool) or not 0 <= cpu_max < 1 << 32:
            raise _bad("machine %s has a malformed cpu-max" % printable(name))
        if name == "none":
            continue
        listed.append(Machine(name, alias, cpu_max))
        if wanted is not None and wanted in (alias, name):
            preferred = len(listed) - 1
        if entry.get("is-default") is True:
            default = len(listed) - 1
    if preferred == -1:
        preferred = default
    if preferred > 0:
        listed.insert(0, listed.pop(preferred))
    return listed


def _canonical(listed: "list[Machine]", name: str) -> str:
    for m in listed:
        if m.alias is not None and m.alias == name:
            return m.name
    return name


# --- The document.

def _values(table: "tuple[str, ...]", chosen: "Iterable[str]") -> "tuple[str, ...]":
    chosen = set(chosen)
    return tuple(v for v in table if v in chosen)


def _support(name: str, *enums: "tuple[str, tuple[str, ...], Iterable[str]]") -> Support:
    return Support(name, True, tuple(Enum(n, _values(table, chosen)) for n, table, chosen in enums))


def _is_i440fx(machine: str) -> bool:
    return machine == "pc" or machine.startswith(("pc-0.", "pc-1.", "pc-i440fx-", "rhel"))


def _disk(flags: "frozenset[str]", machine: str) -> Support:
    buses = ["fdc", "scsi", "virtio"]
    if _is_i440fx(machine):  # the PIIX IDE controller is built in
        buses.append("ide")
    if "usb-storage" in flags:
        buses.append("usb")
    if "ich9-ahci" in flags:
        buses.append("sata")
    models = ["virtio"]
    if "virtio-pci-non-transitional" in flags:
        models += ["virtio-transitional", "virtio-non-transitional"]
    return _support("disk", ("diskDevice", _DISK_DEVICE, ("disk", "cdrom", "lun", "floppy")),
                    ("bus", _DISK_BUS, buses), ("model", _DISK_MODEL, models))


def _graphics(flags: "frozenset[str]") -> Support:
    types = {"sdl": "sdl", "vnc": "vnc", "spice": "spice", "egl-headless": "egl-headless", "display-dbus": "dbus"}
    return _support("graphics", ("type", _GRAPHICS, [t for flag, t in types.items() if flag in flags]))


def _video(flags: "frozenset[str]") -> Support:
    models = {"VGA": "vga", "cirrus-vga": "cirrus", "vmware-svga": "vmvga", "qxl": "qxl",
              "virtio-gpu": "virtio", "bochs-display": "bochs", "ramfb": "ramfb"}
    chosen = ["none"] + [m for flag, m in models.items() if flag in flags]
    return _support("video", ("modelType", _VIDEO, chosen))


_USB_CONTROLLERS = ("piix3-usb-uhci", "piix4-usb-uhci", "usb-ehci", "ich9-usb-ehci1", "vt82c686b-usb-uhci",
                    "pci-ohci", "nec-usb-xhci", "qemu-xhci")


def _hostdev(flags: "frozenset[str]", env: Environment) -> Support:
    subsys = ["pci", "scsi"]
    if any(c in flags for c in _USB_CONTROLLERS):
        subsys.append("usb")
    backends = ("default", "vfio") if env.vfio and "vfio-pci" in flags else ()
    return _support("hostdev", ("mode", _HOSTDEV_MODE, ("subsystem",)),
                    ("startupPolicy", _STARTUP_POLICY, _STARTUP_POLICY),
                    ("subsysType", _HOSTDEV_SUBSYS, subsys),
                    ("capsType", (), ()),  # containers only
                    ("pciBackend", _PCI_BACKEND, backends))


def _rng(flags: "frozenset[str]") -> Support:
    models = []
    if "virtio-rng" in flags:
        models.append("virtio")
        if "virtio-pci-non-transitional" in flags:
            models += ["virtio-transitional", "virtio-non-transitional"]
    backends = {"rng-egd": "egd", "rng-random": "random", "rng-builtin": "builtin"}
    return _support("rng", ("model", _RNG_MODEL, models),
                    ("backendModel", _RNG_BACKEND, [b for flag, b in backends.items() if flag in flags]))


def _filesystem(flags: "frozenset[str]") -> Support:
    drivers = ["path", "handle"] + (["virtiofs"] if "vhost-user-fs" in flags else [])
    return _support("filesystem", ("driverType", _FS_DRIVER, drivers))


def _tpm(flags: "frozenset[str]", env: Environment) -> Support:
    models = [m for m in ("tpm-tis", "tpm-crb", "tpm-spapr", "spapr-tpm-proxy") if m in flags]
    if not models:  # no frontend: nothing an application could use
        return Support("tpm", False)
    backends = ["passthrough"] if "tpm-passthrough" in flags else []
    versions: "list[str]" = []
    if env.swtpm:
        if "tpm-emulator" in flags:
            backends += ["emulator", "external"]
        versions = [v for v in ("1.2", "2.0") if v in env.swtpm_versions]
    enums: "list[tuple[str, tuple[str, ...], Iterable[str]]]" = [
        ("model", _TPM_MODEL, models), ("backendModel", _TPM_BACKEND, backends)]
    if versions:
        enums.append(("backendVersion", _TPM_VERSION, versions))
    return _support("tpm", *enums)


def _redirdev(flags: "frozenset[str]") -> Support:
    if "usb-redir" not in flags:
        return Support("redirdev", False)
    return _support("redirdev", ("bus", ("usb",), ("usb",)))


def _channel(flags: "frozenset[str]") -> Support:
    types = ["pty", "unix"] + (["spicevmc"] if "spice" in flags else [])
    return _support("channel", ("type", _CHR_TYPE, types))


def _memory_backing(flags: "frozenset[str]") -> Support:
    sources = ["file", "anonymous"] + (["memfd"] if "memory-backend-memfd" in flags else [])
    return _support("memoryBacking", ("sourceType", _MEMORY_SOURCE, sources))


def _uint(value: "Any", what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise _bad("%s is not an unsigned integer" % what)
    return value


def _sev(transcript: "Transcript", flags: "frozenset[str]", env: Environment) -> "Sev | None":
    if "sev-guest" not in flags:
        return None
    reply = transcript.value("query-sev-capabilities")
    if not isinstance(reply, dict):
        raise _bad("query-sev-capabilities did not return an object")
    cpu0_id = reply.get("cpu0-id")
    # The ASIDs below the lowest SEV one are SEV-ES's (ASID 0 is the host's).
    max_asid, min_asid = env.sev_asids
    guests, es_guests = (max_asid - min_asid + 1, min_asid - 1) if max_asid and min_asid else (0, 0)
    return Sev(cbitpos=_uint(reply.get("cbitpos"), "SEV cbitpos"),
               reduced_phys_bits=_uint(reply.get("reduced-phys-bits"), "SEV reduced-phys-bits"),
               max_guests=guests, max_es_guests=es_guests,
               cpu0_id=cpu0_id if isinstance(cpu0_id, str) else None)


def _sgx_reply(transcript: "Transcript") -> "dict[str, Any] | None":
    reply = transcript.value("query-sgx-capabilities")
    # QEMU before 7.0 lists no EPC sections: libvirt does not use its SGX.
    if isinstance(reply, dict) and isinstance(reply.get("sections"), list):
        return reply
    return None


def _sgx(transcript: "Transcript", flags: "frozenset[str]") -> "Sgx | None":
    reply = _sgx_reply(transcript)
    if "sgx-epc" not in flags or reply is None:
        return None
    sections = []
    for s in _dicts(reply["sections"], "SGX sections"):
        sections.append(SgxSection(_uint(s.get("node"), "SGX section node"),
                                   _uint(s.get("size"), "SGX section size") // 1024))
    if not all(isinstance(reply.get(k), bool) for k in ("flc", "sgx1", "sgx2")):
        raise _bad("query-sgx-capabilities lacks flc, sgx1 or sgx2")
    if "section-size" in reply:
        size = _uint(reply["section-size"], "SGX section-size") // 1024
    else:  # QEMU dropped the deprecated total: the sum of the sections
        size = sum(s.size_kib for s in sections)
    return Sgx(flc=reply["flc"], sgx1=reply["sgx1"], sgx2=reply["sgx2"], section_size_kib=size,
               sections=tuple(sections))


def _obj(value: "Any") -> "dict[str, Any]":
    return value if isinstance(value, dict) else {}


def _hyperv(transcript: "Transcript") -> "Support | None":
    """The Hyper-V enlightenments of the full ``host`` expansion with
    hv-passthrough (asked only where QEMU's first process used KVM)."""
    for sent, reply in transcript.replies("query-cpu-model-expansion"):
        if _obj(_obj(_obj(sent.get("arguments")).get("model")).get("props")).get("hv-passthrough") is not True:
            continue
        props = _obj(_obj(reply.get("return")).get("model")).get("props")
        if not isinstance(props, dict):
            return None
        found = set()
        for name, value in props.items():
            if not name.startswith("hv-"):
                continue
            feature = name[3:]
            if feature not in HYPERV:
                feature = feature.replace("-", "_")
            if feature not in HYPERV:
                continue
            # Any string counts, even hv-vendor-id's empty one.
            if value is True or isinstance(value, str) or (
                    isinstance(value, int) and not isinstance(value, bool) and value > 0):
                found.add(feature)
        if not found:  # an older QEMU that expands none
            return None
        return _support("hyperv", ("features", HYPERV, found))
    return None


def resolve(transcript: "Transcript", *, arch: str, machine: "str | None", virttype: "str | None",
            emulator: str) -> "tuple[str, str, list[Machine]]":
    """(virttype, canonical machine, the virttype's machines) for a
    request, as virsh settles them; CapsfastError where the transcript
    cannot serve it."""
    if arch not in ARCHES:
        raise CapsfastError("domain capabilities for %s guests are not yet supported (only %s)"
                            % (printable(arch), ", ".join(ARCHES)))
    target = transcript.value("query-target")
    target_arch = target.get("arch") if isinstance(target, dict) else None
    if not isinstance(target_arch, str):
        raise _bad("query-target gave no arch")
    if _TARGET_ARCH.get(target_arch) is None:
        raise CapsfastError("architecture from emulator '%s' doesn't match given architecture '%s'"
                            % (printable(target_arch), arch))
    kvm = kvm_used(transcript)
    if virttype is None:
        virttype = "kvm" if kvm else "qemu"
    if virttype not in VIRTTYPES:
        raise CapsfastError("unknown virttype: %s" % printable(virttype))
    if virttype == "kvm" and not kvm:
        raise CapsfastError("the accel 'kvm' is not supported by '%s' on this host" % printable(emulator))
    listed = machines(transcript, virttype, arch)
    if machine is None:
        if not listed:
            raise _bad("QEMU lists no machine type")
        return virttype, listed[0].name, listed
    canonical = _canonical(listed, machine)
    if not any(m.name == canonical for m in listed):
        raise CapsfastError("the machine '%s' is not supported by emulator '%s'"
                            % (printable(canonical), printable(emulator)))
    return virttype, canonical, listed


def domain_caps_core(transcript: "Transcript", env: Environment, *, arch: str, machine: "str | None",
                     virttype: "str | None", emulator: str, os: "Any" = None, cpu: "Any" = None) -> DomainCaps:
    """The document from the transcript and ``env``, with ``os`` and
    ``cpu`` as given (the firmware and CPU parts' records)."""
    virttype, machine, listed = resolve(transcript, arch=arch, machine=machine, virttype=virttype,
                                        emulator=emulator)
    flags = qemu_flags(transcript)
    vcpu_max = next((m.max_cpus for m in listed if m.name == machine), 0)
    if virttype == "kvm":
        if env.kvm_max_vcpus is None:
            raise CapsfastError("cannot read KVM's vCPU limit: /dev/kvm cannot be opened")
        vcpu_max = min(vcpu_max, env.kvm_max_vcpus)
    features = Features(
        gic=Support("gic", False),  # an ARM interrupt controller
        simple=(("vmcoreinfo", "vmcoreinfo" in flags), ("genid", "vmgenid" in flags),
                ("backingStoreInput", True), ("backup", "incremental-backup" in flags)),
        sev=_sev(transcript, flags, env), sgx=_sgx(transcript, flags), hyperv=_hyperv(transcript))
    devices = (_disk(flags, machine), _graphics(flags), _video(flags), _hostdev(flags, env), _rng(flags),
               _filesystem(flags), _tpm(flags, env), _redirdev(flags), _channel(flags))
    return DomainCaps(path=emulator, domain=virttype, machine=machine, arch=arch, vcpu_max=vcpu_max,
                      iothreads="iothread" in flags, os=os, cpu=cpu, memory_backing=_memory_backing(flags),
                      devices=devices, features=features)


def domain_caps(transcript: "Transcript", env: Environment, *, arch: str, machine: "str | None",
                virttype: "str | None", emulator: str, cpu_map: "Any", descriptors: "Any",
                exists: "Callable[[str], bool]") -> DomainCaps:
    """``virsh domcapabilities`` for one emulator (its transcript), arch,
    machine (None: the preferred one; an alias is resolved) and virt type
    (None: kvm where QEMU used it, else qemu).  ``descriptors`` are the
    firmware descriptors that count; ``exists`` tells which loader images
    are on the host (libvirt lists only those)."""
    virttype, machine, _ = resolve(transcript, arch=arch, machine=machine, virttype=virttype,
                                   emulator=emulator)
    from capsfast.parts.domcaps.cpu import cpu_modes  # type: ignore[import-not-found,unused-ignore]
    from capsfast.parts.domcaps.firmware import os_caps  # type: ignore[import-not-found,unused-ignore]

    return domain_caps_core(transcript, env, arch=arch, machine=machine, virttype=virttype, emulator=emulator,
                            os=os_caps(descriptors, arch=arch, machine=machine, exists=exists),
                            cpu=cpu_modes(transcript, virttype=virttype, arch=arch, cpu_map=cpu_map))
