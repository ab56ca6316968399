"""What a probe reads: the device nodes and files, as plans for one
crossing into C.  Data only; ``capsfast.facts`` says what the results mean.
"""
from __future__ import annotations

from capsfast._native import MSR, READ, READ_BLOCK, STAT
from capsfast.constants import KVM_DEVICE, MSR_DEVICE, MSR_FEATURE_CONTROL, MSR_VM_CR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from capsfast._native import FileSpec

    # (key, path as on the probed host, op, msr number, buffer size)
    Entry = tuple[str, str, str, int, int]

SMALL = 4096           # sysfs and procfs files of interest are a line or two
CPUINFO_BLOCK = 16384  # one processor's block, with room for a long flags line

KVM_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm")

DEVICE_FILES: tuple[Entry, ...] = (
    ("kqemu", "/dev/kqemu", STAT, 0, 0),
    ("proc_xen", "/proc/xen", STAT, 0, 0),
    ("xen_caps", "/proc/xen/capabilities", READ, 0, SMALL),
    ("hv_type", "/sys/hypervisor/type", READ, 0, SMALL),
    ("hv_caps", "/sys/hypervisor/properties/capabilities", READ, 0, SMALL),
) + tuple(
    ("module." + m, "/sys/module/" + m, STAT, 0, 0) for m in KVM_MODULES
) + (
    ("nested.kvm_intel", "/sys/module/kvm_intel/parameters/nested", READ, 0, SMALL),
    ("nested.kvm_amd", "/sys/module/kvm_amd/parameters/nested", READ, 0, SMALL),
)
# key -> the key of an entry whose file must exist for this one to be
# looked at: C skips the system calls for a child of something absent.
DEPENDS = {
    "xen_caps": "proc_xen",
    "nested.kvm_intel": "module.kvm_intel",
    "nested.kvm_amd": "module.kvm_amd",
}

# Facts of the CPU that cannot change while the system runs: read once for
# the live host.
CPU_FILES: tuple[Entry, ...] = (
    ("cpuinfo", "/proc/cpuinfo", READ_BLOCK, 0, CPUINFO_BLOCK),
    ("msr.feature_control", MSR_DEVICE, MSR, MSR_FEATURE_CONTROL, 0),
    ("msr.vm_cr", MSR_DEVICE, MSR, MSR_VM_CR, 0),
)
ARCH_FILE: Entry = ("arch", "/proc/sys/kernel/arch", READ, 0, SMALL)

__all__ = ["KVM_DEVICE", "entries", "specs", "under"]


def entries(with_cpu_files: bool, with_arch: bool) -> tuple[Entry, ...]:
    """The device files, plus the CPU files and the arch file if asked."""
    plan = DEVICE_FILES
    if with_cpu_files:
        plan = plan + CPU_FILES
    if with_arch:
        plan = plan + (ARCH_FILE,)
    return plan


def specs(root: str, plan: Sequence[Entry]) -> list[FileSpec]:
    """``plan`` as the crossing's file entries under ``root``, with the
    DEPENDS links as indices."""
    index = {row[0]: i for i, row in enumerate(plan)}
    return [
        (under(root, path), op, msr, size, index.get(DEPENDS.get(key, "")))
        for key, path, op, msr, size in plan
    ]


def under(root: str, path: str) -> str:
    """``path`` (absolute, as on the probed host) inside ``root``."""
    return path if root == "/" else root.rstrip("/") + path
