"""What the parts' disk caches share, below the parts: where the cache
files live, the CPU map directory a host is named against, and a CPUID
walk as key text (the host CPU model and the domain capabilities' QMP
transcripts are both keyed on it)."""
import os

from capsfast.errors import CapsfastError
from capsfast.sources.base import DEFAULT_CPU_MAP, under

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    Walk = Mapping[tuple[int, int], tuple[int, int, int, int]]

ENV_CPU_MAP = "CAPSFAST_CPU_MAP"


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/capsfast`` (default ``~/.cache/capsfast``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "capsfast")


def map_directory(root: str, cpu_map: "str | None") -> str:
    """The CPU map directory to use for the host under ``root``:
    ``cpu_map``, else ``$CAPSFAST_CPU_MAP``, else the host's own."""
    if cpu_map:
        return cpu_map
    named = os.environ.get(ENV_CPU_MAP)
    if named:
        if not os.path.isdir(named):  # named by the user: a typo is bad input, not "no model"
            raise CapsfastError("CPU map %s (%s): not a directory" % (named, ENV_CPU_MAP))
        return named
    return under(root, DEFAULT_CPU_MAP)


# What CPUID answers differently on each CPU (the APIC ids; AMD's compute
# unit and node ids), as libvirt's virHostCPUGetCPUIDFilterVolatile lists
# it: (leaf, subleaf or None for every subleaf) -> the registers' masks of
# the bits kept in the cache key.  A process may run its walk on any CPU.
VOLATILE = {(0x1, 0): (0xFFFFFFFF, 0x00FFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
            (0xB, None): (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0),
            (0x1F, None): (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0),
            (0x8000001E, None): (0, 0, 0, 0)}


def walk_text(walk: "Walk", stable: bool) -> str:
    """The walk as cache key text; ``stable``: with the per-CPU bits masked
    off (only where the CPU map defines no feature on them)."""
    parts = []
    for (leaf, sub), (a, b, c, d) in sorted(walk.items()):
        if stable:
            masks = VOLATILE.get((leaf, sub)) or VOLATILE.get((leaf, None))
            if masks is not None:
                a, b, c, d = a & masks[0], b & masks[1], c & masks[2], d & masks[3]
        parts.append("%x:%x:%x:%x:%x:%x" % (leaf, sub, a, b, c, d))
    return " ".join(parts)
