"""Pure parsers of the guests part: a PATH directory's names to the
emulators it holds, a Xen capability token to its (hvm, arch, suffix),
QEMU's ``-machine help`` text to machine types, and the machine-types
cache file's body to its entries and back.  No I/O."""
from capsfast.errors import CapsfastError
from capsfast.model import Machine
from capsfast.parts.guests import PREFIX

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    Machines = tuple[Machine, ...]


# -- a PATH directory's names -------------------------------------------------------

def emulator_names(names: "Iterable[str]") -> "list[tuple[str, str]]":
    """(QEMU target, name) of each ``qemu-system-<target>`` among a
    directory's ``names``, in name order (the first of a target wins)."""
    return [(name[len(PREFIX):], name) for name in sorted(name for name in names if name.startswith(PREFIX))]


# -- Xen capability tokens ----------------------------------------------------------

_XEN_TOKEN_ARCH = {"x86_32": "i686", "x86_64": "x86_64", "ia64": "ia64", "powerpc64": "ppc64"}


def xen_token(token: str) -> "tuple[bool, str, str] | None":
    """(hvm, arch, suffix) of a token like ``hvm-3.0-x86_32p``, or None:
    libvirt's pattern (xen|hvm)-N.N-(x86_32|x86_64|ia64|powerpc64)(p|be)?"""
    parts = token.split("-", 2)
    if len(parts) != 3 or parts[0] not in ("xen", "hvm"):
        return None
    major, dot, minor = parts[1].partition(".")
    if not (dot and major.isdigit() and minor.isdigit() and major.isascii() and minor.isascii()):
        return None
    for name, arch in _XEN_TOKEN_ARCH.items():
        if parts[2].startswith(name):
            return parts[0] == "hvm", arch, parts[2][len(name):]
    return None


# -- QEMU's -machine help -----------------------------------------------------------

HEADER = "Supported machines are:"
# The characters of a QEMU machine type name (pc-i440fx-7.2, virt-7.2, s390-ccw-virtio).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")


def parse_help(text: str) -> "Machines":
    """Machines from QEMU's ``-machine help`` output, in its order.

    The first line is ``Supported machines are:``; the others look like
    ``pc   Standard PC (...) (alias of pc-i440fx-7.2)`` or ``pc-i440fx-1.4
    Standard PC (...) (deprecated)``.  ``none`` (the empty machine) is left
    out, as libvirt does.  Raises CapsfastError for text of another shape."""
    lines = text.splitlines()
    if not lines or lines[0].rstrip() != HEADER:
        raise CapsfastError("its -machine help does not start with %r" % HEADER)
    machines: list[Machine] = []
    seen: set[str] = set()
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        name, _sep, rest = line.strip().partition(" ")
        if not set(name) <= _NAME_CHARS or not line[0].isalnum() or not line.isprintable():
            raise CapsfastError("line %d of its -machine help is not a machine type: %r"
                                % (number, line[:60]))
        if name == "none" or name in seen:
            continue
        seen.add(name)
        canonical = None
        marker = "(alias of "
        start = rest.find(marker)
        if start >= 0:
            end = rest.find(")", start)
            canonical = rest[start + len(marker):end].strip() or None
        machines.append(Machine(name, canonical, "(deprecated)" in rest))
    return tuple(machines)


# -- the machine-types cache's body -------------------------------------------------
#
# After the cache's magic and key lines (``capsfast.sources.cache``): one
# record per emulator, every field ended by a NUL (no path or machine name
# holds one): the entry's key in four fields (path, size, mtime, inode),
# the number of machines, then name, canonical name ("" for none) and
# deprecated ("1" or "0") of each.  Read without the json module, which
# alone would cost more than the rest of --machines.

def cache_entries(body: bytes) -> "dict[str, Machines]":
    """The entries of a cache body by key (the four fields joined by NULs);
    {} for a body not wholly of the shape ``cache_body`` writes."""
    if not body.endswith(b"\0"):
        return {}
    fields = body[:-1].decode("utf-8", "surrogateescape").split("\0")
    entries: "dict[str, Machines]" = {}
    at = 0
    while at < len(fields):
        head = fields[at:at + 5]
        if len(head) < 5 or not head[4].isdigit():
            return {}
        count = int(head[4])
        body_fields = fields[at + 5:at + 5 + 3 * count]
        if len(body_fields) != 3 * count or any(flag not in ("0", "1") for flag in body_fields[2::3]):
            return {}
        entries["\0".join(head[:4])] = tuple(
            Machine(name, canonical or None, flag == "1")
            for name, canonical, flag in zip(body_fields[0::3], body_fields[1::3], body_fields[2::3]))
        at += 5 + 3 * count
    return entries


def cache_body(entries: "Mapping[str, Machines]") -> bytes:
    """``entries`` (key -> machines) as a cache body, in key order."""
    fields = []
    for key, machines in sorted(entries.items()):
        fields += [key, str(len(machines))]
        for machine in machines:
            fields += [machine.name, machine.canonical or "", "1" if machine.deprecated else "0"]
    return "".join(field + "\0" for field in fields).encode("utf-8", "surrogateescape")
