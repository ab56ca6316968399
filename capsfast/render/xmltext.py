"""XML text written directly, as libvirt writes its own: the renderers build
strings and escape each value here, since importing lxml just to write
(about 20 ms) would cost more than the whole probe.

The escapes are the ones lxml (libxml2) writes, so the output is the same
byte for byte as when lxml built it: ``& < >`` and CR in text; those, ``"``,
tab and newline in attribute values (a parser would normalize a literal tab,
newline or CR away).  Characters XML 1.0 cannot hold at all (C0 controls
but tab, newline and CR; lone surrogates; U+FFFE and U+FFFF) become U+FFFD,
where lxml raised: any str gives well-formed XML.
"""
REPLACEMENT = "\ufffd"

_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;",
                       '"': "&quot;", "\t": "&#9;", "\n": "&#10;"})

# Element names are libvirt's fixed words; only the feature names come from
# the model, so a plain ASCII name is all that is allowed.
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_REST = _NAME_START | frozenset("0123456789-.")


def _allowed(ch: str) -> bool:
    """Is ``ch`` an XML 1.0 Char?"""
    code = ord(ch)
    if code < 0x20:
        return ch in "\t\n\r"
    return not (0xD800 <= code <= 0xDFFF or code == 0xFFFE or code == 0xFFFF)


def chars(s: str) -> str:
    """``s`` with each character XML 1.0 forbids replaced by U+FFFD."""
    if s.isascii() and s.isprintable():  # the usual case: nothing to replace
        return s
    return "".join(ch if _allowed(ch) else REPLACEMENT for ch in s)


def text(s: str) -> str:
    """``s`` as element content."""
    return chars(s).translate(_TEXT)


# libvirt's virBufferEscapeString, for the values it prints (in text and
# in its '-quoted attributes alike): five entities; the controls its list
# names (0x01-0x19 but tab, newline and CR) dropped.  The rest XML cannot
# hold (0x1A-0x1F among them) becomes U+FFFD, where libvirt would write
# them raw, a document no parser reads.
_LIBVIRT: "dict[int, str | None]" = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;",
                                     ord('"'): "&quot;", ord("'"): "&apos;"}
_LIBVIRT.update((c, None) for c in range(1, 0x1A) if chr(c) not in "\t\n\r")


def libvirt_value(s: str) -> str:
    """``s`` escaped as libvirt escapes a value it prints, and well-formed."""
    return chars(s.translate(_LIBVIRT))


def attr(s: str) -> str:
    """``s`` as an attribute value between double quotes."""
    return chars(s).translate(_ATTR)


def name(s: str) -> str:
    """``s`` if it can be an element name; ValueError otherwise (no escape
    exists for a name)."""
    if not s or s[0] not in _NAME_START or not all(ch in _NAME_REST for ch in s[1:]):
        raise ValueError("invalid XML element name %r" % s)
    return s
