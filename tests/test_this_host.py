"""This real machine, asserted on what independent sources say it is.

The facts come from /proc/cpuinfo and from opening /dev/kvm with Python's own
os and fcntl calls; capsfast must agree.  Where this is the development
machine's shape (a KVM guest without vmx that still has a working software
KVM), the verdict is pinned down exactly: kvm-ok and virt-host-validate
both say KVM cannot be used there, which is wrong.
"""
import fcntl
import os
import shutil
import subprocess
import sys

import pytest

import capsfast

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01


def kernel_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _sep, value = line.partition(":")
            if key.strip() == "flags":
                return set(value.split())
            if not line.strip():
                break
    return None


def kvm_works_independently():
    """(api_version, vm_created) from Python's own syscalls, or None."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        api = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        try:
            vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        except OSError:
            return api, False
        os.close(vm)
        return api, True
    finally:
        os.close(fd)


FLAGS = kernel_flags()
KVM = kvm_works_independently()
X86 = os.uname().machine in ("x86_64", "i686")
DEV_MACHINE_SHAPE = (
    X86 and FLAGS is not None and "hypervisor" in FLAGS and not {"vmx", "svm"} & FLAGS
    and KVM is not None and KVM[1]
)


def test_arch_is_this_machine():
    expected = {"i386": "i686", "i586": "i686", "arm64": "aarch64"}.get(os.uname().machine, os.uname().machine)
    assert capsfast.probe().arch == expected


@pytest.mark.skipif(FLAGS is None, reason="no x86 'flags' line in /proc/cpuinfo on this machine")
def test_cpu_features_match_the_kernel():
    cpu = capsfast.probe().cpu
    assert cpu.source == "cpuid"
    for name in ("hypervisor", "lm", "nx", "pae", "svm"):
        assert (name in cpu.features) == (name in FLAGS), name


@pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="this machine has no /dev/kvm")
def test_kvm_matches_python_syscalls():
    host = capsfast.probe(refresh=True)
    assert host.kvm.exists
    assert host.kvm.usable == (KVM is not None and KVM[0] == 12)
    assert capsfast.kvm_usable() == host.kvm.usable
    if KVM is not None:
        assert host.kvm.api_version == KVM[0]
        deep = capsfast.probe(deep=True)
        assert deep.kvm.create_vm == KVM[1]


@pytest.mark.skipif(not DEV_MACHINE_SHAPE, reason="not a KVM guest without vmx/svm and with a working /dev/kvm")
def test_development_machine_verdict():
    host = capsfast.probe()
    assert host.hypervisor.vendor == "kvm"
    assert host.hypervisor.signature == "KVMKVMKVM"
    assert host.hvm.type is None
    assert host.hvm.status == "not_exposed"
    assert host.hvm.bios_setting is None
    assert host.kvm.usable
    assert "kvm_pvm" in host.kvm.modules or "kvm" in host.kvm.modules


@pytest.mark.skipif(not DEV_MACHINE_SHAPE, reason="not a KVM guest without vmx/svm and with a working /dev/kvm")
def test_check_exits_zero_where_kvm_ok_says_no():
    done = subprocess.run([sys.executable, "-m", "capsfast", "check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "KVM acceleration can be used" in done.stdout
    if shutil.which("kvm-ok"):
        theirs = subprocess.run(["kvm-ok"], capture_output=True, text=True)
        # kvm-ok looks for vmx/svm only and so gets this machine wrong.
        assert theirs.returncode != 0 and "can NOT be used" in theirs.stdout


def test_check_exit_status_follows_kvm():
    done = subprocess.run([sys.executable, "-m", "capsfast", "check", "-q"], capture_output=True, text=True)
    assert done.stdout == "" and done.stderr == ""
    assert done.returncode == (0 if capsfast.kvm_usable() else 1)
