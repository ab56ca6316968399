"""capsfast: what virtualization this Linux host can do, in microseconds.

    >>> import capsfast
    >>> capsfast.kvm_usable()
    True
    >>> host = capsfast.probe()
    >>> host.hvm.status, host.kvm.api_version
    ('not_exposed', 12)
    >>> print(capsfast.capabilities(format="json"))

Importing does no probing.  The probe path (C module, decoding, verdict,
model) is imported here; renderers are imported on first use, and so is
``capsfast.watch`` (it brings select, threading and ctypes).
"""
from capsfast.constants import FORMATS, __version__
from capsfast.errors import CapsfastError
from capsfast.model import same_for_xml
from capsfast.host import kvm_usable, probe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast import watch as watch
    # Format and VmmName: the literal types of capabilities()'s format and
    # ready()'s name, for a caller's annotations too.
    from capsfast.model import Format as Format, Host, Readiness, VmmName as VmmName

__all__ = ["CapsfastError", "FORMATS", "capabilities", "kvm_usable", "probe", "ready", "__version__"]


_rendered: "dict[str, tuple[Host, str]]" = {}  # format -> the last rendering of it


def capabilities(host: "Host | None" = None, *, format: "Format" = "libvirt") -> str:
    """The host's capabilities as text: ``libvirt`` XML, the seed's
    ``draft`` XML, or ``json``.  ``host`` defaults to the cached live probe.

    Rendering is a pure function of the host, so the last text of each
    format is kept and handed out again for an equal host."""
    if host is None:
        host = probe()
    elif not isinstance(host, tuple) or not hasattr(host, "hvm"):
        hint = " (the format is keyword-only: format=%r)" % host if isinstance(host, str) else ""
        raise TypeError("capabilities() takes a Host from capsfast.probe(), not %s%s"
                        % (type(host).__name__, hint))
    last = _rendered.get(format)
    # Compared on what the format shows: the XML formats leave the KVM
    # capabilities, the VMM modules and the kernel's flags unread (reading
    # them costs a crossing each).
    if last is not None and (last[0] is host or (last[0] == host if format == "json"
                                                 else same_for_xml(last[0], host))):
        return last[1]
    from capsfast.render import render

    text = render(host, format)
    if format in FORMATS:
        _rendered[format] = (host, text)
    return text


def ready(name: "VmmName", host: "Host | None" = None) -> "Readiness":
    """Whether the VMM ``name`` (firecracker, cloud-hypervisor, qemu, kata)
    can start on ``host`` (default: the cached live probe), by the checks
    it makes itself; see ``capsfast.readiness``.  The answer tests true
    exactly when it can."""
    from capsfast.readiness import ready as decide  # imported on first use

    return decide(name, host)


if not TYPE_CHECKING:
    # Not seen by type checkers: a module __getattr__ would make every
    # misspelt name of the package look valid to them.
    def __getattr__(name: str) -> object:
        # capsfast.watch is loaded on first use, not with the package.
        if name == "watch":
            import sys

            __import__("capsfast.watch")  # not "from capsfast import": that would ask this function again
            return sys.modules["capsfast.watch"]
        raise AttributeError("module 'capsfast' has no attribute %r" % name)
