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

__all__ = ["CapsfastError", "FORMATS", "capabilities", "domain_capabilities", "kvm_usable", "probe", "ready",
           "__version__"]


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


# (request, format, expand) -> (the inputs' key, the text rendered from them)
_domcaps_rendered: "dict[tuple[object, ...] | None, tuple[object, str]]" = {}
DOMCAPS_FORMATS = ("libvirt", "json")


def domain_capabilities(host: "Host | None" = None, *, emulator: "str | None" = None, arch: "str | None" = None,
                        machine: "str | None" = None, virttype: "str | None" = None, format: str = "libvirt",
                        expand_features: bool = False) -> str:
    """What a guest may use here, as ``virsh domcapabilities`` prints it
    (``libvirt`` XML) or as ``json``.  Defaults as virsh picks them: the
    host's arch, kvm where QEMU can use it else qemu, the emulator libvirt
    would run, the arch's preferred machine.  ``expand_features``: instead,
    the host-model CPU with every feature spelled out (what ``virsh
    hypervisor-cpu-baseline --features`` gives for it).

    ``host`` defaults to the running host; a Host from ``probe(root=...)``
    or ``probe(replay=...)`` answers from what that root or recording holds
    (nothing is run).  Live, the emulator is asked once (QMP, about a
    second) and its answers kept on disk until the binary or the host
    changes; the firmware descriptors, VFIO, swtpm and KVM's vCPU limit
    are read on every call, and the last text per arguments is handed out
    again while they are unchanged."""
    if format not in DOMCAPS_FORMATS:
        raise CapsfastError("unknown format %r for domain capabilities (%s)" % (format, ", ".join(DOMCAPS_FORMATS)))
    from capsfast.host import source_of
    from capsfast.parts.domcaps import read

    if host is None:
        host = probe()
    elif not isinstance(host, tuple) or not hasattr(host, "hvm"):
        raise TypeError("domain_capabilities() takes a Host from capsfast.probe(), not %s" % type(host).__name__)
    source = source_of(host)
    asked = read.request(source, host.arch, emulator=emulator, arch=arch, machine=machine, virttype=virttype)
    inputs = read.gather(source, asked)
    # Kept for the running host only, under the transcript cache's key
    # (CAPSFAST_CACHE=off keeps nothing): a recording's or a root's objects
    # come and go, and an id may name another one later.
    memo = (asked.key(), format, expand_features) if inputs.persistent else None
    last = _domcaps_rendered.get(memo) if memo is not None else None
    if last is not None and last[0] == inputs.key:
        return last[1]
    kept = None
    if inputs.persistent:  # live: the last document for these arguments is on disk, under its inputs
        from capsfast.parts.domcaps import cache

        kept = cache.document_file(repr(memo))
        inputs_key = repr(inputs.key)
        text = cache.load_document(kept, inputs_key)
        if text is not None:
            if memo is not None:
                _domcaps_rendered[memo] = (inputs.key, text)
            return text
    from capsfast.render.domcaps import render_domcaps

    caps, expanded = read.domain_caps(inputs, asked, expand=expand_features)
    text = render_domcaps(caps, expanded, format)
    if memo is not None:
        _domcaps_rendered[memo] = (inputs.key, text)
    if kept is not None:
        cache.save_document(kept, inputs_key, text)
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
