"""Firmware descriptors and the ``<os>`` of domain capabilities: records
and libvirt's rules, pure (a subject of its own: the QMP rules in
``decide`` never look at firmware, and ``<os>`` needs nothing else).

QEMU's firmware descriptors (``docs/interop/firmware.json`` in QEMU) are
small JSON files that packages such as OVMF and SeaBIOS install: which
firmware image serves which architecture and machine types, through which
interface (BIOS or UEFI), with which features (Secure Boot, SMM).  libvirt
9.0 reads them on every ``domcapabilities`` call to fill ``<os>``: the
``firmware`` enum, the ``<loader>`` images and whether secure boot is on
offer.  The part does the same in three steps:

* ``read.search_descriptors``: the descriptor files in libvirt's order
  (I/O, under a root);
* ``parse.descriptors``: each parsed as libvirt parses it into a
  ``Descriptor`` (a file that does not parse is one CapsfastError naming
  it);
* ``os_caps`` here: libvirt's decision for one arch and machine.
"""
from capsfast.errors import CapsfastError, printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

# The descriptor directories every daemon searches (read.descriptor_dirs):
# the packages', then the administrator's.
DATA_DIR = "/usr/share/qemu/firmware"
CONF_DIR = "/etc/qemu/firmware"

# libvirt refuses a descriptor larger than this ("1MiB should be enough").
MAX_BYTES = 1 << 20

# libvirt 9.0's built-in loader:nvram pairs (its DEFAULT_LOADER_NVRAM, as
# Debian builds it too): the loaders offered where no descriptor gives one
# for the machine, those present on the host only.
BUILTIN_LOADERS = (
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/OVMF/OVMF_CODE.secboot.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
    ("/usr/share/AAVMF/AAVMF32_CODE.fd", "/usr/share/AAVMF/AAVMF32_VARS.fd"),
)

# The <os> enums libvirt's QEMU driver always offers, in its enum order.
LOADER_TYPES = ("rom", "pflash")
LOADER_READONLY = ("yes", "no")


class _Value:
    """Equality, hashing and repr from the fields in ``__slots__``."""

    __slots__: "tuple[str, ...]" = ()

    def _fields(self) -> "tuple[object, ...]":
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__))


class Descriptor(_Value):
    """One parsed descriptor: the fields libvirt reads, nothing else
    (``description`` and ``tags`` are for people)."""

    __slots__ = ("path", "interfaces", "device", "mode", "executable", "nvram_template",
                 "filename", "targets", "features")

    def __init__(self, path: str, interfaces: "tuple[str, ...]", device: str, *,
                 mode: "str | None" = None, executable: "str | None" = None,
                 nvram_template: "str | None" = None, filename: "str | None" = None,
                 targets: "tuple[tuple[str, tuple[str, ...]], ...]" = (),
                 features: "tuple[str, ...]" = ()) -> None:
        self.path = path
        self.interfaces = interfaces
        self.device = device  # flash, kernel or memory
        self.mode = mode  # flash only: split, combined or stateless
        self.executable = executable  # flash only
        self.nvram_template = nvram_template  # split flash only
        self.filename = filename  # kernel and memory only
        self.targets = targets  # (libvirt arch name, machine type globs)
        self.features = features  # the known ones, in the file's order

    def loader(self) -> "tuple[str, str | None] | None":
        """(image, NVRAM template) a guest would boot from, as libvirt
        lists it; None for a kernel."""
        if self.device == "flash" and self.executable is not None:
            return self.executable, self.nvram_template
        if self.device == "memory" and self.filename is not None:
            return self.filename, None
        return None

    def serves(self, arch: str, machine: str) -> bool:
        """Does a target name ``arch`` with a glob matching ``machine``?"""
        return any(target_arch == arch and any(_glob_match(glob, machine) for glob in globs)
                   for target_arch, globs in self.targets)


class OsCaps(_Value):
    """The ``<os>`` of domain capabilities: the firmware enum (``bios``,
    ``efi``), the loader images, and the loader's type, readonly and
    secure enums, each in libvirt's order."""

    __slots__ = ("firmware", "loaders", "loader_types", "loader_readonly", "loader_secure")

    def __init__(self, firmware: "tuple[str, ...]", loaders: "tuple[str, ...]", *,
                 loader_secure: "tuple[str, ...]",
                 loader_types: "tuple[str, ...]" = LOADER_TYPES,
                 loader_readonly: "tuple[str, ...]" = LOADER_READONLY) -> None:
        self.firmware = firmware
        self.loaders = loaders
        self.loader_types = loader_types
        self.loader_readonly = loader_readonly
        self.loader_secure = loader_secure

    def as_dict(self) -> "dict[str, Any]":
        """The same facts as plain data, for JSON."""
        return {"firmware": list(self.firmware),
                "loader": {"values": list(self.loaders), "type": list(self.loader_types),
                           "readonly": list(self.loader_readonly), "secure": list(self.loader_secure)}}

    def replace(self, **changes: "tuple[str, ...]") -> "OsCaps":
        """A copy with some fields changed."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return OsCaps(fields.pop("firmware"), fields.pop("loaders"), **fields)


def _glob_match(glob: str, name: str) -> bool:
    """GLib's g_pattern_match_simple: ``*`` any run, ``?`` one character,
    nothing else special."""
    import re

    pattern = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)
    return re.fullmatch(pattern, name, re.DOTALL) is not None


# --- os_caps: libvirt's choice for one arch and machine ------------------

def supported(descriptors: "Sequence[Descriptor]", *, arch: str, machine: str
              ) -> "tuple[tuple[str, ...], bool, list[tuple[str, str | None]]]":
    """What the descriptors serving ``arch`` (libvirt's name: ``x86_64``,
    ``i686``...) and ``machine`` (the canonical name, such as
    ``pc-q35-7.2``) offer, as libvirt 9.0 sums it up: the firmware
    interfaces (``bios``, ``efi``, in libvirt's order), whether any requires
    SMM (secure boot), and each distinct (image, NVRAM template) in
    descriptor order."""
    interfaces: "set[str]" = set()
    secure = False
    pairs: "list[tuple[str, str | None]]" = []
    for descriptor in descriptors:
        if not descriptor.serves(arch, machine):
            continue
        interfaces.update(descriptor.interfaces)
        secure = secure or "requires-smm" in descriptor.features
        pair = descriptor.loader()
        if pair is not None and pair not in pairs:
            pairs.append(pair)
    firmware = tuple(name for name, interface in (("bios", "bios"), ("efi", "uefi"))
                     if interface in interfaces)
    return firmware, secure, pairs


def nvram_loaders(entries: "Sequence[str]") -> "tuple[tuple[str, str], ...]":
    """(image, NVRAM template) pairs from qemu.conf's obsolete ``nvram``
    list of ``"IMAGE:TEMPLATE"`` strings, for ``os_caps``' ``builtin``.
    libvirt uses them in place of its built-in list only where no
    descriptor file exists at all, and then no fallback list where one
    does.  CapsfastError for an entry libvirt refuses."""
    pairs = []
    for entry in entries:
        parts = entry.split(":")
        # libvirt skips leading blanks of each half (not trailing ones)
        halves = [part.lstrip(" \t\n\v\f\r") for part in parts[:2]]
        if len(parts) != 2 or not all(halves):
            raise CapsfastError("invalid nvram entry in qemu.conf: %s" % printable(repr(entry)))
        pairs.append((halves[0], halves[1]))
    return tuple(pairs)


def os_caps(descriptors: "Sequence[Descriptor]", *, arch: str, machine: str,
            exists: "Callable[[str], bool]",
            builtin: "Sequence[tuple[str, str | None]]" = BUILTIN_LOADERS) -> OsCaps:
    """The ``<os>`` libvirt 9.0's QEMU driver reports for ``arch`` and
    ``machine`` (as for ``supported``).

    The descriptors serving the machine give the firmware enum, secure
    boot and the loader images; where none gives an image, ``builtin``
    (libvirt's built-in list, or qemu.conf's ``nvram`` where set) does.
    Only images ``exists`` finds on the host are listed, each once."""
    firmware, secure, pairs = supported(descriptors, arch=arch, machine=machine)
    loaders: "list[str]" = []
    for image, _nvram in pairs or builtin:
        if image not in loaders and exists(image):
            loaders.append(image)
    return OsCaps(firmware, tuple(loaders), loader_secure=("yes", "no") if secure else ("no",))
