"""The key of a QMP transcript in the domain capabilities' cache: what
libvirt 9.0 keys its own QEMU capabilities cache on
(``virQEMUCapsIsValid``), plus what capsfast adds (see
``capsfast.parts.domcaps.cache``).  Host facts, read here on the source
side: the KVM device's supported CPUID, /proc, /sys and the CPU map."""
import os

from capsfast.errors import CapsfastError
from capsfast.sources.cache import stamp, walk_key

# Where QEMU keeps its loadable modules (libvirt's QEMU_MODDIR, which
# differs by distribution): Debian's multiarch directories, then the others.
MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/qemu", "/usr/lib/i386-linux-gnu/qemu", "/usr/lib/aarch64-linux-gnu/qemu",
    "/usr/lib64/qemu", "/usr/lib/qemu",
)
# The kernel modules whose ``nested`` parameter libvirt reads, in its order.
_NESTED_MODULES = ("kvm_intel", "kvm_amd", "kvm_hv", "kvm")
# The /proc/cpuinfo fields that make libvirt's host CPU signature, and the microcode.
_CPUINFO_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "microcode")
_MAX_SMALL_FILE = 64 << 10


# -- the key ------------------------------------------------------------------------

def _under(root: str, path: str) -> str:
    from capsfast.sources.base import under  # links followed inside the root

    return under(root, path)


def _read(path: str) -> "str | None":
    try:
        with open(path, "rb") as f:
            return f.read(_MAX_SMALL_FILE).decode("utf-8", "replace")
    except OSError:
        return None


def _cpu_signature(root: str) -> str:
    """The first processor's signature and microcode in /proc/cpuinfo."""
    text = _read(_under(root, "/proc/cpuinfo")) or ""
    block = text.split("\n\n", 1)[0]
    fields = {}
    for line in block.splitlines():
        name, colon, value = line.partition(":")
        name = name.strip()
        if colon and name in _CPUINFO_FIELDS and name not in fields:
            fields[name] = value.strip()
    return "; ".join("%s=%s" % (name, fields.get(name, "-")) for name in _CPUINFO_FIELDS)


def _kvm_cpuid(root: str) -> str:
    """A digest of KVM_GET_SUPPORTED_CPUID, or why there is none.  KVM
    fills in the APIC id of the CPU the call runs on: those bits are
    masked, as libvirt masks them in the host CPUID it keys on."""
    import hashlib

    from capsfast import _native

    outcome, entries = _native.kvm_supported_cpuid(_under(root, "/dev/kvm"))
    if not outcome.ok:
        return "- " + outcome.code
    text = walk_key({(leaf, sub): regs for leaf, sub, regs in entries}, True)
    return hashlib.sha256(text.encode()).hexdigest()


def _kvm_device(root: str) -> str:
    """libvirt's "KVM usable" (read-write for this user), with the node's
    mode and device number: a node replaced or re-permissioned is a miss."""
    path = _under(root, "/dev/kvm")
    try:
        st = os.stat(path)
    except OSError:
        return "absent"
    usable = os.access(path, os.R_OK | os.W_OK)
    return "usable=%d mode=%o rdev=%d:%d" % (usable, st.st_mode, os.major(st.st_rdev), os.minor(st.st_rdev))


def _nested(root: str) -> str:
    """virQEMUCapsKVMSupportsNesting: the first module whose ``nested`` is
    set says yes; a module without the parameter is skipped."""
    for module in _NESTED_MODULES:
        path = _under(root, "/sys/module/%s/parameters/nested" % module)
        if not os.path.exists(path):
            continue
        value = _read(path)
        if value is None:
            return "0"
        if value[:1] in ("Y", "y", "1"):
            return "1"
    return "0"


def _sev(root: str) -> str:
    """virQEMUCapsKVMSupportsSecureGuestAMD: ``kvm_amd`` has SEV on, and
    ``/dev/sev`` exists."""
    value = _read(_under(root, "/sys/module/kvm_amd/parameters/sev")) or ""
    on = value[:1] in ("1", "Y", "y") and os.path.exists(_under(root, "/dev/sev"))
    return "1" if on else "0"


def directory_identity(directory: str) -> "tuple[str, ...]":
    """Each file of ``directory`` by name with its identity (size, mtime,
    ctime, inode): any file changed, added or removed changes it."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return ()
    return tuple("%s %s" % (name, stamp(os.path.join(directory, name))) for name in names)


def _cpu_map(directory: str) -> str:
    """Each file of the CPU map directory, by name, with its identity."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return "-"
    return "; ".join("%s %s" % (name, stamp(os.path.join(directory, name))) for name in names)


def key(emulator: str, *, root: str = "/", cpu_map: "str | None" = None) -> "list[tuple[str, str]]":
    """The cache key of ``emulator``'s transcript on the host under ``root``
    with the CPU map in ``cpu_map`` (None: the host's own, as
    ``Host.cpu_model`` finds it), as (name, value) pairs."""
    from capsfast.constants import __version__
    from capsfast.sources.base import map_directory

    try:
        st = os.stat(emulator)
    except OSError as e:
        raise CapsfastError("emulator %s: %s" % (emulator, e.strerror), errno=e.errno) from None
    pairs = [
        ("capsfast", __version__),
        ("binary", "%s %d %d %d" % (emulator, st.st_ctime_ns, st.st_size, st.st_ino)),
    ]
    for directory in MODULE_DIRS:
        try:
            mtime = "%d" % os.stat(_under(root, directory)).st_mtime_ns
        except OSError:
            mtime = "-"
        pairs.append(("moddir", "%s %s" % (directory, mtime)))
    pairs += [
        ("kernel", "%s %s" % ((_read(_under(root, "/proc/sys/kernel/osrelease")) or "-").strip(),
                              (_read(_under(root, "/proc/sys/kernel/version")) or "-").strip())),
        ("kvm_cpuid", _kvm_cpuid(root)),
        ("cpu", _cpu_signature(root)),
        ("kvm", _kvm_device(root)),
        ("nested", _nested(root)),
        ("sev", _sev(root)),
        ("cpu_map", _cpu_map(map_directory(root, cpu_map))),
    ]
    return pairs


