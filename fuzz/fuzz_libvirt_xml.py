"""atheris harness: the libvirt capabilities XML reader.

Any bytes: Capabilities or CapsfastError, never another exception.
Needs lxml.  Run: python3 fuzz/fuzz_libvirt_xml.py -max_total_time=600
"""
import sys

import atheris

with atheris.instrument_imports():
    from capsfast import libvirt_xml
    from capsfast.errors import CapsfastError


def one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    doc = fdp.ConsumeUnicode(4096) if fdp.ConsumeBool() else fdp.ConsumeBytes(4096)
    try:
        caps = libvirt_xml.read(doc)
    except CapsfastError as e:
        assert "\n" not in str(e), str(e)
        return
    for g in caps.guests:
        assert isinstance(g.wordsize, int)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
