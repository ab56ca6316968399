"""atheris harness: the /proc/cpuinfo first-block reader.

Any bytes: a dict of stripped, control-free keys and values; appending
more blocks changes nothing.  Run: python3 fuzz/fuzz_cpuinfo.py -max_total_time=600
"""
import sys

import atheris

with atheris.instrument_imports():
    from capsfast.parts.core import parse


def one_input(data):
    block = parse.cpuinfo_first_block(data)
    for key, value in block.items():
        assert key == key.strip() and value == value.strip()
        assert not any(ord(ch) < 32 and ch != "\t" for ch in key + value), (key, value)
    flags = parse.kernel_flags(block)
    assert flags is None or all(flags)
    if b"\n\n" not in data:
        assert parse.cpuinfo_first_block(data + b"\n\nflags\t: vmx\n") == block


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
