"""Renderers: pure functions from a Host to text, one module per format,
each imported only when its format is asked for."""
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Host

_MODULES = {
    "libvirt": "capsfast.render.libvirt",
    "draft": "capsfast.render.draft",
    "json": "capsfast.render.json",
}


def render(host: "Host", format: str) -> str:
    """``host`` as text in ``format``; CapsfastError for an unknown format."""
    name = _MODULES.get(format)
    if name is None:
        raise CapsfastError(
            "unknown format %r (choose from %s)" % (format, ", ".join(sorted(_MODULES)))
        )
    module = __import__(name, fromlist=["render"])
    text: str = module.render(host)
    return text
