"""Deciding the platform part of a Host (pure): the confidential-computing
verdicts (AMD SEV, SEV-ES, SEV-SNP, Intel TDX, SGX, IBM Secure Execution),
device assignment (the IOMMU), and the other devices and cgroup
controllers virt-host-validate checks.  The facts come from
``capsfast.parts.platform.read``, their values from
``capsfast.parts.platform.parse``; nothing here reads a file.

Each technology goes down the same ladder as hardware virtualization,
stronger evidence first: the CPU offers it (CPUID) but the firmware turned
it off (an MSR where readable: ``certain``; else the kernel cleared a flag
it clears only when the firmware did not enable the feature: ``likely``);
the kernel or its module has it off (``disabled_in_kernel``, with the
parameter or argument to set); on, and the device a VMM needs exists
(``enabled``); a guest its hypervisor does not give it (``not_exposed``);
the CPU lacks it (``unsupported``); cannot tell (``unknown``).  An
unreadable or malformed file never decides "no": it gives ``unknown``.
"""
from capsfast.model import Devices, Iommu, Security, Sev, Sgx, Tech
from capsfast.parts.platform.parse import (
    Facts, cgroup_v1, cgroup_v2, cmdline, cmdline_value, cpuid_leaf, cpuinfo_block, kernel_flags, misc_capacity,
    parameter,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import CgroupVersion, Confidence, Host, IommuStatus, TechStatus
    from capsfast.parts.platform.parse import Walk

STATUSES = ("enabled", "disabled_by_firmware", "disabled_in_kernel", "not_exposed", "unsupported", "unknown")
IOMMU_STATUSES = ("enabled", "disabled_in_kernel", "absent", "unknown")
TECHS = ("sev", "sev_es", "sev_snp", "tdx", "sgx", "s390_pv")
TITLES = {
    "sev": "AMD SEV", "sev_es": "AMD SEV-ES", "sev_snp": "AMD SEV-SNP",
    "tdx": "Intel TDX", "sgx": "Intel SGX", "s390_pv": "IBM Secure Execution",
}
# The cgroup controllers virt-host-validate's QEMU driver asks for, in its order.
CGROUP_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "devices", "blkio")
# Their names on the cgroup v2 hierarchy (cpuacct and devices have none).
_V2_NAMES = {"memory": "memory", "cpu": "cpu", "cpuset": "cpuset", "blkio": "io"}

# CPUID 0x8000001F EAX: the bit of each AMD technology.
_AMD_BITS = {"sev": 1, "sev_es": 3, "sev_snp": 4}
# AMD SYSCFG (MSR 0xC0010010): MemEncryptionModEn and SecureNestedPagingEn.
SYSCFG_MEM_ENCRYPT = 1 << 23
SYSCFG_SNP = 1 << 24
# Intel IA32_FEATURE_CONTROL (MSR 0x3a): lock and SGX global enable.
FEAT_CTL_LOCKED = 1 << 0
FEAT_CTL_SGX = 1 << 18
# KVM_CAP_VM_TYPES bits (linux/kvm.h KVM_X86_*_VM).
VM_TYPE = {"sev": 2, "sev_es": 3, "sev_snp": 4, "tdx": 5}


# -- the verdicts -----------------------------------------------------------------

def _tech(status: "TechStatus", confidence: "Confidence", evidence: "list[str]", hint: "str | None") -> Tech:
    return Tech(status=status, confidence=confidence, evidence=tuple(evidence), hint=hint)


def _nested(title: str) -> str:
    return "%s guests cannot be nested: run them on a bare-metal host" % title


def _amd(tech: str, facts: Facts, host: "Host", flags: "frozenset[str] | None", x86: bool) -> Tech:
    """SEV, SEV-ES or SEV-SNP."""
    evidence: list[str] = []
    title = TITLES[tech]
    if not x86:
        return _tech("unsupported", "certain", ["arch.not-x86"], None)
    if host.cpu.vendor not in (None, "AuthenticAMD", "HygonGenuine"):
        return _tech("unsupported", "certain", ["cpu.not-amd"], None)
    leaf = cpuid_leaf(facts.walk, 0x8000001F)
    in_cpuid = None if leaf is None else bool(leaf[0] >> _AMD_BITS[tech] & 1)
    if facts.walk is not None and leaf is None:
        in_cpuid = False  # the CPU has no leaf 0x8000001F at all
    guest = host.hypervisor.vendor is not None
    if in_cpuid is False:
        evidence.append("cpuid.%s-missing" % tech)
        if guest:
            return _tech("not_exposed", "certain", evidence + ["cpuid.hypervisor"], _nested(title))
        return _tech("unsupported", "certain", evidence, None)
    if in_cpuid:
        evidence.append("cpuid.%s" % tech)
    if guest:
        return _tech("not_exposed", "likely", evidence + ["cpuid.hypervisor"], _nested(title))
    # The firmware.  SYSCFG where readable says it outright.
    syscfg = facts.syscfg
    if syscfg is not None:
        off = not syscfg & SYSCFG_MEM_ENCRYPT or (tech == "sev_snp" and not syscfg & SYSCFG_SNP)
        if off:
            evidence.append("msr.syscfg-%s" % ("snp-off" if syscfg & SYSCFG_MEM_ENCRYPT else "mem-encrypt-off"))
            return _tech("disabled_by_firmware", "certain", evidence, _firmware_hint(tech))
        evidence.append("msr.syscfg-on")
    confidence: "Confidence" = "certain" if in_cpuid else "likely"
    if flags is None:
        evidence.append("cpuinfo.unread")
        confidence = "likely"
        if in_cpuid is None:
            return _tech("unknown", "unknown", evidence, "neither CPUID nor /proc/cpuinfo could be read")
    elif host.arch == "i686":
        # early_detect_mem_encrypt() in arch/x86/kernel/cpu/amd.c clears
        # these flags under CONFIG_X86_32: SEV needs long mode.
        return _tech("disabled_in_kernel", "certain", evidence + ["kernel.32-bit"],
                     "SEV needs a 64-bit (x86_64) kernel")
    elif tech not in flags:
        evidence.append("cpuinfo.%s-missing" % tech)
        if tech == "sev" or "sev" not in flags:
            # early_detect_mem_encrypt() in arch/x86/kernel/cpu/amd.c clears
            # sev, sev_es and sev_snp together when SYSCFG.MemEncryptionModEn
            # or HWCR.SMMLOCK is clear: both are the firmware's to set.
            if in_cpuid is None:
                return _tech("unknown", "unknown", evidence, "CPUID could not be read: cannot tell a CPU "
                             "without %s from one the firmware turned it off on" % title)
            return _tech("disabled_by_firmware", "likely", evidence, _firmware_hint(tech))
        if tech == "sev_snp":
            snp_param, _value = parameter(facts, "param.kvm_amd.sev_snp")
            if snp_param == "absent" and facts.present.get("module.kvm_amd"):
                return _tech("disabled_in_kernel", "likely", evidence + ["kvm_amd.sev_snp-absent"],
                             "this kernel cannot host SEV-SNP guests (Linux 6.11 or later with "
                             "CONFIG_KVM_AMD_SEV): update the kernel")
            # The kernel clears sev_snp when the firmware did not set up the
            # RMP table (SYSCFG.SNPEn: snp_probe_rmptable_info() in
            # arch/x86/virt/svm/sev.c, early_rmptable_check() before it), but
            # also for a CPU whose RMP format it does not know: not only
            # the firmware's doing.
            return _tech("unknown", "unknown", evidence,
                         "enable SEV-SNP and SNP memory coverage in the firmware setup; if they are on, "
                         "see dmesg for 'SEV-SNP' (this kernel may not support the CPU)")
        # sev present, sev_es missing: no kernel path clears one without the other.
        return _tech("unknown", "unknown", evidence, "the kernel shows sev but not sev_es: see dmesg for 'SEV'")
    else:
        evidence.append("cpuinfo.%s" % tech)
    # The kernel: kvm_amd and its parameter.
    module = facts.present.get("module.kvm_amd")
    if module is None:
        return _tech("unknown", "unknown", evidence + ["kvm_amd.unreadable"], None)
    if not module:
        return _tech("disabled_in_kernel", "certain", evidence + ["kvm_amd.not-loaded"],
                     "load kvm_amd with %s on: modprobe kvm_amd %s=1" % (title, tech))
    state, on = parameter(facts, "param.kvm_amd." + tech)
    if state == "absent":
        return _tech("disabled_in_kernel", "certain", evidence + ["kvm_amd.%s-absent" % tech],
                     "this kernel's kvm_amd has no '%s' parameter (built without CONFIG_KVM_AMD_SEV, or too "
                     "old for %s): use a kernel that supports it" % (tech, title))
    if state != "ok":
        return _tech("unknown", "unknown", evidence + ["kvm_amd.%s-%s" % (tech, state)],
                     "/sys/module/kvm_amd/parameters/%s could not be read as Y or N" % tech)
    if not on:
        return _tech("disabled_in_kernel", "certain", evidence + ["kvm_amd.%s=N" % tech],
                     "add kvm_amd.%s=1 to the kernel command line (or 'options kvm_amd %s=1' in "
                     "/etc/modprobe.d/ and reload kvm_amd); if it is set, KVM turned it off at load: "
                     "see dmesg for 'SEV'" % (tech, tech))
    evidence.append("kvm_amd.%s=Y" % tech)
    vm_types = _vm_types(host)
    if vm_types is not None:
        if vm_types >> VM_TYPE[tech] & 1:
            evidence.append("kvm.vm-type-%s" % tech)
    capacity = misc_capacity(facts)
    if capacity is not None and tech in ("sev", "sev_es") and tech in capacity:
        evidence.append("misc.%s=%d" % (tech, capacity[tech]))
    present = facts.present.get("dev.sev")
    if present is None:
        return _tech("unknown", "unknown", evidence + ["dev.sev-unreadable"], None)
    if not present:
        return _tech("disabled_in_kernel", "likely", evidence + ["dev.sev-missing"],
                     "/dev/sev, which QEMU needs to launch %s guests, is missing: load the PSP driver "
                     "(modprobe ccp) and see dmesg for 'ccp' and 'SEV'" % title)
    evidence.append("dev.sev")
    hint = None
    if facts.access.get("/dev/sev") is False:
        evidence.append("dev.sev-not-accessible")
        hint = "QEMU needs read-write access to /dev/sev: run it as root or in the group that owns /dev/sev"
    return _tech("enabled", confidence, evidence, hint)


def _firmware_hint(tech: str) -> str:
    if tech == "sev_snp":
        return "enable SEV-SNP (and SNP memory coverage) in the firmware setup, then power the machine off and on"
    return ("enable memory encryption (SME/SEV, 'SEV ASIDs') in the firmware setup, then power the machine "
            "off and on")


def _vm_types(host: "Host") -> "int | None":
    caps = host.kvm_caps
    if caps is None:
        return None
    return dict(caps).get("VM_TYPES")


def _sev(facts: Facts, host: "Host", flags: "frozenset[str] | None", x86: bool) -> Sev:
    verdict = _amd("sev", facts, host, flags, x86)
    leaf = cpuid_leaf(facts.walk, 0x8000001F) if x86 else None
    cbitpos = reduced = max_guests = max_es = None
    if leaf is not None and leaf[0] >> 1 & 1:
        cbitpos = leaf[1] & 0x3F
        reduced = leaf[1] >> 6 & 0x3F
        # As libvirt's virQEMUCapsGetSEVMaxGuests(): ECX the highest SEV
        # ASID, EDX the lowest ASID of a guest without SEV-ES.
        max_asid, min_asid = leaf[2], leaf[3]
        if max_asid and min_asid:
            max_guests, max_es = max(max_asid - min_asid + 1, 0), min_asid - 1
        else:
            max_guests = max_es = 0
    return Sev(*verdict, cbitpos, reduced, max_guests, max_es)


def _tdx(facts: Facts, host: "Host", flags: "frozenset[str] | None", x86: bool) -> Tech:
    evidence: list[str] = []
    if not x86:
        return _tech("unsupported", "certain", ["arch.not-x86"], None)
    vendor = host.cpu.vendor
    if vendor is not None and vendor != "GenuineIntel":
        return _tech("unsupported", "certain", ["cpu.not-intel"], None)
    if host.hypervisor.vendor is not None:
        return _tech("not_exposed", "certain", ["cpuid.hypervisor"], _nested("Intel TDX"))
    if flags is None:
        return _tech("unknown", "unknown", ["cpuinfo.unread"], None)
    if "tdx_host_platform" not in flags:
        evidence.append("cpuinfo.tdx_host_platform-missing")
        # tdx_init() in arch/x86/virt/vmx/tdx/tdx.c sets the flag only once
        # the BIOS has given TDX private KeyIDs, but it also stays off for
        # reasons of the kernel's own (hibernation enabled, too few KeyIDs,
        # a kernel without TDX host support): not only the firmware's doing.
        state, _on = parameter(facts, "param.kvm_intel.tdx")
        if state == "absent" and facts.present.get("module.kvm_intel"):
            evidence.append("kvm_intel.tdx-absent")
        return _tech("unknown", "unknown", evidence,
                     "no TDX host: enable TDX (TME-MT, TDX, SEAM loader) in the firmware setup of a CPU that has it, "
                     "and use a kernel with TDX host support (dmesg: 'tdx:')")
    evidence.append("cpuinfo.tdx_host_platform")
    module = facts.present.get("module.kvm_intel")
    if module is None:
        return _tech("unknown", "unknown", evidence + ["kvm_intel.unreadable"], None)
    if not module:
        return _tech("disabled_in_kernel", "certain", evidence + ["kvm_intel.not-loaded"],
                     "load kvm_intel with TDX on: modprobe kvm_intel tdx=1")
    state, on = parameter(facts, "param.kvm_intel.tdx")
    if state == "absent":
        return _tech("disabled_in_kernel", "certain", evidence + ["kvm_intel.tdx-absent"],
                     "this kernel's kvm_intel has no 'tdx' parameter (built without CONFIG_KVM_INTEL_TDX): "
                     "use a kernel that supports TDX hosts")
    if state != "ok":
        return _tech("unknown", "unknown", evidence + ["kvm_intel.tdx-%s" % state],
                     "/sys/module/kvm_intel/parameters/tdx could not be read as Y or N")
    if not on:
        return _tech("disabled_in_kernel", "certain", evidence + ["kvm_intel.tdx=N"],
                     "add kvm_intel.tdx=1 to the kernel command line (or 'options kvm_intel tdx=1' in "
                     "/etc/modprobe.d/ and reload kvm_intel)")
    evidence.append("kvm_intel.tdx=Y")
    vm_types = _vm_types(host)
    if vm_types is None:
        evidence.append("kvm.vm-types-unknown")
        return _tech("enabled", "likely", evidence, None)
    if not vm_types >> VM_TYPE["tdx"] & 1:
        return _tech("unknown", "unknown", evidence + ["kvm.vm-type-tdx-missing"],
                     "kvm_intel says tdx=Y but KVM offers no TDX VM type: see dmesg for 'tdx'")
    return _tech("enabled", "certain", evidence + ["kvm.vm-type-tdx"], None)


def _sgx(facts: Facts, host: "Host", flags: "frozenset[str] | None", cmd: "list[str] | None",
         x86: bool) -> Sgx:
    verdict, details = _sgx_verdict(facts, host, flags, cmd, x86)
    return Sgx(*verdict, *details)


def _sgx_details(walk: "Walk | None") -> "tuple[bool | None, bool | None, bool | None, tuple[tuple[int, int], ...] | None]":
    leaf7 = cpuid_leaf(walk, 7)
    if leaf7 is None:
        return None, None, None, None
    if not leaf7[1] >> 2 & 1:
        return False, False, bool(leaf7[2] >> 30 & 1), ()
    leaf12 = cpuid_leaf(walk, 0x12) or (0, 0, 0, 0)
    sections = []
    assert walk is not None
    for sub in range(2, 64):
        regs = walk.get((0x12, sub))
        if regs is None or regs[0] & 0xF != 1:
            break
        base = (regs[0] & 0xFFFFF000) | (regs[1] & 0xFFFFF) << 32
        size = (regs[2] & 0xFFFFF000) | (regs[3] & 0xFFFFF) << 32
        sections.append((base, size))
    return bool(leaf12[0] & 1), bool(leaf12[0] >> 1 & 1), bool(leaf7[2] >> 30 & 1), tuple(sections)


def _sgx_verdict(facts: Facts, host: "Host", flags: "frozenset[str] | None", cmd: "list[str] | None",
                 x86: bool) -> "tuple[Tech, tuple[bool | None, bool | None, bool | None, tuple[tuple[int, int], ...] | None]]":
    details = _sgx_details(facts.walk if x86 else None)
    if not x86:
        return _tech("unsupported", "certain", ["arch.not-x86"], None), details
    if host.cpu.vendor not in (None, "GenuineIntel"):
        return _tech("unsupported", "certain", ["cpu.not-intel"], None), details
    evidence: list[str] = []
    leaf7 = cpuid_leaf(facts.walk, 7)
    in_cpuid = facts.walk is not None and leaf7 is not None and bool(leaf7[1] >> 2 & 1)
    guest = host.hypervisor.vendor is not None
    if facts.walk is not None and not in_cpuid:
        evidence.append("cpuid.sgx-missing")
        if guest:
            return _tech("not_exposed", "certain", evidence + ["cpuid.hypervisor"],
                         "give this VM SGX (an EPC section) on its host"), details
        return _tech("unsupported", "certain", evidence, None), details
    if facts.walk is not None:
        evidence.append("cpuid.sgx")
    if details[2]:
        evidence.append("cpuid.sgx_lc")
    feat_ctl = dict(host.msr).get(0x3A)
    if feat_ctl is not None and feat_ctl & FEAT_CTL_LOCKED and not feat_ctl & FEAT_CTL_SGX:
        return _tech("disabled_by_firmware", "certain", evidence + ["msr.feature-control-sgx-off"],
                     "enable SGX ('SGX: Enabled', with a PRMRR size) in the firmware setup"), details
    if flags is None:
        return _tech("unknown", "unknown", evidence + ["cpuinfo.unread"], None), details
    if "sgx" not in flags:
        evidence.append("cpuinfo.sgx-missing")
        if cmdline_value(cmd, "nosgx") is not None:
            return _tech("disabled_in_kernel", "certain", evidence + ["cmdline.nosgx"],
                         "remove nosgx from the kernel command line"), details
        if facts.walk is None:
            return _tech("unknown", "unknown", evidence, None), details
        # init_ia32_feat_ctl() in arch/x86/kernel/cpu/feat_ctl.c clears sgx
        # when the firmware locked IA32_FEATURE_CONTROL without SGX enabled;
        # a kernel built without SGX support clears it too.
        return _tech("disabled_by_firmware", "likely", evidence,
                     "enable SGX in the firmware setup; if it is on, the kernel lacks SGX support "
                     "(CONFIG_X86_SGX, CONFIG_X86_SGX_KVM)"), details
    evidence.append("cpuinfo.sgx")
    vepc = facts.present.get("dev.sgx_vepc")
    if vepc is None:
        return _tech("unknown", "unknown", evidence + ["dev.sgx_vepc-unreadable"], None), details
    if not vepc:
        return _tech("disabled_in_kernel", "likely", evidence + ["dev.sgx_vepc-missing"],
                     "/dev/sgx_vepc, which QEMU needs for guest EPC, is missing: use a kernel with "
                     "CONFIG_X86_SGX_KVM (and VMX on)"), details
    evidence.append("dev.sgx_vepc")
    hint = None
    if facts.access.get("/dev/sgx_vepc") is False:
        evidence.append("dev.sgx_vepc-not-accessible")
        hint = "QEMU needs read-write access to /dev/sgx_vepc: run it as root or in the group that owns it"
    return _tech("enabled", "certain", evidence, hint), details


# The values libvirt's virt-host-validate accepts for prot_virt (prefix match).
_IBM_VALUES = ("y", "Y", "on", "ON", "oN", "On", "1")


def _s390_pv(facts: Facts, host: "Host", cmd: "list[str] | None") -> Tech:
    if host.arch != "s390x":
        return _tech("unsupported", "certain", ["arch.not-s390x"], None)
    evidence: list[str] = []
    block = cpuinfo_block(facts)
    if block is None or "facilities" not in block:
        return _tech("unknown", "unknown", ["cpuinfo.unread"], None)
    if "158" not in block["facilities"].split():
        evidence.append("cpuinfo.facility-158-missing")
        if host.hypervisor.vendor is not None:
            return _tech("not_exposed", "certain", evidence, _nested("IBM Secure Execution"))
        return _tech("unsupported", "likely", evidence,
                     "this machine or its firmware does not offer Secure Execution (facility 158)")
    evidence.append("cpuinfo.facility-158")
    uv = facts.present.get("uv")
    if uv is None:
        return _tech("unknown", "unknown", evidence + ["uv.unreadable"], None)
    if not uv:
        return _tech("disabled_in_kernel", "certain", evidence + ["uv.missing"],
                     "this kernel has no Secure Execution host support (CONFIG_PROTECTED_VIRTUALIZATION_HOST)")
    value = cmdline_value(cmd, "prot_virt")
    on_cmdline = value is not None and value.startswith(_IBM_VALUES)
    state = facts.state("uv.prot_virt_host")
    if state == "absent":
        # Kernels before prot_virt_host: the argument alone, as libvirt decides.
        if cmd is None:
            return _tech("unknown", "unknown", evidence + ["cmdline.unread"], None)
        if on_cmdline:
            return _tech("enabled", "likely", evidence + ["cmdline.prot_virt"], None)
        return _tech("disabled_in_kernel", "certain", evidence + ["cmdline.prot_virt-missing"],
                     "add prot_virt=1 to the kernel command line")
    text = facts.text("uv.prot_virt_host")
    value_text = None if text is None else text.strip()
    if value_text == "1":
        return _tech("enabled", "certain", evidence + ["uv.prot_virt_host=1"], None)
    if value_text != "0":
        return _tech("unknown", "unknown", evidence + ["uv.prot_virt_host-%s" % (
            "unreadable" if text is None else "malformed")], None)
    evidence.append("uv.prot_virt_host=0")
    if on_cmdline:
        return _tech("unknown", "unknown", evidence + ["cmdline.prot_virt"],
                     "prot_virt is set but the ultravisor did not start: see dmesg for 'prot_virt'")
    return _tech("disabled_in_kernel", "certain", evidence, "add prot_virt=1 to the kernel command line")


# -- device assignment --------------------------------------------------------------

_IOMMU_ARGS = ("intel_iommu", "amd_iommu", "iommu", "iommu.passthrough", "iommu.strict")
_TABLE_ORDER = ("DMAR", "IVRS", "IORT")


def _iommu(facts: Facts, host: "Host", cmd: "list[str] | None") -> Iommu:
    evidence: list[str] = []
    tables = [t for t in _TABLE_ORDER if facts.present.get("acpi." + t)]
    unknown_tables = any(facts.present.get("acpi." + t) is None for t in _TABLE_ORDER)
    table = tables[0] if tables else None
    groups_list = facts.listed.get("iommu_groups")
    groups = None if groups_list is None else len(groups_list)
    groups_dir = facts.present.get("iommu_groups")
    units = tuple(facts.listed.get("class_iommu") or ())
    args = tuple(a for a in (cmd or ()) if a.partition("=")[0] in _IOMMU_ARGS and "=" in a)
    vfio = facts.present.get("dev.vfio")
    iommufd = facts.present.get("dev.iommu")

    def done(status: "IommuStatus", confidence: "Confidence", hint: "str | None") -> Iommu:
        return Iommu(status, confidence, tuple(evidence), hint, groups, table, units, args, vfio, iommufd)

    for t in tables:
        evidence.append("acpi.%s" % t)
    if host.arch == "s390x":
        # virt-host-validate skips the IOMMU check where no PCI device is
        # online, which is usual on s390x: the evidence tells which.
        pci = facts.listed.get("pci_devices")
        evidence.append("pci.unreadable" if pci is None else "pci.devices" if pci else
                        "pci.devices-none" if facts.present.get("pci_devices") else "pci.missing")
    if groups is not None and groups > 0:
        evidence.append("iommu.groups")
        return done("enabled", "certain", None)
    if groups is None:
        evidence.append("iommu.groups-unreadable")
        return done("unknown", "unknown", None)
    evidence.append("iommu.groups-empty" if groups_dir else "iommu.groups-missing")
    if table is not None:
        if not groups_dir:
            return done("disabled_in_kernel", "certain",
                        "this kernel has no IOMMU support (CONFIG_IOMMU_API, CONFIG_INTEL_IOMMU / CONFIG_AMD_IOMMU)")
        return done("disabled_in_kernel", "certain", _iommu_arg_hint(table, cmd))
    if unknown_tables:
        evidence.append("acpi.unreadable")
        return done("unknown", "unknown", None)
    if host.hypervisor.vendor is not None:
        evidence.append("cpuid.hypervisor")
        return done("absent", "certain", "give this VM a virtual IOMMU on its host (QEMU: -device intel-iommu, "
                                         "amd-iommu or virtio-iommu)")
    if host.arch in ("x86_64", "i686"):
        vendor = host.cpu.vendor
        name = "VT-d" if vendor == "GenuineIntel" else "AMD-Vi (IOMMU)" if vendor == "AuthenticAMD" else \
            "the IOMMU (VT-d / AMD-Vi)"
        return done("absent", "likely", "no ACPI DMAR or IVRS table: enable %s in the firmware setup, if the "
                                        "platform has it" % name)
    return done("absent", "likely", None)


def _iommu_arg_hint(table: str, cmd: "list[str] | None") -> str:
    if table == "DMAR":
        current = cmdline_value(cmd, "intel_iommu")
        if current is not None and current.startswith("off"):
            return "replace intel_iommu=%s with intel_iommu=on on the kernel command line" % current
        return "add intel_iommu=on to the kernel command line"
    if table == "IVRS":
        for name in ("amd_iommu", "iommu"):
            current = cmdline_value(cmd, name)
            if current is not None and current.startswith("off"):
                return "remove %s=%s from the kernel command line" % (name, current)
        return "add iommu=pt iommu=1 to the kernel command line (and check dmesg for 'AMD-Vi')"
    current = cmdline_value(cmd, "iommu.passthrough")
    return "check dmesg for 'arm-smmu' and the kernel's SMMU support (CONFIG_ARM_SMMU_V3)" + (
        "" if current is None else "; iommu.passthrough=%s is set" % current)


# -- the other devices and cgroups --------------------------------------------------

def _cgroups(facts: Facts) -> "tuple[CgroupVersion | None, tuple[tuple[str, bool | None], ...]]":
    proc = cgroup_v1(facts)
    v1 = proc or {}
    v2 = cgroup_v2(facts, "cgroup2")
    hybrid = cgroup_v2(facts, "cgroup2.unified")
    v2_words: "set[str] | None" = None
    if v2 is not None or hybrid is not None:
        v2_words = (v2 or set()) | (hybrid or set())
    mounted_v1 = any(v1.values())
    if v2 is not None and not mounted_v1:
        version: "CgroupVersion | None" = "v2"
    elif mounted_v1:
        version = "hybrid" if v2_words is not None else "v1"
    else:
        version = None
    known = proc is not None or v2_words is not None
    out = []
    for name in CGROUP_CONTROLLERS:
        found: "bool | None" = None
        if v1.get(name):
            found = True
        elif v2_words is not None and name in _V2_NAMES and _V2_NAMES[name] in v2_words:
            found = True
        elif v2_words is not None and name == "cpuacct":
            found = True  # libvirt: cgroup v2 always has cpu.stat
        elif name == "devices" and v2_words is not None:
            # v2 controls devices with BPF programs; asking whether the kernel
            # allows them (BPF_PROG_QUERY) takes privilege.
            found = None
        elif known:
            found = False
        out.append((name, found))
    return version, tuple(out)


def _devices(facts: Facts) -> Devices:
    version, controllers = _cgroups(facts)
    return Devices(
        vhost_net=facts.present.get("dev.vhost_net"),
        tun=facts.present.get("dev.tun"),
        vhost_vsock=facts.present.get("dev.vhost_vsock"),
        kvm_hv=facts.present.get("module.kvm_hv"),
        cgroup_version=version,
        cgroup_controllers=controllers,
    )


def decide(facts: Facts, host: "Host") -> "tuple[Security, Iommu, Devices]":
    """The platform part of ``host`` from its facts."""
    x86 = host.arch in ("x86_64", "i686")
    flags = kernel_flags(facts) if x86 else None
    cmd = cmdline(facts)
    sec = Security(
        sev=_sev(facts, host, flags, x86),
        sev_es=_amd("sev_es", facts, host, flags, x86),
        sev_snp=_amd("sev_snp", facts, host, flags, x86),
        tdx=_tdx(facts, host, flags, x86),
        sgx=_sgx(facts, host, flags, cmd, x86),
        s390_pv=_s390_pv(facts, host, cmd),
    )
    return sec, _iommu(facts, host, cmd), _devices(facts)
