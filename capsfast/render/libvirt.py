"""libvirt capabilities XML, valid against libvirt's ``capability.rng``,
laid out as ``virsh capabilities`` prints it.

The host part is the QEMU driver's for a KVM/QEMU host: the host UUID, the
CPU as libvirt names it (``Host.cpu_model``: model, vendor, microcode,
signature, TSC counter, maxphysaddr, features) with its topology and page
sizes, IOMMU support, the migration features, the NUMA cells and the cache
banks.  A Xen dom0 keeps the Xen driver's shorter one: the arch, the host
``<features>`` libvirt's schema allows (pae, nonpae, vmx, svm, in that
order, from CPUID), vendor and signature.  The guest part is one ``<guest>`` per
model ``Guest``, elements in the schema's order.

Written as text, as libvirt writes it (no lxml to import): two spaces per
level, and a blank line around ``<host>`` and each ``<guest>``.
"""
from capsfast.constants import X86_ARCHS
from capsfast.parts.guests.decide import FEATURE_ORDER, feature_toggle
from capsfast.render.xmltext import attr, name, text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.model import CpuModel, Guest, Host, Machine

# CPUID vendor strings -> libvirt's vendor names (its cpu_map).
_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}
_RANK = {feature: i for i, feature in enumerate(FEATURE_ORDER)}


def host_features(host: "Host") -> tuple[str, ...]:
    """The host ``<features>`` names: pae, nonpae, vmx, svm from CPUID.
    ``nonpae`` marks an x86 CPU without PAE."""
    if host.arch not in X86_ARCHS or host.cpu.source == "none":
        return ()
    cpu = set(host.cpu.features)
    names = ["pae"] if "pae" in cpu else ["nonpae"]
    return tuple(names + [f for f in ("vmx", "svm") if f in cpu])


def format_bitmap(ids: "tuple[int, ...]") -> str:
    """virBitmapFormat: ascending ids with runs as ranges ("0-3,8")."""
    runs: "list[list[int]]" = []
    for i in sorted(set(ids)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in runs)


def pretty_size(size: int) -> "tuple[int, str]":
    """virFormatIntPretty: the size in the largest unit dividing it."""
    if size == 0 or size % 1024:
        return size, "B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size //= 1024
        if size % 1024:
            return size, unit
    return size // 1024, "PiB"


def _host(out: list[str], host: "Host") -> None:
    # A Xen dom0's host part is the Xen driver's: pae/vmx/svm as host
    # <features> (libvirt 9 prints these for Xen hosts only), no CPU model,
    # nothing of what sysfs shows.
    layout = not (host.xen.present and host.xen.role == "dom0")
    out.append("  <host>")
    if layout and host.uuid:
        out.append("    <uuid>%s</uuid>" % text(host.uuid))
    out += ["    <cpu>", "      <arch>%s</arch>" % text(host.arch)]
    if layout:
        _qemu_cpu(out, host)
        out += ['      <pages unit="KiB" size="%d"/>' % size for size in host.pages or ()]
    else:
        features = host_features(host)
        if features:
            out.append("      <features>")
            out += ["        <%s/>" % f for f in features]
            out.append("      </features>")
        _cpu_identity(out, host, None)
    out.append("    </cpu>")
    if layout:
        _iommu(out, host)
        _migration_features(out)
        _numa(out, host)
        _cache(out, host)
    out.append("  </host>")


def _cpu_identity(out: list[str], host: "Host", model: "CpuModel | None") -> None:
    """<vendor>, <microcode> and <signature>: the decoded model's where
    there is one, else CPUID's."""
    c = host.cpu
    if model is not None and model.name is not None:
        if model.vendor:
            out.append("      <vendor>%s</vendor>" % text(model.vendor))
        _microcode(out, model)
        if model.signature is not None:
            out.append('      <signature family="%d" model="%d" stepping="%d"/>' % model.signature)
        return
    vendor = _VENDORS.get(c.vendor or "")
    if vendor:
        out.append("      <vendor>%s</vendor>" % vendor)
    if model is not None:
        _microcode(out, model)
    if c.family and c.model is not None and c.stepping is not None:
        out.append('      <signature family="%d" model="%d" stepping="%d"/>' % (c.family, c.model, c.stepping))


def _microcode(out: list[str], model: "CpuModel") -> None:
    if model.microcode:
        out.append('      <microcode version="%d"/>' % model.microcode)


def _qemu_cpu(out: list[str], host: "Host") -> None:
    """The QEMU driver's host <cpu> (libvirt's virCPUDefFormatBuf for a
    host CPU): model, vendor, microcode, signature, counter, topology,
    maxphysaddr, features (the pages follow)."""
    model = host.cpu_model
    if model.name is not None:
        out.append("      <model>%s</model>" % text(model.name))
    _cpu_identity(out, host, model)
    if model.tsc is not None:
        out.append('      <counter name="tsc" frequency="%d" scaling="%s"/>'
                   % (model.tsc.frequency, attr(model.tsc.scaling)))
    _cpu_topology(out, host)
    if model.maxphysaddr is not None:
        out.append('      <maxphysaddr mode="emulate" bits="%d"/>' % model.maxphysaddr)
    out += ['      <feature name="%s"/>' % attr(f) for f in model.features]


def _migration_features(out: list[str]) -> None:
    """The QEMU driver's (virQEMUCapsInit): live migration over tcp and rdma."""
    out += ["    <migration_features>", "      <live/>", "      <uri_transports>",
            "        <uri_transport>tcp</uri_transport>", "        <uri_transport>rdma</uri_transport>",
            "      </uri_transports>", "    </migration_features>"]


def _cpu_topology(out: list[str], host: "Host") -> None:
    """The ``<topology>`` line of ``<cpu>`` (after ``<counter>``, before
    ``<maxphysaddr>``), where libvirt's count succeeded."""
    t = host.topology
    if t is not None and t.sockets is not None and t.dies is not None and t.cores is not None and t.threads is not None:
        out.append('      <topology sockets="%d" dies="%d" cores="%d" threads="%d"/>'
                   % (t.sockets, t.dies, t.cores, t.threads))


def _iommu(out: list[str], host: "Host") -> None:
    support = host.iommu_groups
    if support is not None:
        out.append('    <iommu support="%s"/>' % ("yes" if support else "no"))


def _numa(out: list[str], host: "Host") -> None:
    """The NUMA ``<topology>`` as virCapabilitiesHostNUMAFormat prints it."""
    cells = None if host.topology is None else host.topology.cells
    if cells is None:
        return
    out += ["    <topology>", '      <cells num="%d">' % len(cells)]
    for cell in cells:
        out.append('        <cell id="%d">' % cell.id)
        if cell.memory_kib:
            out.append('          <memory unit="KiB">%d</memory>' % cell.memory_kib)
        out += ['          <pages unit="KiB" size="%d">%d</pages>' % (p.size_kib, p.number) for p in cell.pages]
        if cell.distances:
            out.append("          <distances>")
            out += ['            <sibling id="%d" value="%d"/>' % (d.id, d.value) for d in cell.distances]
            out.append("          </distances>")
        if cell.cpus:
            out.append('          <cpus num="%d">' % len(cell.cpus))
            out += ['            <cpu id="%d" socket_id="%d" die_id="%d" core_id="%d" siblings="%s"/>'
                    % (c.id, c.socket_id, c.die_id, c.core_id, format_bitmap(c.siblings)) for c in cell.cpus]
            out.append("          </cpus>")
        else:
            out.append('          <cpus num="0"/>')
        out.append("        </cell>")
    out += ["      </cells>", "    </topology>"]


def _cache(out: list[str], host: "Host") -> None:
    """``<cache>`` as virCapabilitiesFormatCaches prints it (no resctrl)."""
    banks = host.cache
    if not banks:
        return
    out.append("    <cache>")
    for bank in banks:
        size, unit = pretty_size(bank.size_bytes)
        out.append('      <bank id="%d" level="%d" type="%s" size="%d" unit="%s" cpus="%s"/>'
                   % (bank.id, bank.level, attr(bank.type), size, unit, format_bitmap(bank.cpus)))
    out.append("    </cache>")


def _machine(machine: "Machine") -> str:
    attrs = ""
    if machine.canonical:
        attrs += ' canonical="%s"' % attr(machine.canonical)
    if machine.deprecated:
        attrs += ' deprecated="yes"'
    return "      <machine%s>%s</machine>" % (attrs, text(machine.name))


def _guest(out: list[str], guest: "Guest") -> None:
    out += [
        "  <guest>",
        "    <os_type>%s</os_type>" % text(guest.os_type),
        '    <arch name="%s">' % attr(guest.arch),
        "      <wordsize>%d</wordsize>" % guest.wordsize,
    ]
    if guest.emulator:
        out.append("      <emulator>%s</emulator>" % text(guest.emulator))
    if guest.loader:
        out.append("      <loader>%s</loader>" % text(guest.loader))
    out += [_machine(m) for m in guest.machines or ()]
    out += ['      <domain type="%s"/>' % attr(d) for d in guest.domains]
    out.append("    </arch>")
    if guest.features:
        out.append("    <features>")
        for feature in sorted(guest.features, key=lambda f: _RANK.get(f, len(_RANK))):
            toggle = feature_toggle(guest, feature)
            if toggle is None:
                out.append("      <%s/>" % name(feature))
            else:
                out.append('      <%s default="%s" toggle="%s"/>' % (name(feature), attr(toggle[0]), attr(toggle[1])))
        out.append("    </features>")
    out.append("  </guest>")


def render(host: "Host") -> str:
    """The host as libvirt capabilities XML text, ending in a newline."""
    out = ["<capabilities>", ""]
    _host(out, host)
    for guest in host.guests:
        out.append("")
        _guest(out, guest)
    out += ["", "</capabilities>", ""]
    return "\n".join(out)
