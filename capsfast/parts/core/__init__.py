"""The core part of Host: the CPU, the hypervisor, KVM, kqemu, Xen and the
HVM verdict, read by every probe in one crossing (``read``: the plan and
what its results mean; ``parse``: CPUID leaves, architecture names and
file text decoded; ``decide``: KVM usability and the verdict).  Its one
lazy field is the kernel's CPU flags, where the probe did not need them."""
from capsfast.constants import KVM_DEVICE
from capsfast.parts.core import parse as _parse
from capsfast.parts.core import read as _read

NAME = "core"
FIELDS = ("kernel_flags",)
# The device and CPU files, the architecture file, the KVM device's steps.
CAPTURE: "dict[str, object]" = {
    "files": [list(entry) for entry in _read.DEVICE_FILES + _read.CPU_FILES + (_read.ARCH_FILE,)],
    "depends": dict(_read.DEPENDS),
    "arch_key": _read.ARCH_FILE[0],
    "arch_aliases": dict(_parse.ARCH_ALIASES),
    "kvm_device": KVM_DEVICE,
}
UNKNOWN = {"kernel_flags": None}
