"""atheris harness: the ``cpuid -r -1`` dump reader.

Any text: leaves or CapsfastError; leaves we render read back the same.
Run: python3 fuzz/fuzz_dump.py -max_total_time=600 (see fuzz/README.md).
"""
import sys

import atheris

with atheris.instrument_imports():
    from capsfast.errors import CapsfastError
    from capsfast.parts.core import parse
    from capsfast.recording.collector import format_walk


def one_input(data):
    text = data.decode("utf-8", "replace")
    try:
        leaves = parse.leaves_from_dump(text, "fuzz")
    except CapsfastError as e:
        assert "\n" not in str(e)
        return
    # The recording's dump writer, read back: the same leaves.
    written = format_walk([(leaf, 0, r) for leaf, r in zip(parse.LEAVES, leaves) if r != parse.ZERO])
    assert parse.leaves_from_dump(written) == leaves
    parse.cpu_from_leaves(leaves, "dump")
    parse.hypervisor_vendor(parse.hypervisor_signature(leaves))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
