"""capsfast: what virtualization this Linux host can do, in microseconds.

    >>> import capsfast
    >>> capsfast.kvm_usable()
    True
    >>> host = capsfast.probe()
    >>> host.hvm.status, host.kvm.api_version
    ('not_exposed', 12)
    >>> print(capsfast.capabilities(format="json"))

Importing does no probing.  The probe path (C module, decoding, verdict,
model) is imported here; renderers are imported on first use.
"""
from capsfast._version import __version__
from capsfast.errors import CapsfastError
from capsfast.probe import kvm_usable, probe

FORMATS = ("libvirt", "draft", "json")

__all__ = ["CapsfastError", "FORMATS", "capabilities", "kvm_usable", "probe", "__version__"]


_rendered = {}  # format -> (host, text): the last rendering of each format


def capabilities(host=None, format="libvirt"):
    """The host's capabilities as text: ``libvirt`` XML, the seed's
    ``draft`` XML, or ``json``.  ``host`` defaults to the cached live probe.

    Rendering is a pure function of the host, so the last text of each
    format is kept and handed out again for an equal host."""
    if host is None:
        host = probe()
    last = _rendered.get(format)
    if last is not None and (last[0] is host or last[0] == host):
        return last[1]
    from capsfast.render import render

    text = render(host, format)
    if len(_rendered) < 8:  # formats are few; anything else was an error
        _rendered[format] = (host, text)
    return text
