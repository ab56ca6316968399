"""Parsing the platform part's facts (pure): the holder of what
``capsfast.parts.platform.read`` gathered (``Facts``, each file a
``FileFact``), and the accessors that turn a file's bytes into values: a
module parameter, the first /proc/cpuinfo block and its flags, the kernel
command line, the misc cgroup's capacities, the cgroup controllers, a
leaf of the CPUID walk.
What the values mean is ``capsfast.parts.platform.decide``'s.
"""
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from capsfast.sources.base import Registers

    # ("ok" | "absent" | "unreadable" | "truncated", bytes or None)
    FileFact = tuple[str, "bytes | None"]
    Walk = dict[tuple[int, int], Registers]

ABSENT: "FileFact" = ("absent", None)
_TRUE = ("Y", "y", "1")
_FALSE = ("N", "n", "0")


class Facts:
    """What ``capsfast.parts.platform.read`` gathered: ``files`` key -> FileFact of the
    files read; ``present`` key -> True, False or None (unreadable) of the
    paths looked at; ``listed`` the entries of /sys/kernel/iommu_groups and
    /sys/class/iommu (None: unreadable); ``access`` device path -> read-write
    for this process (None: unknown); ``syscfg`` the AMD SYSCFG MSR or None;
    ``walk`` the CPUID walk or None."""

    __slots__ = ("files", "present", "listed", "access", "syscfg", "walk")

    def __init__(self, files: "Mapping[str, FileFact]", present: "Mapping[str, bool | None]",
                 listed: "Mapping[str, list[str] | None]", access: "Mapping[str, bool | None]",
                 syscfg: "int | None", walk: "Walk | None") -> None:
        self.files = files
        self.present = present
        self.listed = listed
        self.access = access
        self.syscfg = syscfg
        self.walk = walk

    def text(self, key: str) -> "str | None":
        """The file's text when it was read whole, else None."""
        state, data = self.files.get(key, ABSENT)
        if state != "ok" or data is None:
            return None
        return data.decode("utf-8", "replace")

    def state(self, key: str) -> str:
        return self.files.get(key, ABSENT)[0]


def parameter(facts: Facts, key: str) -> "tuple[str, bool | None]":
    """A module parameter: ("absent"|"unreadable"|"malformed"|"ok", value).
    ``Y``, ``y``, ``1`` are on, ``N``, ``n``, ``0`` off (bool parameters
    print Y/N, older int ones 1/0); anything else is malformed."""
    state = facts.state(key)
    if state == "absent":
        return "absent", None
    text = facts.text(key)
    if text is None:
        return "unreadable", None
    value = text.strip()
    if value in _TRUE:
        return "ok", True
    if value in _FALSE:
        return "ok", False
    return "malformed", None


def cpuinfo_block(facts: Facts) -> "dict[str, str] | None":
    """The first block of /proc/cpuinfo as {key: value}; None if unread."""
    state, data = facts.files.get("cpuinfo", ABSENT)
    if state not in ("ok", "truncated") or data is None:
        return None
    end = data.find(b"\n\n")
    fields: dict[str, str] = {}
    for line in (data if end < 0 else data[:end]).decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def kernel_flags(facts: Facts) -> "frozenset[str] | None":
    block = cpuinfo_block(facts)
    if block is None or "flags" not in block:
        return None
    return frozenset(block["flags"].split())


def cmdline(facts: Facts) -> "list[str] | None":
    text = facts.text("cmdline")
    return None if text is None else text.split()


def cmdline_value(args: "list[str] | None", name: str) -> "str | None":
    """The value of the first ``name=`` argument (libvirt's search-first), or None."""
    for arg in args or ():
        if arg == "--":
            break
        key, sep, value = arg.partition("=")
        if key == name:
            return value if sep else ""
    return None


def misc_capacity(facts: Facts) -> "dict[str, int] | None":
    """The misc cgroup's capacities (``sev``, ``sev_es``, ``tdx``: ASIDs or
    KeyIDs); None where unread or not a list of ``name number`` lines."""
    text = facts.text("misc.capacity")
    if text is None:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if len(words) != 2 or not words[1].isdigit() or len(words[1]) > 19:
            return None
        out[words[0]] = int(words[1])
    return out


def cpuid_leaf(walk: "Walk | None", leaf: int, subleaf: int = 0) -> "Registers | None":
    """A leaf of the walk where the CPU's maximum leaf of its range allows it."""
    if walk is None:
        return None
    base = leaf & 0xFFFF0000
    top = walk.get((base, 0))
    if top is None or top[0] < leaf:
        return None
    return walk.get((leaf, subleaf), (0, 0, 0, 0))


def cgroup_v1(facts: Facts) -> "dict[str, bool] | None":
    """/proc/cgroups as {controller: on a v1 hierarchy and enabled}; None
    where unread."""
    text = facts.text("proc_cgroups")
    if text is None:
        return None
    out: dict[str, bool] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or line.startswith("#") or not words[1].isdigit():
            continue
        # A controller on a v1 hierarchy has a non-zero hierarchy ID.
        out[words[0]] = words[1] != "0" and words[3] == "1"
    return out


def cgroup_v2(facts: Facts, key: str) -> "set[str] | None":
    """The controllers a cgroup v2 ``cgroup.controllers`` file (``key``)
    names; None where unread."""
    text = facts.text(key)
    return None if text is None else set(text.split())
