"""atheris harness: the ``cpuid -r -1`` dump reader.

Any text: leaves or CapsfastError; leaves we render read back the same.
Run: python3 fuzz/fuzz_dump.py -max_total_time=600 (see fuzz/README.md).
"""
import sys

import atheris

with atheris.instrument_imports():
    from capsfast.parts.core import parse
    from capsfast.errors import CapsfastError


def one_input(data):
    text = data.decode("utf-8", "replace")
    try:
        leaves = parse.leaves_from_dump(text, "fuzz")
    except CapsfastError as e:
        assert "\n" not in str(e)
        return
    assert parse.leaves_from_dump(parse.format_dump([(leaf, 0, r) for leaf, r in zip(parse.LEAVES, leaves)])) == leaves
    parse.cpu_from_leaves(leaves, "dump")
    parse.hypervisor_vendor(parse.hypervisor_signature(leaves))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
