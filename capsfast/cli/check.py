"""``capsfast check``: can KVM guests (or a chosen VMM) run here; exit 0
yes, 1 no.  On the start-up path: it imports what the report needs only
when a report is printed."""
from capsfast.cli.options import INPUT_OPTIONS, PROG, Option, format_options, is_live, optional_str, out, \
    parse_or_help, probe_inputs
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.cli.options import Values

SUMMARY = (
    "Tell whether KVM guests can run here, and if not, why and what to do; with --for, whether\n"
    "that VMM can run here (its own list of KVM capabilities and, for Kata, modules and CPU flags).\n"
    "Exit status: 0 KVM usable (with --for: the VMM can run), 1 not, 2 bad usage or input."
)


def main(argv: list[str]) -> int:
    from capsfast import readiness

    options = INPUT_OPTIONS + format_options(("text", "json"), "text") + (
        Option(("-q", "--quiet"), "print nothing; only the exit status tells"),
        Option(("--for",), "the VMM to check for: %s (default qemu: the KVM steps and the capabilities QEMU needs)"
               % "|".join(readiness.NAMES), metavar="VMM", default="qemu", dest="vmm"),
    )
    values = parse_or_help("%s check" % PROG, options, (), argv, SUMMARY)
    if values is None:
        return 0
    try:  # before probing: a typo is bad usage
        vmm = readiness.vmm_name(str(values["vmm"]))
    except CapsfastError:
        raise CapsfastError("--for %s: unknown VMM; known ones are %s" % (values["vmm"], readiness.known())) from None
    if readiness.PROFILES[vmm].kata and is_live(values):
        values["deep"] = True  # kata-runtime check creates a VM: so does this
    host = probe_inputs(values, skip=("cpu_model",))  # check never decodes the CPU model
    verdict = readiness.ready(vmm, host)
    if not values["quiet"]:
        from capsfast.render import check as report

        if values["format"] == "json":
            out(report.as_json(host, verdict))
        else:
            note = cpu_map_note(values, host.arch)
            out(report.as_text(host, verdict, [] if note is None else [("libvirt CPU map", None, note, None)]))
    return 0 if verdict.ok else 1


def cpu_map_note(values: "Values", arch: str) -> "str | None":
    """One line where no libvirt CPU map is found: capabilities will name
    no CPU model (one stat; the model itself is never decoded by check)."""
    from capsfast.constants import X86_ARCHS

    if arch not in X86_ARCHS or values["connect"] or values["replay"] == "-":
        return None
    import os

    from capsfast.parts.cpu_model import read as hostcpu

    root = str(values["root"])
    if values["replay"] is not None:
        # Only here: the recording's module imports json, tempfile, shutil.
        from capsfast.recording.format import ROOT

        root = os.path.join(str(values["replay"]), ROOT)
    directory = hostcpu.map_directory(root, optional_str(values["cpu_map"]))
    if hostcpu.map_present(directory):
        return None
    return "none at %s: capabilities names no CPU model (--cpu-map DIR names one)" % directory
