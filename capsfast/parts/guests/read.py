"""Reading the guests part: the emulators the source's PATH holds
(``discover``), turned into guests by libvirt's rules (``decide``), with
their machine types where the source was asked for them (``machines``)."""
from capsfast.parts.guests import discover

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Host
    from capsfast.sources.base import Source


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    guests = discover.host_guests(source.root, host.arch, host.kvm, host.kqemu, host.xen, source.path_env)
    if source.machines:
        from capsfast.parts.guests import machines

        guests = machines.attach(guests, source.root)
    return {"guests": guests}
