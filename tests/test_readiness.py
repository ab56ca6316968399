"""Readiness per VMM (capsfast.ready, capsfast check --for): each profile
applied by hand to an independent fcntl reading of this machine's /dev/kvm
gives the same verdict; recordings replay their verdicts; an unknown VMM is
one line, exit 2."""
import json
import shutil
import subprocess
import sys

import pytest

from test_kvm_caps import fcntl_caps, needs_kvm

import capsfast
from capsfast import CapsfastError, facts, readiness
from scenarios import HOSTS


def run(*args):
    return subprocess.run([sys.executable, "-m", "capsfast", *args], capture_output=True, text=True, timeout=120)


def by_hand(name, host, answers):
    """The profile applied without capsfast.readiness: the names that fail."""
    profile = readiness.PROFILES[name]
    failed = [] if host.kvm.usable else ["kvm"]
    features = set(host.cpu.features)
    for flag in profile.cpu:
        if not (features & {"vmx", "svm"} if flag == "vmx-or-svm" else flag in features):
            failed.append("cpu." + flag)
    if host.arch not in profile.caps:
        return failed + ["arch"]
    for cap in profile.common + profile.caps[host.arch]:
        if answers is None or not answers.get(cap):
            failed.append("KVM_CAP_" + cap)
    return failed


def test_every_profile_names_capabilities_of_the_table():
    for name, profile in readiness.PROFILES.items():
        for caps in list(profile.caps.values()) + [profile.common]:
            assert set(caps) <= set(facts.KVM_CAP_NAMES), name


@needs_kvm
@pytest.mark.parametrize("name", readiness.NAMES)
def test_this_machine_as_the_profile_by_hand(name):
    host = capsfast.probe(refresh=True)
    verdict = capsfast.ready(name)
    expected = by_hand(name, host, fcntl_caps())
    assert [r.name for r in verdict.failed] == expected
    assert verdict.ok == (expected == [])
    done = run("check", "--for", name)
    assert done.returncode == (0 if verdict.ok else 1), done.stdout + done.stderr
    if name != "qemu":
        last = done.stdout.splitlines()[-1]
        assert last.startswith(verdict.title + (" can run here" if verdict.ok else " can NOT run here")), last
        doc = json.loads(run("check", "--for", name, "--json").stdout)
        assert doc["vmm"]["ready"] == verdict.ok
        assert [r["name"] for r in doc["vmm"]["requirements"]] == [r.name for r in verdict.requirements]


def test_qemu_is_the_report_as_it_was():
    assert run("check", "--for", "qemu").stdout == run("check").stdout
    assert run("check", "--for", "qemu", "--json").stdout == run("check", "--json").stdout


def test_an_unknown_vmm_is_one_line():
    done = run("check", "--for", "bochs")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("capsfast: "), done.stderr
    for name in readiness.NAMES:
        assert name in lines[0]
    with pytest.raises(CapsfastError):
        capsfast.ready("bochs")


def recording_with_caps(tmp_path, source, caps):
    directory = tmp_path / "rec"
    shutil.copytree(HOSTS / source, directory)
    scenario = json.loads((directory / "scenario.json").read_text())
    scenario["devices"] = {"/dev/kvm": {"mode": "0o20660", "stat": "ok", "access": "ok", "open": "ok",
                                        "api_call": "ok", "api_version": 12, "create_vm": "not_tried",
                                        "caps": caps}}
    (directory / "scenario.json").write_text(json.dumps(scenario))
    return directory


def test_a_replayed_kernel_without_a_capability(tmp_path):
    caps = {name: 1 for name in facts.KVM_CAP_NAMES}
    caps["SPLIT_IRQCHIP"] = 0
    directory = recording_with_caps(tmp_path, "intel-enabled", caps)
    host = capsfast.probe(replay=str(directory))
    assert capsfast.ready("firecracker", host).ok
    chv = capsfast.ready("cloud-hypervisor", host)
    assert [r.name for r in chv.failed] == ["KVM_CAP_SPLIT_IRQCHIP"]
    assert "newer kernel" in chv.failed[0].hint
    assert capsfast.ready("kata", host).ok  # bare metal Intel with vmx
    done = run("check", "--for", "cloud-hypervisor", "--replay", str(directory))
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "Cloud Hypervisor can NOT run here: KVM_CAP_SPLIT_IRQCHIP"
    assert run("check", "--for", "firecracker", "--replay", str(directory)).returncode == 0


def test_an_aarch64_recording_uses_the_aarch64_lists(tmp_path):
    caps = {name: 1 for name in facts.KVM_CAP_NAMES}
    caps["ONE_REG"] = 0
    host = capsfast.probe(replay=str(recording_with_caps(tmp_path, "aarch64-kvm", caps)))
    assert host.arch == "aarch64"
    assert [r.name for r in capsfast.ready("firecracker", host).failed] == ["KVM_CAP_ONE_REG"]
    assert capsfast.ready("qemu", host).ok
    assert [r.name for r in capsfast.ready("kata", host).failed] == ["cpu.vmx-or-svm", "cpu.lm", "arch"]


def test_caps_that_cannot_be_read_fail_as_unknown():
    host = capsfast.probe(replay=str(HOSTS / "intel-enabled"))  # hand-made: no caps, a placeholder
    verdict = capsfast.ready("firecracker", host)
    assert not verdict.ok and verdict.failed[0].name == "kvm"
    assert all(r.detail == "unknown: /dev/kvm cannot be opened" for r in verdict.failed[1:])
    assert len(verdict.failed) == 1 + len(readiness.PROFILES["firecracker"].caps["x86_64"])
