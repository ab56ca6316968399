"""``capsfast domcapabilities``: what a guest may use here, as ``virsh
domcapabilities`` prints it (libvirt XML) or JSON."""
from capsfast.cli.options import INPUT_OPTIONS, PROG, Option, format_options, out, parse_or_help, probe_inputs

# The guest's arch, as virsh takes it: the host's comes from the input.
_INPUTS = tuple(option for option in INPUT_OPTIONS if option.flags != ("--arch",))


def main(argv: list[str]) -> int:
    summary = (
        "Print what a guest may use on this host for one emulator, arch, machine and virt type, as\n"
        "'virsh domcapabilities' prints it (libvirt XML) or as JSON.  Defaults as virsh picks them:\n"
        "the host's arch, kvm where QEMU can use it else qemu, the emulator libvirt would run, the\n"
        "arch's preferred machine.  The emulator is asked once (about a second) and its answers kept\n"
        "on disk; a recording (--replay) answers from what it kept, running nothing."
    )
    options = _INPUTS + format_options(("libvirt", "json"), "libvirt") + (
        Option(("--virttype",), "kvm or qemu (default: kvm where QEMU can use it)", metavar="TYPE",
               choices=("kvm", "qemu")),
        Option(("--arch",), "the guest architecture (default: the host's; x86_64 and i686 so far)",
               metavar="ARCH", dest="guest_arch"),
        Option(("--machine",), "the machine type (default: the arch's preferred one)", metavar="MACHINE"),
        Option(("--emulator",), "the QEMU binary (default: the one libvirt would pick)", metavar="PATH"),
        Option(("--expand-features",), "print the host-model CPU with every feature spelled out instead "
               "(what 'virsh hypervisor-cpu-baseline --features' gives for it)"),
    )
    values = parse_or_help("%s domcapabilities" % PROG, options, (), argv, summary)
    if values is None:
        return 0
    import capsfast

    values["arch"] = None  # the host's arch is the input's own
    host = probe_inputs(values)

    def given(name: str) -> "str | None":
        value = values[name]
        return None if value is None else str(value)

    out(capsfast.domain_capabilities(host, emulator=given("emulator"), arch=given("guest_arch"),
                                     machine=given("machine"), virttype=given("virttype"),
                                     format=str(values["format"]), expand_features=bool(values["expand_features"])))
    return 0
