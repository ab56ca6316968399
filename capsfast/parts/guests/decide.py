"""Guests per architecture: pure functions from the emulators found and
the host facts to ``Guest`` values.

The QEMU rules follow libvirt's QEMU driver (``virQEMUCapsInitGuest`` and
friends, libvirt 9.0): every architecture libvirt knows is tried in its
enumeration order, each looks for its ``qemu-system-*`` binary, and a native
architecture falls back to the host's own binary, then to
``/usr/libexec/qemu-kvm``.  The Xen rules follow libvirt's historical Xen
driver: guests come from the hypervisor's capability tokens.
"""
from capsfast.constants import X86_ARCHS
from capsfast.model import Guest, Machine
from capsfast.parts.guests.parse import xen_token

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from capsfast.model import Kqemu, Kvm, Xen

# libvirt's architectures in its enumeration order (the order of <guest>
# elements in `virsh capabilities`), with libvirt's word sizes.  Left out:
# armv7b and ppcle (no QEMU binary exists for them, and the libvirt 9.0
# schema rejects the names) and loongarch64 (newer than libvirt 9.0).
ARCHES = (
    ("alpha", 64), ("armv6l", 32), ("armv7l", 32), ("aarch64", 64),
    ("cris", 32), ("i686", 32), ("ia64", 64), ("lm32", 32), ("m68k", 32),
    ("microblaze", 32), ("microblazeel", 32), ("mips", 32), ("mipsel", 32),
    ("mips64", 64), ("mips64el", 64), ("openrisc", 32), ("parisc", 32),
    ("parisc64", 64), ("ppc", 32), ("ppc64", 64), ("ppc64le", 64),
    ("ppcemb", 32), ("riscv32", 32), ("riscv64", 64), ("s390", 32),
    ("s390x", 64),
    ("sh4", 32), ("sh4eb", 64),  # sh4eb: 64 is libvirt's value, kept as is
    ("sparc", 32), ("sparc64", 64), ("unicore32", 32), ("x86_64", 64),
    ("xtensa", 32), ("xtensaeb", 32),
)
WORDSIZE = dict(ARCHES)

# QEMU's target name where it differs from libvirt's arch name.
QEMU_TARGET = {"i686": "i386", "armv6l": "arm", "armv7l": "arm", "openrisc": "or32"}

# Guest features as libvirt's QEMU driver adds them; printed in libvirt's
# feature order (pae, nonpae, ia64_be, acpi, apic, cpuselection, deviceboot,
# disksnapshot, hap).
FEATURE_ORDER = ("pae", "nonpae", "ia64_be", "acpi", "apic", "cpuselection",
                 "deviceboot", "disksnapshot", "hap")
_QEMU_ALWAYS = ("cpuselection", "deviceboot", "disksnapshot")

# (default, toggle) of the features that carry them, per driver.
_TOGGLES_QEMU = {"acpi": ("on", "yes"), "apic": ("on", "no"),
                 "disksnapshot": ("on", "no"), "hap": ("on", "yes")}
_TOGGLES_XEN = {"acpi": ("on", "yes"), "apic": ("on", "yes"),
                "disksnapshot": ("on", "no"), "hap": ("on", "yes")}

# Xen: libvirt's historical driver hard-codes these paths.
XEN_LOADER = "/usr/lib/xen/boot/hvmloader"


def qemu_target(arch: str) -> str:
    """The ``qemu-system-<target>`` name libvirt looks for first."""
    return QEMU_TARGET.get(arch, arch)


def is_native(host: str, guest: str) -> bool:
    """Can ``guest`` run natively on ``host`` (libvirt's rule)?"""
    return (
        host == guest
        or (host == "x86_64" and guest == "i686")
        or (host == "aarch64" and guest == "armv7l")
        or (host in ("ppc64", "ppc64le") and guest in ("ppc64", "ppc64le"))
    )


def find_binary(host: str, guest: str, binaries: "Mapping[str, str]") -> "str | None":
    """The emulator path for ``guest`` on ``host``, from ``binaries``
    (``{qemu target: path}``), or None; libvirt's search order."""
    # armv7l on aarch64 can use KVM only through qemu-system-aarch64.
    if host == "aarch64" and guest == "armv7l" and "aarch64" in binaries:
        return binaries["aarch64"]
    path = binaries.get(qemu_target(guest))
    if path is not None:
        return path
    # Second try: a native guest uses the host's binary; ppc64le uses ppc64.
    target = host if is_native(host, guest) else guest
    if target in ("ppc64", "ppc64le"):
        target = "ppc64"
    if target != guest:
        return binaries.get(qemu_target(target))
    return None


def _kvm_capable(host: str, binary: str, binaries: "Mapping[str, str]") -> bool:
    """Whether the binary chosen for a native guest can use KVM:
    qemu-system-arm cannot on an aarch64 host (QEMU dropped 32-bit KVM
    hosts), which is why libvirt prefers qemu-system-aarch64 there."""
    return not (host == "aarch64" and binary == binaries.get("arm"))


def qemu_features(arch: str) -> tuple[str, ...]:
    """The guest features libvirt's QEMU driver prints for ``arch``."""
    features: list[str] = []
    if arch == "i686":
        features += ["pae", "nonpae"]
    if arch in X86_ARCHS or arch == "aarch64":
        features.append("acpi")
    if arch in X86_ARCHS:
        features.append("apic")
    return tuple(features) + _QEMU_ALWAYS


def qemu_guests(host_arch: str, binaries: "Mapping[str, str]", qemu_kvm: "str | None",
                kvm_usable: bool, kqemu: bool) -> tuple[Guest, ...]:
    """One hvm guest per architecture that has an emulator.

    ``binaries``: ``{qemu target: path on the host}``, the first
    ``qemu-system-<target>`` in the PATH.  ``qemu_kvm``: the path of
    /usr/libexec/qemu-kvm if present, else None."""
    guests: list[Guest] = []
    for arch, wordsize in ARCHES:
        binary = find_binary(host_arch, arch, binaries)
        native = is_native(host_arch, arch)
        if binary is None and native:
            binary = qemu_kvm
        if binary is None:
            continue
        domains = ["qemu"]
        if kqemu and arch == host_arch and arch in X86_ARCHS:
            domains.append("kqemu")
        if kvm_usable and native and _kvm_capable(host_arch, binary, binaries):
            domains.append("kvm")
        guests.append(Guest("hvm", arch, wordsize, binary, tuple(domains),
                            qemu_features(arch), None, None))
    return tuple(guests)


def xen_guests(host_arch: str, xen: "Xen") -> tuple[Guest, ...]:
    """Guests of a Xen dom0 from the hypervisor's tokens, merged per
    (os_type, arch) as libvirt's Xen driver did; none outside dom0."""
    if xen.role != "dom0":
        return ()
    merged: dict[tuple[bool, str], set[str]] = {}  # dict keeps token order
    for token in xen.capabilities:
        parsed = xen_token(token)
        if parsed is None:
            continue
        hvm, arch, suffix = parsed
        flags = merged.setdefault((hvm, arch), set())
        if arch == "i686":
            flags.add("pae" if suffix.startswith("p") else "nonpae")
        elif arch == "ia64" and suffix.startswith("be"):
            flags.add("ia64_be")
    emulator = "/usr/lib64/xen/bin/qemu-dm" if host_arch == "x86_64" else "/usr/lib/xen/bin/qemu-dm"
    guests: list[Guest] = []
    for (hvm, arch), flags in merged.items():
        features: list[str] = [f for f in ("pae", "nonpae", "ia64_be") if f in flags]
        if hvm:
            features += ["acpi", "apic"]
        guests.append(Guest(
            "hvm" if hvm else "xen", arch, WORDSIZE.get(arch, 64), emulator, ("xen",),
            tuple(features), XEN_LOADER if hvm else None,
            (Machine("xenfv" if hvm else "xenpv", None, False),),
        ))
    return tuple(guests)


def feature_toggle(guest: Guest, feature: str) -> "tuple[str, str] | None":
    """(default, toggle) for a feature that carries them, else None."""
    table = _TOGGLES_XEN if "xen" in guest.domains else _TOGGLES_QEMU
    return table.get(feature)


def for_host(host_arch: str, binaries: "Mapping[str, str]", qemu_kvm: "str | None", kvm: "Kvm", kqemu: "Kqemu",
             xen: "Xen") -> tuple[Guest, ...]:
    """All guests of a host: the Xen dom0's own guests first, then QEMU's
    (``binaries``: QEMU target -> emulator path; ``qemu_kvm``: RHEL's)."""
    return xen_guests(host_arch, xen) + qemu_guests(host_arch, binaries, qemu_kvm, kvm.usable, kqemu.exists)
