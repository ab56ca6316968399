"""The ``kvm_caps`` part of Host: KVM_CHECK_EXTENSION on the KVM device for
the capabilities VMMs require (no VM created), read when first asked."""
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from capsfast.model import Host
    from capsfast.sources.base import Source

    # Host.kvm_caps: (name, answer or None) in KVM_CAPS order
    KvmCaps = tuple[tuple[str, "int | None"], ...]

# The KVM capabilities asked with KVM_CHECK_EXTENSION (Host.kvm_caps, read
# on first use, never by a probe): name (KVM_CAP_ left off) and number, from
# the kernel's include/uapi/linux/kvm.h (Linux 6.1's header; VM_TYPES,
# GUEST_MEMFD from 6.8, ARM_EL2 from 6.16).  Numbers never change once
# merged; the one list the C call, recordings and the remote collector use.
# The answer is 0 for "unsupported" (or unknown to that kernel), else 1 or
# a value (a count, a limit, a bit mask).
KVM_CAPS: "tuple[tuple[str, int], ...]" = (
    ("IRQCHIP", 0),
    ("USER_MEMORY", 3),
    ("SET_TSS_ADDR", 4),
    ("EXT_CPUID", 7),
    ("NR_VCPUS", 9),
    ("NR_MEMSLOTS", 10),
    ("MP_STATE", 14),
    ("SYNC_MMU", 16),
    ("DESTROY_MEMORY_REGION_WORKS", 21),
    ("USER_NMI", 22),
    ("IRQ_ROUTING", 25),
    ("JOIN_MEMORY_REGIONS_WORKS", 30),
    ("MCE", 31),
    ("IRQFD", 32),
    ("PIT2", 33),
    ("PIT_STATE2", 35),
    ("IOEVENTFD", 36),
    ("SET_IDENTITY_MAP_ADDR", 37),
    ("ADJUST_CLOCK", 39),
    ("INTERNAL_ERROR_DATA", 40),
    ("VCPU_EVENTS", 41),
    ("DEBUGREGS", 50),
    ("X86_ROBUST_SINGLESTEP", 51),
    ("XSAVE", 55),
    ("XCRS", 56),
    ("TSC_CONTROL", 60),
    ("GET_TSC_KHZ", 61),
    ("MAX_VCPUS", 66),
    ("ONE_REG", 70),
    ("TSC_DEADLINE_TIMER", 72),
    ("KVMCLOCK_CTRL", 76),
    ("SIGNAL_MSI", 77),
    ("DEVICE_CTRL", 89),
    ("ARM_PSCI_0_2", 102),
    ("SPLIT_IRQCHIP", 121),
    ("IOEVENTFD_ANY_LENGTH", 122),
    ("ARM_PMU_V3", 126),
    ("MAX_VCPU_ID", 128),
    ("X2APIC_API", 129),
    ("MSI_DEVID", 131),
    ("IMMEDIATE_EXIT", 136),
    ("GET_MSR_FEATURES", 153),
    ("NESTED_STATE", 157),
    ("ARM_VM_IPA_SIZE", 165),
    ("DIRTY_LOG_RING", 192),
    ("XSAVE2", 208),
    ("DIRTY_LOG_RING_ACQ_REL", 223),
    ("GUEST_MEMFD", 234),
    ("VM_TYPES", 235),
    ("ARM_EL2", 240),
)
KVM_CAP_NAMES = tuple(name for name, _number in KVM_CAPS)
KVM_CAP_NUMBERS = tuple(number for _name, number in KVM_CAPS)

NAME = "kvm_caps"
FIELDS = ("kvm_caps",)
# A recording keeps the device's answers to these (scenario.json "devices").
CAPTURE: "dict[str, object]" = {"kvm_caps": [list(row) for row in KVM_CAPS]}
UNKNOWN = {"kvm_caps": None}


def kvm_caps(values: "Sequence[int | None] | None") -> "KvmCaps | None":
    """Host.kvm_caps from the answers in KVM_CAPS order (None: the device
    could not be opened)."""
    if values is None:
        return None
    return tuple(zip(KVM_CAP_NAMES, values))


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    """Host.kvm_caps: the source's KVM device answers (None where it does
    not open)."""
    return {"kvm_caps": kvm_caps(source.kvm_caps(KVM_CAPS))}
