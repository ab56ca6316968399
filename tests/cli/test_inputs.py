"""Inputs that could lead a probe astray: an architecture the live CPU
contradicts, and links in a root that lead out of it."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from scenarios import HOSTS

import capsfast
from capsfast.cli import main

INTEL = HOSTS / "intel-enabled"
MACHINE = os.uname().machine
# An architecture no CPU of this machine's family is.
FOREIGN = "s390x" if MACHINE != "s390x" else "x86_64"


def capsfast_run(*argv):
    return subprocess.run([sys.executable, "-m", "capsfast", *argv], capture_output=True, text=True, timeout=120)


# -- --arch against the live CPU ------------------------------------------------

@pytest.mark.parametrize("command", [["check"], ["check", "-q"], ["capabilities"], ["export", "prometheus"]])
def test_an_arch_the_live_cpu_contradicts_is_bad_input(command):
    done = capsfast_run(*command, "--arch", FOREIGN)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("capsfast: --arch %s contradicts this machine" % FOREIGN), done.stderr
    assert done.stderr.count("\n") == 1
    with pytest.raises(capsfast.CapsfastError, match="contradicts this machine"):
        capsfast.probe(arch=FOREIGN)


def test_the_live_cpus_own_arch_is_taken():
    done = capsfast_run("capabilities", "--json", "--arch", MACHINE)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["host"]["arch"] == json.loads(capsfast_run("capabilities", "--json").stdout)[
        "host"]["arch"]


def test_a_foreign_arch_stays_possible_for_a_root_without_cpuid(tmp_path):
    (tmp_path / "proc").mkdir()
    done = capsfast_run("capabilities", "--json", "--root", str(tmp_path), "--arch", FOREIGN)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["host"]["arch"] == FOREIGN


# -- links inside a root ----------------------------------------------------------

CPUINFO = """processor\t: 0
vendor_id\t: FakeVendorInTheRoot
cpu family\t: 6
model\t\t: 85
model name\t: The root's own CPU
flags\t\t: fpu lm
address sizes\t: 46 bits physical, 48 bits virtual

"""


def linked_root(tmp_path, target):
    """A root whose /proc/cpuinfo, /dev/kvm and /usr/bin/qemu-system-x86_64
    are absolute links named ``target(path)``."""
    root = tmp_path / "a"
    for path in ("/proc/cpuinfo", "/dev/kvm", "/proc/sys/kernel/arch"):
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target(path), root / path.lstrip("/"))
    return root


def test_absolute_links_in_a_root_stay_inside_it(tmp_path):
    """A link to /proc/cpuinfo inside the root is the root's /proc/cpuinfo
    (itself: a loop, so nothing), never this machine's; /dev/kvm likewise."""
    root = linked_root(tmp_path, lambda path: path)
    done = capsfast_run("capabilities", "--json", "--root", str(root), "--arch", "x86_64")
    assert done.returncode == 0, done.stderr
    host = json.loads(done.stdout)["host"]
    assert host["cpu"]["source"] == "none" and host["cpu"]["vendor"] is None
    assert host["kvm"]["usable"] is False and host["kvm"]["exists"] is False
    check = capsfast_run("check", "--root", str(root), "--arch", "x86_64")
    assert check.returncode == 1 and "QEMU can run" not in check.stdout, check.stdout


def test_links_in_a_root_resolve_as_a_chroot_would(tmp_path):
    """An absolute link names a file of the root; '..' stops at the root."""
    root = linked_root(tmp_path, lambda path: "/../../../../elsewhere" + path)
    (root / "elsewhere/proc/sys/kernel").mkdir(parents=True)
    (root / "elsewhere/proc/cpuinfo").write_text(CPUINFO)
    (root / "elsewhere/proc/sys/kernel/arch").write_text("x86_64\n")
    done = capsfast_run("capabilities", "--json", "--root", str(root))
    assert done.returncode == 0, done.stderr
    host = json.loads(done.stdout)["host"]
    assert host["arch"] == "x86_64"
    assert host["cpu"]["source"] == "cpuinfo" and host["cpu"]["vendor"] == "FakeVendorInTheRoot"
    assert host["kvm"]["exists"] is False


def test_a_linked_directory_in_a_root_resolves_inside_it(tmp_path):
    root = tmp_path / "a"
    (root / "data").mkdir(parents=True)
    (root / "data/cpuinfo").write_text(CPUINFO)
    os.symlink("/data", root / "proc")  # the whole /proc directory
    done = capsfast_run("capabilities", "--json", "--root", str(root), "--arch", "x86_64")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["host"]["cpu"]["vendor"] == "FakeVendorInTheRoot"


# -- a recording's faults are said as the recording's ------------------------------

def broken_recording(tmp_path, arch, dump_text=None):
    directory = tmp_path / "recording"
    directory.mkdir()
    shutil.copytree(INTEL / "root", directory / "root", symlinks=True)
    shutil.copy(INTEL / "cpuid.txt", directory / "cpuid.txt")
    if dump_text is not None:
        (directory / "cpuid.txt").write_text(dump_text)
    scenario = json.loads((INTEL / "scenario.json").read_text())
    scenario["arch"] = arch
    (directory / "scenario.json").write_text(json.dumps(scenario))
    return directory


def replayed(directory, through_stdin):
    if not through_stdin:
        return capsfast_run("check", "--replay", str(directory))
    tar = subprocess.run(["tar", "-C", str(directory), "-cf", "-", "cpuid.txt", "root", "scenario.json"],
                         capture_output=True, check=True).stdout
    return subprocess.run([sys.executable, "-m", "capsfast", "check", "--replay", "-"], input=tar,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("through_stdin", [False, True], ids=["directory", "stream"])
@pytest.mark.parametrize("arch,dump_text,says", [
    ("aarch64", None, "its architecture aarch64 contradicts its CPUID walk (cpuid.txt)"),
    ("x86_64", "garbage\n", "CPUID dump "),
])
def test_a_recordings_fault_names_the_recording_not_a_flag_or_a_gone_directory(tmp_path, through_stdin, arch,
                                                                                dump_text, says):
    directory = broken_recording(tmp_path, arch, dump_text)
    done = replayed(directory, through_stdin)
    err = done.stderr if isinstance(done.stderr, str) else done.stderr.decode()
    assert done.returncode == 2 and err.count("\n") == 1, err
    name = "standard input" if through_stdin else str(directory)
    assert err.startswith("capsfast: replay %s: " % name) and says in err, err
    assert "--arch" not in err and "capsfast-remote-" not in err and "/tmp/" not in err.replace(str(tmp_path), "")
