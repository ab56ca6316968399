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


def capabilities(host=None, format="libvirt"):
    """The host's capabilities as text: ``libvirt`` XML, the seed's
    ``draft`` XML, or ``json``.  ``host`` defaults to the cached live probe."""
    from capsfast.render import render

    return render(probe() if host is None else host, format)
