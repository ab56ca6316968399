"""Node Feature Discovery: the host as a local feature file.

nfd-worker reads every file in its ``features.d`` directory (dot files
excepted, 64 KiB at most) and turns each ``<namespace>/<name>=<value>``
line into a node label, dropping the lines after an ``# +expiry-time=``
directive once that time has passed.  Every name and value here is a valid
Kubernetes label: name at most 63 characters, value at most 63, both
alphanumeric at the ends with only ``-``, ``_`` and ``.`` inside.  Booleans
are written ``true`` and ``false`` so a node where capsfast ran and said no
differs from a node where it never ran.

Labels (under the namespace, ``feature.node.kubernetes.io`` by default)::

  capsfast-kvm.usable            true/false   KVM guests can run now
  capsfast-kvm.accessible        true/false   /dev/kvm is read-write for us
  capsfast-kvm.exists            true/false   /dev/kvm exists
  capsfast-kvm.api-version       12           only when /dev/kvm answered
  capsfast-nested.host           true/false/unknown  kvm_intel/kvm_amd nested
  capsfast-hvm.type              vmx/svm/none
  capsfast-hvm.status            enabled, disabled_by_firmware, not_exposed,
                                 unsupported, unknown
  capsfast-hvm.confidence        certain/likely
  capsfast-hvm.bios-disabled     true/false
  capsfast-hypervisor.present    true/false   this node is itself a VM
  capsfast-hypervisor.vendor     kvm, hyperv, vmware, ... or none
  capsfast-hypervisor.signature  the CPUID signature, normalised
                                 (``Microsoft Hv`` -> ``Microsoft-Hv``)
  capsfast-xen.role              dom0/domU/none
  capsfast-guest.<os_type>.<arch>.<domain>  true, one per guest and domain
                                 type, e.g. capsfast-guest.hvm.x86_64.kvm
  capsfast-<tech>.enabled        true/false   per confidential-computing
                                 technology: sev, sev-es, sev-snp, tdx,
                                 sgx, s390-pv (firmware, kernel and the
                                 device a VMM needs all agree)
  capsfast-<tech>.status         enabled, disabled_by_firmware,
                                 disabled_in_kernel, not_exposed,
                                 unsupported, unknown
  capsfast-iommu.enabled         true/false   IOMMU groups populated
  capsfast-iommu.status          enabled, disabled_in_kernel, absent, unknown
  capsfast-vmm.<vmm>             true/false   the VMM can start here (firecracker,
                                 cloud-hypervisor, qemu, kata: capsfast check --for)
  capsfast-kvm-cap.<name>        KVM_CHECK_EXTENSION's answer, one per capability
                                 (lower case, _ as -: capsfast-kvm-cap.immediate-exit=1);
                                 none when /dev/kvm cannot be opened
  capsfast-cpu-timer.tsc-frequency  the TSC frequency in Hz, and
  capsfast-cpu-timer.tsc-scalable   true/false, where libvirt reports the TSC

What KubeVirt's node labeller publishes from domain capabilities, with
``--domcaps`` (the host architecture's emulator, asked over QMP once and
then cached)::

  capsfast-host-model-cpu.<model>   true   the host-model CPU's model
  capsfast-host-model-required-features.<feature>  true, one per feature
                                 the host-model CPU requires
  capsfast-cpu-vendor.<vendor>      true   the host-model CPU's vendor (Intel, AMD)
  capsfast-cpu-model.<model>        true   one per named CPU model QEMU can
                                 run here (usable='yes')
"""
from zlib import crc32

from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import time
    from collections.abc import Iterable

    from capsfast.model import Host
    from capsfast.parts.domcaps.cpu import CpuModes

DEFAULT_NAMESPACE = "feature.node.kubernetes.io"
DEFAULT_DIR = "/etc/kubernetes/node-feature-discovery/features.d"
FILE_NAME = "capsfast"
MAX_FILE_SIZE = 64 * 1024  # nfd-worker skips larger files
MAX_SEGMENT = 63

_INNER = frozenset("-_.")


def _ok(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in _INNER)


def _clean(text: str) -> str:
    """Each run of characters a label cannot hold becomes one ``-``; the
    ends are trimmed to alphanumerics.  No length limit."""
    out: list[str] = []
    for ch in text:
        if _ok(ch):
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return _trim("".join(out))


def _trim(value: str) -> str:
    start, end = 0, len(value)
    while start < end and not value[start].isalnum():
        start += 1
    while end > start and not value[end - 1].isalnum():
        end -= 1
    return value[start:end]


def label_value(text: str) -> str:
    """``text`` as a valid label value (``Microsoft Hv`` -> ``Microsoft-Hv``),
    at most 63 characters.  May be empty, which Kubernetes allows."""
    return _trim(_clean(text)[:MAX_SEGMENT])


def label_name(parts: "Iterable[str]") -> str:
    """A valid name segment from ``parts`` joined by dots.  A name that
    would pass 63 characters is cut and given a checksum of the whole, so
    two long names stay distinct."""
    name = ".".join(_clean(p) or "none" for p in parts)
    if len(name) <= MAX_SEGMENT:
        return name
    digest = "%08x" % crc32(name.encode())
    return _trim(name[:MAX_SEGMENT - 9]) + "-" + digest


def valid_namespace(namespace: str) -> bool:
    """A DNS subdomain (RFC 1123): lowercase labels of alphanumerics and
    ``-``, joined by dots, at most 253 characters."""
    if not namespace or len(namespace) > 253:
        return False
    for part in namespace.split("."):
        if not part or len(part) > 63 or not (part[0].isalnum() and part[-1].isalnum()):
            return False
        if not all(ch.isascii() and (ch.isdigit() or ch.islower() or ch == "-") for ch in part):
            return False
    return True


def nfd_denies(namespace: str) -> bool:
    """True for namespaces nfd-worker refuses: kubernetes.io and k8s.io and
    their subdomains, except feature.node.kubernetes.io and
    profile.node.kubernetes.io (and theirs)."""
    def under(ns: str, domain: str) -> bool:
        return ns == domain or ns.endswith("." + domain)

    if under(namespace, "feature.node.kubernetes.io") or under(namespace, "profile.node.kubernetes.io"):
        return False
    return under(namespace, "kubernetes.io") or under(namespace, "k8s.io")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _text(value: object) -> str:
    return "none" if value is None else label_value(str(value))


def labels(host: "Host") -> list[tuple[str, str]]:
    """(name, value) pairs for ``host``, in a stable order."""
    kvm, hvm, hv = host.kvm, host.hvm, host.hypervisor
    pairs = [
        ("capsfast-kvm.usable", _bool(kvm.usable)),
        ("capsfast-kvm.accessible", _bool(kvm.accessible)),
        ("capsfast-kvm.exists", _bool(kvm.exists)),
    ]
    if kvm.api_version is not None:
        pairs.append(("capsfast-kvm.api-version", str(kvm.api_version)))
    pairs += [
        ("capsfast-nested.host", "unknown" if kvm.nested is None else _bool(kvm.nested)),
        ("capsfast-hvm.type", _text(hvm.type)),
        ("capsfast-hvm.status", _text(hvm.status)),
        ("capsfast-hvm.confidence", _text(hvm.confidence)),
        ("capsfast-hvm.bios-disabled", _bool(hvm.status == "disabled_by_firmware")),
        ("capsfast-hypervisor.present", _bool(hv.vendor is not None)),
        ("capsfast-hypervisor.vendor", _text(hv.vendor)),
    ]
    if hv.signature is not None:
        pairs.append(("capsfast-hypervisor.signature", label_value(hv.signature)))
    pairs.append(("capsfast-xen.role", _text(host.xen.role)))
    from capsfast.readiness import NAMES, ready

    pairs += [(label_name(("capsfast-vmm", vmm)), _bool(ready(vmm, host).ok)) for vmm in NAMES]
    for cap, value in host.kvm_caps or ():
        if value is not None:
            pairs.append((label_name(("capsfast-kvm-cap", cap.lower().replace("_", "-"))), str(value)))
    pairs += platform_labels(host)
    pairs += timer_labels(host)
    seen: set[str] = set()
    for guest in host.guests:
        for domain in guest.domains:
            name = label_name(("capsfast-guest", guest.os_type, guest.arch, domain))
            if name not in seen:
                seen.add(name)
                pairs.append((name, "true"))
    return pairs


def timer_labels(host: "Host") -> list[tuple[str, str]]:
    """The TSC's frequency and scaling, where libvirt reports them (an
    invariant TSC and a usable /dev/kvm)."""
    tsc = host.cpu_model.tsc
    if tsc is None:
        return []
    return [("capsfast-cpu-timer.tsc-frequency", str(tsc.frequency)),
            ("capsfast-cpu-timer.tsc-scalable", _bool(tsc.scaling == "yes"))]


def cpu_mode_labels(modes: "CpuModes") -> list[tuple[str, str]]:
    """The labels KubeVirt's node labeller takes from domain capabilities'
    CPU modes: the host-model CPU, its required features and its vendor,
    and each named model QEMU can run here."""
    pairs = []
    host_model = modes.host_model
    if host_model is not None:
        pairs.append((label_name(("capsfast-host-model-cpu", host_model.model)), "true"))
        if host_model.vendor:
            pairs.append((label_name(("capsfast-cpu-vendor", host_model.vendor)), "true"))
        pairs += [(label_name(("capsfast-host-model-required-features", name)), "true")
                  for policy, name in host_model.features if policy == "require"]
    pairs += [(label_name(("capsfast-cpu-model", model.name)), "true")
              for model in modes.custom if model.usable == "yes"]
    return pairs


def platform_labels(host: "Host") -> list[tuple[str, str]]:
    """The confidential-computing and IOMMU labels (read on first use)."""
    from capsfast.parts.platform.decide import TECHS

    pairs = []
    for tech in TECHS:
        verdict = getattr(host.security, tech)
        name = "capsfast-" + tech.replace("_", "-")
        pairs += [(name + ".enabled", _bool(verdict.status == "enabled")), (name + ".status", _text(verdict.status))]
    pairs += [("capsfast-iommu.enabled", _bool(host.iommu.status == "enabled")),
              ("capsfast-iommu.status", _text(host.iommu.status))]
    return pairs


def render(host: "Host", namespace: str = DEFAULT_NAMESPACE,
           expiry: "time.struct_time | None" = None, cpu_modes: "CpuModes | None" = None) -> str:
    """The feature file's text.  ``expiry``: a UTC ``time.struct_time`` after
    which NFD drops the labels (written first: the directive applies to the
    lines after it).  ``cpu_modes``: domain capabilities' CPU modes, for
    the labels KubeVirt takes from them."""
    lines = ["# written by capsfast export nfd; rewritten in place, do not edit"]
    if expiry is not None:
        lines.insert(0, "# +expiry-time=%04d-%02d-%02dT%02d:%02d:%02dZ" % tuple(expiry[:6]))
    pairs = labels(host) + ([] if cpu_modes is None else cpu_mode_labels(cpu_modes))
    lines += ["%s/%s=%s" % (namespace, name, value) for name, value in pairs]
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > MAX_FILE_SIZE:  # cannot happen with sane guest lists; never write what NFD skips
        raise CapsfastError("NFD feature file would exceed %d bytes" % MAX_FILE_SIZE)
    return text
