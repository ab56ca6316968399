"""The version, and names and numbers used in more than one place: each
has its one source here."""

# The package's version: pyproject.toml reads it from here.
__version__ = "0.1.0"

# libvirt's names of the x86 architectures (CPUID exists only there).
X86_ARCHS = ("x86_64", "i686")

# The KVM device node and the only API version any kernel has answered
# since 2.6.22 (KVM_API_VERSION in linux/kvm.h).
KVM_DEVICE = "/dev/kvm"
KVM_API_VERSION = 12

# RHEL's QEMU, outside the PATH.
QEMU_KVM = "/usr/libexec/qemu-kvm"
# Where programs are looked up when PATH is unset: glib's default, which
# libvirt's virFindFileInPath takes (without its ".": a daemon's working
# directory holds none of the host's programs).
DEFAULT_PATH = "/bin:/usr/bin"

# The msr driver's node for CPU 0, and the MSRs that say whether the
# firmware locked hardware virtualization off.
MSR_DEVICE = "/dev/cpu/0/msr"
MSR_FEATURE_CONTROL = 0x3A    # Intel IA32_FEATURE_CONTROL: bit 0 lock, bit 2 VMX outside SMX
MSR_VM_CR = 0xC0010114        # AMD VM_CR: bit 4 SVMDIS
# AMD SYSCFG: bit 23 memory encryption (SME/SEV) enabled, bit 24 SEV-SNP
# enabled, both set by the firmware; read only for the security facts.
MSR_SYSCFG = 0xC0010010

# Output formats of capabilities(), the first the default.
FORMATS = ("libvirt", "draft", "json")
