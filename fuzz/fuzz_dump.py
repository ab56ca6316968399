"""atheris harness: the ``cpuid -r -1`` dump reader.

Any text: leaves or CapsfastError; leaves we render read back the same.
Run: python3 fuzz/fuzz_dump.py -max_total_time=600 (see fuzz/README.md).
"""
import sys

import atheris

with atheris.instrument_imports():
    from capsfast.parts.core import cpuid
    from capsfast.errors import CapsfastError


def one_input(data):
    text = data.decode("utf-8", "replace")
    try:
        leaves = cpuid.leaves_from_dump(text, "fuzz")
    except CapsfastError as e:
        assert "\n" not in str(e)
        return
    assert cpuid.leaves_from_dump(cpuid.format_dump([(leaf, 0, r) for leaf, r in zip(cpuid.LEAVES, leaves)])) == leaves
    cpuid.decode(leaves, "dump")
    cpuid.hypervisor_vendor(cpuid.hypervisor_signature(leaves))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
