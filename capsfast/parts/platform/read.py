"""Reading the platform part of a Host through its source: confidential
computing, device assignment (the IOMMU), and the other devices and cgroup
controllers virt-host-validate checks.  Never on the default probe path.

One crossing reads every file of ``ENTRIES`` and the ``LISTINGS``; the first
block of /proc/cpuinfo and the full CPUID walk (leaves 7, 0x12 and
0x8000001F) are the source's, read once for every part that wants them.
Their values are ``capsfast.parts.platform.parse``'s, what they mean
``capsfast.parts.platform.decide``'s (both pure).

An unreadable file is a fact of its own ("unreadable"), never "absent":
a verdict built on it says ``unknown``.
"""
from capsfast.parts.platform import ACCESS, DEPENDS, DEVICE_NODES, ENTRIES, LISTINGS, NAME
from capsfast.parts.platform import decide, parse
from capsfast.sources.base import LIST, MSR, STAT, specs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.sources.base import FileResult, FileSpec
    from capsfast.model import Devices, Host, Iommu, Security
    from capsfast.sources.base import Source

def plan(root: str) -> "list[FileSpec]":
    """ENTRIES and LISTINGS as the crossing's file entries under ``root``."""
    return specs(root, ENTRIES + LISTINGS, DEPENDS)


def _file(result: "FileResult") -> "parse.FileFact":
    code = result.outcome.code
    if code == "absent":
        return parse.ABSENT
    if code != "ok":
        return ("unreadable", None)
    if result.truncated:
        return ("truncated", result.data)
    return ("ok", result.data)


def _names(result: "FileResult") -> "list[str] | None":
    """A LIST result's names (sorted, dot files left out), [] for an absent
    directory, None for one that could not be read."""
    code = result.outcome.code
    if code == "absent":
        return []
    if code != "ok" or result.data is None:
        return None
    names = result.data.decode("utf-8", "surrogateescape").split("\0")
    return sorted(name for name in names if name and not name.startswith("."))


def gather(source: "Source") -> "parse.Facts":
    """The raw facts of the host ``source`` reads: one crossing for the
    files and listings, its /proc/cpuinfo block and CPUID walk, the device
    nodes' access as it tells it."""
    keys = [key for key, *_ in ENTRIES]
    if not source.captured(NAME):
        # A recording that did not capture these files (an older capsfast's,
        # or a hand-made tree without them) cannot tell: unknown, never "no".
        return parse.Facts({key: ("unreadable", None) for key in keys + ["cpuinfo"]},
                              {key: None for key in keys}, {key[len("list."):]: None for key, *_ in LISTINGS},
                              {path: None for path in ACCESS}, None, source.walk())
    results = source.files(ENTRIES + LISTINGS, DEPENDS)
    files: dict[str, parse.FileFact] = {"cpuinfo": _file(source.cpuinfo())}
    present: dict[str, bool | None] = {}
    msr_value = None
    listed: dict[str, list[str] | None] = {}
    for (key, _path, op, _msr, _size), result in zip(ENTRIES + LISTINGS, results):
        if op == LIST:
            listed[key[len("list."):]] = _names(result)
        elif op == STAT:
            code = result.outcome.code
            present[key] = True if code == "ok" else False if code == "absent" else None
        elif op == MSR:
            msr_value = result.value
        else:
            files[key] = _file(result)
    by_path = {path: key for key, path in DEVICE_NODES.items()}
    rw = {path: source.access(path) if present.get(by_path[path]) else None for path in ACCESS}
    return parse.Facts(files, present, listed, rw, msr_value, source.walk())


def read(source: "Source", host: "Host") -> "tuple[Security, Iommu, Devices]":
    """The platform part of ``host``: its facts gathered and decided; the
    Host's CPU, hypervisor, MSRs and KVM capabilities count too."""
    return decide.decide(gather(source), host)


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    security, iommu, devices = read(source, host)
    return {"security": security, "iommu": iommu, "devices": devices}
