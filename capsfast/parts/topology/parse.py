"""Parsing for the topology part: sysfs and procfs text (numbers, CPU
lists, cache sizes, directory listings, meminfo, UUIDs) to values, as
libvirt's virFileReadValue*, virBitmapParse and virUUIDParse parse them.

Pure: the bytes come from ``read``; a value that cannot be parsed is
FAILED or None, never a guess."""
from capsfast.sources.rounds import ABSENT, FAILED, Missing as _Missing

# CPU ids above this are refused as garbage: a "0-4294967295" list would
# otherwise cost gigabytes.  Linux's NR_CPUS is at most 8192.
MAX_CPU_ID = 65535
MAX_NODE_ID = 4095


def ascii_text(value: "bytes | _Missing") -> "str | None":
    """A file's bytes as text; None if it was not read or is not ASCII."""
    if isinstance(value, _Missing):
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None


def trim_newlines(text: str) -> str:
    # virStringTrimOptionalNewline: every trailing newline.
    return text.rstrip("\n")


def parse_integer(text: str, signed: bool) -> "int | None":
    """strtol/strtoul of the whole string, as virStrToLong_i/_uip: leading
    blanks and a sign allowed, nothing after the digits; None otherwise or
    out of 32-bit range (a negative unsigned is refused, as _uip does)."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s or not s.isdigit() or not s.isascii() or len(s) > 12:
        return None
    value = sign * int(s)
    if signed:
        return value if -(1 << 31) <= value < (1 << 31) else None
    return value if 0 <= value < (1 << 32) else None


def read_int(value: "bytes | _Missing") -> "int | _Missing":
    """virFileReadValueInt: the number, ABSENT, or FAILED."""
    if value is ABSENT:
        return ABSENT
    if isinstance(value, bytes):
        plain = value.rstrip(b"\n")
        if plain.isdigit() and len(plain) < 10:  # what sysfs writes: no need to look closer
            return int(plain)
    text = ascii_text(value)
    number = None if text is None else parse_integer(trim_newlines(text), True)
    return FAILED if number is None else number


def read_uint(value: "bytes | _Missing") -> "int | _Missing":
    """virFileReadValueUint: the number, ABSENT, or FAILED."""
    if value is ABSENT:
        return ABSENT
    if isinstance(value, bytes):
        plain = value.rstrip(b"\n")
        if plain.isdigit() and len(plain) < 10:
            return int(plain)
    text = ascii_text(value)
    number = None if text is None else parse_integer(trim_newlines(text), False)
    return FAILED if number is None else number


def parse_cpulist(text: str, limit: int = MAX_CPU_ID) -> "tuple[int, ...] | None":
    """A kernel CPU list ("0-3,8,10-11") as ascending ids; "" is the empty
    set; None for anything malformed or above ``limit``."""
    text = text.strip()
    if not text:
        return ()
    ids: "set[int]" = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not (first.isdigit() and first.isascii()) or (dash and not (last.isdigit() and last.isascii())):
            return None
        if len(first) > 6 or len(last) > 6:
            return None
        low = int(first)
        high = int(last) if dash else low
        if high < low or high > limit:
            return None
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


_BITMAPS: "dict[bytes, tuple[int, ...] | _Missing]" = {}


def read_bitmap(value: "bytes | _Missing") -> "tuple[int, ...] | _Missing":
    """virFileReadValueBitmap: the ids, ABSENT, or FAILED (the same lists
    recur, CPU after CPU: each text is parsed once)."""
    if isinstance(value, _Missing):
        return value
    known = _BITMAPS.get(value)
    if known is None:
        text = ascii_text(value)
        ids = None if text is None else parse_cpulist(text)
        known = FAILED if ids is None else ids
        if len(_BITMAPS) > 4096:
            _BITMAPS.clear()
        _BITMAPS[value] = known
    return known


_SCALES = {"": 1, "b": 1, "byte": 1, "bytes": 1}
for _i, _p in enumerate("kmgtpe", 1):
    _SCALES[_p] = _SCALES[_p + "ib"] = 1024 ** _i
    _SCALES[_p + "b"] = 1000 ** _i


def read_scaled(value: "bytes | _Missing") -> "int | _Missing":
    """virFileReadValueScaledInt (a cache size such as "32768K") in bytes."""
    if value is ABSENT:
        return ABSENT
    text = ascii_text(value)
    if text is None:
        return FAILED
    s = trim_newlines(text).strip()
    digits = len(s) - len(s.lstrip("0123456789"))
    if digits == 0 or digits > 20:
        return FAILED
    scale = _SCALES.get(s[digits:].lower())
    if scale is None:
        return FAILED
    size = int(s[:digits]) * scale
    return size if size < 1 << 64 else FAILED


def names(value: "bytes | _Missing", prefix: str) -> "list[tuple[int, str]]":
    """The entries of a listing named ``prefix`` and a decimal number, as
    (number, name), in the listing's order."""
    if isinstance(value, _Missing):
        return []
    out = []
    start = prefix.encode()
    skip = len(start)
    for raw in value.split(b"\0"):
        if raw.startswith(start) and len(raw) > skip:
            tail = raw[skip:]
            if tail.isdigit() and len(tail) <= 6:
                out.append((int(tail), raw.decode("ascii")))
    return out


def listing(value: "bytes | _Missing") -> "list[str]":
    """Every name of a listing (undecodable names left out)."""
    if isinstance(value, _Missing):
        return []
    return [raw.decode("utf-8") for raw in value.split(b"\0") if raw and raw.isascii()]


def meminfo_total(value: "bytes | _Missing") -> "int | None":
    """MemTotal in bytes from /proc/meminfo or a node's meminfo ("Node 0
    MemTotal:  5204180 kB", numa_node_size64's reading); None if absent."""
    text = ascii_text(value)
    if text is None:
        return None
    for line in text.splitlines():
        if "MemTotal" in line and "kB" in line:
            before = line[:line.index("kB")].split()
            if before and before[-1].isdigit():
                return int(before[-1]) << 10
            return None
    return None


def hugepage_size(name: str) -> "int | None":
    """The page size in KiB a huge page pool's directory name gives
    ("hugepages-2048kB": virStrToLong_ui, then "kB" in any case, as
    virNumaGetPages parses it); None otherwise."""
    if not name.startswith("hugepages-"):
        return None
    size_text = name[len("hugepages-"):]
    digits = len(size_text) - len(size_text.lstrip("0123456789"))
    size = parse_integer(size_text[:digits], False) if digits else None
    if size is None or size_text[digits:].lower() != "kb":
        return None
    return size


def read_count(value: "bytes | _Missing") -> "int | None":
    """A huge page pool's nr_hugepages or free_hugepages (virStrToLong_ull,
    then a newline and nothing after); None if unread or malformed."""
    text = ascii_text(value)
    if text is None or not text.endswith("\n") or not text[:-1].isdigit() or len(text) > 21:
        return None
    return int(text[:-1])


def parse_uuid(text: str) -> "str | None":
    """virUUIDParse (32 hex digits, '-' and ' ' allowed between pairs,
    blanks around) and virUUIDIsValid (not all bytes equal), formatted as
    virUUIDFormat does; None otherwise."""
    s = text.strip(" \t\n\v\f\r")
    digits: "list[str]" = []
    i = 0
    while len(digits) < 16:
        if i >= len(s):
            return None
        if s[i] in "- ":
            i += 1
            continue
        pair = s[i:i + 2]
        if len(pair) < 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            return None
        digits.append(pair.lower())
        i += 2
    if s[i:].strip():
        return None
    if len(set(digits)) == 1:
        return None
    h = "".join(digits)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

