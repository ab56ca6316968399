"""Reading the guests part: the emulators the source's PATH holds
(``discover``), turned into guests by libvirt's rules (``decide``), with
their machine types where the source was asked for them (``machines``).

Per boot (``capsfast.sources.boot``) the emulators found are kept; the
rules run on every reading (they depend on KVM's usability, read live)."""
from capsfast.parts.guests import discover
from capsfast.parts.guests.discover import Emulators

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Host
    from capsfast.sources.base import Source


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    return _fields(source, host, None)


def _fields(source: "Source", host: "Host", found: "Emulators | None") -> "dict[str, object]":
    guests = discover.host_guests(source.root, host.arch, host.kvm, host.kqemu, host.xen, source.path_env, found)
    if source.machines:
        from capsfast.parts.guests import machines

        guests = machines.attach(guests, source.root)
    return {"guests": guests}


def boot_facts(source: "Source", host: "Host") -> "tuple[str, object]":
    """(the key, (binaries, qemu-kvm, watched directories)) of a discovery
    made now."""
    return discover.boot_scan(source.root, source.path_env)


def boot_key(source: "Source", facts: object) -> str:
    binaries, qemu_kvm, watched = _unpack(facts)
    return discover.boot_key(source.root, source.path_env, binaries, qemu_kvm, watched)


def from_boot_facts(source: "Source", host: "Host", facts: object) -> "dict[str, object]":
    binaries, qemu_kvm, _watched = _unpack(facts)
    return _fields(source, host, Emulators(binaries, qemu_kvm))


def _unpack(facts: object) -> "tuple[dict[str, str], str | None, tuple[str, ...]]":
    if not isinstance(facts, tuple) or len(facts) != 3 or not isinstance(facts[0], dict):
        raise ValueError("not the guests part's facts")
    binaries, qemu_kvm, watched = facts
    return dict(binaries), qemu_kvm, tuple(watched)
