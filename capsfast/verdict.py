"""The HVM verdict of DESIGN section 5: facts in, verdict and evidence out.

Rules are tried in order, strongest evidence first; the first that decides
wins.  Each returns ``(status, confidence, evidence)`` or None.
"""
from capsfast.model import Hvm

CERTAIN, LIKELY, UNKNOWN = "certain", "likely", "unknown"


def _type(cpu):
    if cpu is None:
        return None
    if "vmx" in cpu.features:
        return "vmx"
    if "svm" in cpu.features:
        return "svm"
    return None


def _msr_locked_off(hvm_type, msr):
    """Rule 1: the firmware locked VMX/SVM off, as the MSR itself says."""
    if hvm_type == "vmx":
        value = msr.get(0x3A)
        # IA32_FEATURE_CONTROL: bit 0 lock, bit 2 VMX outside SMX.
        if value is not None and value & 1 and not value & 4:
            return "disabled_by_firmware", CERTAIN, ("cpuid.vmx", "msr.feature-control-locked-off")
    elif hvm_type == "svm":
        value = msr.get(0xC0010114)
        # VM_CR bit 4: SVMDIS.
        if value is not None and value & 0x10:
            return "disabled_by_firmware", CERTAIN, ("cpuid.svm", "msr.vm-cr-svmdis")
    return None


def _xen_dom0(hvm_type, xen):
    """Rule 2: in dom0 the hypervisor owns VMX/SVM; its tokens decide."""
    if xen.role != "dom0":
        return None
    if any(token.startswith("hvm-") for token in xen.capabilities):
        return "enabled", CERTAIN, ("xen.dom0", "xen.hvm-caps")
    if hvm_type:
        # The seed's rule: the CPU can, the hypervisor offers no HVM guest.
        return "disabled_by_firmware", LIKELY, ("xen.dom0", "cpuid." + hvm_type, "xen.no-hvm-caps")
    return "unsupported", CERTAIN, ("xen.dom0", "cpuid.no-vmx-svm", "xen.no-hvm-caps")


def _guest(hvm_type, cpu):
    """Rule 3: under a hypervisor, vmx/svm means nested virtualization."""
    if "hypervisor" not in cpu.features:
        return None
    if hvm_type:
        return "enabled", CERTAIN, ("cpuid.hypervisor", "cpuid." + hvm_type)
    return "not_exposed", CERTAIN, ("cpuid.hypervisor", "cpuid.no-vmx-svm")


def _bare_metal(hvm_type, cpu, kernel_flags):
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


def _no_cpuid(kvm):
    """Rule 5: without CPUID only a working KVM says anything."""
    if kvm.usable:
        return "enabled", CERTAIN, ("cpuid.unavailable", "kvm.usable")
    return "unknown", UNKNOWN, ("cpuid.unavailable", "kvm.not-usable")


def decide(cpu, kvm, xen, kernel_flags, msr):
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
    on_the_metal = cpu is not None and ("hypervisor" not in cpu.features or xen.role == "dom0")
    if status == "disabled_by_firmware":
        bios = "disabled"
    elif status == "enabled" and on_the_metal:
        bios = "enabled"
    else:
        bios = None
    return Hvm(hvm_type, status, confidence, bios, evidence)
