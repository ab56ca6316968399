"""This machine's KVM device read without capsfast (fcntl.ioctl), for the
tests that hold capsfast's answers to it."""
import fcntl
import os

import pytest

from capsfast.parts import kvm_caps as caps_part

KVM_CHECK_EXTENSION = 0xAE03  # _IO(KVMIO, 0x03), include/uapi/linux/kvm.h
NOBODY = (65534, 65534)


def fcntl_caps():
    """This machine's answers, read without capsfast; None if /dev/kvm does not open."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return {name: fcntl.ioctl(fd, KVM_CHECK_EXTENSION, number) for name, number in caps_part.KVM_CAPS}
    finally:
        os.close(fd)


needs_kvm = pytest.mark.skipif(fcntl_caps() is None, reason="/dev/kvm cannot be opened here")
