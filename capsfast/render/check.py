"""``capsfast check``: the steps to a usable KVM, each with its reason and,
where it failed, a hint.  Pure functions of the Host."""
from capsfast.constants import KVM_API_VERSION, KVM_DEVICE, X86_ARCHS
from capsfast.readiness import UNASKED, kvm_access_hint
from capsfast.render.json import dumps, host_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from capsfast.model import Host, Readiness

    # (name, ok: True/False/None for informational or skipped, detail, hint)
    Step = tuple[str, "bool | None", str, "str | None"]
    # (name, level: PASS/WARN/FAIL/NOTE, detail, hint)
    PlatformStep = tuple[str, str, str, "str | None"]

_HVM_TEXT = {
    "enabled": "enabled",
    "disabled_by_firmware": "present in the CPU but disabled by the firmware",
    "not_exposed": "not exposed to this guest by its hypervisor",
    "unsupported": "not offered by this CPU",
    "unknown": "unknown (no CPUID on this architecture)",
}

_HVM_HINT = {
    "not_exposed": "enable nested virtualization for this VM on its host, or use a software KVM module such as kvm_pvm",
    "unsupported": "this CPU cannot accelerate guests in hardware; guests run emulated (domain type qemu)",
}


def _hvm_step(host: "Host") -> "Step":
    hvm = host.hvm
    detail = _HVM_TEXT.get(hvm.status, hvm.status)
    if hvm.type:
        detail = "%s (%s), %s" % (hvm.type, {"vmx": "Intel VT-x", "svm": "AMD-V"}[hvm.type], detail)
    if host.hypervisor.vendor:
        detail += "; running under %s" % host.hypervisor.vendor
    detail += " [%s, %s]" % (hvm.confidence, ", ".join(hvm.evidence))
    # Informational: a software KVM works without vmx/svm.  Its hint goes
    # with the KVM step that fails, if one does.
    return ("hardware virtualization", True if hvm.status == "enabled" else None, detail, None)


# How KVM comes to a host, per architecture: the module to load, or where
# it is not a module of its own.
_KVM_MODULE_HINT = {
    "vmx": "load the KVM module: modprobe kvm_intel",
    "svm": "load the KVM module: modprobe kvm_amd",
    "x86": "load the KVM module: modprobe kvm_intel (Intel) or kvm_amd (AMD)",
    "aarch64": "KVM on arm64 is part of the kernel: boot it in EL2 (hypervisor mode) with "
               "CONFIG_KVM=y, and check dmesg for 'kvm'",
    "ppc": "load the KVM module: modprobe kvm_hv (POWER8 and later, bare metal) or kvm_pr",
    "s390x": "load the KVM module: modprobe kvm",
    "other": "load the KVM module: modprobe kvm, if this kernel has one for %s",
}


def _missing_hint(host: "Host") -> str:
    if host.hvm.status in ("disabled_by_firmware", "not_exposed"):
        return _hvm_hint(host)
    if not host.kvm.modules:
        arch = host.arch
        key: str
        if arch in X86_ARCHS:
            key = host.hvm.type or "x86"
        elif arch in ("aarch64", "armv7l"):
            key = "aarch64"
        elif arch.startswith("ppc"):
            key = "ppc"
        elif arch == "s390x":
            key = "s390x"
        else:
            return _KVM_MODULE_HINT["other"] % arch
        return _KVM_MODULE_HINT[key]
    return "the KVM module is loaded but %s is missing: check udev and /dev" % KVM_DEVICE


def _hvm_hint(host: "Host") -> str:
    hvm = host.hvm
    if hvm.status == "disabled_by_firmware":
        name = {"vmx": "Intel VT-x (VMX)", "svm": "AMD-V (SVM)"}.get(hvm.type or "", "hardware virtualization")
        return "enable %s in the firmware setup, then power the machine off and on" % name
    return _HVM_HINT[hvm.status]


def steps(host: "Host") -> "list[Step]":
    """``[(name, ok, detail, hint)]``: ok is True, False, or None (informational
    or skipped).  The KVM steps stop at the first failure."""
    kvm = host.kvm
    out: list[Step] = [_hvm_step(host)]
    modules = ", ".join(kvm.modules) if kvm.modules else "none"
    nested = {True: "on", False: "off", None: "unknown"}[kvm.nested]
    out.append(("KVM kernel modules", None, "%s (nested: %s)" % (modules, nested), None))
    checks: list[tuple[str, object, str | None, str]] = [
        ("%s exists" % KVM_DEVICE, kvm.exists, kvm.error if not kvm.exists else "present", _missing_hint(host)),
        ("%s is a character device" % KVM_DEVICE, kvm.char_device, "yes" if kvm.char_device else kvm.error,
         "%s is not the KVM device node; reload the kvm module so udev recreates it" % KVM_DEVICE),
        ("%s is readable and writable" % KVM_DEVICE, kvm.accessible, "yes" if kvm.accessible else "no",
         kvm_access_hint(kvm.mode, kvm.group)),
        ("%s opens and speaks KVM API %d" % (KVM_DEVICE, KVM_API_VERSION), kvm.api_version == KVM_API_VERSION,
         "API version %s" % kvm.api_version if kvm.api_version is not None else kvm.error,
         "the kernel's KVM is unusable here; check dmesg for kvm errors"),
    ]
    if kvm.create_vm is not None or kvm.failure == "create_vm_failed":
        checks.append(("KVM_CREATE_VM succeeds", bool(kvm.create_vm), "yes" if kvm.create_vm else kvm.error,
                       "KVM opens but cannot create a VM; check dmesg and memory limits"))
    failed = False
    for name, ok, detail, hint in checks:
        if failed:
            out.append((name, None, "skipped", None))
            continue
        out.append((name, bool(ok), detail or "", None if ok else hint))
        failed = not ok
    return out


# -- the rest of virt-host-validate's QEMU checks, and capsfast's own -------------
#
# Each row: (name, level, detail, hint), level PASS, WARN, FAIL or NOTE with
# virt-host-validate's weights.  None of them changes the exit status, which
# answers "can KVM guests run here" (virt-host-validate's FAIL for a missing
# /dev/net/tun is shown, as FAIL, but guests run without it).

_SECURE_TECHS = {"AuthenticAMD": ("sev", "sev_es", "sev_snp"), "HygonGenuine": ("sev", "sev_es", "sev_snp"),
                 "GenuineIntel": ("tdx", "sgx")}
_TECH_LEVEL = {"enabled": "PASS", "disabled_by_firmware": "WARN", "disabled_in_kernel": "WARN",
               "not_exposed": "NOTE", "unsupported": "NOTE", "unknown": "NOTE"}
_STATUS_TEXT = {
    "enabled": "enabled", "disabled_by_firmware": "disabled by the firmware",
    "disabled_in_kernel": "disabled in the kernel", "not_exposed": "not exposed to this guest",
    "unsupported": "not offered by this CPU", "unknown": "unknown",
}


def _exists(name: str, present: "bool | None", weight: str, hint: str) -> "PlatformStep":
    if present is None:
        return ("%s exists" % name, "NOTE", "cannot be told (not recorded)", None)
    return ("%s exists" % name, "PASS" if present else weight, "present" if present else "missing",
            None if present else hint)


def platform_steps(host: "Host") -> "list[PlatformStep]":
    """The checks of virt-host-validate's QEMU driver beyond /dev/kvm, then
    capsfast's own: ``[(name, level, detail, hint)]``."""
    from capsfast.parts.platform.decide import TITLES

    dev, sec = host.devices, host.security
    rows: list[PlatformStep] = []
    kvm, hvm = host.kvm, host.hvm
    if kvm.usable and hvm.status != "enabled":
        software = [m for m in kvm.modules if m == "kvm_pvm"]
        rows.append(("KVM without VT-x/AMD-V", "PASS",
                     "usable through %s (a software KVM)" % (software[0] if software else "this kernel's KVM"), None))
    if host.arch.startswith("ppc64"):
        # As virt-host-validate: kvm_pr works too, kvm_hv runs guests at full speed.
        name = "PowerPC KVM module kvm_hv loaded"
        if dev.kvm_hv is None:
            rows.append((name, "NOTE", "cannot be told (not recorded)", None))
        else:
            rows.append((name, "PASS" if dev.kvm_hv else "WARN", "loaded" if dev.kvm_hv else "not loaded",
                         None if dev.kvm_hv else "load kvm_hv for better performance (modprobe kvm_hv)"))
    rows.append(_exists("/dev/vhost-net", dev.vhost_net, "WARN",
                        "load the vhost_net module to improve performance of virtio networking"))
    rows.append(_exists("/dev/net/tun", dev.tun, "FAIL", "load the tun module to enable networking for QEMU guests"))
    rows.append(_exists("/dev/vhost-vsock", dev.vhost_vsock, "NOTE",
                        "load the vhost_vsock module for virtio-vsock host-guest sockets"))
    version = dev.cgroup_version or "unknown layout"
    for name, found in dev.cgroup_controllers:
        row_name = "cgroup '%s' controller" % name
        if found:
            rows.append((row_name, "PASS", "available (%s)" % version, None))
        elif found is None:
            rows.append((row_name, "NOTE", "cannot be told here" + (
                " (cgroup v2 controls devices with BPF programs; asking needs privilege)" if name == "devices" else
                ""), None))
        else:
            rows.append((row_name, "WARN", "not available (%s)" % version,
                         "enable '%s' in the kernel configuration or mount/enable the cgroup controller" % name))
    rows += _iommu_rows(host)
    rows.append(_secure_guest_row(host))
    for tech in _SECURE_TECHS.get(host.cpu.vendor or "", ("s390_pv",) if host.arch == "s390x" else ()):
        verdict = getattr(sec, tech)
        detail = "%s [%s, %s]" % (_STATUS_TEXT[verdict.status], verdict.confidence, ", ".join(verdict.evidence))
        rows.append((TITLES[tech], _TECH_LEVEL[verdict.status], detail, verdict.hint))
    return rows


def _iommu_rows(host: "Host") -> "list[PlatformStep]":
    iommu = host.iommu
    name = "device assignment IOMMU support"
    if host.arch.startswith("ppc64"):
        first: PlatformStep = (name, "PASS", "POWER's IOMMU (no ACPI table; virt-host-validate passes it too)", None)
    elif host.arch == "s390x" and "pci.devices" not in iommu.evidence:
        first = (name, "NOTE", "skipped: %s" % ("no PCI support" if "pci.missing" in iommu.evidence else
                                                "no PCI devices are online" if "pci.devices-none" in iommu.evidence
                                                else "PCI devices cannot be listed"), None)
    elif host.arch == "s390x":
        first = (name, "PASS", "PCI devices online", None)
    elif iommu.acpi_table is not None:
        first = (name, "PASS", "ACPI %s table present" % iommu.acpi_table, None)
    elif iommu.status == "enabled":
        first = (name, "PASS", "IOMMU groups present", None)
    elif iommu.status == "unknown":
        first = (name, "WARN", "unknown: %s" % ", ".join(iommu.evidence), iommu.hint)
    else:
        first = (name, "WARN", "no IOMMU described by the firmware (no ACPI DMAR, IVRS or IORT table)", iommu.hint)
    rows = [first]
    if iommu.groups is not None and "iommu.groups-missing" not in iommu.evidence:
        if iommu.groups:
            rows.append(("IOMMU enabled by the kernel", "PASS", "%d IOMMU groups" % iommu.groups, None))
        elif iommu.acpi_table is not None:
            rows.append(("IOMMU enabled by the kernel", "WARN", "no IOMMU groups", iommu.hint))
        else:
            rows.append(("IOMMU enabled by the kernel", "WARN", "no IOMMU groups", None))
    return rows


def _secure_guest_row(host: "Host") -> "PlatformStep":
    from capsfast.parts.platform.decide import TITLES

    sec = host.security
    on = [TITLES[t] for t in ("sev", "sev_es", "sev_snp", "tdx", "s390_pv") if getattr(sec, t).status == "enabled"]
    if on:
        return ("secure guest support", "PASS", ", ".join(on), None)
    relevant = _SECURE_TECHS.get(host.cpu.vendor or "", ("s390_pv",) if host.arch == "s390x" else ())
    for tech in relevant:
        verdict = getattr(sec, tech)
        if tech != "sgx" and verdict.status not in ("unsupported", "not_exposed"):
            return ("secure guest support", "WARN", "%s %s" % (TITLES[tech], _STATUS_TEXT[verdict.status]),
                    verdict.hint)
    return ("secure guest support", "WARN", "none of AMD SEV, Intel TDX or IBM Secure Execution is available here",
            None)


def conclusion(host: "Host") -> str:
    if host.kvm.usable:
        return "KVM acceleration can be used"
    return "KVM acceleration can NOT be used: %s %s" % (KVM_DEVICE, host.kvm.error)


def _readiness_rows(readiness: "Readiness") -> "list[Step]":
    # The kvm and KVM_CREATE_VM requirements are the report's own steps
    # above; capabilities that could not be asked for want of /dev/kvm are
    # one skipped line (each is in --json).
    rows: "list[Step]" = []
    unasked = [r for r in readiness.requirements if r.detail == UNASKED]
    for r in readiness.requirements:
        if r.name in ("kvm", "KVM_CREATE_VM") or r in unasked:
            continue
        rows.append(("%s: %s" % (readiness.title, r.name), r.ok, r.detail, r.hint))
    if unasked:
        rows.append(("%s: %d KVM capabilities" % (readiness.title, len(unasked)), None, "skipped",
                     None))
    return rows


def _readiness_conclusion(readiness: "Readiness") -> str:
    if readiness.ok:
        return "%s can run here" % readiness.title
    # What could not be asked follows from a failure before it: counted, not listed.
    named = [r.name for r in readiness.failed if not r.detail.startswith("unknown")]
    unknown = len(readiness.failed) - len(named)
    if unknown:
        named.append("%d more unknown" % unknown if named else "%d unknown" % unknown)
    return "%s can NOT run here: %s" % (readiness.title, ", ".join(named))


def _mark(ok: "bool | None", detail: str) -> str:
    return {True: "PASS", False: "FAIL", None: "INFO" if detail != "skipped" else "SKIP"}[ok]


def as_text(host: "Host", readiness: "Readiness | None" = None, notes: "Sequence[Step]" = ()) -> str:
    """The report; with ``readiness`` (a VMM's verdict), its requirements
    and its verdict follow the KVM steps; ``notes`` (INFO rows) come last
    before the conclusion."""
    marked = [(name, _mark(ok, detail), detail, hint) for name, ok, detail, hint in steps(host)]
    if readiness is not None:
        marked += [(name, _mark(ok, detail), detail, hint) for name, ok, detail, hint in _readiness_rows(readiness)]
    marked += platform_steps(host)
    marked += [(name, "INFO", detail, hint) for name, _ok, detail, hint in notes]
    width = max(len(name) for name, *_ in marked)
    lines = []
    for name, mark, detail, hint in marked:
        lines.append("%s : %-4s %s" % (name.ljust(width), mark, detail))
        if hint:
            lines.append("%s   hint: %s" % (" " * width, hint))
    lines.append(conclusion(host))
    if readiness is not None:
        lines.append(_readiness_conclusion(readiness))
    return "\n".join(lines) + "\n"


def as_json(host: "Host", readiness: "Readiness | None" = None) -> str:
    doc: "dict[str, object]" = {
        "kvm_usable": host.kvm.usable,
        "conclusion": conclusion(host),
        "steps": [
            {"name": name, "ok": ok, "level": _mark(ok, detail), "detail": detail, "hint": hint}
            for name, ok, detail, hint in steps(host)
        ] + [
            {"name": name, "ok": level == "PASS" if level != "NOTE" else None, "level": level, "detail": detail,
             "hint": hint}
            for name, level, detail, hint in platform_steps(host)
        ],
        "host": host_dict(host, cpu_model=False)["host"],
    }
    if readiness is not None:
        doc["vmm"] = {
            "name": readiness.vmm,
            "ready": readiness.ok,
            "conclusion": _readiness_conclusion(readiness),
            "requirements": [dict(r.as_dict()) for r in readiness.requirements],
        }
    return dumps(doc) + "\n"
