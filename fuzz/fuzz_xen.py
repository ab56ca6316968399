"""atheris harness: Xen capability tokens, from the file's bytes to the
dom0's guests, rendered as libvirt XML and read back by our reader (same
guests).  Needs lxml.  Run: python3 fuzz/fuzz_xen.py -max_total_time=600
"""
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import capsfast
    from capsfast import libvirt_xml
    from capsfast.parts.core import parse, read
    from capsfast.parts.guests import decide as guests
    from capsfast.model import Xen
    from capsfast.sources.base import OK, FileResult
    from capsfast.render import libvirt as render_libvirt

ROOT = tempfile.mkdtemp(prefix="capsfast-fuzz-")
HOST = capsfast.probe(root=ROOT, arch="x86_64")


def one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    arch = fdp.PickValueInList(["x86_64", "i686", "aarch64"])
    caps = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
    result = FileResult(OK, 0o100644, fdp.ConsumeBytes(4096), False, 0)
    text = read.text("/", "/sys/hypervisor/properties/capabilities", result)
    xen = parse.xen_facts(True, caps.decode("utf-8", "replace"), "xen", text)
    for token in xen.capabilities:
        assert token and not any(ch.isspace() or ord(ch) < 32 for ch in token), token
    got = guests.xen_guests(arch, Xen(xen.present, "dom0", xen.hypervisor_type, xen.capabilities))
    host = HOST._replace(arch=arch, guests=got)
    back = libvirt_xml.read(render_libvirt.render(host))
    assert back.guests == got, (back.guests, got)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
