"""atheris harness: a fake root whose files hold arbitrary bytes.

Each input writes the files the probe reads (cpuinfo, Xen, hypervisor,
nested, arch, MSR) and probes: a Host whose JSON parses back to the
model's values, or a one-line CapsfastError.
Run: python3 fuzz/fuzz_root.py -max_total_time=600
"""
import json
import os
import shutil
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import capsfast
    from capsfast.parts.core import parse, read  # noqa: F401 - instrumented
    from capsfast.errors import CapsfastError
    from capsfast.render import json as render_json

FILES = ("proc/cpuinfo", "proc/xen/capabilities", "sys/hypervisor/type",
         "sys/hypervisor/properties/capabilities", "sys/module/kvm_intel/parameters/nested",
         "proc/sys/kernel/arch", "dev/cpu/0/msr")
ROOT = tempfile.mkdtemp(prefix="capsfast-fuzz-root-")


def one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    shutil.rmtree(ROOT)
    os.makedirs(os.path.join(ROOT, "proc/xen"))
    for rel in FILES:
        if fdp.ConsumeBool():
            path = os.path.join(ROOT, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)))
    try:
        host = capsfast.probe(root=ROOT)
    except CapsfastError as e:
        assert "\n" not in str(e), str(e)
        return
    assert json.loads(render_json.render(host)) == render_json.host_dict(host)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
