"""``capsfast record --redact``: a recording without what identifies the
host or the user who recorded it, that still replays with the same
answers where they do not depend on it.

Left out: the host's unique ids (``/etc/machine-id``, the DMI product
UUID: the replay has no ``uuid``), every kernel argument but those
capsfast decides from, and every PATH entry that holds no emulator.  The
scenario's ``redacted`` names what was changed."""
import json

from capsfast import bounded_json
from capsfast.errors import CapsfastError
from capsfast.parts.guests import PREFIX
from capsfast.parts.topology import DMI_UUID_FILES, MACHINE_ID

TYPE_CHECKING = False
if TYPE_CHECKING:
    Files = dict[str, tuple["bytes | None", int]]

ROOT = "root"
SCENARIO = "scenario.json"
CMDLINE = "/proc/cmdline"
# The kernel arguments the platform part reads (the IOMMU's, SGX's, s390
# Secure Execution's); the rest of the command line may name addresses,
# tokens or a boot agent's flags.
KEPT_ARGS = frozenset(("intel_iommu", "amd_iommu", "iommu", "iommu.passthrough", "iommu.strict", "nosgx",
                       "prot_virt"))
IDS = (MACHINE_ID,) + DMI_UUID_FILES


def kept_cmdline(text: bytes) -> bytes:
    """The kernel command line with only the arguments in KEPT_ARGS."""
    args = text.split()
    kept = [a for a in args if a.partition(b"=")[0].decode("utf-8", "replace") in KEPT_ARGS]
    return b" ".join(kept) + b"\n"


def kept_path(path: str, files: "Files") -> str:
    """The PATH entries under which the recording holds an emulator (the
    guests are found there); each entry once."""
    kept: "list[str]" = []
    for entry in path.split(":"):
        directory = ROOT + "/" + entry.strip("/") + "/"
        if entry and entry not in kept and any(
                name.startswith(directory) and "/" not in name[len(directory):]
                and name[len(directory):].startswith(PREFIX)
                for name in files):
            kept.append(entry)
    return ":".join(kept)


def redact(files: "Files") -> "Files":
    """``files`` (a recording, by name) without the host's ids, the
    kernel arguments capsfast does not read and the PATH entries that hold
    no emulator."""
    if SCENARIO not in files or files[SCENARIO][0] is None:
        raise CapsfastError("record --redact: the recording has no %s" % SCENARIO)
    out = dict(files)
    changed = []
    for name in IDS:
        if out.pop(ROOT + name, None) is not None:
            changed.append(name)
    cmdline = out.get(ROOT + CMDLINE)
    if cmdline is not None and cmdline[0] is not None:
        out[ROOT + CMDLINE] = (kept_cmdline(cmdline[0]), cmdline[1])
        changed.append(CMDLINE)
    data, mode = files[SCENARIO]
    assert data is not None
    doc = bounded_json.loads(data, SCENARIO, len(data))
    if not isinstance(doc, dict):
        raise CapsfastError("record --redact: %s is not an object" % SCENARIO)
    if isinstance(doc.get("path"), str):
        doc["path"] = kept_path(doc["path"], files)
        changed.append("path")
    doc["redacted"] = changed
    out[SCENARIO] = ((json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"), mode)
    return out
