"""Decisions on the facts: whether KVM is usable, and the hardware
virtualization verdict with its evidence (README, "The verdict").

Rules are tried in order, strongest evidence first; the first that decides
wins.  Each returns ``(status, confidence, evidence)`` or None.
"""
from capsfast.constants import KVM_API_VERSION, MSR_FEATURE_CONTROL, MSR_VM_CR
from capsfast.model import Hvm, Kvm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from typing import Literal

    from capsfast.sources.base import KvmDevice
    from capsfast.model import BiosSetting, Confidence, Cpu, HvmStatus, Xen

    Decided = tuple[HvmStatus, Confidence, tuple[str, ...]]
    HvmType = Literal["vmx", "svm"]

CERTAIN: "Confidence" = "certain"
LIKELY: "Confidence" = "likely"
UNKNOWN: "Confidence" = "unknown"

# Kvm.failure: the first step on the way to a usable /dev/kvm that failed.
KVM_FAILURES = (
    "missing",               # no /dev/kvm
    "stat_failed",           # it could not even be looked at
    "not_char_device",       # something else stands there (a fake root's placeholder)
    "not_kvm_device",        # a character device, but not KVM's (10:232)
    "not_accessible",        # this process may not open it read-write
    "open_failed",           # it may, but the open failed
    "api_version_failed",    # KVM_GET_API_VERSION failed
    "api_version_mismatch",  # it answered, but not 12
    "create_vm_failed",      # with deep: KVM_CREATE_VM failed
)


def kvm(device: "KvmDevice", modules: tuple[str, ...], nested: "bool | None", deep: bool,
        group: "str | None" = None) -> Kvm:
    """Kvm from the device's steps: usable when every step up to the API
    version (and, with ``deep``, KVM_CREATE_VM) worked; else the first
    failing step as a code and in words.  ``group``: the node's group's
    name, where it was looked up."""
    exists = device.stat.ok
    char_device = exists and device.mode & 0o170000 == 0o020000
    accessible = char_device and device.access.ok
    api = device.api_version
    failure: str | None = None
    error: str | None = None
    if not exists:
        if device.stat.code == "absent":
            failure, error = "missing", "missing"
        else:
            failure, error = "stat_failed", "stat: %s" % device.stat.reason
    elif not char_device:
        failure, error = "not_char_device", "not a character device"
    elif not device.open.ok:
        code = device.open.code
        failure = {"not_kvm_device": "not_kvm_device", "denied": "not_accessible"}.get(code, "open_failed")
        error = "open: %s" % device.open.reason
    elif api is None:
        failure, error = "api_version_failed", "KVM_GET_API_VERSION: %s" % device.api_call.reason
    elif api != KVM_API_VERSION:
        failure, error = "api_version_mismatch", "API version %d, expected %d" % (api, KVM_API_VERSION)
    elif deep and not device.create_vm.ok:
        failure, error = "create_vm_failed", "KVM_CREATE_VM: %s" % device.create_vm.reason
    return Kvm(
        exists=exists,
        char_device=char_device,
        accessible=accessible,
        usable=failure is None,
        api_version=api,
        modules=modules,
        nested=nested,
        create_vm=device.create_vm.ok if deep and char_device and api is not None else None,
        failure=failure,
        error=error,
        mode=device.mode & 0o7777 if char_device else None,
        group=group,
    )


def _type(cpu: "Cpu | None") -> "HvmType | None":
    if cpu is None:
        return None
    if "vmx" in cpu.features:
        return "vmx"
    if "svm" in cpu.features:
        return "svm"
    return None


def _msr_locked_off(hvm_type: "str | None", msr: "Mapping[int, int]") -> "Decided | None":
    """Rule 1: the firmware locked VMX/SVM off, as the MSR itself says."""
    if hvm_type == "vmx":
        value = msr.get(MSR_FEATURE_CONTROL)
        # IA32_FEATURE_CONTROL: bit 0 lock, bit 2 VMX outside SMX.
        if value is not None and value & 1 and not value & 4:
            return "disabled_by_firmware", CERTAIN, ("cpuid.vmx", "msr.feature-control-locked-off")
    elif hvm_type == "svm":
        value = msr.get(MSR_VM_CR)
        # VM_CR bit 4: SVMDIS.
        if value is not None and value & 0x10:
            return "disabled_by_firmware", CERTAIN, ("cpuid.svm", "msr.vm-cr-svmdis")
    return None


def _xen_dom0(hvm_type: "str | None", xen: "Xen") -> "Decided | None":
    """Rule 2: in dom0 the hypervisor owns VMX/SVM; its tokens decide."""
    if xen.role != "dom0":
        return None
    if any(token.startswith("hvm-") for token in xen.capabilities):
        return "enabled", CERTAIN, ("xen.dom0", "xen.hvm-caps")
    if hvm_type:
        # The seed's rule: the CPU can, the hypervisor offers no HVM guest.
        return "disabled_by_firmware", LIKELY, ("xen.dom0", "cpuid." + hvm_type, "xen.no-hvm-caps")
    return "unsupported", CERTAIN, ("xen.dom0", "cpuid.no-vmx-svm", "xen.no-hvm-caps")


def _guest(hvm_type: "str | None", cpu: "Cpu") -> "Decided | None":
    """Rule 3: under a hypervisor, vmx/svm means nested virtualization."""
    if "hypervisor" not in cpu.features:
        return None
    if hvm_type:
        return "enabled", CERTAIN, ("cpuid.hypervisor", "cpuid." + hvm_type)
    return "not_exposed", CERTAIN, ("cpuid.hypervisor", "cpuid.no-vmx-svm")


def _bare_metal(hvm_type: "str | None", cpu: "Cpu", kernel_flags: "tuple[str, ...] | None") -> "Decided":
    """Rule 4: Linux 5.6+ drops vmx (and newer kernels svm) from its flags
    when the firmware locked it off, though CPUID still shows it."""
    source = "cpuinfo" if cpu.source == "cpuinfo" else "cpuid"
    if not hvm_type:
        return "unsupported", CERTAIN if source == "cpuid" else LIKELY, (source + ".no-vmx-svm",)
    if source == "cpuinfo":
        # The flags are all we have: present means the kernel kept them.
        return "enabled", LIKELY, ("cpuinfo." + hvm_type,)
    if kernel_flags is None:
        return "enabled", LIKELY, ("cpuid." + hvm_type,)
    if hvm_type not in kernel_flags:
        return "disabled_by_firmware", LIKELY, ("cpuid." + hvm_type, "cpuinfo.%s-missing" % hvm_type)
    return "enabled", CERTAIN, ("cpuid." + hvm_type, "cpuinfo." + hvm_type)


def _no_cpuid(kvm: Kvm) -> "Decided":
    """Rule 5: without CPUID only a working KVM says anything."""
    if kvm.usable:
        return "enabled", CERTAIN, ("cpuid.unavailable", "kvm.usable")
    return "unknown", UNKNOWN, ("cpuid.unavailable", "kvm.not-usable")


def decide(cpu: "Cpu | None", kvm: Kvm, xen: "Xen", kernel_flags: "tuple[str, ...] | None",
           msr: "Mapping[int, int]") -> Hvm:
    """The Hvm verdict.  ``cpu`` is None where no CPU facts exist (not x86);
    ``msr`` maps MSR numbers to the values that could be read."""
    hvm_type = _type(cpu)
    if cpu is None:
        decided = _no_cpuid(kvm)
    else:
        decided = (
            _msr_locked_off(hvm_type, msr)
            or _xen_dom0(hvm_type, xen)
            or _guest(hvm_type, cpu)
            or _bare_metal(hvm_type, cpu, kernel_flags)
        )
    status, confidence, evidence = decided
    bios: "BiosSetting | None"
    on_the_metal = cpu is not None and ("hypervisor" not in cpu.features or xen.role == "dom0")
    if status == "disabled_by_firmware":
        bios = "disabled"
    elif status == "enabled" and on_the_metal:
        bios = "enabled"
    else:
        bios = None
    return Hvm(hvm_type, status, confidence, bios, evidence)
