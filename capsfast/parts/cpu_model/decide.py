"""Deciding the ``cpu_model`` part (pure): the ``CpuModel`` a decode gives
(what it shows when no model fits, the signature it names), and the one
where there is nothing to decode.  The decode itself is ``capsfast.cpu_map``'s (shared with domain capabilities);
``capsfast.parts.cpu_model.read`` gathers its inputs and runs it.
"""
from capsfast.model import CpuModel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from capsfast.model import Tsc

    Walk = Mapping[tuple[int, int], tuple[int, int, int, int]]


def no_model(microcode: "int | None", bits: "int | None") -> CpuModel:
    """No model to name (no CPUID, no map, not x86): what /proc/cpuinfo told."""
    return CpuModel(None, None, (), None, microcode, bits, None, None)


def host_model(walk: "Walk", model: "str | None", vendor: "str | None", features: "tuple[str, ...]",
               microcode: "int | None", bits: "int | None", tsc: "Tsc | None", directory: str) -> CpuModel:
    """The CpuModel of a decode: the vendor and the signature (family,
    model, stepping of CPUID leaf 1) only with a model found; as libvirt,
    the TSC whether or not one is."""
    eax1 = walk.get((1, 0), (0, 0, 0, 0))[0] & 0x0FFF3FFF
    family = ((eax1 >> 20) & 0xFF) + ((eax1 >> 8) & 0xF)
    signature = (family, ((eax1 >> 12) & 0xF0) + ((eax1 >> 4) & 0xF), eax1 & 0xF) if model else None
    return CpuModel(model, vendor if model else None, features, signature, microcode, bits, tsc, directory)
