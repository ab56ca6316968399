"""The ``<os>`` element of domain capabilities, as libvirt 9.0 prints it
inside ``<domainCapabilities>`` (two spaces of indent per level from the
root), written as text."""
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from capsfast.parts.domcaps.firmware import OsCaps

# libvirt escapes these five in element text, and drops the C0 controls
# its forbidden list names (tab, newline, CR and 0x1A-0x1F pass through).
_ESCAPES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;"}
_ESCAPES.update({chr(c): "" for c in range(0x01, 0x1A) if chr(c) not in "\t\n\r"})
_TEXT = str.maketrans(_ESCAPES)


def os_lines(caps: "OsCaps") -> "list[str]":
    """The ``<os supported='yes'>`` ... ``</os>`` lines, without newlines."""
    lines = ["  <os supported='yes'>"]
    lines += _enum("    ", "firmware", caps.firmware)
    lines.append("    <loader supported='yes'>")
    lines += ["      <value>%s</value>" % _text(path) for path in caps.loaders]
    lines += _enum("      ", "type", caps.loader_types)
    lines += _enum("      ", "readonly", caps.loader_readonly)
    lines += _enum("      ", "secure", caps.loader_secure)
    lines.append("    </loader>")
    lines.append("  </os>")
    return lines


def _enum(indent: str, name: str, values: "Sequence[str]") -> "list[str]":
    # An enum with no value is still printed, as an empty element.
    if not values:
        return ["%s<enum name='%s'/>" % (indent, name)]
    return (["%s<enum name='%s'>" % (indent, name)]
            + ["%s  <value>%s</value>" % (indent, value) for value in values]
            + ["%s</enum>" % indent])


def _text(value: str) -> str:
    return value.translate(_TEXT)
