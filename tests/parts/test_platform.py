"""Confidential computing, the IOMMU and the rest of virt-host-validate's
QEMU checks: the scenario hosts' hand-written check levels, bad input,
unprivileged runs, this machine against an independent reading and
against virt-host-validate, and the default path never paying for it."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from forked import in_child
from scenarios import HOSTS, all_scenarios, check_golden

import capsfast
from capsfast.parts.platform import read as platform
from capsfast import host as probing
from capsfast.render import check as report
from capsfast.parts.platform import decide as security
from capsfast.parts.platform import parse as facts_parse
from capsfast.cli import main

NOBODY = (65534, 65534)
PLATFORM_SCENARIOS = [s for s in all_scenarios() if "expect_check" in json.loads(
    (s.dir / "scenario.json").read_text())]


def levels(host):
    return {name: level for name, level, _detail, _hint in report.platform_steps(host)}


@pytest.mark.parametrize("platform_host", PLATFORM_SCENARIOS, ids=lambda s: s.name)
def test_scenario_check_levels(platform_host):
    """The levels each check takes, written by hand from the rules."""
    want = json.loads((platform_host.dir / "scenario.json").read_text())["expect_check"]
    got = levels(platform_host.probe())
    assert {name: got.get(name) for name in want} == want


@pytest.mark.parametrize("platform_host", PLATFORM_SCENARIOS, ids=lambda s: s.name)
def test_scenario_check_golden(platform_host):
    host = platform_host.probe()
    check_golden(platform_host.dir / "expected-check.txt", report.as_text(host))


def test_the_required_hosts_are_there():
    names = {s.name for s in PLATFORM_SCENARIOS}
    assert {"amd-sev-snp", "amd-sev-firmware-off", "amd-sev-kvm-off", "amd-sev-no-dev", "intel-tdx",
            "intel-tdx-kvm-off", "intel-sgx", "s390x-secure-execution", "amd-sev-guest"} <= names
    statuses = set()
    for s in PLATFORM_SCENARIOS:
        sec = s.probe().security
        statuses.update(getattr(sec, t).status for t in security.TECHS)
    assert set(security.STATUSES) <= statuses


def test_sev_numbers_as_libvirt_computes_them():
    sev = capsfast.probe(replay=str(HOSTS / "amd-sev-snp")).security.sev
    # CPUID 0x8000001F: EBX 0x1073 (C-bit 51, 1 bit lost), ECX 509, EDX 100.
    assert (sev.cbitpos, sev.reduced_phys_bits, sev.max_guests, sev.max_es_guests) == (51, 1, 410, 99)


# -- bad input --------------------------------------------------------------------

def _copy(tmp_path, name):
    target = tmp_path / name
    shutil.copytree(HOSTS / name, target, symlinks=True)
    return target


@pytest.mark.parametrize("raw, status, confidence", [
    (b"Y\n", "enabled", "certain"),
    (b"1", "enabled", "certain"),
    (b"y", "enabled", "certain"),
    (b"N", "disabled_in_kernel", "certain"),
    (b"0\n", "disabled_in_kernel", "certain"),
    (b"garbage\n", "unknown", "unknown"),
    (b"", "unknown", "unknown"),
    (b"\xff\xfe\n", "unknown", "unknown"),
    (b"YES", "unknown", "unknown"),
])
def test_module_parameter_values(tmp_path, raw, status, confidence):
    rec = _copy(tmp_path, "amd-sev-snp")
    (rec / "root/sys/module/kvm_amd/parameters/sev").write_bytes(raw)
    sev = capsfast.probe(replay=str(rec)).security.sev
    assert (sev.status, sev.confidence) == (status, confidence)


def test_a_huge_misc_capacity_is_ignored_not_an_error(tmp_path):
    rec = _copy(tmp_path, "amd-sev-snp")
    (rec / "root/sys/fs/cgroup/misc.capacity").write_bytes(b"sev 410\n" * 200000)
    sev = capsfast.probe(replay=str(rec)).security.sev
    assert sev.status == "enabled" and not any(e.startswith("misc.") for e in sev.evidence)
    (rec / "root/sys/fs/cgroup/misc.capacity").write_bytes(b"sev 99999999999999999999999999\n")
    assert facts_parse.misc_capacity(facts_parse.Facts({"misc.capacity": ("ok", b"sev 99999999999999999999999999\n")},
                                                       {}, {}, {}, None, None)) is None


def test_prot_virt_host_a_directory_is_unknown(tmp_path, capsys):
    rec = _copy(tmp_path, "s390x-secure-execution")
    target = rec / "root/sys/firmware/uv/prot_virt_host"
    target.unlink()
    target.mkdir()
    pv = capsfast.probe(replay=str(rec)).security.s390_pv
    assert (pv.status, pv.confidence) == ("unknown", "unknown")
    assert main(["check", "--replay", str(rec)]) == 1  # no KVM in the recording; no error either
    out = capsys.readouterr()
    assert "IBM Secure Execution" in out.out and out.err == ""


def test_unreadable_files_are_unknown_for_an_unprivileged_user(tmp_path):
    """As uid 65534: no check needs root, and what cannot be read is
    "unknown", never "no"."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to uid 65534")
    import tempfile
    from pathlib import Path

    top = Path(tempfile.mkdtemp(prefix="capsfast-sec-"))  # pytest's own tmp is root-only
    try:
        rec = _copy(top, "amd-sev-snp")
        clean = _copy(top / "clean", "amd-sev-snp")
        for d, dirs, files in os.walk(top):
            os.chmod(d, 0o755)
            for name in files:
                os.chmod(os.path.join(d, name), 0o644)
        os.chmod(rec / "root/sys/module/kvm_amd/parameters/sev", 0)
        os.chmod(rec / "root/sys/kernel/iommu_groups", 0)
        outcome = in_child(lambda: _blocked_and_clean(rec, clean), user=NOBODY)
    finally:
        shutil.rmtree(top)
    assert outcome == ("ok", ("unknown", "unknown", "unknown", "enabled", "enabled", True)), outcome


def _blocked_and_clean(rec, clean):
    blocked = capsfast.probe(replay=str(rec))
    readable = capsfast.probe(replay=str(clean))
    return (blocked.security.sev.status, blocked.security.sev.confidence, blocked.iommu.status,
            readable.security.sev.status, readable.iommu.status, report.as_text(blocked).count("\n") > 10)




def test_the_live_host_unprivileged_gives_verdicts():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to uid 65534")

    def work():
        host = capsfast.probe(refresh=True)
        return [getattr(host.security, t).status for t in security.TECHS] + [host.iommu.status]

    root_view = capsfast.probe(refresh=True)
    outcome = in_child(work, user=NOBODY)
    assert outcome[0] == "ok", outcome
    assert outcome[1] == [getattr(root_view.security, t).status for t in security.TECHS] + [root_view.iommu.status]


# -- cost: never on the default path ------------------------------------------------

@pytest.fixture
def tripwire(monkeypatch):
    calls = []

    def wire(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the platform facts were read")

    monkeypatch.setattr(platform, "gather", wire)
    return calls


def test_the_default_path_never_reads_the_platform(tripwire, capsys):
    probing.forget_live()
    host = capsfast.probe()
    capsfast.probe(refresh=True)
    capsfast.kvm_usable()
    capsfast.capabilities(host, format="libvirt")
    capsfast.capabilities(host, format="draft")
    assert main(["check", "-q"]) in (0, 1)
    assert tripwire == []


def test_one_read_serves_all_three_parts(monkeypatch):
    calls = []
    real = platform.gather

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(platform, "gather", counting)
    host = capsfast.probe(replay=str(HOSTS / "intel-tdx"))
    host.security, host.iommu, host.devices, host.security
    assert len(calls) == 1


# -- this machine -----------------------------------------------------------------

def _independent():
    """The files themselves, read here without capsfast."""
    def exists(path):
        return os.path.exists(path)

    groups = os.listdir("/sys/kernel/iommu_groups") if os.path.isdir("/sys/kernel/iommu_groups") else []
    tables = [t for t in ("DMAR", "IVRS", "IORT") if exists("/sys/firmware/acpi/tables/" + t)]
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    return groups, tables, flags


def test_this_machine_against_the_files():
    host = capsfast.probe(refresh=True)
    groups, tables, flags = _independent()
    assert host.iommu.groups == len(groups)
    assert host.iommu.acpi_table == (tables[0] if tables else None)
    assert host.iommu.status == ("enabled" if groups else "disabled_in_kernel" if tables else "absent")
    assert (host.devices.vhost_net, host.devices.tun, host.devices.vhost_vsock) == tuple(
        os.path.exists(p) for p in ("/dev/vhost-net", "/dev/net/tun", "/dev/vhost-vsock"))
    assert host.iommu.vfio == os.path.exists("/dev/vfio/vfio")
    for tech in ("sev", "sev_es", "sev_snp"):
        # Enabled only where the kernel shows the flag and /dev/sev exists.
        if getattr(host.security, tech).status == "enabled":
            assert tech in flags and os.path.exists("/dev/sev")
        if tech not in flags and host.hypervisor.vendor is None and host.cpu.vendor == "AuthenticAMD":
            assert getattr(host.security, tech).status != "enabled"
    assert (host.security.sgx.status == "enabled") <= ("sgx" in flags and os.path.exists("/dev/sgx_vepc"))
    if host.arch != "s390x":
        assert host.security.s390_pv.status == "unsupported"


def _vhv_lines():
    tool = shutil.which("virt-host-validate")
    if tool is None:
        pytest.skip("virt-host-validate is not installed")
    run = subprocess.run([tool, "qemu"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, LC_ALL="C"))
    found = {}
    for line in run.stdout.splitlines():
        m = re.match(r"\s*QEMU: Checking (.*?)\s*: (PASS|WARN|FAIL|NOTE)(?: \((.*)\))?$", line)
        if m:
            found[m.group(1)] = (m.group(2), m.group(3))
    return found


def test_this_machine_against_virt_host_validate():
    """Each line virt-host-validate prints has capsfast's counterpart: the
    same level where virt-host-validate is right, and a named reason where
    it is not."""
    vhv = _vhv_lines()
    host = capsfast.probe(refresh=True)
    ours = levels(host)
    same = {
        "if device /dev/vhost-net exists": "/dev/vhost-net exists",
        "if device /dev/net/tun exists": "/dev/net/tun exists",
    }
    for name in ("memory", "cpu", "cpuacct", "cpuset", "devices", "blkio"):
        same["for cgroup '%s' controller support" % name] = "cgroup '%s' controller" % name
    for theirs, mine in same.items():
        assert vhv[theirs][0] == ours[mine], (theirs, vhv[theirs], ours[mine])
    groups, tables, flags = _independent()
    hw = vhv["for hardware virtualization"][0]
    if "vmx" not in flags and "svm" not in flags and host.kvm.usable:
        # virt-host-validate reads only /proc/cpuinfo for vmx/svm: with a
        # software KVM (kvm_pvm) it fails the host that capsfast finds KVM
        # usable on, and it skips its /dev/kvm checks.
        assert hw == "FAIL" and "kvm_pvm" in host.kvm.modules
        assert ours["KVM without VT-x/AMD-V"] == "PASS"
    else:
        assert (hw == "PASS") == (host.hvm.status == "enabled")
    if "vmx" not in flags and "svm" not in flags:
        # It keys the IOMMU vendor off vmx/svm in /proc/cpuinfo, so without
        # them it can only say "Unknown"; capsfast reads the ACPI tables.
        assert vhv["for device assignment IOMMU support"] == (
            "WARN", "Unknown if this platform has IOMMU support")
        assert ours["device assignment IOMMU support"] == ("PASS" if tables else "WARN")
        assert host.iommu.status != "unknown"
    # Secure guests: it knows SEV (from the cpuinfo flag) and s390 only.
    secure = vhv["for secure guest support"][0]
    assert secure == ours["secure guest support"] or ("sev" not in flags and host.security.tdx.status == "enabled")


def test_record_then_replay_answers_as_this_machine(tmp_path, capsys):
    target = tmp_path / "rec"
    assert main(["record", str(target)]) == 0
    live = capsfast.probe(refresh=True)
    replayed = capsfast.probe(replay=str(target))
    assert replayed.security == live.security
    assert replayed.iommu == live.iommu
    assert replayed.devices == live.devices
    capsys.readouterr()
    assert main(["check", "--json", "--replay", str(target)]) in (0, 1)
    from_replay = json.loads(capsys.readouterr().out)
    assert main(["check", "--json"]) in (0, 1)
    from_live = json.loads(capsys.readouterr().out)
    assert from_replay["steps"] == from_live["steps"]


def test_check_json_carries_the_levels(capsys):
    assert main(["check", "--json", "--replay", str(HOSTS / "intel-tdx-kvm-off")]) == 1
    doc = json.loads(capsys.readouterr().out)
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["IOMMU enabled by the kernel"]["level"] == "WARN"
    assert steps["IOMMU enabled by the kernel"]["hint"] == "add intel_iommu=on to the kernel command line"
    assert steps["Intel TDX"]["ok"] is False and steps["/dev/net/tun exists"]["ok"] is True
    assert doc["host"]["security"]["tdx"]["status"] == "disabled_in_kernel"


def test_check_as_a_process_piped():
    run = subprocess.run([sys.executable, "-m", "capsfast", "check", "--replay", str(HOSTS / "amd-sev-snp")],
                         capture_output=True, text=True, timeout=60)
    assert run.stderr == ""
    assert "AMD SEV-SNP" in run.stdout and "secure guest support" in run.stdout


def test_import_and_the_default_probe_load_none_of_it():
    """capsfast.parts.platform.read, parse and decide are imported on first use."""
    code = ("import sys, capsfast; capsfast.probe(); capsfast.kvm_usable(); "
            "print(sorted(m for m in sys.modules if m in ('capsfast.parts.platform.read', "
            "'capsfast.parts.platform.parse', 'capsfast.parts.platform.decide')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "[]", run.stdout + run.stderr


@pytest.mark.parametrize("loaded, level", [(True, "PASS"), (False, "WARN")])
def test_power_kvm_hv_as_virt_host_validate(tmp_path, loaded, level):
    """ppc64: virt-host-validate warns unless kvm_hv is loaded; so does check."""
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text("processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\n\n")
    if loaded:
        (root / "sys/module/kvm_hv").mkdir(parents=True)
    host = capsfast.probe(root=str(root), arch="ppc64le")
    assert host.devices.kvm_hv is loaded
    rows = levels(host)
    assert rows["PowerPC KVM module kvm_hv loaded"] == level
    assert rows["device assignment IOMMU support"] == "PASS"  # as virt-host-validate on ppc64
    assert host.security.sev.status == "unsupported" and host.security.s390_pv.status == "unsupported"


@pytest.mark.parametrize("pci, level, detail", [
    (None, "NOTE", "skipped: no PCI support"),
    ([], "NOTE", "skipped: no PCI devices are online"),
    (["0000:00:00.0"], "PASS", "PCI devices online"),
])
def test_s390x_iommu_line_as_virt_host_validate(tmp_path, pci, level, detail):
    """s390x: virt-host-validate skips device assignment (NOTE) without PCI
    devices online; with some, it passes and checks the groups."""
    rec = _copy(tmp_path, "s390x-secure-execution")
    if pci is not None:
        (rec / "root/sys/bus/pci/devices").mkdir(parents=True)
        (rec / "root/sys/bus/pci/devices/.present").write_text("")
        for name in pci:
            (rec / "root/sys/bus/pci/devices" / name).mkdir()
    host = capsfast.probe(replay=str(rec))
    rows = {name: (lv, d) for name, lv, d, _hint in report.platform_steps(host)}
    assert rows["device assignment IOMMU support"] == (level, detail)
