"""Prometheus: the host in node_exporter's textfile format (``.prom``).

node_exporter's textfile collector merges every ``*.prom`` file of its
directory and drops a metric whose ``# HELP`` differs between files, so
every metric here has a constant HELP and TYPE, written even when the
metric has no sample on this host.  No sample carries a timestamp (the
collector refuses them).  A missing value in an ``_info`` label is
``none``, as in the NFD labels.
"""
from capsfast.parts.core.read import KVM_MODULES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from capsfast.model import Host

# (name, help, type): the order of the file.
METRICS = (
    ("capsfast_kvm_usable", "1 if KVM guests can run on this host now, else 0.", "gauge"),
    ("capsfast_kvm_accessible", "1 if /dev/kvm is a character device this process can open read-write.", "gauge"),
    ("capsfast_kvm_exists", "1 if /dev/kvm exists.", "gauge"),
    ("capsfast_kvm_api_version", "KVM_GET_API_VERSION of /dev/kvm (12 expected); absent when it did not answer.", "gauge"),
    ("capsfast_kvm_module_loaded", "1 if the kernel module is loaded, per KVM module.", "gauge"),
    ("capsfast_kvm_nested", "1 if kvm_intel or kvm_amd offers nested virtualization; absent when neither is loaded.", "gauge"),
    ("capsfast_hvm_info", "The hardware virtualization verdict: type (vmx, svm, none), status, confidence, bios_setting.", "gauge"),
    ("capsfast_hvm_bios_disabled", "1 if firmware (BIOS/UEFI) has turned hardware virtualization off.", "gauge"),
    ("capsfast_hypervisor_info", "The hypervisor this host runs under (vendor none on bare metal) and its CPUID signature.", "gauge"),
    ("capsfast_xen_info", "Xen as this host sees it: role (dom0, domU, none).", "gauge"),
    ("capsfast_guest_info", "One series per guest os_type, architecture and domain type this host can run.", "gauge"),
    ("capsfast_vmm_ready", "1 if the VMM (firecracker, cloud-hypervisor, qemu, kata) can start on this host, else 0: capsfast check --for.", "gauge"),
    ("capsfast_kvm_capability", "KVM_CHECK_EXTENSION's answer per capability (0 unsupported; else 1 or a count, limit or mask); absent when /dev/kvm cannot be opened.", "gauge"),
    ("capsfast_security_enabled", "1 if the confidential-computing technology can be used for guests here, per "
     "technology (sev, sev_es, sev_snp, tdx, sgx, s390_pv).", "gauge"),
    ("capsfast_security_info", "Each confidential-computing technology's verdict: status and confidence.", "gauge"),
    ("capsfast_iommu_enabled", "1 if the kernel has IOMMU groups (device assignment possible), else 0.", "gauge"),
    ("capsfast_iommu_info", "The IOMMU verdict: status and the ACPI table describing the IOMMU (none without).",
     "gauge"),
    ("capsfast_iommu_groups", "The number of IOMMU groups; absent where /sys/kernel/iommu_groups is unreadable.",
     "gauge"),
    ("capsfast_probe_duration_seconds", "How long the probe that produced these facts took.", "gauge"),
)


def _escape(value: str) -> str:
    # The exposition format escapes backslash, double quote and newline.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: "Iterable[tuple[str, object]]") -> str:
    return "{%s}" % ",".join('%s="%s"' % (k, _escape("none" if v is None else str(v))) for k, v in pairs)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def samples(host: "Host", duration: "float | None" = None) -> dict[str, list[tuple[str, str]]]:
    """{metric name: [(label text, value text)]} for ``host``."""
    kvm, hvm, hv = host.kvm, host.hvm, host.hypervisor
    out = {
        "capsfast_kvm_usable": [("", _flag(kvm.usable))],
        "capsfast_kvm_accessible": [("", _flag(kvm.accessible))],
        "capsfast_kvm_exists": [("", _flag(kvm.exists))],
        "capsfast_kvm_api_version": [] if kvm.api_version is None else [("", str(kvm.api_version))],
        "capsfast_kvm_module_loaded": [
            (_labels([("module", m)]), _flag(m in kvm.modules)) for m in KVM_MODULES
        ],
        "capsfast_kvm_nested": [] if kvm.nested is None else [("", _flag(kvm.nested))],
        "capsfast_hvm_info": [(_labels([
            ("type", hvm.type), ("status", hvm.status),
            ("confidence", hvm.confidence), ("bios_setting", hvm.bios_setting),
        ]), "1")],
        "capsfast_hvm_bios_disabled": [("", _flag(hvm.status == "disabled_by_firmware"))],
        "capsfast_hypervisor_info": [(_labels([("vendor", hv.vendor), ("signature", hv.signature)]), "1")],
        "capsfast_xen_info": [(_labels([("role", host.xen.role)]), "1")],
        "capsfast_probe_duration_seconds": [] if duration is None else [("", "%.9g" % duration)],
    }
    guests: list[tuple[str, str]] = []
    for guest in host.guests:
        for domain in guest.domains:
            series = (_labels([("os_type", guest.os_type), ("arch", guest.arch), ("domain", domain)]), "1")
            if series not in guests:
                guests.append(series)
    out["capsfast_guest_info"] = guests
    from capsfast.readiness import NAMES, ready

    out["capsfast_vmm_ready"] = [(_labels([("vmm", vmm)]), _flag(ready(vmm, host).ok)) for vmm in NAMES]
    out["capsfast_kvm_capability"] = [
        (_labels([("capability", cap)]), str(value)) for cap, value in host.kvm_caps or () if value is not None
    ]
    out.update(platform_samples(host))
    return out


def platform_samples(host: "Host") -> dict[str, list[tuple[str, str]]]:
    """The confidential-computing and IOMMU metrics (read on first use)."""
    from capsfast.parts.platform.decide import TECHS

    sec, iommu = host.security, host.iommu
    return {
        "capsfast_security_enabled": [
            (_labels([("technology", t)]), _flag(getattr(sec, t).status == "enabled")) for t in TECHS
        ],
        "capsfast_security_info": [
            (_labels([("technology", t), ("status", getattr(sec, t).status),
                      ("confidence", getattr(sec, t).confidence)]), "1") for t in TECHS
        ],
        "capsfast_iommu_enabled": [("", _flag(iommu.status == "enabled"))],
        "capsfast_iommu_info": [(_labels([("status", iommu.status), ("acpi_table", iommu.acpi_table)]), "1")],
        "capsfast_iommu_groups": [] if iommu.groups is None else [("", str(iommu.groups))],
    }


def render(host: "Host", duration: "float | None" = None) -> str:
    """The ``.prom`` text, ending in a newline.  ``duration``: the probe's
    time in seconds; without it the metric has no sample (the facts alone,
    which is what ``--every`` compares)."""
    values = samples(host, duration)
    lines: list[str] = []
    for name, help_text, kind in METRICS:
        lines.append("# HELP %s %s" % (name, help_text))
        lines.append("# TYPE %s %s" % (name, kind))
        lines.extend("%s%s %s" % (name, labels, value) for labels, value in values[name])
    return "\n".join(lines) + "\n"
