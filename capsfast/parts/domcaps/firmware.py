"""Firmware descriptors and the ``<os>`` of domain capabilities.

QEMU's firmware descriptors (``docs/interop/firmware.json`` in QEMU) are
small JSON files that packages such as OVMF and SeaBIOS install: which
firmware image serves which architecture and machine types, through which
interface (BIOS or UEFI), with which features (Secure Boot, SMM).  libvirt
9.0 reads them on every ``domcapabilities`` call to fill ``<os>``: the
``firmware`` enum, the ``<loader>`` images and whether secure boot is on
offer.  This module does the same in three steps:

* ``search``: the descriptor files in libvirt's order (I/O, under a root);
* ``load``: each parsed as libvirt parses it (pure; a file that does not
  parse is one CapsfastError naming it);
* ``os_caps``: libvirt's decision for one arch and machine (pure).
"""
from capsfast.errors import CapsfastError, printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

DATA_DIR = "/usr/share/qemu/firmware"
CONF_DIR = "/etc/qemu/firmware"

# libvirt refuses a descriptor larger than this ("1MiB should be enough").
MAX_BYTES = 1 << 20
# A bound on one directory's listing, so a hostile tree cannot make the
# search read without end; real trees hold a dozen files.
MAX_FILES = 4096

# libvirt 9.0's built-in loader:nvram pairs (its DEFAULT_LOADER_NVRAM, as
# Debian builds it too): the loaders offered where no descriptor gives one
# for the machine, those present on the host only.
BUILTIN_LOADERS = (
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/OVMF/OVMF_CODE.secboot.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
    ("/usr/share/AAVMF/AAVMF32_CODE.fd", "/usr/share/AAVMF/AAVMF32_VARS.fd"),
)

_INTERFACES = ("bios", "openfirmware", "uboot", "uefi")
_DEVICES = ("flash", "kernel", "memory")
_FLASH_MODES = ("split", "combined", "stateless")
# Features libvirt knows; it drops any other name without a word.
_FEATURES = ("acpi-s3", "acpi-s4", "amd-sev", "amd-sev-es", "enrolled-keys",
             "requires-smm", "secure-boot", "verbose-dynamic", "verbose-static")
# libvirt's architecture names, and QEMU's three that differ from them.
_ARCHES = frozenset((
    "alpha", "armv6l", "armv7l", "armv7b", "aarch64", "cris", "i686", "ia64", "lm32",
    "m68k", "microblaze", "microblazeel", "mips", "mipsel", "mips64", "mips64el",
    "openrisc", "parisc", "parisc64", "ppc", "ppcle", "ppc64", "ppc64le", "ppcemb",
    "riscv32", "riscv64", "s390", "s390x", "sh4", "sh4eb", "sparc", "sparc64",
    "unicore32", "x86_64", "xtensa", "xtensaeb",
))
_QEMU_ARCHES = {"i386": "i686", "arm": "armv7l", "or32": "openrisc"}

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


# --- search: the files, in libvirt's order (I/O) ---------------------------

def search_dirs(*, privileged: bool, xdg_config_home: "str | None",
                home: "str | None" = None) -> "list[str]":
    """The descriptor directories, lowest priority first, as seen on the
    host: a system daemon (``privileged``) reads no user's configuration."""
    dirs = [DATA_DIR, CONF_DIR]
    if not privileged:
        if xdg_config_home is None:
            xdg_config_home = (home if home is not None else _user_home()) + "/.config"
        dirs.append(xdg_config_home + "/qemu/firmware")
    return dirs


def _user_home() -> str:
    # libvirt asks the password database, not $HOME.
    import os
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return os.path.expanduser("~")


def search(root: str, *, privileged: bool, xdg_config_home: "str | None",
           home: "str | None" = None) -> "list[tuple[str, bytes]]":
    """(path on the host, contents) of each descriptor that counts, in the
    order libvirt reads them: a file in a later directory replaces the
    same-named one of an earlier directory, an empty one masks it (and is
    dropped), hidden files and non-regular files are skipped, then name
    order.  Paths are looked up under ``root``; CapsfastError where one
    cannot be read."""
    import os

    from capsfast.sources.base import under  # links followed inside the root

    def place(path: str) -> str:
        return path if root in ("", "/") else under(root, path)

    chosen: "dict[bytes, str]" = {}
    for directory in search_dirs(privileged=privileged, xdg_config_home=xdg_config_home, home=home):
        try:
            names = os.listdir(place(directory))
        except FileNotFoundError:
            continue
        except OSError as e:
            raise CapsfastError("cannot list firmware descriptors in %s: %s"
                                % (printable(directory), e.strerror), errno=e.errno) from None
        if len(names) > MAX_FILES:
            raise CapsfastError("more than %d files in %s" % (MAX_FILES, printable(directory)))
        for name in names:
            if name.startswith("."):
                continue
            path = directory + "/" + name
            try:
                info = os.stat(place(path))  # follows a symlink, as libvirt does
            except OSError as e:
                raise CapsfastError("cannot access firmware descriptor %s: %s"
                                    % (printable(path), e.strerror), errno=e.errno) from None
            if (info.st_mode & 0o170000) != 0o100000:
                continue
            chosen[os.fsencode(name)] = path
    found = []
    for key in sorted(chosen):  # strcmp order of the names
        path = chosen[key]
        data = _read_bounded(place(path), path)
        if data:  # an empty file only masks
            found.append((path, data))
    return found


def _read_bounded(real_path: str, path: str) -> bytes:
    try:
        with open(real_path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise CapsfastError("cannot read firmware descriptor %s: %s"
                            % (printable(path), e.strerror), errno=e.errno) from None
    if len(data) > MAX_BYTES:
        raise CapsfastError("firmware descriptor %s is larger than %d bytes"
                            % (printable(path), MAX_BYTES))
    return data


# --- load: each file parsed as libvirt parses it (pure) -------------------

def load(files: "Iterable[tuple[str, bytes]]") -> "list[Descriptor]":
    """Each (path, contents) parsed; CapsfastError naming the first file
    libvirt would refuse (it then refuses the whole answer)."""
    return [parse(path, data) for path, data in files]


def parse(path: str, data: bytes) -> Descriptor:
    """One descriptor, read as libvirt 9.0 reads it: unknown interface
    types, devices, flash modes and architectures are errors, unknown
    features are ignored."""
    import json

    def fail(what: str) -> CapsfastError:
        return CapsfastError("firmware descriptor %s: %s" % (printable(path), what))

    if len(data) > MAX_BYTES:
        raise fail("larger than %d bytes" % MAX_BYTES)
    # libvirt reads the file as a C string: it ends at a NUL byte
    text = data.split(b"\0", 1)[0]
    try:
        doc = json.loads(text.decode("utf-8"), object_pairs_hook=_object_once, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise fail("not valid JSON") from None
    if not isinstance(doc, dict):
        raise fail("not a JSON object")

    interfaces = _array(doc, "interface-types", fail)
    for interface in interfaces:
        if interface not in _INTERFACES:
            raise fail("unknown interface type %s" % _shown(interface))

    mapping = doc.get("mapping")
    if not isinstance(mapping, dict):
        raise fail("missing 'mapping'")
    device = mapping.get("device")
    if not isinstance(device, str):
        raise fail("missing 'device' in 'mapping'")
    if device not in _DEVICES:
        raise fail("unknown device type %s" % _shown(device))
    mode = executable = nvram_template = filename = None
    if device == "flash":
        mode = mapping.get("mode", "split")  # absent: the historical layout
        if not isinstance(mode, str):
            raise fail("flash mode is not a string")
        if mode not in _FLASH_MODES:
            raise fail("unknown flash mode %s" % _shown(mode))
        executable = _flash_file(mapping, "executable", fail)
        if mode == "split":
            nvram_template = _flash_file(mapping, "nvram-template", fail)
    else:
        # libvirt complains of a missing filename here yet keeps the file;
        # such a descriptor then offers no image.
        value = mapping.get("filename")
        filename = _c_string(value) if isinstance(value, str) else None

    targets = []
    for target in _array(doc, "targets", fail):
        arch = target.get("architecture") if isinstance(target, dict) else None
        if not isinstance(arch, str):
            raise fail("missing 'architecture' in a target")
        libvirt_arch = _QEMU_ARCHES.get(arch, arch)
        if libvirt_arch not in _ARCHES:
            raise fail("unknown architecture %s" % _shown(arch))
        machines = target.get("machines")
        if not isinstance(machines, list):
            raise fail("missing 'machines' in a target")
        if not all(isinstance(m, str) for m in machines):
            raise fail("a machine type is not a string")
        targets.append((libvirt_arch, tuple(_c_string(m) for m in machines)))

    features = tuple(f for f in _array(doc, "features", fail) if f in _FEATURES)
    return Descriptor(path, tuple(interfaces), device, mode=mode, executable=executable,
                      nvram_template=nvram_template, filename=filename,
                      targets=tuple(targets), features=features)


def _object_once(pairs: "list[tuple[str, Any]]") -> "dict[str, Any]":
    # libvirt's JSON parser refuses an object naming a key twice
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("duplicate key")
    return doc


def _no_constant(name: str) -> object:
    # NaN and Infinity are no JSON, and libvirt's parser refuses them
    raise ValueError(name)


def _array(doc: "dict[str, Any]", key: str, fail: "Callable[[str], CapsfastError]") -> "list[Any]":
    value = doc.get(key)
    if not isinstance(value, list):
        raise fail("missing '%s'" % key)
    return value


def _flash_file(mapping: "dict[str, Any]", key: str,
                fail: "Callable[[str], CapsfastError]") -> str:
    entry = mapping.get(key)
    if not isinstance(entry, dict):
        raise fail("missing '%s' in 'mapping'" % key)
    for field in ("filename", "format"):
        if not isinstance(entry.get(field), str):
            raise fail("missing '%s' in '%s'" % (field, key))
    return _c_string(entry["filename"])


def _c_string(value: str) -> str:
    # libvirt keeps a JSON string as a C string: it ends at a "\u0000".
    return value.split("\0", 1)[0]


def _shown(value: object) -> str:
    return printable(repr(value)) if isinstance(value, str) else "(not a string)"


def _glob_match(glob: str, name: str) -> bool:
    """GLib's g_pattern_match_simple: ``*`` any run, ``?`` one character,
    nothing else special."""
    import re

    pattern = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)
    return re.fullmatch(pattern, name, re.DOTALL) is not None


# --- os_caps: libvirt's choice for one arch and machine (pure) ------------

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
