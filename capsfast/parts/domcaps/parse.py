"""Pure parsers of domain capabilities, text or bytes to values (no I/O):
QMP transcripts, firmware descriptors and what swtpm_setup printed.

QMP transcripts are in libvirt's own ``tests/qemucapabilitiesdata/*.replies``
format: the JSON objects of a conversation, each command followed by its
reply, separated by blank lines.  One file holds every process of one
probe: the second ``qmp_capabilities`` starts the TCG-only process.  They
are read with a bound on size and nesting (a transcript may come from a
remote host or a hostile emulator), and written exactly as libvirt's test
data is.  The record, its bounds and its layout are defined in ``qmp``
(that module travels alone to a remote host, so it holds them itself);
the rest of the part names them here, beside the parser, and never the
module that runs QEMU.

Firmware descriptors (``docs/interop/firmware.json`` in QEMU) are read as
libvirt 9.0 reads them: a file that does not parse is one CapsfastError
naming it.
"""
from capsfast.errors import CapsfastError, printable
from capsfast.parts.domcaps import firmware
from capsfast.parts.domcaps.qmp import MAX_BYTES as MAX_BYTES, MAX_DEPTH as MAX_DEPTH
from capsfast.parts.domcaps.qmp import Transcript as Transcript, replies_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from capsfast.parts.domcaps.qmp import Exchange as Exchange


# --- QMP transcripts ------------------------------------------------------

def _check_depth(text: str) -> None:
    # json's decoder recurses per level; a hostile document of 5,000 levels
    # ends in RecursionError.  One text of many objects: the deepest counts.
    from capsfast import bounded_json

    if bounded_json.depth(text.encode("utf-8", "surrogatepass"), MAX_DEPTH) > MAX_DEPTH:
        raise CapsfastError("QMP transcript nested deeper than %d levels" % MAX_DEPTH)


def transcript(text: str) -> Transcript:
    """A transcript from ``.replies`` text; CapsfastError where it is not one."""
    import json

    if len(text) > MAX_BYTES:
        raise CapsfastError("QMP transcript larger than %d bytes" % MAX_BYTES)
    _check_depth(text)
    decoder = json.JSONDecoder()
    objects = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos == end:
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError as e:
            raise CapsfastError("malformed QMP transcript: %s" % e) from None
        if not isinstance(obj, dict):
            raise CapsfastError("malformed QMP transcript: an object is not a JSON object")
        objects.append(obj)
    if len(objects) % 2:
        raise CapsfastError("malformed QMP transcript: a command without its reply")
    processes: "list[list[Exchange]]" = []
    for command, reply in zip(objects[0::2], objects[1::2]):
        if "execute" not in command or ("return" not in reply and "error" not in reply):
            raise CapsfastError("malformed QMP transcript: expected a command and its reply")
        if command["execute"] == "qmp_capabilities" or not processes:
            processes.append([])
        processes[-1].append((command, reply))
    return Transcript(processes)


def transcript_text(said: Transcript) -> str:
    """``.replies`` text, as libvirt's test data lays it out (the layout
    is ``qmp.replies_text``'s, which a remote host's collector runs too)."""
    return replies_text(said.processes)


# --- firmware descriptors -------------------------------------------------

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


def descriptors(files: "Iterable[tuple[str, bytes]]") -> "list[firmware.Descriptor]":
    """Each (path, contents) parsed; CapsfastError naming the first file
    libvirt would refuse (it then refuses the whole answer)."""
    return [descriptor(path, data) for path, data in files]


def descriptor(path: str, data: bytes) -> firmware.Descriptor:
    """One descriptor, read as libvirt 9.0 reads it: unknown interface
    types, devices, flash modes and architectures are errors, unknown
    features are ignored."""
    import json

    def fail(what: str) -> CapsfastError:
        return CapsfastError("firmware descriptor %s: %s" % (printable(path), what))

    if len(data) > firmware.MAX_BYTES:
        raise fail("larger than %d bytes" % firmware.MAX_BYTES)
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
    return firmware.Descriptor(path, tuple(interfaces), device, mode=mode, executable=executable,
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


# --- swtpm ----------------------------------------------------------------

def tpm_versions(printed: bytes) -> "tuple[str, ...]":
    """The TPM versions ``swtpm_setup --print-capabilities`` lists among
    its features (tpm-1.2, tpm-2.0); () where it printed nothing usable."""
    import json

    try:
        doc = json.loads(printed.decode("utf-8", "replace"))
    except ValueError:
        return ()
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        return ()
    return tuple(version for version in ("1.2", "2.0") if "tpm-" + version in features)
