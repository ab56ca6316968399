"""libvirt's x86 CPU map: the vendors, features and CPU models its host
CPU decoder chooses from, read from a ``cpu_map`` directory
(``/usr/share/libvirt/cpu_map``) as libvirt 9.0 reads it (``cpuMapLoad``
in ``src/cpu/cpu_map.c``, ``x86VendorParse``, ``x86FeatureParse`` and
``x86ModelParse`` in ``src/cpu/cpu_x86.c``).

``index.xml``'s ``<arch name='x86'>`` names the files; each holds vendors,
then features, then models, in that order, and a model may copy an earlier
one (``<model name='...'/>``).  The order of features and models is the
order libvirt keeps: it decides which model wins and how features list.

CPU data is kept as libvirt keeps it, one item per CPUID leaf and subleaf
or MSR, but each item's registers packed into one integer
(``eax | ebx << 32 | ecx << 64 | edx << 96``; an MSR's ``eax | edx << 32``):
libvirt's masked compare and subtract are then one ``&`` each.

Parsing XML is the dear part (tens of milliseconds); ``capsfast.cpu_map.x86_decode``
keeps its result on disk.
"""
import os

from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    # (0, leaf, subleaf) for CPUID, (1, index, 0) for an MSR.
    ItemKey = tuple[int, int, int]
    Data = dict[ItemKey, int]

DEFAULT_DIR = "/usr/share/libvirt/cpu_map"
INDEX = "index.xml"
CPUID = 0
MSR = 1
# Far above any real map file (the largest is about 30 KiB) and all of
# them together (about 400 KiB): a hostile directory cannot make us read
# or parse without bound.
MAX_FILE = 4 << 20
MAX_TOTAL = 32 << 20


class Model:
    """One CPU model: its name, whether libvirt may use it for a host CPU
    (``decode host='on'``), its vendor name (or None), its signatures
    (``(family, model, steppings or None)``), its CPU data, whether libvirt
    may use it for a guest CPU (``decode guest='on'``) and the features it
    lists as ``removed='yes'`` (in the map's order; not in its data, and
    not inherited from an ancestor, as in libvirt)."""

    __slots__ = ("name", "decode_host", "vendor", "signatures", "data", "decode_guest", "removed")

    def __init__(self, name: str, decode_host: bool, vendor: "str | None",
                 signatures: "tuple[tuple[int, int, frozenset[int] | None], ...]", data: "Data",
                 decode_guest: bool = True, removed: "tuple[str, ...]" = ()) -> None:
        self.name = name
        self.decode_host = decode_host
        self.vendor = vendor
        self.signatures = signatures
        self.data = data
        self.decode_guest = decode_guest
        self.removed = removed


class CpuMap:
    """The x86 part of a CPU map: ``vendors`` ((name, leaf 0 item) in map
    order), ``features`` ((name, data) in map order), ``models`` (in map
    order, oldest first), ``files``, the files read (index first), and
    ``migrate_blockers``, the features marked ``migratable='no'``."""

    __slots__ = ("directory", "vendors", "features", "models", "files", "migrate_blockers", "_feature_by_name")

    def __init__(self, directory: str, vendors: "list[tuple[str, int]]", features: "list[tuple[str, Data]]",
                 models: "list[Model]", files: "list[str]", migrate_blockers: "frozenset[str]" = frozenset()) -> None:
        self.directory = directory
        self.vendors = vendors
        self.features = features
        self.models = models
        self.files = files
        self.migrate_blockers = migrate_blockers
        self._feature_by_name = dict(features)

    def feature(self, name: str) -> "Data | None":
        return self._feature_by_name.get(name)

    def model(self, name: str) -> "Model | None":
        """The model called ``name`` (x86ModelFind), or None."""
        for model in self.models:
            if model.name == name:
                return model
        return None


def _uint(text: "str | None", where: str, base: int = 0) -> int:
    """An unsigned int as libvirt's virXMLPropUInt reads it (strtoul base 0:
    0x hex, a leading 0 octal)."""
    if text is None:
        raise CapsfastError("%s: missing" % where)
    s = text.strip()
    try:
        if base == 0:
            if s[:2] in ("0x", "0X"):
                value = int(s[2:], 16)
            elif len(s) > 1 and s[0] == "0":
                value = int(s[1:], 8)
            else:
                value = int(s, 10)
        else:
            value = int(s, base)
    except ValueError:
        raise CapsfastError("%s: %r is not a number" % (where, text)) from None
    if not 0 <= value < 1 << 32 or s[:1] in "+-":
        raise CapsfastError("%s: %r is not an unsigned 32-bit number" % (where, text))
    return value


def add_item(data: "Data", key: "ItemKey", value: int) -> None:
    """libvirt's virCPUx86DataAddItem: bits of an existing item are ORed."""
    data[key] = data.get(key, 0) | value


def _data(node: "Element", where: str) -> "Data":
    """A feature's CPU data (x86ParseDataItemList)."""
    data: Data = {}
    children = list(node)
    if not children:
        raise CapsfastError("%s: no x86 CPU data found" % where)
    for i, child in enumerate(children):
        tag = child.tag
        a = child.attrib
        if tag == "alias":
            continue
        if tag == "cpuid":
            w = "%s: cpuid[%d]" % (where, i)
            key = (CPUID, _uint(a.get("eax_in"), w + " eax_in"), _uint(a.get("ecx_in", "0"), w + " ecx_in"))
            value = (_uint(a.get("eax", "0"), w + " eax") | _uint(a.get("ebx", "0"), w + " ebx") << 32
                     | _uint(a.get("ecx", "0"), w + " ecx") << 64 | _uint(a.get("edx", "0"), w + " edx") << 96)
        else:
            w = "%s: msr[%d]" % (where, i)
            key = (MSR, _uint(a.get("index"), w + " index"), 0)
            value = _uint(a.get("eax"), w + " eax") | _uint(a.get("edx"), w + " edx") << 32
        add_item(data, key, value)
    return data


def vendor_item(string: str) -> int:
    """Leaf 0's ebx, ecx, edx (eax 0) of a 12-character vendor string, packed."""
    raw = string.encode("latin-1", "replace")
    ebx, edx, ecx = (int.from_bytes(raw[i:i + 4], "little") for i in (0, 4, 8))
    return ebx << 32 | ecx << 64 | edx << 96


def _steppings(text: str, where: str) -> "frozenset[int]":
    """virBitmapParse of a stepping list ("0-3,5"), bits below 16."""
    bits: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        negate = part.startswith("^")
        if negate:
            part = part[1:]
        lo, sep, hi = part.partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise CapsfastError("%s: stepping %r is not a list of numbers" % (where, text)) from None
        if not 0 <= first <= last < 16:
            raise CapsfastError("%s: stepping %r is out of range 0-15" % (where, text))
        span = set(range(first, last + 1))
        bits = bits - span if negate else bits | span
    return frozenset(bits)


class _Loader:
    def __init__(self, directory: str, root: "str | None") -> None:
        self.directory = directory
        self.root = root
        self.vendors: list[tuple[str, int]] = []
        self.vendor_names: set[str] = set()
        self.features: list[tuple[str, Data]] = []
        self.migrate_blockers: set[str] = set()
        self.feature_by_name: dict[str, Data] = {}
        self.models: list[Model] = []
        self.model_by_name: dict[str, Model] = {}
        self.files: list[str] = []
        self.total = 0

    def parse(self, filename: str) -> "Element":
        from xml.etree.ElementTree import ParseError, fromstring

        if "/" in filename or filename in ("", ".", ".."):
            raise CapsfastError("CPU map %s: include %r is not a file name in the map directory"
                                % (self.directory, filename))
        path = os.path.join(self.directory, filename)
        if self.root is not None:
            # A map inside a root must not lead out of it through a link.
            real = os.path.realpath(path)
            if not (real + "/").startswith(os.path.realpath(self.root).rstrip("/") + "/"):
                raise CapsfastError("CPU map %s: %s leads out of %s" % (self.directory, filename, self.root))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise CapsfastError("CPU map %s: %s: %s" % (self.directory, filename, e.strerror), errno=e.errno) from None
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o170000 != 0o100000:
                raise CapsfastError("CPU map %s: %s is not a regular file" % (self.directory, filename))
            chunks = []
            size = 0
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_FILE or self.total + size > MAX_TOTAL:
                    raise CapsfastError("CPU map %s: %s is larger than a CPU map file can be (%d bytes)"
                                        % (self.directory, filename, MAX_FILE))
                chunks.append(chunk)
        except CapsfastError:
            raise
        except OSError as e:
            raise CapsfastError("CPU map %s: %s: %s" % (self.directory, filename, e.strerror), errno=e.errno) from None
        finally:
            os.close(fd)
        self.total += size
        self.files.append(filename)
        text = b"".join(chunks)
        if b"<!ENTITY" in text:
            # Entities are how XML bombs grow: no CPU map uses them.
            raise CapsfastError("CPU map %s: %s declares entities" % (self.directory, filename))
        try:
            return fromstring(text)
        except ParseError as e:
            raise CapsfastError("CPU map %s: %s is not well-formed XML (%s)" % (self.directory, filename, e)) from None

    def load_elements(self, node: "Element", filename: str) -> None:
        """Vendors, then features, then models: the order libvirt's loadData runs."""
        where = "CPU map %s: %s" % (self.directory, filename)
        for kind, handle in (("vendor", self.vendor), ("feature", self.feature), ("model", self.model)):
            for child in node.findall(kind):
                name = child.get("name")
                if name is None:
                    raise CapsfastError("%s: cannot find %s name" % (where, kind))
                handle(child, name, where)

    def vendor(self, node: "Element", name: str, where: str) -> None:
        if name in self.vendor_names:
            raise CapsfastError("%s: CPU vendor %s already defined" % (where, name))
        string = node.get("string")
        if string is None:
            raise CapsfastError("%s: missing vendor string for CPU vendor %s" % (where, name))
        if len(string) != 12:
            raise CapsfastError("%s: invalid CPU vendor string %r" % (where, string))
        self.vendor_names.add(name)
        self.vendors.append((name, vendor_item(string)))

    def feature(self, node: "Element", name: str, where: str) -> None:
        if name in self.feature_by_name:
            raise CapsfastError("%s: CPU feature %s already defined" % (where, name))
        data = _data(node, "%s: feature %s" % (where, name))
        self.feature_by_name[name] = data
        self.features.append((name, data))
        if node.get("migratable") == "no":
            self.migrate_blockers.add(name)

    def model(self, node: "Element", name: str, where: str) -> None:
        where = "%s: model %s" % (where, name)
        if name in self.model_by_name:
            raise CapsfastError("%s: defined more than once" % where)
        decode = node.find("decode")
        if decode is None:
            raise CapsfastError("%s: missing decode element" % where)
        host = decode.get("host")
        if host not in ("on", "off") or decode.get("guest") not in ("on", "off"):
            raise CapsfastError("%s: decode host and guest must be 'on' or 'off'" % where)
        vendor: "str | None" = None
        signatures: tuple[tuple[int, int, frozenset[int] | None], ...] = ()
        data: Data = {}
        ancestor_node = node.find("model")
        if ancestor_node is not None:
            ancestor_name = ancestor_node.get("name")
            if ancestor_name is None:
                raise CapsfastError("%s: missing ancestor's name" % where)
            ancestor = self.model_by_name.get(ancestor_name)
            if ancestor is None:
                raise CapsfastError("%s: ancestor model %s not found" % (where, ancestor_name))
            vendor, signatures, data = ancestor.vendor, ancestor.signatures, dict(ancestor.data)
        sig_nodes = node.findall("signature")
        if sig_nodes:
            sigs = []
            for sig in sig_nodes:
                family = _uint(sig.get("family"), where + " signature family", 10)
                if family == 0:
                    raise CapsfastError("%s: invalid CPU signature family" % where)
                model = _uint(sig.get("model"), where + " signature model", 10)
                stepping = sig.get("stepping")
                sigs.append((family, model, None if stepping is None else _steppings(stepping, where)))
            signatures = tuple(sigs)
        vendor_node = node.find("vendor")
        if vendor_node is not None:
            vendor = vendor_node.get("name")
            if vendor is None:
                raise CapsfastError("%s: invalid vendor element" % where)
            if vendor not in self.vendor_names:
                raise CapsfastError("%s: unknown vendor %s" % (where, vendor))
        removed_names: list[str] = []
        for feature_node in node.findall("feature"):
            fname = feature_node.get("name")
            if fname is None:
                raise CapsfastError("%s: missing feature name" % where)
            fdata = self.feature_by_name.get(fname)
            if fdata is None:
                raise CapsfastError("%s: feature %s not found" % (where, fname))
            removed = feature_node.get("removed")
            if removed not in (None, "yes", "no"):
                raise CapsfastError("%s: removed=%r is not yes or no" % (where, removed))
            if removed == "yes":
                removed_names.append(fname)
                continue
            for key, value in fdata.items():
                add_item(data, key, value)
        model_record = Model(name, host == "on", vendor, signatures, data,
                             decode.get("guest") == "on", tuple(removed_names))
        self.model_by_name[name] = model_record
        self.models.append(model_record)


def load(directory: str, root: "str | None" = None) -> CpuMap:
    """The x86 CPU map in ``directory``; CapsfastError naming the file and
    what is wrong for a missing, unreadable or malformed one.  ``root``: the
    files must resolve inside it (a map of a host under a fake root)."""
    loader = _Loader(directory, root)
    index = loader.parse(INDEX)
    arch = None
    for node in index.findall("arch"):
        if node.get("name") == "x86":
            arch = node
            break
    if arch is None:
        raise CapsfastError("CPU map %s: cannot find CPU map for x86 architecture" % directory)
    loader.load_elements(arch, INDEX)
    for include in arch.findall("include"):
        filename = include.get("filename")
        if filename is None:
            raise CapsfastError("CPU map %s: missing 'filename' in CPU map include" % directory)
        loader.load_elements(loader.parse(filename), filename)
    return CpuMap(directory, loader.vendors, loader.features, loader.models, loader.files,
                  frozenset(loader.migrate_blockers))
