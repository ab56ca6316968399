"""capsfast export nfd: every line a valid Kubernetes label, the facts
right, the file and the --every loop as NFD needs them."""
import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import capsfast
from capsfast.cli import main
from capsfast.parts import kvm_caps as caps_part
from capsfast.render import nfd
from capsfast.model import Cpu, CpuModel, Guest, Host, Hvm, Hypervisor, Kqemu, Kvm, Xen
from scenarios import all_scenarios

HOSTS = Path(__file__).resolve().parent.parent / "hosts"

# The Kubernetes rules, written out independently of capsfast's code.
NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN = re.compile(r"%s(\.%s)*\Z" % (DNS_LABEL, DNS_LABEL))


def label_errors(line):
    """Why ``line`` is not ``prefix/name=value`` with a valid label; [] if it is."""
    key, eq, value = line.partition("=")
    errors = []
    if not eq:
        return ["no '='"]
    prefix, slash, name = key.rpartition("/")
    if not slash:
        errors.append("no namespace")
    elif len(prefix) > 253 or not SUBDOMAIN.match(prefix):
        errors.append("bad prefix %r" % prefix)
    if len(name) > 63:
        errors.append("name longer than 63: %r" % name)
    if not NAME.match(name):
        errors.append("bad name %r" % name)
    if len(value) > 63:
        errors.append("value longer than 63: %r" % value)
    if value and not NAME.match(value):
        errors.append("bad value %r" % value)
    return errors


def check_file(text):
    assert text.endswith("\n")
    assert len(text.encode()) <= 64 * 1024
    labels = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        assert label_errors(line) == [], line
        key, _eq, value = line.partition("=")
        assert key not in labels, "label %s twice" % key
        labels[key] = value
    return labels


def sample_host(**changes):
    """A bare-metal Intel host with KVM usable; ``changes`` replace fields."""
    host = Host(
        arch="x86_64",
        cpu=Cpu("GenuineIntel", 6, 58, 9, ("lm", "nx", "pae", "vmx"), "dump", 13, 0x80000008),
        hypervisor=Hypervisor(None, None),
        kvm=Kvm(True, True, True, True, 12, ("kvm_intel", "kvm"), False, None, None, None, 0o660, None),
        kqemu=Kqemu(False),
        xen=Xen(False, None, None, ()),
        hvm=Hvm("vmx", "enabled", "certain", "enabled", ("cpuid.vmx",)),
        guests=(
            Guest("hvm", "x86_64", 64, "/usr/bin/qemu-system-x86_64", ("qemu", "kvm"), ("acpi", "apic"), None, None),
            Guest("hvm", "i686", 32, "/usr/bin/qemu-system-i386", ("qemu", "kvm"), ("pae", "nonpae"), None, None),
        ),
        kernel_flags=("vmx",),
        msr=(),
        kvm_caps=None,
        cpu_model=CpuModel("IvyBridge", "Intel", ("vme", "ss"), (6, 58, 9), 0x21, 36, None, None),
    )
    # The platform part as a host with none of its files read decides it.
    from capsfast.parts.platform import decide, parse

    sec, iommu, devices = decide.decide(parse.Facts({}, {}, {}, {}, None, None), host)
    host = host._replace(security=sec, iommu=iommu, devices=devices)
    return host._replace(**changes)


def labels_of(host, namespace=nfd.DEFAULT_NAMESPACE):
    prefix = namespace + "/"
    return {k[len(prefix):]: v for k, v in check_file(nfd.render(host, namespace)).items()}


def test_the_checker_catches_what_kubernetes_refuses():
    good = "feature.node.kubernetes.io/capsfast-kvm.usable=true"
    assert label_errors(good) == []
    assert label_errors("feature.node.kubernetes.io/%s=true" % ("a" * 63)) == []
    assert label_errors("feature.node.kubernetes.io/%s=true" % ("a" * 64))
    assert label_errors("feature.node.kubernetes.io/capsfast-hypervisor.vendor=Microsoft Hv")
    assert label_errors("feature.node.kubernetes.io/x=" + "v" * 64)
    assert label_errors("feature.node.kubernetes.io/-x=true")
    assert label_errors("feature.node.kubernetes.io/x=true.")
    assert label_errors("Feature.Node/x=true")
    assert label_errors("capsfast-kvm.usable=true")
    assert label_errors("feature.node.kubernetes.io/x=") == []  # empty values are allowed


def test_bare_metal_labels():
    labels = labels_of(sample_host())
    # The platform labels have a test of their own.
    for name, _value in nfd.platform_labels(sample_host()):
        del labels[name]
    assert labels == {
        "capsfast-kvm.usable": "true",
        "capsfast-kvm.accessible": "true",
        "capsfast-kvm.exists": "true",
        "capsfast-kvm.api-version": "12",
        "capsfast-nested.host": "false",
        "capsfast-hvm.type": "vmx",
        "capsfast-hvm.status": "enabled",
        "capsfast-hvm.confidence": "certain",
        "capsfast-hvm.bios-disabled": "false",
        "capsfast-hypervisor.present": "false",
        "capsfast-hypervisor.vendor": "none",
        "capsfast-xen.role": "none",
        # The sample's KVM capabilities are unknown: no VMM can be vouched for.
        "capsfast-vmm.firecracker": "false",
        "capsfast-vmm.cloud-hypervisor": "false",
        "capsfast-vmm.qemu": "false",
        "capsfast-vmm.kata": "false",
        "capsfast-guest.hvm.x86_64.qemu": "true",
        "capsfast-guest.hvm.x86_64.kvm": "true",
        "capsfast-guest.hvm.i686.qemu": "true",
        "capsfast-guest.hvm.i686.kvm": "true",
    }


def test_readiness_and_capabilities_as_labels():
    """One label per VMM (capsfast check --for) and one per KVM capability."""
    caps = tuple((name, 0 if name == "IMMEDIATE_EXIT" else 7) for name in caps_part.KVM_CAP_NAMES)
    host = sample_host(kvm_caps=caps, kernel_flags=("vmx", "lm", "sse4_1"),
                       vmm_modules=(("vhost", True), ("vhost_net", True), ("vhost_vsock", False)))
    labels = labels_of(host)
    assert {k: v for k, v in labels.items() if k.startswith("capsfast-vmm.")} == {
        "capsfast-vmm.firecracker": "true",
        "capsfast-vmm.cloud-hypervisor": "false",  # it needs IMMEDIATE_EXIT
        "capsfast-vmm.qemu": "true",
        "capsfast-vmm.kata": "true",
    }
    assert labels["capsfast-kvm-cap.immediate-exit"] == "0"
    assert labels["capsfast-kvm-cap.max-vcpus"] == "7"
    cap_labels = [k for k in labels if k.startswith("capsfast-kvm-cap.")]
    assert len(cap_labels) == len(caps_part.KVM_CAP_NAMES)


def test_explicit_false_where_kvm_is_off_in_firmware():
    host = sample_host(
        kvm=Kvm(False, False, False, False, None, (), None, None, "missing", "missing", None, None),
        hvm=Hvm("vmx", "disabled_by_firmware", "certain", "disabled", ("msr.feature-control-locked-off",)),
        guests=(Guest("hvm", "x86_64", 64, "/usr/bin/qemu-system-x86_64", ("qemu",), (), None, None),),
    )
    labels = labels_of(host)
    for name in ("capsfast-kvm.usable", "capsfast-kvm.accessible", "capsfast-kvm.exists"):
        assert labels[name] == "false"
    assert labels["capsfast-hvm.bios-disabled"] == "true"
    assert labels["capsfast-hvm.status"] == "disabled_by_firmware"
    assert labels["capsfast-nested.host"] == "unknown"
    assert "capsfast-kvm.api-version" not in labels
    assert "capsfast-guest.hvm.x86_64.kvm" not in labels
    assert labels["capsfast-guest.hvm.x86_64.qemu"] == "true"


@pytest.mark.parametrize("signature,vendor,expected", [
    ("Microsoft Hv", "hyperv", "Microsoft-Hv"),
    (" lrpepyh  vr", "parallels", "lrpepyh-vr"),
    ("___ NVMM ___", "nvmm", "NVMM"),
    ('we"ird\\sig\n', 'we"ird\\sig', "we-ird-sig"),
    ("\ufffd\ufffd", "\ufffd\ufffd", ""),
])
def test_hypervisor_signatures_are_normalised(signature, vendor, expected):
    host = sample_host(hypervisor=Hypervisor(vendor, signature))
    labels = labels_of(host)
    assert labels["capsfast-hypervisor.signature"] == expected
    assert labels["capsfast-hypervisor.present"] == "true"
    if vendor.isalnum():
        assert labels["capsfast-hypervisor.vendor"] == vendor


def test_xen_guests_and_odd_architectures_stay_valid_and_distinct():
    long_arch = "x" * 40 + "_" + "y" * 30
    guests = (
        Guest("xen", "x86_64", 64, None, ("xen",), (), None, None),
        Guest("hvm", "x86_64", 64, None, ("xen",), (), None, None),
        Guest("hvm", long_arch, 64, None, ("qemu", "kvm"), (), None, None),
        Guest("hvm", long_arch + "z", 64, None, ("qemu", "kvm"), (), None, None),
    )
    host = sample_host(xen=Xen(True, "dom0", "xen", ("xen-3.0-x86_64", "hvm-3.0-x86_64")), guests=guests)
    labels = labels_of(host)
    assert labels["capsfast-xen.role"] == "dom0"
    assert labels["capsfast-guest.xen.x86_64.xen"] == "true"
    assert labels["capsfast-guest.hvm.x86_64.xen"] == "true"
    # Four distinct long names, each cut to 63 with a checksum.
    long_names = [n for n in labels if long_arch[:20] in n]
    assert len(long_names) == 4
    assert all(len(n) == 63 for n in long_names)


def test_a_hundred_guests_stay_under_the_nfd_file_limit():
    guests = tuple(Guest("hvm", "arch%d" % i, 64, None, ("qemu", "kvm", "kqemu"), (), None, None) for i in range(100))
    text = nfd.render(sample_host(guests=guests))
    assert len(check_file(text)) > 300


def test_every_scenario_and_this_host_give_valid_labels(tmp_path):
    hosts = [capsfast.probe()] + [s.probe(tmp_path / s.name) for s in all_scenarios()]
    assert len(hosts) > 1
    for host in hosts:
        labels = labels_of(host)
        assert labels["capsfast-kvm.usable"] == ("true" if host.kvm.usable else "false")
        assert labels["capsfast-hvm.status"] == host.hvm.status


def test_namespace_rules():
    assert nfd.valid_namespace("feature.node.kubernetes.io")
    assert nfd.valid_namespace("capsfast.example.com")
    for bad in ("", "Example.com", "a..b", "-a.com", "a_b.com", "a" * 254, "a/b"):
        assert not nfd.valid_namespace(bad), bad
    assert not nfd.nfd_denies("feature.node.kubernetes.io")
    assert not nfd.nfd_denies("vm.feature.node.kubernetes.io")
    assert nfd.nfd_denies("kubernetes.io")
    assert nfd.nfd_denies("node.kubernetes.io")
    assert nfd.nfd_denies("x.k8s.io")
    assert not nfd.nfd_denies("example.com")


def test_expiry_directive_comes_first_in_rfc3339():
    when = time.gmtime(1900000000)
    text = nfd.render(sample_host(), expiry=when)
    first = text.splitlines()[0]
    assert first == "# +expiry-time=2030-03-17T17:46:40Z"
    parsed = datetime.strptime(first.split("=", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert parsed.timestamp() == 1900000000
    assert "+expiry-time" not in nfd.render(sample_host())


def test_cli_writes_the_file_atomically_with_mode_0644(tmp_path, capsys):
    old = os.umask(0o077)
    try:
        assert main(["export", "nfd", "--dir", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    path = tmp_path / "capsfast"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["capsfast"]
    assert path.read_text() == nfd.render(capsfast.probe(refresh=True))
    assert capsys.readouterr().out == ""


def test_cli_creates_a_missing_features_directory_with_mode_0755(tmp_path, capsys):
    # A fresh node: NFD's features.d is not there until something makes it.
    features = tmp_path / "a" / "b"
    old = os.umask(0o077)
    try:
        assert main(["export", "nfd", "--dir", str(features)]) == 0
    finally:
        os.umask(old)
    assert capsys.readouterr() == ("", "")
    check_file((features / "capsfast").read_text())
    for directory in (tmp_path / "a", features):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert sorted(os.listdir(features)) == ["capsfast"]


def test_cli_a_directory_that_cannot_be_made_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["export", "nfd", "--dir", str(tmp_path / "file" / "features.d")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("capsfast: cannot create directory %s: " % (tmp_path / "file"))


def test_cli_prefix_and_stdout(capsys):
    assert main(["export", "nfd", "--stdout", "--prefix", "capsfast.example.com"]) == 0
    labels = check_file(capsys.readouterr().out)
    assert all(k.startswith("capsfast.example.com/capsfast-") for k in labels)


@pytest.mark.parametrize("argv,message", [
    (["--prefix", "Bad Prefix"], "is not a DNS subdomain"),
    (["--prefix", "node.kubernetes.io"], "nfd-worker refuses"),
    (["--every", "0"], "more than 0 and less than 1e9, not '0'"),
    (["--every", "soon"], "more than 0 and less than 1e9, not 'soon'"),
    (["--every", "1e9"], "more than 0 and less than 1e9, not '1e9'"),
    (["--every", "nan"], "more than 0 and less than 1e9, not 'nan'"),
    (["--every", "5", "--stdout"], "cannot be combined"),
    (["--bogus"], "unrecognised option"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(["export", "nfd"] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("capsfast: ") and message in err and err.count("\n") == 1


def test_unknown_export_format(capsys):
    assert main(["export", "puppet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("capsfast: ") and "unknown" in err and "'puppet'" in err and err.count("\n") == 1


def wait_for(predicate, what, limit=30.0):
    """Poll until ``predicate()`` is true; fail after ``limit`` seconds (a
    guard against hanging, not a measurement)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("gave up waiting for " + what)


def read_or_none(path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def every(tmp_path, fmt, interval, *output):
    """``capsfast export FMT --every INTERVAL OUTPUT...`` in a process of its
    own, on a copy of a scenario at ``tmp_path/root`` whose facts the body
    changes: yields (process, root).  After the body the process must stop
    on SIGTERM with status 0 and nothing on stderr; if the body fails it is
    killed."""
    root = tmp_path / "root"
    shutil.copytree(HOSTS / "intel-enabled" / "root", root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "capsfast", "export", fmt, "--every", interval] + list(output)
        + ["--root", str(root), "--cpuid-dump", str(HOSTS / "intel-enabled" / "cpuid.txt")],
        stderr=subprocess.PIPE,
    )
    try:
        yield proc, root
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr.read() == b""


def test_every_follows_the_facts_renews_the_expiry_and_stops_on_sigterm(tmp_path):
    out = tmp_path / "features.d"
    out.mkdir()
    path = out / "capsfast"
    with every(tmp_path, "nfd", "0.1", "--dir", str(out)) as (_proc, root):
        first = wait_for(lambda: read_or_none(path), "the first write")
        expiry = first.splitlines()[0]
        assert expiry.startswith("# +expiry-time=")
        stamp = datetime.strptime(expiry.split("=", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert stamp.timestamp() > time.time()
        assert "capsfast-kvm.exists=true" in first
        # A fact changes: the file follows.
        (root / "dev" / "kvm").unlink()
        changed = wait_for(lambda: "capsfast-kvm.exists=false" in (read_or_none(path) or "") and read_or_none(path),
                           "the file to follow /dev/kvm going away")
        check_file(changed)
        # Nothing changes: the file is still renewed before its expiry (every
        # five beats), with the same labels.
        renewed = wait_for(lambda: (read_or_none(path) or "").splitlines()[:1] != changed.splitlines()[:1]
                           and read_or_none(path), "the expiry to be renewed")
        assert renewed.splitlines()[1:] == changed.splitlines()[1:]
    assert sorted(os.listdir(out)) == ["capsfast"]


def test_export_without_a_format_prints_usage_to_stderr(capsys):
    assert main(["export"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: capsfast export ")
    assert all(fmt in err for fmt in ("nfd", "prometheus", "ansible"))
    assert main(["export", "--help"]) == 0
    assert "usage: capsfast export" in capsys.readouterr().out
