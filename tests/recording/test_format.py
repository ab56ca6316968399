"""Recordings replay as the host they recorded: this machine recorded and
replayed as a user would (processes, pipes), every scenario through
--replay, and malformed or newer recordings refused in one line."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import capsfast
from capsfast.recording import format as recording
from scenarios import HOSTS, lookup


def capsfast_cmd(*args):
    return [sys.executable, "-m", "capsfast", *args]


def run(*args, **kwargs):
    kwargs.setdefault("capture_output", True)
    return subprocess.run(capsfast_cmd(*args), timeout=120, **kwargs)


def without_source(doc):
    doc["host"]["cpu"].pop("source")
    return doc


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rec") / "this-host"
    done = run("record", str(directory), text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("recorded %s" % directory)
    return directory


def test_record_writes_the_format(recorded):
    scenario = json.loads((recorded / "scenario.json").read_text())
    assert scenario["format"] == recording.FORMAT and scenario["capsfast"] == capsfast.__version__
    assert scenario["arch"] == capsfast.probe().arch
    kvm = scenario["devices"]["/dev/kvm"]
    live = capsfast.probe().kvm
    assert (kvm["stat"] == "ok") == live.exists
    assert kvm["api_version"] == live.api_version
    # Every emulator found replays: an executable placeholder at its path.
    for guest in capsfast.probe().guests:
        placeholder = recorded / "root" / guest.emulator.lstrip("/")
        assert placeholder.is_file() and os.access(placeholder, os.X_OK), guest.emulator
    if scenario["cpu_source"] == "cpuid":
        text = (recorded / "cpuid.txt").read_text()
        assert "0x80000000 0x00:" in text
        # More than the five leaves the default probe reads: the full walk.
        assert len([line for line in text.splitlines() if line.startswith("   0x")]) > 5


def test_replay_answers_as_the_recorded_host(recorded):
    live = json.loads(run("capabilities", "--format", "json").stdout)
    replayed = json.loads(run("capabilities", "--format", "json", "--replay", str(recorded)).stdout)
    assert without_source(replayed) == without_source(live)
    assert replayed["guests"], "the guests are gone"
    # The KVM capabilities replay as recorded, not from the placeholder.
    caps = capsfast.probe(refresh=True).kvm_caps
    assert replayed["host"]["kvm"]["caps"] == (None if caps is None else dict(caps))


def test_check_replay_exits_as_live_check(recorded):
    live = run("check")
    replayed = run("check", "--replay", str(recorded))
    assert replayed.returncode == live.returncode
    assert replayed.stdout == live.stdout


def test_libvirt_xml_of_a_replay_equals_live(recorded):
    assert run("capabilities", "--replay", str(recorded)).stdout == run("capabilities").stdout


def test_record_to_a_pipe_replays_from_a_pipe():
    """capsfast record - | capsfast check --replay -"""
    recorder = subprocess.Popen(capsfast_cmd("record", "-"), stdout=subprocess.PIPE)
    replay = subprocess.run(capsfast_cmd("capabilities", "--format", "json", "--replay", "-"),
                            stdin=recorder.stdout, capture_output=True, timeout=120)
    recorder.stdout.close()
    assert recorder.wait(timeout=60) == 0
    assert replay.returncode == 0, replay.stderr
    live = json.loads(run("capabilities", "--format", "json").stdout)
    assert without_source(json.loads(replay.stdout)) == without_source(live)


def test_every_scenario_replays_with_its_expectations(scenario):
    done = run("capabilities", "--format", "json", "--replay", str(scenario.dir), text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    for dotted, expected in scenario.expect.items():
        assert lookup(doc, dotted) == expected, dotted


def test_msr_of_a_recording_decides():
    """The firmware's lock, as the recording's MSR says: not 'enabled'."""
    done = run("check", "--replay", str(HOSTS / "amd-svm-disabled-msr"), text=True)
    assert done.returncode == 1
    assert "disabled by the firmware [certain, cpuid.svm, msr.vm-cr-svmdis]" in done.stdout


def test_observed_device_facts_replay(tmp_path):
    """A recording's /dev/kvm facts replace its placeholder's."""
    directory = tmp_path / "rec"
    shutil.copytree(HOSTS / "intel-enabled", directory)
    scenario = json.loads((directory / "scenario.json").read_text())
    scenario["devices"] = {"/dev/kvm": {"mode": "0o20660", "stat": "ok", "access": "ok", "open": "ok",
                                        "api_call": "ok", "api_version": 12, "create_vm": "not_tried"}}
    (directory / "scenario.json").write_text(json.dumps(scenario))
    host = capsfast.probe(replay=str(directory))
    assert host.kvm.usable and host.kvm.char_device and host.kvm.api_version == 12
    assert any("kvm" in g.domains for g in host.guests)
    scenario["devices"]["/dev/kvm"].update(access="denied: Permission denied", open="denied: Permission denied",
                                          api_call="not_tried", api_version=None)
    (directory / "scenario.json").write_text(json.dumps(scenario))
    host = capsfast.probe(replay=str(directory))
    assert (host.kvm.usable, host.kvm.failure) == (False, "not_accessible")


@pytest.mark.parametrize("change, words", [
    ({"format": 2}, ["format 2 is newer"]),
    ({"format": "one"}, ["not a recording format"]),
    ({"msr": {"0x3a": "zz"}}, ["not a hexadecimal number"]),
    ({"devices": {"/dev/kvm": {"stat": "exploded"}}}, ["not a step"]),
    ({"devices": {"/dev/kvm": {"stat": "ok", "mode": "rwx"}}}, ["not a number"]),
    ({"devices": {"/dev/kvm": {"stat": "ok", "caps": [1, 2]}}}, ["caps: not an object"]),
    ({"devices": {"/dev/kvm": {"stat": "ok", "caps": {"IRQCHIP": "yes"}}}}, ["not a KVM_CHECK_EXTENSION answer"]),
    ({"devices": {"/dev/kvm": {"stat": "ok", "caps": {"IRQCHIP": True}}}}, ["not a KVM_CHECK_EXTENSION answer"]),
    ({"devices": {"/dev/kvm": {"stat": "ok", "caps": {"IRQCHIP": -1}}}}, ["not a KVM_CHECK_EXTENSION answer"]),
    ({"arch": 7}, ["not a name"]),
    ({"path": "/usr/bin:/../../../usr/bin"}, ["not a PATH inside the recording"]),
])
def test_malformed_or_newer_recordings_are_one_line(tmp_path, change, words):
    directory = tmp_path / "rec"
    shutil.copytree(HOSTS / "kvm-guest-nested", directory)
    scenario = json.loads((directory / "scenario.json").read_text())
    scenario.update(change)
    (directory / "scenario.json").write_text(json.dumps(scenario))
    done = run("check", "--replay", str(directory), text=True)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("capsfast: "), done.stderr
    for word in words:
        assert word in lines[0], done.stderr


@pytest.mark.parametrize("damage", ["no-scenario", "not-json", "no-root", "huge"])
def test_broken_recordings_are_one_line(tmp_path, damage):
    directory = tmp_path / "rec"
    shutil.copytree(HOSTS / "kvm-guest-nested", directory)
    if damage == "no-scenario":
        (directory / "scenario.json").unlink()
    elif damage == "not-json":
        (directory / "scenario.json").write_text("{not json")
    elif damage == "no-root":
        shutil.rmtree(directory / "root")
    else:
        (directory / "scenario.json").write_text(" " * (recording._MAX_SCENARIO + 10))
    done = run("check", "--replay", str(directory), text=True)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("capsfast: replay "), done.stderr


def test_replay_takes_no_root_or_dump():
    done = run("check", "--replay", str(HOSTS / "intel-enabled"), "--root", "/", "--arch", "x86_64", text=True)
    assert done.returncode == 2 and "takes no --root or --arch" in done.stderr


def test_record_refuses_a_directory_with_something_in_it(tmp_path):
    (tmp_path / "x").write_text("")
    done = run("record", str(tmp_path), text=True)
    assert done.returncode == 2 and "not empty" in done.stderr
