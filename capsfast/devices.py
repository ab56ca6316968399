"""Device and file facts under a root: what exists, never what it means.

``DEVICE_FILES`` and ``CPU_FILES`` are the plan handed to the C module (one
crossing runs them all); the functions below turn its raw results into model
values.  A missing file is data (absent); any other failure to read a file
that should be readable is bad input and raises CapsfastError.
"""
import errno
import os
import stat

from capsfast.errors import CapsfastError
from capsfast.model import Kqemu, Kvm, Xen
from capsfast import _native

SMALL = 4096          # sysfs and procfs files of interest are a line or two
CPUINFO_BLOCK = 16384  # one processor's block, with room for a long flags line

KVM_DEVICE = "/dev/kvm"
KVM_API_VERSION = 12
KVM_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm")
MSR_DEVICE = "/dev/cpu/0/msr"
MSR_FEATURE_CONTROL = 0x3A    # Intel IA32_FEATURE_CONTROL
MSR_VM_CR = 0xC0010114        # AMD VM_CR

# (key, path under the root, operation, msr, buffer size)
DEVICE_FILES = (
    ("kqemu", "/dev/kqemu", _native.OP_STAT, 0, 0),
    ("proc_xen", "/proc/xen", _native.OP_STAT, 0, 0),
    ("xen_caps", "/proc/xen/capabilities", _native.OP_READ, 0, SMALL),
    ("hv_type", "/sys/hypervisor/type", _native.OP_READ, 0, SMALL),
    ("hv_caps", "/sys/hypervisor/properties/capabilities", _native.OP_READ, 0, SMALL),
) + tuple(
    ("module." + m, "/sys/module/" + m, _native.OP_STAT, 0, 0) for m in KVM_MODULES
) + (
    ("nested.kvm_intel", "/sys/module/kvm_intel/parameters/nested", _native.OP_READ, 0, SMALL),
    ("nested.kvm_amd", "/sys/module/kvm_amd/parameters/nested", _native.OP_READ, 0, SMALL),
)
# key -> the key of an entry whose file must exist for this one to be
# looked at: C skips the system calls for a child of something absent.
DEPENDS = {
    "xen_caps": "proc_xen",
    "nested.kvm_intel": "module.kvm_intel",
    "nested.kvm_amd": "module.kvm_amd",
}

# Facts of the CPU that cannot change while the system runs: read once for
# the live host.
CPU_FILES = (
    ("cpuinfo", "/proc/cpuinfo", _native.OP_READ_BLOCK, 0, CPUINFO_BLOCK),
    ("msr.feature_control", MSR_DEVICE, _native.OP_MSR, MSR_FEATURE_CONTROL, 0),
    ("msr.vm_cr", MSR_DEVICE, _native.OP_MSR, MSR_VM_CR, 0),
)
ARCH_FILE = ("arch", "/proc/sys/kernel/arch", _native.OP_READ, 0, SMALL)


# Control bytes other than tab, newline and carriage return become 0xFF,
# which never starts a UTF-8 sequence, so decoding with "replace" turns them
# into U+FFFD: facts then hold no character that XML or a terminal rejects.
CONTROL_TO_FF = bytes(
    0xFF if (b < 0x20 and b not in (9, 10, 13)) or b == 0x7F else b for b in range(256)
)


def decode(data):
    """File bytes as text: invalid UTF-8 and control characters as U+FFFD."""
    return data.translate(CONTROL_TO_FF).decode("utf-8", "replace")


def batch_specs(root, plan):
    """``plan`` rows as ``_native.Batch`` file specs under ``root``, with
    the DEPENDS links as indices."""
    index = {row[0]: i for i, row in enumerate(plan)}
    return [
        (under(root, path), op, msr, cap, index.get(DEPENDS.get(key)))
        for key, path, op, msr, cap in plan
    ]


def under(root, path):
    """``path`` (absolute, as on the probed host) inside ``root``."""
    return path if root == "/" else root.rstrip("/") + path


def _fail(root, path, err):
    raise CapsfastError("cannot read %s: %s" % (under(root, path), os.strerror(-err)))


def present(root, path, result):
    """True if the stat found the path, False if it is absent.  A device
    node this process cannot even stat (a /dev it may not search) counts as
    absent: inaccessible devices are data, as for /dev/kvm."""
    err = result[0]
    if err == 0:
        return True
    if err == -errno.ENOENT or path.startswith("/dev/"):
        return False
    _fail(root, path, err)


def data(root, path, result):
    """The bytes read, or None if the file is absent; CapsfastError if it
    exists but could not be read (not a regular file, permission, ...)."""
    err = result[0]
    if err == -errno.ENOENT:
        return None
    if err == -errno.EINVAL or err == -errno.EISDIR:
        raise CapsfastError("cannot read %s: not a regular file" % under(root, path))
    if err:
        _fail(root, path, err)
    return result[2]


def text(root, path, result):
    """The file's text, or None if it is absent.  Undecodable bytes and
    control characters become U+FFFD rather than an error: the tokens we look
    for are ASCII.  A file larger than the buffer is refused."""
    raw = data(root, path, result)
    if raw is None:
        return None
    if result[3]:
        raise CapsfastError("cannot read %s: larger than %d bytes" % (under(root, path), SMALL))
    return decode(raw)


def kvm_facts(raw, nested_files, module_files, deep):
    """Kvm from the C module's device result and the module facts."""
    stat_err, mode, access_err, open_err, api_version, create_vm = raw
    exists = stat_err == 0
    char_device = exists and stat.S_ISCHR(mode)
    accessible = char_device and access_err == 0
    api = api_version if api_version >= 0 else None
    if not exists:
        error = "missing" if stat_err == -errno.ENOENT else "stat: " + os.strerror(-stat_err)
    elif not char_device:
        error = "not a character device"
    elif open_err < 0:
        error = "open: " + os.strerror(-open_err)
    elif api is None:
        error = "KVM_GET_API_VERSION: " + os.strerror(-api_version)
    elif api != KVM_API_VERSION:
        error = "API version %d, expected %d" % (api, KVM_API_VERSION)
    elif deep and create_vm != 1:
        error = "KVM_CREATE_VM: " + os.strerror(-create_vm)
    else:
        error = None
    nested = None
    for value in nested_files:
        if value is not None:
            nested = bool(nested) or value.strip() in ("Y", "y", "1")
    return Kvm(
        exists=exists,
        char_device=char_device,
        accessible=accessible,
        usable=error is None,
        api_version=api,
        modules=tuple(m for m, loaded in zip(KVM_MODULES, module_files) if loaded),
        nested=nested,
        create_vm=(create_vm == 1) if deep and char_device and api is not None else None,
        error=error,
    )


def xen_facts(proc_xen, xen_caps, hv_type, hv_caps):
    """Xen from /proc/xen and /sys/hypervisor."""
    hv_type = hv_type.strip() if hv_type is not None else None
    present_ = proc_xen or hv_type == "xen"
    role = None
    if proc_xen and xen_caps is not None:
        role = "dom0" if "control_d" in xen_caps.split() else "domU"
    tokens = tuple(hv_caps.split()) if hv_caps is not None else ()
    return Xen(present=present_, role=role, hypervisor_type=hv_type or None, capabilities=tokens)


def kqemu_facts(exists):
    return Kqemu(exists=exists)


def cpuinfo_first_block(data):
    """``{key: value}`` of the first processor block of /proc/cpuinfo bytes
    (keys such as ``flags``, ``vendor_id``, ``cpu family``); None if ``data``
    is None."""
    if data is None:
        return None
    end = data.find(b"\n\n")
    block = data if end < 0 else data[:end]
    fields = {}
    for line in decode(block).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def kernel_flags(block):
    """The kernel's CPU flags (x86's ``flags`` line), or None if absent."""
    if not block or "flags" not in block:
        return None
    return tuple(block["flags"].split())


def msr_value(result):
    """The MSR's value, or None where it cannot be read (no msr driver, no
    permission, a short file): an MSR is extra evidence, never required."""
    err, _mode, _data, _truncated, value = result
    return value if err == 0 else None
