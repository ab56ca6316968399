"""Domain capabilities as text: libvirt's XML or JSON, and the expanded
host-model CPU (``--expand-features``) in either."""
from capsfast.parts.domcaps.model import DomainCaps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.cpu_map.x86_decode import GuestCpu


def render_domcaps(caps: "DomainCaps", expanded: "GuestCpu | None", format: str) -> str:
    """``caps`` as ``format`` (libvirt or json); with ``expanded``, that
    CPU alone, as ``virsh hypervisor-cpu-baseline --features`` prints it."""
    if expanded is not None:
        from capsfast.render.domcaps_cpu import guest_cpu_json, guest_cpu_lines

        if format == "json":
            from capsfast.render.json import dumps

            return dumps(guest_cpu_json(expanded)) + "\n"
        return "\n".join(guest_cpu_lines(expanded)) + "\n"
    if format == "json":
        from capsfast.render.domcaps_json import render as as_json

        return as_json(caps)
    from capsfast.render.domcaps_libvirt import render as as_libvirt

    return as_libvirt(caps)
