"""KVM capabilities (Host.kvm_caps, JSON host.kvm.caps): KVM_CHECK_EXTENSION
on the /dev/kvm system fd, read lazily in one crossing.  Checked against
an independent reading with fcntl.ioctl, as an unprivileged user, against
a tripwire on the probe path, and through recordings and the collector."""
import errno
import json
import os
import shutil

import pytest

from forked import in_child

import capsfast
from capsfast import CapsfastError, _native
from capsfast.recording import collector
from capsfast.parts import kvm_caps as caps_part
from capsfast import host as probing
from capsfast.recording import format as recording
from capsfast.render import check as report
from capsfast.model import kvm_caps_pending
from scenarios import HOSTS

from kvm_device import NOBODY, fcntl_caps, needs_kvm


@pytest.fixture
def tripwire(monkeypatch):
    """Fails the test if the caps crossing runs; counts the calls otherwise."""
    calls = []

    def wire(*args):
        calls.append(args)
        raise AssertionError("the KVM_CHECK_EXTENSION crossing ran")

    monkeypatch.setattr(_native, "_kvm_caps", wire)
    return calls


def test_the_table_has_unique_names_and_numbers():
    names = [name for name, _ in caps_part.KVM_CAPS]
    numbers = [number for _, number in caps_part.KVM_CAPS]
    assert len(set(names)) == len(names) and len(set(numbers)) == len(numbers)
    # Numbers as include/uapi/linux/kvm.h defines them (a few, spot-checked).
    table = dict(caps_part.KVM_CAPS)
    assert (table["IRQCHIP"], table["MAX_VCPUS"], table["NR_VCPUS"], table["ARM_VM_IPA_SIZE"]) == (0, 66, 9, 165)
    assert (table["GUEST_MEMFD"], table["VM_TYPES"], table["ARM_EL2"]) == (234, 235, 240)


def test_the_schema_lists_the_table():
    with open(os.path.join(os.path.dirname(probing.__file__), "schemas", "capabilities.schema.json")) as f:
        schema = json.load(f)
    caps = schema["$defs"]["kvm"]["properties"]["caps"]
    assert caps["required"] == list(caps_part.KVM_CAP_NAMES)
    assert list(caps["properties"]) == list(caps_part.KVM_CAP_NAMES)


@needs_kvm
def test_caps_equal_an_independent_reading():
    host = capsfast.probe(refresh=True)
    assert dict(host.kvm_caps) == fcntl_caps()
    doc = json.loads(capsfast.capabilities(host, format="json"))
    assert doc["host"]["kvm"]["caps"] == fcntl_caps()


def test_caps_are_null_for_a_user_who_cannot_open_dev_kvm():
    if os.geteuid() != 0:
        pytest.skip("dropping to uid 65534 needs root")

    def work():
        try:
            os.close(os.open("/dev/kvm", os.O_RDWR))
            openable = True
        except OSError:
            openable = False
        probing.forget_live()
        host = capsfast.probe(refresh=True)
        doc = json.loads(capsfast.capabilities(host, format="json"))
        return openable, host.kvm.accessible, host.kvm_caps, doc["host"]["kvm"]["caps"]

    answer = in_child(work, user=NOBODY)
    assert answer[0] == "ok", answer
    openable, accessible, caps, in_json = answer[1]
    if openable:
        pytest.skip("/dev/kvm is open to uid 65534 here")
    assert (accessible, caps, in_json) == (False, None, None)


def test_the_default_probe_never_asks(tripwire):
    probing.forget_live()
    host = capsfast.probe()
    capsfast.probe(refresh=True)
    capsfast.kvm_usable()
    capsfast.probe(deep=True)
    capsfast.capabilities(host, format="libvirt")
    other = capsfast.probe(root="/", arch=host.arch)  # equal, not the same: compared, not reused
    capsfast.capabilities(other, format="libvirt")
    capsfast.capabilities(other, format="draft")
    report.as_text(host)
    assert kvm_caps_pending(host) and kvm_caps_pending(other)
    assert tripwire == []


def test_caps_are_read_once_per_host_in_one_crossing(monkeypatch):
    calls = []
    real = _native._kvm_caps

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(_native, "_kvm_caps", counting)
    host = capsfast.probe(root=str(HOSTS / "intel-enabled" / "root"), arch="x86_64")
    assert kvm_caps_pending(host)
    assert host.kvm_caps is None  # a placeholder file: never opened
    host.kvm_caps
    assert len(calls) == 1 and not kvm_caps_pending(host)


def test_only_the_kvm_device_is_opened(tmp_path):
    regular = tmp_path / "kvm"
    regular.write_text("")
    opened, values = _native.kvm_caps(str(regular), [0])
    assert (opened.code, values) == ("not_kvm_device", [])
    assert _native.kvm_caps("/dev/null", [0])[0].code == "not_kvm_device"
    assert _native.kvm_caps(str(tmp_path / "absent"), [0])[0].code == "absent"
    assert collector.kvm_caps("/dev/null", [["IRQCHIP", 0]]) is None


@needs_kvm
def test_the_collector_reads_what_c_reads():
    assert collector.kvm_caps("/dev/kvm", [list(row) for row in caps_part.KVM_CAPS]) == fcntl_caps()
    opened, values = _native.kvm_caps("/dev/kvm", caps_part.KVM_CAP_NUMBERS)
    assert opened.ok and dict(zip(caps_part.KVM_CAP_NAMES, values)) == fcntl_caps()


def test_a_recording_without_caps_replays_as_null():
    host = capsfast.probe(replay=str(HOSTS / "intel-enabled"))
    assert host.kvm_caps is None


def test_recorded_caps_replay(tmp_path):
    directory = tmp_path / "rec"
    shutil.copytree(HOSTS / "intel-enabled", directory)
    scenario = json.loads((directory / "scenario.json").read_text())
    recorded = {name: 1 for name in caps_part.KVM_CAP_NAMES}
    recorded.update(MAX_VCPUS=710, NOT_A_CAP_WE_ASK=3)
    del recorded["ARM_EL2"]  # an older capsfast did not ask it
    scenario["devices"] = {"/dev/kvm": {"mode": "0o20660", "stat": "ok", "access": "ok", "open": "ok",
                                        "api_call": "ok", "api_version": 12, "create_vm": "not_tried",
                                        "caps": recorded}}
    (directory / "scenario.json").write_text(json.dumps(scenario))
    caps = dict(capsfast.probe(replay=str(directory)).kvm_caps)
    assert list(caps) == list(caps_part.KVM_CAP_NAMES)
    assert caps["MAX_VCPUS"] == 710 and caps["ARM_EL2"] is None and caps["IRQCHIP"] == 1
    scenario["devices"]["/dev/kvm"]["caps"] = None
    (directory / "scenario.json").write_text(json.dumps(scenario))
    assert capsfast.probe(replay=str(directory)).kvm_caps is None
    scenario["devices"]["/dev/kvm"]["caps"] = {"MAX_VCPUS": "many"}
    (directory / "scenario.json").write_text(json.dumps(scenario))
    with pytest.raises(CapsfastError) as raised:
        recording.read(str(directory))
    assert len(str(raised.value).splitlines()) == 1


def test_the_remote_plan_carries_the_table():
    from capsfast.recording import remote

    assert remote.plan("h")["kvm_caps"] == [list(row) for row in caps_part.KVM_CAPS]


def test_c_rejects_nonsense_arguments():
    assert _native.lib.capsfast_kvm_caps(b"/dev/kvm", _native.ffi.NULL, _native.ffi.NULL, -1) == -errno.EINVAL
    assert _native.lib.capsfast_kvm_caps(b"/dev/kvm", _native.ffi.NULL, _native.ffi.NULL, 1) == -errno.EINVAL
