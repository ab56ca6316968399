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
from capsfast.errors import CapsfastError
from capsfast.model import Readiness, Requirement

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Host


class Profile:
    """What a VMM checks before it starts: per architecture the KVM
    capabilities (names as in capsfast.facts.KVM_CAPS), ``common`` ones for
    every architecture it has a list for, CPU flags it reads itself."""

    __slots__ = ("title", "caps", "common", "cpu")

    def __init__(self, title: str, caps: "dict[str, tuple[str, ...]]", common: "tuple[str, ...]" = (),
                 cpu: "tuple[str, ...]" = ()) -> None:
        self.title = title
        self.caps = caps
        self.common = common
        self.cpu = cpu


PROFILES: "dict[str, Profile]" = {
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
    # src/runtime/cmd/kata-runtime/kata-check_amd64.go, setCPUtype() and
    # archHostCanCreateVMContainer() (kata-containers at commit 0a4b755): the
    # CPU flags vmx or svm, and lm, and a usable KVM; no KVM capability.  Its
    # sse4_1 flag and vhost/vhost_net modules are not checked here (capsfast
    # reads neither).
    "kata": Profile("Kata Containers", {"x86_64": ()}, cpu=("vmx-or-svm", "lm")),
}
NAMES = tuple(PROFILES)

_CPU_HINTS = {
    "vmx-or-svm": "expose vmx/svm to this host (nested virtualization) or run on bare metal",
    "lm": "a 64-bit CPU is needed",
}


def known() -> str:
    """The profile names, for messages."""
    return ", ".join(NAMES)


def ready(name: str, host: "Host | None" = None) -> "Readiness":
    """Whether the VMM ``name`` (one of NAMES) can run on ``host`` (the
    live host by default); CapsfastError for an unknown name."""
    profile = PROFILES.get(name)
    if profile is None:
        raise CapsfastError("unknown VMM %r: known ones are %s" % (name, known()))
    if host is None:
        from capsfast.probing import probe

        host = probe()
    kvm = host.kvm
    out = [Requirement("kvm", kvm.usable, "usable" if kvm.usable else "%s: %s" % (kvm.failure, kvm.error),
                       None if kvm.usable else "run 'capsfast check' for the way to a usable /dev/kvm")]
    features = set(host.cpu.features)
    for flag in profile.cpu:
        found = bool(features & {"vmx", "svm"}) if flag == "vmx-or-svm" else flag in features
        out.append(Requirement("cpu." + flag, found, "in CPUID" if found else "not in CPUID (source: %s)"
                               % host.cpu.source, None if found else "%s checks this CPU flag itself: %s"
                               % (profile.title, _CPU_HINTS[flag])))
    caps = profile.caps.get(host.arch)
    if caps is None:
        out.append(Requirement("arch", False, "no %s requirements known for %s" % (profile.title, host.arch),
                               "%s profiles exist for %s" % (profile.title, ", ".join(profile.caps))))
        caps = ()
    else:
        caps = profile.common + caps
    answers = None if host.kvm_caps is None else dict(host.kvm_caps)
    for cap in caps:
        if answers is None:
            out.append(Requirement("KVM_CAP_" + cap, False, "unknown: /dev/kvm cannot be opened",
                                   "run as a user who may open /dev/kvm"))
            continue
        value = answers.get(cap)
        out.append(Requirement("KVM_CAP_" + cap, bool(value), "unknown (the check failed)" if value is None
                               else str(value), None if value else "this kernel's KVM lacks KVM_CAP_%s, which %s "
                               "requires: a newer kernel or KVM module" % (cap, profile.title)))
    failed = tuple(r for r in out if not r.ok)
    return Readiness(name, profile.title, not failed, failed, tuple(out))
