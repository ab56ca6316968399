"""The ``<os>`` element of domain capabilities, as libvirt 9.0 prints it
inside ``<domainCapabilities>`` (two spaces of indent per level from the
root), written as text."""
from capsfast.render.xmltext import libvirt_value as _text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from capsfast.parts.domcaps.firmware import OsCaps

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
