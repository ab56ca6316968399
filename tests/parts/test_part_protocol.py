"""The Part protocol: each part of Host declares NAME, FIELDS, CAPTURE
(data), UNKNOWN once, and its read module fills its fields through a
source; together the parts fill every lazy field of Host, each once."""
import json

import capsfast
from capsfast import parts
from capsfast.model import Host
from capsfast.recording import capture

# The kinds of capture the collector takes (capsfast.recording.collector.collect).
CAPTURE_KINDS = {"files", "depends", "globs", "list_dirs", "access", "arch_key", "arch_aliases", "kvm_device",
                 "kvm_caps", "cpuid", "cpu_device", "cpu_map", "emulators"}


def declared():
    return [parts.part(name) for name in parts.PARTS]


def test_each_part_declares_itself_once():
    names = set()
    for part in declared():
        assert isinstance(part.NAME, str) and part.NAME not in names
        names.add(part.NAME)
        assert set(part.CAPTURE) <= CAPTURE_KINDS, (part.NAME, set(part.CAPTURE) - CAPTURE_KINDS)
        json.dumps(part.CAPTURE)  # data, as the collector receives it
        assert part.UNKNOWN is None or set(part.UNKNOWN) == set(part.FIELDS), part.NAME
        assert callable(parts.reader(part).fields), part.NAME


def test_the_parts_fill_every_lazy_field_of_host_once():
    filled = [field for part in declared() for field in part.FIELDS]
    assert len(filled) == len(set(filled))
    core = {"arch", "cpu", "hypervisor", "kvm", "kqemu", "xen", "hvm", "msr"}
    assert set(filled) == set(Host._fields) - core


def test_the_capture_plan_is_the_union_of_the_parts():
    plan = capture.plan("test")
    assert plan["captured"] == [part.NAME for part in declared()]
    for part in declared():
        for key, value in part.CAPTURE.items():
            if isinstance(value, list):
                assert all(v in plan[key] for v in value), (part.NAME, key)
    paths = {}
    for key, path, *_ in plan["files"]:
        paths.setdefault(key, set()).add(path)
    assert all(len(named) == 1 for named in paths.values())  # a key is one file, whichever parts share it


def test_a_part_is_imported_only_when_one_of_its_fields_is_read():
    import subprocess
    import sys

    code = ("import sys, capsfast; host = capsfast.probe(); host.kvm.usable; "
            "before = {m for m in sys.modules if m.startswith('capsfast.parts.')}; host.kvm_caps; "
            "after = {m for m in sys.modules if m.startswith('capsfast.parts.')}; "
            "print(sorted(before)); print(sorted(after - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert "capsfast.parts.platform" not in out[0] and "capsfast.parts.cpu_model" not in out[0]
    assert "capsfast.parts.kvm_caps" in out[1] and "capsfast.parts.platform" not in out[1]
    assert capsfast.probe().kvm  # the probe itself needs no lazy part
