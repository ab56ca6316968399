"""``capsfast check``: the steps to a usable KVM, each with its reason and,
where it failed, a hint.  Pure functions of the Host."""
from capsfast.render.json import dumps, host_dict

KVM = "/dev/kvm"

_HVM_TEXT = {
    "enabled": "enabled",
    "disabled_by_firmware": "present in the CPU but disabled by the firmware",
    "not_exposed": "not exposed to this guest by its hypervisor",
    "unsupported": "not offered by this CPU",
    "unknown": "unknown (no CPUID on this architecture)",
}

_HVM_HINT = {
    "disabled_by_firmware": "enable Intel VT-x / AMD-V (SVM) in the firmware setup, then power the machine off and on",
    "not_exposed": "enable nested virtualization for this VM on its host, or use a software KVM module such as kvm_pvm",
    "unsupported": "this CPU cannot accelerate guests in hardware; guests run emulated (domain type qemu)",
}


def _hvm_step(host):
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


def _missing_hint(host):
    if host.hvm.status in ("disabled_by_firmware", "not_exposed"):
        return _HVM_HINT[host.hvm.status]
    if not host.kvm.modules:
        module = {"vmx": "kvm_intel", "svm": "kvm_amd"}.get(host.hvm.type, "kvm_intel or kvm_amd")
        return "load the KVM module: modprobe %s" % module
    return "the KVM module is loaded but %s is missing: check udev and /dev" % KVM


def steps(host):
    """``[(name, ok, detail, hint)]``: ok is True, False, or None (informational
    or skipped).  The KVM steps stop at the first failure."""
    kvm = host.kvm
    out = [_hvm_step(host)]
    modules = ", ".join(kvm.modules) if kvm.modules else "none"
    nested = {True: "on", False: "off", None: "unknown"}[kvm.nested]
    out.append(("KVM kernel modules", None, "%s (nested: %s)" % (modules, nested), None))
    checks = [
        ("%s exists" % KVM, kvm.exists, kvm.error if not kvm.exists else "present", _missing_hint(host)),
        ("%s is a character device" % KVM, kvm.char_device, "yes" if kvm.char_device else kvm.error,
         "%s is not the KVM device node; reload the kvm module so udev recreates it" % KVM),
        ("%s is readable and writable" % KVM, kvm.accessible, "yes" if kvm.accessible else "no",
         "add this user to the group owning %s (usually: sudo usermod -aG kvm $USER) and log in again" % KVM),
        ("%s opens and speaks KVM API 12" % KVM, kvm.api_version == 12,
         "API version %s" % kvm.api_version if kvm.api_version is not None else kvm.error,
         "the kernel's KVM is unusable here; check dmesg for kvm errors"),
    ]
    if kvm.create_vm is not None or (kvm.error or "").startswith("KVM_CREATE_VM"):
        checks.append(("KVM_CREATE_VM succeeds", bool(kvm.create_vm), "yes" if kvm.create_vm else kvm.error,
                       "KVM opens but cannot create a VM; check dmesg and memory limits"))
    failed = False
    for name, ok, detail, hint in checks:
        if failed:
            out.append((name, None, "skipped", None))
            continue
        out.append((name, bool(ok), detail, None if ok else hint))
        failed = not ok
    return out


def conclusion(host):
    if host.kvm.usable:
        return "KVM acceleration can be used"
    return "KVM acceleration can NOT be used: %s %s" % (KVM, host.kvm.error)


def as_text(host):
    rows = steps(host)
    width = max(len(name) for name, *_ in rows)
    lines = []
    for name, ok, detail, hint in rows:
        mark = {True: "PASS", False: "FAIL", None: "INFO" if detail != "skipped" else "SKIP"}[ok]
        lines.append("%s : %-4s %s" % (name.ljust(width), mark, detail))
        if hint:
            lines.append("%s   hint: %s" % (" " * width, hint))
    lines.append(conclusion(host))
    return "\n".join(lines) + "\n"


def as_json(host):
    doc = {
        "kvm_usable": host.kvm.usable,
        "conclusion": conclusion(host),
        "steps": [
            {"name": name, "ok": ok, "detail": detail, "hint": hint}
            for name, ok, detail, hint in steps(host)
        ],
        "host": host_dict(host)["host"],
    }
    return dumps(doc) + "\n"
