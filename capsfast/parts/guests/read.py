"""Reading the guests part: the emulators the source's PATH holds
(``discover``, which asks the source), turned into guests by libvirt's
rules (``decide``), with their machine types where the source was asked
for them (``machines``, which runs each emulator).

Per boot (``capsfast.sources.boot``) the emulators found are kept; the
rules run on every reading (they depend on KVM's usability, read live)."""
from capsfast.parts.guests import decide, discover
from capsfast.parts.guests.discover import Emulators

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import Guest, Host, Kqemu, Kvm, Xen
    from capsfast.sources.base import Source


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    return _fields(source, host, None)


def _fields(source: "Source", host: "Host", found: "Emulators | None") -> "dict[str, object]":
    guests = host_guests(source, host.arch, host.kvm, host.kqemu, host.xen, found)
    if source.machines:
        from capsfast.parts.guests import machines

        guests = machines.attach(guests, source.root)
    return {"guests": guests}


# (inputs, guests): one probe after another mostly sees the same host
_last: "tuple[Emulators, str, Kvm, Kqemu, Xen, tuple[Guest, ...]] | None" = None


def host_guests(source: "Source", arch: str, kvm: "Kvm", kqemu: "Kqemu", xen: "Xen",
                found: "Emulators | None" = None) -> "tuple[Guest, ...]":
    """The guests of the host ``source`` reads: discovery (cached;
    ``found`` where the caller has it) plus the pure rules of
    ``capsfast.parts.guests.decide``, memoised on their inputs."""
    global _last
    if found is None:
        found = discover.discover(source)
    last = _last
    if last is not None and last[0] is found and last[1] == arch and (
        # The probe reuses its fact objects while nothing changed: try
        # identity first, then the facts the rules read.
        (last[2] is kvm and last[3] is kqemu and last[4] is xen)
        or (last[2].usable == kvm.usable and last[3].exists == kqemu.exists
            and last[4].role == xen.role and last[4].capabilities == xen.capabilities)
    ):
        return last[5]
    result = decide.for_host(arch, found.binaries, found.qemu_kvm, kvm, kqemu, xen)
    _last = (found, arch, kvm, kqemu, xen, result)
    return result


def boot_facts(source: "Source", host: "Host") -> "tuple[str, object]":
    """(the key, (binaries, qemu-kvm, watched directories)) of a discovery
    made now."""
    return discover.boot_scan(source)


def boot_key(source: "Source", facts: object) -> str:
    binaries, qemu_kvm, watched = _unpack(facts)
    return discover.boot_key(source, binaries, qemu_kvm, watched)


def from_boot_facts(source: "Source", host: "Host", facts: object) -> "dict[str, object]":
    binaries, qemu_kvm, _watched = _unpack(facts)
    return _fields(source, host, Emulators(binaries, qemu_kvm))


def _unpack(facts: object) -> "tuple[dict[str, str], str | None, tuple[str, ...]]":
    if not isinstance(facts, tuple) or len(facts) != 3 or not isinstance(facts[0], dict):
        raise ValueError("not the guests part's facts")
    binaries, qemu_kvm, watched = facts
    return dict(binaries), qemu_kvm, tuple(watched)
