"""Reading the guests part: the emulators the source's PATH holds
(``discover``), turned into guests by libvirt's rules (``decide``)."""
from capsfast.parts.guests import discover

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Host
    from capsfast.sources.base import Source


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    return {"guests": discover.host_guests(source.root, host.arch, host.kvm, host.kqemu, host.xen,
                                           source.path_env)}
