"""Readiness per VMM: can Firecracker, Cloud Hypervisor, QEMU or Kata
Containers run here?  Each profile is data: what the VMM itself checks
before it starts (KVM capabilities, ``Host.kvm_caps``, per architecture;
Kata also CPU flags), with the VMM source file each list was read from and
the version read.  Deciding
is a pure function of a Host (live, a fake root, a recording).

A requirement not met is a failure with a hint; capabilities that cannot be
read (``/dev/kvm`` does not open for this user) fail as unknown, never as
"supported".
"""
from capsfast.parts.core import read as facts
from capsfast.errors import CapsfastError
from capsfast.constants import KVM_DEVICE
from capsfast.model import Readiness, Requirement

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Host, VmmName


class Profile:
    """What a VMM checks before it starts: per architecture the KVM
    capabilities (names as in capsfast.parts.kvm_caps.KVM_CAPS), ``common`` ones for
    every architecture it has a list for; for Kata, what ``kata-runtime
    check`` reads besides (``kata``)."""

    __slots__ = ("title", "caps", "common", "kata")

    def __init__(self, title: str, caps: "dict[str, tuple[str, ...]]", common: "tuple[str, ...]" = (),
                 kata: "dict[str, KataChecks] | None" = None) -> None:
        self.title = title
        self.caps = caps
        self.common = common
        self.kata = kata or {}


class KataChecks:
    """What ``kata-runtime check`` looks at on one architecture: per CPU
    vendor (CPUID's vendor string; None for any) the flags it wants in the
    first processor's /proc/cpuinfo ``flags``; the kernel modules it needs
    loaded (``required``, and per vendor its KVM module, ``vendor_module``)
    and those whose absence it only logs (``optional``, not checked here);
    whether it asks KVM_CREATE_VM."""

    __slots__ = ("flags", "required", "vendor_module", "optional", "create_vm")

    def __init__(self, flags: "dict[str | None, tuple[str, ...]]", required: "tuple[str, ...]",
                 vendor_module: "dict[str, str]", optional: "tuple[str, ...]", create_vm: bool = True) -> None:
        self.flags = flags
        self.required = required
        self.vendor_module = vendor_module
        self.optional = optional
        self.create_vm = create_vm


PROFILES: "dict[VmmName, Profile]" = {
    "firecracker": Profile("Firecracker", {
        # src/vmm/src/arch/x86_64/kvm.rs, Kvm::DEFAULT_CAPABILITIES
        # (firecracker-microvm/firecracker at commit b9ee939).
        "x86_64": ("IRQCHIP", "IOEVENTFD", "IRQFD", "USER_MEMORY", "SET_TSS_ADDR", "PIT2", "PIT_STATE2",
                   "ADJUST_CLOCK", "DEBUGREGS", "MP_STATE", "VCPU_EVENTS", "XCRS", "XSAVE", "EXT_CPUID"),
        # src/vmm/src/arch/aarch64/kvm.rs, Kvm::DEFAULT_CAPABILITIES (commit 7ebb1fc).
        "aarch64": ("IOEVENTFD", "IRQFD", "USER_MEMORY", "ARM_PSCI_0_2", "DEVICE_CTRL", "MP_STATE", "ONE_REG"),
    }),
    "cloud-hypervisor": Profile("Cloud Hypervisor", {
        # hypervisor/src/kvm/x86_64/mod.rs, check_required_kvm_extensions()
        # (cloud-hypervisor/cloud-hypervisor at commit 01de980).
        "x86_64": ("ADJUST_CLOCK", "EXT_CPUID", "GET_TSC_KHZ", "IMMEDIATE_EXIT", "IOEVENTFD", "IRQCHIP", "IRQFD",
                   "IRQ_ROUTING", "MP_STATE", "SET_IDENTITY_MAP_ADDR", "SET_TSS_ADDR", "SPLIT_IRQCHIP",
                   "TSC_DEADLINE_TIMER", "USER_MEMORY", "USER_NMI", "VCPU_EVENTS", "XSAVE"),
        # hypervisor/src/kvm/aarch64/mod.rs, check_required_kvm_extensions() (commit 017988c).
        "aarch64": ("SIGNAL_MSI", "ONE_REG"),
    }),
    # accel/kvm/kvm-all.c kvm_required_capabilites[] for every architecture,
    # plus target/i386/kvm/kvm.c kvm_arch_required_capabilities[] (QEMU
    # master as mirrored in berrange/qemu, commits 3d6d016 and 7d58cf5);
    # target/arm/kvm.c adds nothing.
    "qemu": Profile("QEMU", {
        "x86_64": ("SET_TSS_ADDR", "EXT_CPUID", "MP_STATE"),
        "i686": ("SET_TSS_ADDR", "EXT_CPUID", "MP_STATE"),
        "aarch64": (),
    }, common=("USER_MEMORY", "DESTROY_MEMORY_REGION_WORKS", "JOIN_MEMORY_REGIONS_WORKS", "INTERNAL_ERROR_DATA",
               "IOEVENTFD", "IOEVENTFD_ANY_LENGTH")),
    "kata": Profile("Kata Containers", {
        # kata-check_amd64.go asks no KVM capability.
        "x86_64": (),
        # kata-check_arm64.go, archRequiredKVMExtensions: it needs
        # KVM_CHECK_EXTENSION(ARM_VM_IPA_SIZE) to answer (any value: it only
        # logs the IPA limit), checked below as "answered".
        "aarch64": (),
    }, kata={
        # src/runtime/cmd/kata-runtime/kata-check_amd64.go, setCPUtype() and
        # archHostCanCreateVMContainer() (kata-containers at commit 0a4b755),
        # with kata-check.go's checkKernelModules() and genericKvmIsUsable().
        # kvm_intel's unrestricted_guest=Y is asked only when kata cannot tell
        # whether it runs under a hypervisor (RunningOnVMM failing), which
        # capsfast always can: not checked.
        "x86_64": KataChecks({"GenuineIntel": ("vmx", "lm", "sse4_1"), "AuthenticAMD": ("svm", "lm", "sse4_1")},
                             ("kvm", "vhost", "vhost_net"), {"GenuineIntel": "kvm_intel", "AuthenticAMD": "kvm_amd"},
                             ("vhost_vsock",)),
        # src/runtime/cmd/kata-runtime/kata-check_arm64.go (commit 603a3fe):
        # no CPU flags; the same modules; KVM_CREATE_VM, then ARM_VM_IPA_SIZE.
        "aarch64": KataChecks({None: ()}, ("kvm", "vhost", "vhost_net"), {}, ("vhost_vsock",)),
    }),
}
NAMES: "tuple[VmmName, ...]" = tuple(PROFILES)

# The Linux release that added a capability (its KVM_CAP_ number in
# include/uapi/linux/kvm.h arrived with it), for the hint of one missing:
# only those a profile asks that a still-deployed kernel may lack.
KERNEL_SINCE = {
    "SPLIT_IRQCHIP": "4.4",
    "IOEVENTFD_ANY_LENGTH": "4.4",
    "IMMEDIATE_EXIT": "4.11",
    "ARM_VM_IPA_SIZE": "4.20",
}

# The detail of a capability that could not be asked: no usable /dev/kvm.
UNASKED = "unknown: /dev/kvm cannot be opened"

def mode_text(mode: int) -> str:
    """A character device's mode as ``ls -l`` prints it (``crw-rw----``)."""
    bits = "".join(flag if mode & (1 << (8 - i)) else "-" for i, flag in enumerate("rwxrwxrwx"))
    return "c" + bits


def kvm_access_hint(mode: "int | None", group: "str | None") -> str:
    """What to do where /dev/kvm exists but this user may not open it
    read-write, from its mode (permission bits; None: not known) and the
    name of its group (None: not known).  Joining the group helps only
    where the group may read and write it; otherwise a udev rule (what
    distributions ship for group kvm) or an ACL must grant access first."""
    if mode is None:
        return ("add this user to the group owning %s if that group may read and write it (ls -l %s; "
                "sudo usermod -aG GROUP $USER) and log in again" % (KVM_DEVICE, KVM_DEVICE))
    node = "%s is %s%s" % (KVM_DEVICE, mode_text(mode), "" if group is None else ", group %s" % group)
    if mode & 0o060 == 0o060:
        return "%s: add this user to group %s (sudo usermod -aG %s $USER) and log in again" % (
            node, group or "GROUP", group or "GROUP")
    return ("%s, and the group may not read and write it: a udev rule such as KERNEL==\"kvm\", GROUP=\"kvm\", "
            "MODE=\"0660\" (in /etc/udev/rules.d/65-kvm.rules; then udevadm trigger --name-match=kvm) lets "
            "group kvm in, then add this user to it (sudo usermod -aG kvm $USER) and log in again; or "
            "grant this user alone with an ACL (sudo setfacl -m u:$USER:rw %s; lost when the node is made again)"
            % (node, KVM_DEVICE))


def known() -> str:
    """The profile names, for messages."""
    return ", ".join(NAMES)


def _kvm(host: "Host") -> "Requirement":
    kvm = host.kvm
    if kvm.usable:
        return Requirement("kvm", True, "usable", None)
    hint = kvm_access_hint(kvm.mode, kvm.group) if kvm.failure == "not_accessible" else "run 'capsfast check' for the way to a usable /dev/kvm"
    return Requirement("kvm", False, "%s: %s" % (kvm.failure, kvm.error), hint)


def _cap(profile: "Profile", cap: str, answers: "dict[str, int | None] | None", host: "Host") -> "Requirement":
    name = "KVM_CAP_" + cap
    if answers is None:
        # Follows from the kvm requirement, which carries the hint.
        return Requirement(name, False, UNASKED, None)
    value = answers.get(cap)
    if value is None:
        return Requirement(name, False, "unknown (the check failed)", "check dmesg for kvm errors")
    if value:
        return Requirement(name, True, str(value), None)
    since = KERNEL_SINCE.get(cap)
    return Requirement(name, False, "0: this kernel's KVM lacks it",
                       "%s requires KVM_CAP_%s: %s" % (profile.title, cap, "Linux %s or later" % since if since
                                                     else "a newer kernel or KVM module"))


def _flag_hint(flag: str) -> str:
    if flag in ("vmx", "svm"):
        return ("kata-runtime check wants %s: expose it to this host (nested virtualization) or run on bare "
                "metal; a software KVM does not satisfy it" % flag)
    return "Kata Containers needs a CPU with %s" % flag


def _kata(checks: "KataChecks", host: "Host") -> "list[Requirement]":
    out = []
    vendor = host.cpu.vendor
    flags = checks.flags.get(vendor if vendor in checks.flags else None)
    if flags is None:
        out.append(Requirement("cpu.vendor", False, "%s (kata-runtime check knows GenuineIntel and AuthenticAMD)"
                               % (vendor or "unknown"), "Kata Containers on x86 needs an Intel or AMD CPU"))
        flags = ()
    kernel = host.kernel_flags
    for flag in flags:
        if kernel is None:
            out.append(Requirement("cpu." + flag, False, "unknown: /proc/cpuinfo has no flags or cannot be read",
                                   "kata-runtime check reads the flags of /proc/cpuinfo"))
        elif flag in kernel:
            out.append(Requirement("cpu." + flag, True, "in /proc/cpuinfo flags", None))
        else:
            out.append(Requirement("cpu." + flag, False, "not in /proc/cpuinfo flags", _flag_hint(flag)))
    loaded = set(host.kvm.modules)
    vmm = dict(host.vmm_modules or ())
    vendor_module = checks.vendor_module.get(vendor or "")
    required = checks.required[:1] + ((vendor_module,) if vendor_module else ()) + checks.required[1:]
    for module in required:
        if module in facts.KVM_MODULES:
            found: "bool | None" = module in loaded
        elif host.vmm_modules is None:
            found = None
        else:
            found = vmm.get(module)
        if found:
            out.append(Requirement("module." + module, True, "loaded", None))
        elif found is None:
            out.append(Requirement("module." + module, False, "unknown: not recorded or not readable",
                                   "kata-runtime check looks for /sys/module/%s" % module))
        else:
            out.append(Requirement("module." + module, False, "not loaded",
                                   "modprobe %s (kata-runtime check loads it itself only when run as root)"
                                   % module))
    return out


def vmm_name(text: str) -> "VmmName":
    """``text`` as a VMM name (one of NAMES); CapsfastError for another."""
    for name in NAMES:
        if name == text:
            return name
    raise CapsfastError("unknown VMM %r: known ones are %s" % (text, known()))


def ready(name: "VmmName", host: "Host | None" = None) -> "Readiness":
    """Whether the VMM ``name`` (one of NAMES) can run on ``host`` (the
    live host by default; for Kata, probed with ``deep``, as kata-runtime
    creates a VM); CapsfastError for an unknown name."""
    name = vmm_name(name)  # a caller without a checker may pass any text
    profile = PROFILES[name]
    if host is None:
        from capsfast.host import probe

        host = probe(deep=bool(profile.kata))
    out = [_kvm(host)]
    kata = profile.kata.get(host.arch)
    if kata is not None:
        out += _kata(kata, host)
        create_vm = host.kvm.create_vm
        if kata.create_vm and create_vm is not None:
            # Without deep, KVM_CREATE_VM was not tried: the kvm requirement
            # (API version 12) is then the closest reading.
            out.append(Requirement("KVM_CREATE_VM", create_vm, "works" if create_vm else str(host.kvm.error),
                                   None if create_vm else "KVM opens but cannot create a VM; check dmesg"))
    caps = profile.caps.get(host.arch)
    if caps is None:
        out.append(Requirement("arch", False, "no %s requirements known for %s" % (profile.title, host.arch),
                               "%s profiles exist for %s" % (profile.title, ", ".join(profile.caps))))
        caps = ()
    else:
        caps = profile.common + caps
    answers = None if host.kvm_caps is None else dict(host.kvm_caps)
    out += [_cap(profile, cap, answers, host) for cap in caps]
    if kata is not None and host.arch == "aarch64":
        ipa = None if answers is None else answers.get("ARM_VM_IPA_SIZE")
        out.append(Requirement("KVM_CAP_ARM_VM_IPA_SIZE", ipa is not None,
                               "unknown" if ipa is None else "answered: %s" % (
                                   "%d-bit IPA" % ipa if ipa else "0 (the fixed 40-bit IPA)"),
                               None if ipa is not None else "kata-runtime check asks it; a usable /dev/kvm first"))
    failed = tuple(r for r in out if not r.ok)
    return Readiness(name, profile.title, not failed, failed, tuple(out))
