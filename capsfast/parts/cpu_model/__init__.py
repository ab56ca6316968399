"""The ``cpu_model`` part of Host: the host CPU as libvirt names it, decoded
from the full CPUID walk against libvirt's CPU map (``read``: the inputs
through the source; ``parse``: /proc/cpuinfo's values, pure; ``decide``:
the model a decode gives, pure; ``cache``: the disk cache of decoded
models; the map and the decoder are ``capsfast.cpu_map``'s)."""
from capsfast.sources.base import DEFAULT_CPU_MAP

NAME = "cpu_model"
FIELDS = ("cpu_model",)
# The full CPUID walk, what the KVM device tells the decode (the feature
# MSR and the TSC), and the CPU map, so a replay decodes with the same map.
CAPTURE: "dict[str, object]" = {"cpuid": True, "cpu_device": True, "cpu_map": DEFAULT_CPU_MAP}
UNKNOWN = {"cpu_model": None}
