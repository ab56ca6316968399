"""Readiness per VMM (capsfast.ready, capsfast check --for): each profile
applied by hand to an independent fcntl reading of this machine's /dev/kvm
gives the same verdict; recordings replay their verdicts; an unknown VMM is
one line, exit 2."""
import contextlib
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from forked import in_child
from kvm_device import NOBODY, fcntl_caps, needs_kvm

import capsfast
from capsfast import CapsfastError, readiness
from capsfast import cli
from capsfast.parts import kvm_caps as caps_part
from capsfast import host as probing
from scenarios import HOSTS, all_scenarios


def run(*args):
    return subprocess.run([sys.executable, "-m", "capsfast", *args], capture_output=True, text=True, timeout=120)


KVM_CREATE_VM = 0xAE01  # _IO(KVMIO, 0x01), include/uapi/linux/kvm.h


def cpuinfo_first_block():
    """vendor_id and flags of the first processor, read here without capsfast."""
    with open("/proc/cpuinfo") as f:
        block = f.read().split("\n\n")[0]
    fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("vendor_id"), set(fields.get("flags", "").split())


def creates_a_vm():
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def kata_by_hand(arch):
    """kata-runtime check's list (kata-check_amd64.go, _arm64.go) applied to
    this machine's files: the names that fail."""
    failed = []
    vendor, flags = cpuinfo_first_block()
    if arch == "x86_64":
        wanted = {"GenuineIntel": ["vmx", "lm", "sse4_1"], "AuthenticAMD": ["svm", "lm", "sse4_1"]}[vendor]
        failed += ["cpu." + f for f in wanted if f not in flags]
        modules = ["kvm", {"GenuineIntel": "kvm_intel", "AuthenticAMD": "kvm_amd"}[vendor], "vhost", "vhost_net"]
    else:
        modules = ["kvm", "vhost", "vhost_net"]
    failed += ["module." + m for m in modules if not os.path.isdir("/sys/module/" + m)]
    if not creates_a_vm():
        failed.append("KVM_CREATE_VM")
    return failed


def by_hand(name, host, answers):
    """The profile applied without capsfast.readiness: the names that fail."""
    profile = readiness.PROFILES[name]
    failed = [] if host.kvm.usable else ["kvm"]
    if name == "kata":
        failed += kata_by_hand(host.arch)
    if host.arch not in profile.caps:
        return failed + ["arch"]
    for cap in profile.common + profile.caps[host.arch]:
        if answers is None or not answers.get(cap):
            failed.append("KVM_CAP_" + cap)
    if name == "kata" and host.arch == "aarch64" and (answers is None or answers.get("ARM_VM_IPA_SIZE") is None):
        failed.append("KVM_CAP_ARM_VM_IPA_SIZE")
    return failed


def test_every_profile_names_capabilities_of_the_table():
    for name, profile in readiness.PROFILES.items():
        for caps in list(profile.caps.values()) + [profile.common]:
            assert set(caps) <= set(caps_part.KVM_CAP_NAMES), name


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
    last = done.stdout.splitlines()[-1]
    assert last.startswith(verdict.title + (" can run here" if verdict.ok else " can NOT run here")), last
    doc = json.loads(run("check", "--for", name, "--json").stdout)
    assert doc["vmm"]["ready"] == verdict.ok
    assert [r["name"] for r in doc["vmm"]["requirements"]] == [r.name for r in verdict.requirements]


def test_check_is_check_for_qemu():
    assert run("check", "--for", "qemu").stdout == run("check").stdout
    assert run("check", "--for", "qemu", "--json").stdout == run("check", "--json").stdout


def test_check_weighs_the_capabilities_qemu_needs(tmp_path):
    """A usable /dev/kvm whose KVM lacks what QEMU refuses to start without:
    check (for QEMU, the default) says no, exit 1."""
    caps = {name: 1 for name in caps_part.KVM_CAP_NAMES}
    caps["IOEVENTFD"] = 0
    directory = recording_with_caps(tmp_path, "intel-enabled", caps)
    done = run("check", "--replay", str(directory))
    assert done.returncode == 1, done.stdout
    assert "KVM acceleration can be used" in done.stdout
    assert done.stdout.splitlines()[-1] == "QEMU can NOT run here: KVM_CAP_IOEVENTFD"
    assert "Linux" not in done.stdout.split("KVM_CAP_IOEVENTFD", 1)[1].split("\n")[1]  # no made-up version
    doc = json.loads(run("check", "--json", "--replay", str(directory)).stdout)
    assert doc["kvm_usable"] is True and doc["vmm"]["ready"] is False
    caps["IOEVENTFD"] = 1
    assert run("check", "-q", "--replay", str(recording_with_caps(tmp_path / "b", "intel-enabled", caps))
               ).returncode == 0


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
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(HOSTS / source, directory)
    scenario = json.loads((directory / "scenario.json").read_text())
    scenario["devices"] = {"/dev/kvm": {"mode": "0o20660", "stat": "ok", "access": "ok", "open": "ok",
                                        "api_call": "ok", "api_version": 12, "create_vm": "not_tried",
                                        "caps": caps}}
    (directory / "scenario.json").write_text(json.dumps(scenario))
    return directory


def test_a_replayed_kernel_without_a_capability(tmp_path):
    caps = {name: 1 for name in caps_part.KVM_CAP_NAMES}
    caps["SPLIT_IRQCHIP"] = 0
    directory = recording_with_caps(tmp_path, "intel-enabled", caps)
    host = capsfast.probe(replay=str(directory))
    assert capsfast.ready("firecracker", host).ok
    chv = capsfast.ready("cloud-hypervisor", host)
    assert [r.name for r in chv.failed] == ["KVM_CAP_SPLIT_IRQCHIP"]
    assert "Linux 4.4 or later" in chv.failed[0].hint
    # A hand-made recording that did not capture the vhost modules: unknown.
    kata = capsfast.ready("kata", host)
    assert [(r.name, r.detail.split(":")[0]) for r in kata.failed] == [("module.vhost", "unknown"),
                                                                       ("module.vhost_net", "unknown")]
    done = run("check", "--for", "cloud-hypervisor", "--replay", str(directory))
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "Cloud Hypervisor can NOT run here: KVM_CAP_SPLIT_IRQCHIP"
    assert run("check", "--for", "firecracker", "--replay", str(directory)).returncode == 0


def test_an_aarch64_recording_uses_the_aarch64_lists(tmp_path):
    caps = {name: 1 for name in caps_part.KVM_CAP_NAMES}
    caps["ONE_REG"] = 0
    host = capsfast.probe(replay=str(recording_with_caps(tmp_path, "aarch64-kvm", caps)))
    assert host.arch == "aarch64"
    assert [r.name for r in capsfast.ready("firecracker", host).failed] == ["KVM_CAP_ONE_REG"]
    assert capsfast.ready("qemu", host).ok
    kata = capsfast.ready("kata", host)  # no CPU flags on arm64; the modules were not captured
    assert [r.name for r in kata.failed] == ["module.vhost", "module.vhost_net"]
    assert kata.requirements[-1].name == "KVM_CAP_ARM_VM_IPA_SIZE" and kata.requirements[-1].ok


def test_caps_that_cannot_be_read_fail_as_unknown():
    host = capsfast.probe(replay=str(HOSTS / "intel-enabled"))  # hand-made: no caps, a placeholder
    verdict = capsfast.ready("firecracker", host)
    assert not verdict.ok and verdict.failed[0].name == "kvm"
    assert all(r.detail == "unknown: /dev/kvm cannot be opened" for r in verdict.failed[1:])
    assert len(verdict.failed) == 1 + len(readiness.PROFILES["firecracker"].caps["x86_64"])


REPLAYED = [s for s in all_scenarios() if "expect_ready" in json.loads((s.dir / "scenario.json").read_text())]


def test_the_readiness_scenarios_exist():
    assert {s.name for s in REPLAYED} >= {"intel-kernel-4.9", "aarch64-ipa40-no-el2", "kvm-no-access"}


@pytest.mark.parametrize("recorded", REPLAYED, ids=lambda s: s.name)
def test_a_recorded_host_replays_its_readiness(recorded):
    """Each VMM's failing requirements, hand-written in the scenario from
    the profiles, as capsfast.ready and check --for give them."""
    expected = json.loads((recorded.dir / "scenario.json").read_text())["expect_ready"]
    host = recorded.probe()
    assert set(expected) == set(readiness.NAMES)
    for vmm, failed in expected.items():
        verdict = capsfast.ready(vmm, host)
        assert [r.name for r in verdict.failed] == failed, vmm
        done = run("check", "--for", vmm, "--replay", str(recorded.dir))
        assert done.returncode == (1 if failed else 0), (vmm, done.stdout)
        assert done.stdout.splitlines()[-1].startswith(verdict.title + (" can NOT" if failed else " can run")), vmm


def test_a_kernel_without_immediate_exit_names_the_release():
    host = capsfast.probe(replay=str(HOSTS / "intel-kernel-4.9"))
    failed = capsfast.ready("cloud-hypervisor", host).failed
    assert [(r.name, r.detail) for r in failed] == [("KVM_CAP_IMMEDIATE_EXIT", "0: this kernel's KVM lacks it")]
    assert failed[0].hint == "Cloud Hypervisor requires KVM_CAP_IMMEDIATE_EXIT: Linux 4.11 or later"


def test_an_arm64_host_shows_its_ipa_size_and_no_el2():
    host = capsfast.probe(replay=str(HOSTS / "aarch64-ipa40-no-el2"))
    caps = dict(host.kvm_caps)
    assert (caps["ARM_VM_IPA_SIZE"], caps["ARM_EL2"]) == (40, 0)
    ipa = capsfast.ready("kata", host).requirements[-1]
    assert (ipa.name, ipa.ok, ipa.detail) == ("KVM_CAP_ARM_VM_IPA_SIZE", True, "answered: 40-bit IPA")
    labels = run("export", "nfd", "--stdout", "--replay", str(HOSTS / "aarch64-ipa40-no-el2")).stdout
    assert "/capsfast-kvm-cap.arm-vm-ipa-size=40\n" in labels and "/capsfast-kvm-cap.arm-el2=0\n" in labels


def test_no_access_fails_every_vmm_on_the_kvm_step_with_the_group_hint():
    host = capsfast.probe(replay=str(HOSTS / "kvm-no-access"))
    assert host.kvm_caps is None
    for vmm in readiness.NAMES:
        first = capsfast.ready(vmm, host).failed[0]
        assert first.name == "kvm" and "usermod -aG kvm" in first.hint, vmm
        out = run("check", "--for", vmm, "--replay", str(HOSTS / "kvm-no-access")).stdout
        assert out.splitlines()[-1].startswith(readiness.PROFILES[vmm].title + " can NOT run here: kvm"), out


def test_as_an_unprivileged_user_every_vmm_says_why():
    """uid 65534 on this machine: caps null, and each VMM fails on /dev/kvm
    with the group hint, exit 1 (where /dev/kvm is not open to everyone)."""
    if os.geteuid() != 0:
        pytest.skip("dropping to uid 65534 needs root")

    def work():
        try:
            os.close(os.open("/dev/kvm", os.O_RDWR))
            return None
        except OSError:
            pass
        probing.forget_live()  # the parent's host was probed as root
        out = {}
        for vmm in readiness.NAMES:
            # In process: the interpreter of a venv under a private home may
            # not be executable by uid 65534.
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                status = cli.main(["check", "--for", vmm, "--json"])
            doc = json.loads(stdout.getvalue())
            out[vmm] = (status, doc["host"]["kvm"]["caps"], doc["vmm"]["requirements"][0], stderr.getvalue())
        return out

    answer = in_child(work, user=NOBODY)
    assert answer[0] == "ok", answer
    if answer[1] is None:
        pytest.skip("/dev/kvm is open to uid 65534 here")
    for vmm, (status, caps, first, stderr) in answer[1].items():
        assert (status, caps, stderr) == (1, None, ""), vmm
        assert first["name"] == "kvm" and not first["ok"] and "usermod -aG kvm" in first["hint"], (vmm, first)


def test_capabilities_that_cannot_be_asked_are_one_skipped_line():
    """Without a usable /dev/kvm the report says so once, not once per
    capability; --json still lists each."""
    out = run("check", "--for", "firecracker", "--replay", str(HOSTS / "kvm-no-access")).stdout
    assert "unknown: /dev/kvm cannot be opened" not in out
    skipped = [line for line in out.splitlines() if line.startswith("Firecracker: ")]
    assert len(skipped) == 1 and skipped[0].split(":", 2)[1].strip() == "14 KVM capabilities", skipped
    assert skipped[0].split(" : ")[1].strip() == "SKIP skipped"
    doc = json.loads(run("check", "--for", "firecracker", "--json", "--replay", str(HOSTS / "kvm-no-access")).stdout)
    assert len(doc["vmm"]["requirements"]) == 15


TRUTH = """
import sys
import capsfast
host = capsfast.probe(replay=sys.argv[1])
for vmm in ("kata", "qemu"):
    verdict = capsfast.ready(vmm, host)
    print(vmm, verdict.ok, bool(verdict), [bool(r) for r in verdict.requirements] == [r.ok for r in verdict.requirements],
          "taken" if verdict else "refused")
"""


@pytest.mark.parametrize("recorded", ["kvm-no-access", "intel-enabled"])
def test_a_readiness_tests_as_its_verdict(recorded):
    """``if capsfast.ready("kata"):`` means "Kata can run here", and each
    requirement tests as met or not: in a program of its own."""
    done = subprocess.run([sys.executable, "-c", TRUTH, str(HOSTS / recorded)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [line[0] for line in lines] == ["kata", "qemu"]
    for _vmm, ok, truth, requirements, branch in lines:
        assert truth == ok and requirements == "True"
        assert branch == ("taken" if ok == "True" else "refused")
    if recorded == "kvm-no-access":
        assert [line[1] for line in lines] == ["False", "False"]


@pytest.mark.parametrize("mode,group,says,not_says", [
    # The group may read and write: joining it is the way.
    (0o660, "kvm", ["crw-rw----, group kvm", "usermod -aG kvm"], ["udev", "setfacl"]),
    (0o666, "kvm", ["crw-rw-rw-"], ["udev"]),
    # It may not (this machine's crw------- root root): joining helps nothing.
    (0o600, "root", ["crw-------, group root", "may not read and write", "GROUP=\"kvm\", MODE=\"0660\"",
                     "setfacl -m u:$USER:rw /dev/kvm"], ["usermod -aG root"]),
    (0o640, "kvm", ["crw-r-----", "may not read and write", "udev"], ["add this user to group kvm ("]),
    (None, None, ["ls -l /dev/kvm", "if that group may read and write it"], ["usually"]),
])
def test_the_access_hint_names_mode_and_group_and_the_way_that_helps(mode, group, says, not_says):
    hint = readiness.kvm_access_hint(mode, group)
    for text in says:
        assert text in hint, hint
    for text in not_says:
        assert text not in hint, hint


def test_an_unprivileged_users_hint_names_this_nodes_mode_and_group():
    """uid 65534 on this machine: ``capsfast check`` names /dev/kvm's mode
    and group, and where the group may not read and write it (crw-------
    root root here), the udev rule or ACL, not "join the group"."""
    if os.geteuid() != 0:
        pytest.skip("dropping to uid 65534 needs root")
    st = os.stat("/dev/kvm")
    import grp
    group = grp.getgrgid(st.st_gid).gr_name

    def work():
        probing.forget_live()
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            status = cli.main(["check", "--json"])
        return status, json.loads(stdout.getvalue())

    answer = in_child(work, user=NOBODY)
    assert answer[0] == "ok", answer
    status, doc = answer[1]
    if doc["host"]["kvm"]["accessible"]:
        pytest.skip("/dev/kvm is open to uid 65534 here")
    assert status == 1
    kvm = doc["host"]["kvm"]
    assert (kvm["mode"], kvm["group"]) == (st.st_mode & 0o7777, group)
    hint = doc["vmm"]["requirements"][0]["hint"]
    assert readiness.mode_text(st.st_mode) in hint and "group %s" % group in hint, hint
    if st.st_mode & 0o060 != 0o060:
        assert "udev" in hint and "setfacl" in hint and "usermod -aG %s " % group not in hint, hint
    else:
        assert "usermod -aG %s " % group in hint, hint


def recording_with_node(tmp_path, mode, group):
    directory = tmp_path / "recording"
    shutil.copytree(HOSTS / "kvm-no-access", directory, symlinks=True)
    scenario = json.loads((directory / "scenario.json").read_text())
    scenario["devices"]["/dev/kvm"].update(mode=oct(0o20000 | mode), group=group)
    (directory / "scenario.json").write_text(json.dumps(scenario))
    return directory


@pytest.mark.parametrize("mode,group,says,not_says", [
    (0o660, "kvm", ["crw-rw----, group kvm: add this user to group kvm"], ["udev"]),
    (0o600, "root", ["crw-------, group root, and the group may not read and write it", "udev", "setfacl"],
     ["usermod -aG root"]),
])
def test_the_check_report_of_a_recorded_closed_node_names_mode_and_group(tmp_path, mode, group, says, not_says):
    done = run("check", "--replay", str(recording_with_node(tmp_path, mode, group)))
    assert done.returncode == 1, done.stderr
    for text in says:
        assert text in done.stdout, done.stdout
    for text in not_says:
        assert text not in done.stdout, done.stdout
    assert "the group owning /dev/kvm (usually" not in done.stdout
