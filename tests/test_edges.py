"""Edges a new user hit, each run as the user ran it: a whole process, its
exit status, and what it printed."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import capsfast
from capsfast.render import check as report
from scenarios import HOSTS

# A host whose firmware locked VT-x off: check says "not usable", exit 1.
OFF = HOSTS / "intel-bios-off-cpuinfo"
OFF_ARGS = ["--root", str(OFF / "root"), "--cpuid-dump", str(OFF / "cpuid.txt")]
CHECK_OFF = ["check"] + OFF_ARGS


def capsfast_cmd(*args):
    return [sys.executable, "-m", "capsfast", *args]


def run(args, **kwargs):
    kwargs.setdefault("capture_output", True)
    return subprocess.run(capsfast_cmd(*args), text=True, timeout=60, **kwargs)


def one_error_line(stderr, *words):
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("capsfast: "), stderr
    for word in words:
        assert word in lines[0], (word, stderr)
    return lines[0]


# 1. A reader that leaves never changes the exit status.

def run_into_closed_pipe(args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before capsfast writes a byte
    try:
        return subprocess.run(capsfast_cmd(*args), stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)


def test_broken_pipe_keeps_check_not_usable_status():
    assert run(CHECK_OFF).returncode == 1
    done = run_into_closed_pipe(CHECK_OFF)
    assert done.returncode == 1 and done.stderr == ""


def test_broken_pipe_keeps_success_and_says_nothing():
    done = run_into_closed_pipe(["capabilities", "--format", "json"] + OFF_ARGS)
    assert done.returncode == 0 and done.stderr == ""


# 2. Output that cannot be written is one line and exit 2.

@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_full_disk_is_one_line_and_status_2():
    with open("/dev/full", "w") as full:
        done = subprocess.run(capsfast_cmd(*CHECK_OFF), stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 2
    one_error_line(done.stderr, "standard output", os.strerror(28))


def test_closed_stdout_is_one_line_and_status_2():
    cmd = " ".join("'%s'" % a for a in capsfast_cmd(*CHECK_OFF))
    done = subprocess.run(["/bin/sh", "-c", cmd + " >&-"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    one_error_line(done.stderr, "standard output", "closed")


def test_quiet_check_needs_no_stdout():
    cmd = " ".join("'%s'" % a for a in capsfast_cmd(*CHECK_OFF, "-q"))
    done = subprocess.run(["/bin/sh", "-c", cmd + " >&-"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (1, "")


# 3. An empty record directory is bad input.

def test_record_into_empty_name_is_refused(tmp_path):
    done = run(["record", ""], cwd=tmp_path)
    assert done.returncode == 2
    one_error_line(done.stderr, "empty")
    assert list(tmp_path.iterdir()) == []


# 4. Every hint fits the host's architecture.

@pytest.mark.parametrize("args, arch, wanted, unwanted", [
    (["--root", str(HOSTS / "aarch64-no-kvm" / "root")], "aarch64", "EL2", "kvm_intel"),
    (["--root", str(HOSTS / "aarch64-no-kvm" / "root"), "--arch", "aarch64"], "aarch64", "EL2", "kvm_amd"),
    (["--root", str(HOSTS / "intel-bios-off-cpuinfo" / "root"), "--cpuid-dump",
      str(HOSTS / "intel-bios-off-cpuinfo" / "cpuid.txt")], "x86_64", "Intel VT-x", "AMD-V"),
    (["--root", str(HOSTS / "amd-svm-disabled-msr" / "root"), "--cpuid-dump",
      str(HOSTS / "amd-svm-disabled-msr" / "cpuid.txt")], "x86_64", None, "kvm_intel"),
])
def test_hints_fit_the_architecture(args, arch, wanted, unwanted):
    done = run(["check"] + args)
    assert done.returncode == 1, done.stderr
    assert capsfast.probe(**_probe_kwargs(args)).arch == arch
    hints = [line for line in done.stdout.splitlines() if "hint:" in line]
    assert hints, done.stdout
    if wanted:
        assert any(wanted in h for h in hints), hints
    assert not any(unwanted in h for h in hints), hints


def _probe_kwargs(args):
    names = {"--root": "root", "--cpuid-dump": "cpuid", "--arch": "arch"}
    return {names[args[i]]: args[i + 1] for i in range(0, len(args), 2)}


@pytest.mark.parametrize("arch, word", [("ppc64le", "kvm_hv"), ("s390x", "modprobe kvm"),
                                        ("riscv64", "riscv64"), ("x86_64", "kvm_intel")])
def test_missing_kvm_hint_per_architecture(tmp_path, arch, word):
    host = capsfast.probe(root=str(tmp_path), arch=arch)
    text = report.as_text(host)
    assert word in text, text
    if arch != "x86_64":
        assert "kvm_intel" not in text and "kvm_amd" not in text


# 6. Contradicting inputs are bad input.

def test_arch_contradicting_the_dump_is_refused():
    done = run(["check", "--arch", "aarch64", "--cpuid-dump", str(OFF / "cpuid.txt"), "--root", str(OFF / "root")])
    assert done.returncode == 2
    one_error_line(done.stderr, "aarch64", "x86")


def test_dump_on_a_non_x86_root_is_refused(tmp_path):
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "arch").write_text("aarch64\n")
    done = run(["check", "--root", str(tmp_path), "--cpuid-dump", str(OFF / "cpuid.txt")])
    assert done.returncode == 2
    one_error_line(done.stderr, "x86", "aarch64")


# 7. Both spellings of JSON on every command that prints JSON.

@pytest.mark.parametrize("command", [["capabilities"], ["check"], ["export", "ansible"]])
def test_json_and_format_json_are_the_same(command):
    a = run(command + ["--json"] + OFF_ARGS)
    b = run(command + ["--format", "json"] + OFF_ARGS)
    assert a.returncode == b.returncode and a.returncode in (0, 1), a.stderr
    assert json.loads(a.stdout) == json.loads(b.stdout)


def test_check_text_format_is_the_default():
    assert run(CHECK_OFF + ["--format", "text"]).stdout == run(CHECK_OFF).stdout


# The model as users touch it.

def test_capabilities_with_a_format_as_host_is_a_clear_type_error():
    with pytest.raises(TypeError, match="keyword-only"):
        capsfast.capabilities("json")


def test_every_record_converts_to_plain_data():
    host = capsfast.probe(root=str(OFF / "root"), cpuid=str(OFF / "cpuid.txt"))
    data = host.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["kvm"]["failure"] == "missing" and data["hvm"]["status"] == "disabled_by_firmware"
    assert isinstance(data["guests"], list)


def test_os_errors_carry_errno(tmp_path):
    missing = tmp_path / "absent"
    with pytest.raises(capsfast.CapsfastError) as caught:
        capsfast.probe(root=str(missing))
    assert caught.value.errno == 2 and caught.value.strerror == os.strerror(2)
    unreadable = tmp_path / "root" / "proc"
    unreadable.mkdir(parents=True)
    (unreadable / "cpuinfo").mkdir()
    with pytest.raises(capsfast.CapsfastError) as caught:
        capsfast.probe(root=str(tmp_path / "root"), arch="x86_64")
    assert "not a regular file" in str(caught.value) and caught.value.errno is not None


def test_package_names_no_machine_paths():
    package = Path(capsfast.__file__).resolve().parent
    for path in package.rglob("*.py"):
        assert "/work/" not in path.read_text(), path
