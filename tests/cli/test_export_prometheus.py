"""capsfast export prometheus: node_exporter textfile format, accepted by
prometheus_client's parser and by promtool."""
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import capsfast
from capsfast.cli import main
from capsfast.parts import kvm_caps as caps_part
from capsfast.render import prometheus
from capsfast.model import Guest, Hypervisor, Kvm
from test_export_nfd import every, sample_host, wait_for

parser = pytest.importorskip(
    "prometheus_client.parser", reason="prometheus_client is not installed (pip install prometheus_client)"
)

HOSTS = Path(__file__).resolve().parent.parent / "hosts"


def families(text):
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def check_format(text):
    """The textfile rules node_exporter relies on."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    fams = families(text)
    help_seen, type_seen = set(), set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            help_seen.add(line.split()[2])
        elif line.startswith("# TYPE "):
            type_seen.add(line.split()[2])
        else:
            name = line.split("{")[0].split(" ")[0]
            assert name in help_seen and name in type_seen, line
            # name{labels} value: no third field, so no timestamp.
            assert len(line.rsplit("}", 1)[-1].split()) == (1 if "{" in line else 2), line
    assert help_seen == type_seen == set(fams)
    assert all(name.startswith("capsfast_") for name in fams)
    assert all(f.type == "gauge" for f in fams.values())
    return fams


def value(fams, name, **labels):
    matches = [s.value for s in fams[name].samples if s.labels == labels]
    assert len(matches) == 1, (name, labels, fams[name].samples)
    return matches[0]


def test_values_follow_the_host():
    host = sample_host(guests=(
        Guest("hvm", "x86_64", 64, None, ("qemu", "kvm"), (), None, None),
        Guest("hvm", "aarch64", 64, None, ("qemu",), (), None, None),
    ))
    fams = check_format(prometheus.render(host, 0.000123))
    assert value(fams, "capsfast_kvm_usable") == 1
    assert value(fams, "capsfast_kvm_api_version") == 12
    assert value(fams, "capsfast_kvm_nested") == 0
    assert value(fams, "capsfast_kvm_module_loaded", module="kvm_intel") == 1
    assert value(fams, "capsfast_kvm_module_loaded", module="kvm_amd") == 0
    assert value(fams, "capsfast_hvm_info", type="vmx", status="enabled", confidence="certain", bios_setting="enabled") == 1
    assert value(fams, "capsfast_hvm_bios_disabled") == 0
    assert value(fams, "capsfast_hypervisor_info", vendor="none", signature="none") == 1
    assert value(fams, "capsfast_probe_duration_seconds") == pytest.approx(0.000123)
    guests = sorted((s.labels["arch"], s.labels["domain"]) for s in fams["capsfast_guest_info"].samples)
    assert guests == [("aarch64", "qemu"), ("x86_64", "kvm"), ("x86_64", "qemu")]


def test_readiness_and_capabilities_as_metrics():
    caps = tuple((name, 0 if name == "IMMEDIATE_EXIT" else 1) for name in caps_part.KVM_CAP_NAMES)
    fams = check_format(prometheus.render(sample_host(kvm_caps=caps)))
    assert value(fams, "capsfast_vmm_ready", vmm="firecracker") == 1
    assert value(fams, "capsfast_vmm_ready", vmm="cloud-hypervisor") == 0
    assert value(fams, "capsfast_vmm_ready", vmm="qemu") == 1
    assert value(fams, "capsfast_vmm_ready", vmm="kata") == 0  # the sample's flags lack lm, sse4_1
    assert value(fams, "capsfast_kvm_capability", capability="IMMEDIATE_EXIT") == 0
    assert len(fams["capsfast_kvm_capability"].samples) == len(caps_part.KVM_CAP_NAMES)
    # Unknown capabilities are no samples, never zeros.
    fams = check_format(prometheus.render(sample_host(kvm_caps=None)))
    assert fams["capsfast_kvm_capability"].samples == []
    assert value(fams, "capsfast_vmm_ready", vmm="qemu") == 0


def test_unusable_kvm_and_odd_signature_survive_the_parser():
    host = sample_host(
        kvm=Kvm(True, True, False, False, None, (), None, None, "not_accessible", "open: Permission denied", 0o600,
                "root"),
        hypervisor=Hypervisor('od"d\\sig\n', 'od"d\\sig\n'),
        guests=(),
    )
    fams = check_format(prometheus.render(host, 0.5))
    assert value(fams, "capsfast_kvm_usable") == 0
    assert value(fams, "capsfast_kvm_exists") == 1
    assert fams["capsfast_kvm_api_version"].samples == []
    assert value(fams, "capsfast_hypervisor_info", vendor='od"d\\sig\n', signature='od"d\\sig\n') == 1
    assert fams["capsfast_guest_info"].samples == []


def test_help_and_type_lines_never_depend_on_the_host():
    # node_exporter drops a metric whose HELP differs between files.
    def header(text):
        return [line for line in text.splitlines() if line.startswith("#")]

    a = prometheus.render(sample_host(), 1.0)
    b = prometheus.render(sample_host(hypervisor=Hypervisor("kvm", "KVMKVMKVM"), guests=()))
    assert header(a) == header(b)


def test_duration_is_the_only_difference_without_a_time():
    with_time = prometheus.render(sample_host(), 0.25).splitlines()
    without = prometheus.render(sample_host()).splitlines()
    assert [line for line in with_time if line not in without] == ["capsfast_probe_duration_seconds 0.25"]


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return path


def test_promtool_accepts_this_host_and_every_scenario(tmp_path):
    from scenarios import all_scenarios

    texts = [prometheus.render(capsfast.probe(), 0.001)]
    texts += [prometheus.render(s.probe(tmp_path / s.name), 0.001) for s in all_scenarios()]
    texts.append(prometheus.render(sample_host(hypervisor=Hypervisor('od"d\\sig\n', "x y")), 0.001))
    tool = promtool()
    for text in texts:
        check_format(text)
        run = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True)
        assert run.returncode == 0 and run.stdout == run.stderr == b"", (run.stdout, run.stderr, text)


def test_promtool_would_notice_a_broken_file():
    tool = promtool()
    broken = "capsfast_x 1\ncapsfast_x{a=\"1\" 2\n"
    run = subprocess.run([tool, "check", "metrics"], input=broken.encode(), capture_output=True)
    assert run.returncode != 0


def test_cli_prints_or_writes_0644(tmp_path, capsys):
    assert main(["export", "prometheus"]) == 0
    fams = check_format(capsys.readouterr().out)
    assert value(fams, "capsfast_kvm_usable") == (1 if capsfast.probe().kvm.usable else 0)
    path = tmp_path / "capsfast.prom"
    old = os.umask(0o077)
    try:
        assert main(["export", "prometheus", "--file", str(path)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    check_format(path.read_text())
    assert os.listdir(tmp_path) == ["capsfast.prom"]


def test_every_needs_a_file(capsys):
    assert main(["export", "prometheus", "--every", "10"]) == 2
    assert "--every needs --file" in capsys.readouterr().err


def test_every_writes_each_probes_duration_and_stops_on_sigterm(tmp_path):
    path = tmp_path / "capsfast.prom"
    with every(tmp_path, "prometheus", "0.05", "--file", str(path)) as (_proc, root):
        wait_for(path.exists, "the first write")
        first = os.stat(path)
        durations = set()

        def several_durations():
            # Each beat's probe took its own time, and the file says so:
            # the duration is not the first probe's forever.
            fams = check_format(path.read_text())
            durations.add(value(fams, "capsfast_probe_duration_seconds"))
            return len(durations) >= 3

        wait_for(several_durations, "three beats with their own probe durations")
        assert os.stat(path).st_mtime_ns != first.st_mtime_ns
        assert all(0 < d < 60 for d in durations)
        # A fact changes: the next file says so.
        (root / "dev" / "kvm").unlink()
        wait_for(lambda: value(check_format(path.read_text()), "capsfast_kvm_exists") == 0,
                 "the rewrite after /dev/kvm went away")
    assert os.listdir(tmp_path / "root") and sorted(os.listdir(tmp_path)) == ["capsfast.prom", "root"]
