"""The decisions on plain data: the HVM verdict ladder rule by rule, and
KVM usability with its stable failure codes, step by step."""
import errno
import os

import pytest

from capsfast.parts.core import decide as verdict
from capsfast._native import NOT_TRIED, OK, KvmDevice, Outcome
from capsfast.model import Cpu, Kvm, Xen
from capsfast.parts.core.decide import decide


def cpu(*features, source="cpuid"):
    return Cpu("GenuineIntel", 6, 58, 9, tuple(sorted(features)), source, 13, 0x80000008)


def kvm(usable=False):
    failure = None if usable else "missing"
    return Kvm(usable, usable, usable, usable, 12 if usable else None, (), None, None, failure, failure, None, None)


NO_XEN = Xen(False, None, None, ())
DOM0_HVM = Xen(True, "dom0", "xen", ("xen-3.0-x86_64", "hvm-3.0-x86_32", "hvm-3.0-x86_64"))
DOM0_PV = Xen(True, "dom0", "xen", ("xen-3.0-x86_64",))


@pytest.mark.parametrize(
    "facts, expected",
    [
        # Rule 1: the MSR outranks everything, even a kernel that kept vmx.
        ((cpu("vmx", "lm"), kvm(), NO_XEN, ("vmx",), {0x3A: 0x1}),
         ("vmx", "disabled_by_firmware", "certain", "disabled", ("cpuid.vmx", "msr.feature-control-locked-off"))),
        ((cpu("svm", "lm"), kvm(), NO_XEN, ("svm",), {0xC0010114: 0x10}),
         ("svm", "disabled_by_firmware", "certain", "disabled", ("cpuid.svm", "msr.vm-cr-svmdis"))),
        # Locked with VMX allowed, or not locked: the MSR does not decide.
        ((cpu("vmx"), kvm(), NO_XEN, ("vmx",), {0x3A: 0x5}),
         ("vmx", "enabled", "certain", "enabled", ("cpuid.vmx", "cpuinfo.vmx"))),
        ((cpu("vmx"), kvm(), NO_XEN, ("vmx",), {0x3A: 0x0}),
         ("vmx", "enabled", "certain", "enabled", ("cpuid.vmx", "cpuinfo.vmx"))),
        # Rule 2: dom0 decides from the hypervisor's tokens (the seed's rule).
        ((cpu("vmx", "hypervisor"), kvm(), DOM0_HVM, None, {}),
         ("vmx", "enabled", "certain", "enabled", ("xen.dom0", "xen.hvm-caps"))),
        ((cpu("vmx", "hypervisor"), kvm(), DOM0_PV, None, {}),
         ("vmx", "disabled_by_firmware", "likely", "disabled", ("xen.dom0", "cpuid.vmx", "xen.no-hvm-caps"))),
        ((cpu("hypervisor"), kvm(), DOM0_PV, None, {}),
         (None, "unsupported", "certain", None, ("xen.dom0", "cpuid.no-vmx-svm", "xen.no-hvm-caps"))),
        # Rule 3: a guest.
        ((cpu("hypervisor", "vmx"), kvm(True), NO_XEN, ("vmx",), {}),
         ("vmx", "enabled", "certain", None, ("cpuid.hypervisor", "cpuid.vmx"))),
        ((cpu("hypervisor"), kvm(True), NO_XEN, (), {}),
         (None, "not_exposed", "certain", None, ("cpuid.hypervisor", "cpuid.no-vmx-svm"))),
        # Rule 4: bare metal, Linux 5.6+ hides a locked-off vmx.
        ((cpu("vmx"), kvm(), NO_XEN, ("fpu", "lm"), {}),
         ("vmx", "disabled_by_firmware", "likely", "disabled", ("cpuid.vmx", "cpuinfo.vmx-missing"))),
        ((cpu("svm"), kvm(), NO_XEN, ("fpu",), {}),
         ("svm", "disabled_by_firmware", "likely", "disabled", ("cpuid.svm", "cpuinfo.svm-missing"))),
        ((cpu("vmx"), kvm(), NO_XEN, None, {}),
         ("vmx", "enabled", "likely", "enabled", ("cpuid.vmx",))),
        ((cpu("lm"), kvm(), NO_XEN, ("lm",), {}),
         (None, "unsupported", "certain", None, ("cpuid.no-vmx-svm",))),
        # Only /proc/cpuinfo: what the kernel shows is all there is.
        ((cpu("vmx", source="cpuinfo"), kvm(), NO_XEN, ("vmx",), {}),
         ("vmx", "enabled", "likely", "enabled", ("cpuinfo.vmx",))),
        ((cpu(source="cpuinfo"), kvm(), NO_XEN, (), {}),
         (None, "unsupported", "likely", None, ("cpuinfo.no-vmx-svm",))),
        # Rule 5: no CPUID.
        ((None, kvm(True), NO_XEN, None, {}),
         (None, "enabled", "certain", None, ("cpuid.unavailable", "kvm.usable"))),
        ((None, kvm(False), NO_XEN, None, {}),
         (None, "unknown", "unknown", None, ("cpuid.unavailable", "kvm.not-usable"))),
    ],
)
def test_rule(facts, expected):
    hvm = decide(*facts)
    assert (hvm.type, hvm.status, hvm.confidence, hvm.bios_setting, hvm.evidence) == expected


def test_verdict_is_immutable():
    hvm = decide(cpu("vmx"), kvm(), NO_XEN, ("vmx",), {})
    with pytest.raises(AttributeError):
        hvm.status = "enabled"
    assert hvm == decide(cpu("vmx"), kvm(), NO_XEN, ("vmx",), {})


def failed(err):
    return Outcome({errno.ENOENT: "absent", errno.EACCES: "denied", errno.ENODEV: "not_kvm_device"}.get(err, "failed"),
                   os.strerror(err), err)


CHAR = 0o020660
KVM_STEPS = [
    # (device steps, deep) -> (failure, error)
    (KvmDevice(failed(errno.ENOENT), 0, NOT_TRIED, NOT_TRIED, NOT_TRIED, None, NOT_TRIED), False,
     "missing", "missing"),
    (KvmDevice(failed(errno.ELOOP), 0, NOT_TRIED, NOT_TRIED, NOT_TRIED, None, NOT_TRIED), False,
     "stat_failed", "stat: " + os.strerror(errno.ELOOP)),
    (KvmDevice(OK, 0o100644, NOT_TRIED, NOT_TRIED, NOT_TRIED, None, NOT_TRIED), False,
     "not_char_device", "not a character device"),
    (KvmDevice(OK, CHAR, OK, failed(errno.ENODEV), NOT_TRIED, None, NOT_TRIED), False,
     "not_kvm_device", "open: " + os.strerror(errno.ENODEV)),
    (KvmDevice(OK, CHAR, failed(errno.EACCES), failed(errno.EACCES), NOT_TRIED, None, NOT_TRIED), False,
     "not_accessible", "open: " + os.strerror(errno.EACCES)),
    (KvmDevice(OK, CHAR, OK, failed(errno.EMFILE), NOT_TRIED, None, NOT_TRIED), False,
     "open_failed", "open: " + os.strerror(errno.EMFILE)),
    (KvmDevice(OK, CHAR, OK, OK, failed(errno.ENOTTY), None, NOT_TRIED), False,
     "api_version_failed", "KVM_GET_API_VERSION: " + os.strerror(errno.ENOTTY)),
    (KvmDevice(OK, CHAR, OK, OK, OK, 11, NOT_TRIED), False,
     "api_version_mismatch", "API version 11, expected 12"),
    (KvmDevice(OK, CHAR, OK, OK, OK, 12, failed(errno.ENOMEM)), True,
     "create_vm_failed", "KVM_CREATE_VM: " + os.strerror(errno.ENOMEM)),
    (KvmDevice(OK, CHAR, OK, OK, OK, 12, NOT_TRIED), False, None, None),
    (KvmDevice(OK, CHAR, OK, OK, OK, 12, OK), True, None, None),
]


@pytest.mark.parametrize("device, deep, failure, error", KVM_STEPS, ids=[str(s[2]) for s in KVM_STEPS])
def test_kvm_usability_names_the_first_failing_step(device, deep, failure, error):
    kvm = verdict.kvm(device, ("kvm",), None, deep)
    assert (kvm.failure, kvm.error, kvm.usable) == (failure, error, failure is None)
    assert failure is None or failure in verdict.KVM_FAILURES
    assert kvm.create_vm == (device.create_vm.ok if deep else None)


def test_every_failure_code_is_reachable():
    assert {s[2] for s in KVM_STEPS} - {None} == set(verdict.KVM_FAILURES)
