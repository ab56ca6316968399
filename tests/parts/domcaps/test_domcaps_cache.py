"""The QMP transcript cache, with a real (scripted) emulator that counts
its runs and a fake host root: a warm cache runs no process, each key part
invalidates, a corrupt file is ignored and replaced, a failure is never
kept, CAPSFAST_CACHE=off keeps nothing."""
import os
import sys

import pytest

from capsfast import _native
from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import cache, parse

# A QEMU of 7.2 without KVM, as little as libvirt's conversation needs:
# one process.  Each run appends its -machine argument to runs.log beside
# it (where /dev/kvm is usable the probe also starts a TCG process at once,
# dropped when KVM turns out not to be enabled: only the first counts).
STUB = r'''#!%(python)s
import json, os, sys
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.log"), "a").write(sys.argv[sys.argv.index("-machine") + 1] + "\n")
OBJECTS = {
    "qmp_capabilities": {},
    "query-version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
    "query-target": {"arch": "x86_64"},
    "query-kvm": {"enabled": False, "present": False},
}
print(json.dumps({"QMP": {"version": {}, "capabilities": []}}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    name = command["execute"]
    print(json.dumps({"return": OBJECTS.get(name, []), "id": command["id"]}), flush=True)
'''


@pytest.fixture
def host(tmp_path, monkeypatch):
    """(emulator, root, cpu map, runs): a scripted emulator and a fake host."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CAPSFAST_CACHE", raising=False)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    emulator = bindir / "qemu-system-x86_64"
    emulator.write_text(STUB % {"python": sys.executable})
    emulator.chmod(0o755)
    root = tmp_path / "root"
    for path, text in {
        "proc/sys/kernel/osrelease": "6.1.0-13-amd64\n",
        "proc/sys/kernel/version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)\n",
        "proc/cpuinfo": ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
                         "model name\t: Intel(R) Xeon(R)\nstepping\t: 7\nmicrocode\t: 0x5003604\n\n"
                         "processor\t: 1\nmicrocode\t: 0x1\n"),
        "dev/kvm": "",
        "sys/module/kvm_intel/parameters/nested": "N\n",
        "sys/module/kvm_amd/parameters/sev": "0\n",
        "usr/lib/x86_64-linux-gnu/qemu/block-curl.so": "",
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    cpu_map = tmp_path / "cpu_map"
    cpu_map.mkdir()
    (cpu_map / "index.xml").write_text("<cpus/>\n")
    (cpu_map / "x86_Skylake.xml").write_text("<cpus/>\n")
    return str(emulator), str(root), str(cpu_map), bindir / "runs.log"


def _transcript(host):
    emulator, root, cpu_map, _runs = host
    return cache.transcript(emulator, root=root, cpu_map=cpu_map, timeout=20)


def _runs(host):
    runs = host[3]
    return runs.read_text().split().count("none,accel=kvm:tcg") if runs.exists() else 0


def test_warm_cache_runs_no_process(host):
    first = _transcript(host)
    assert _runs(host) == 1
    assert [c["execute"] for c, _r in first.processes[0]][:3] == ["qmp_capabilities", "query-version", "query-target"]
    second = _transcript(host)
    assert _runs(host) == 1
    assert second.processes == first.processes
    # the file is the transcript in libvirt's .replies format, under a key
    text = open(cache.cache_file(host[0])).read()
    assert text.split("\n", 2)[2] == parse.transcript_text(first)


def _touch_binary(emulator, root, cpu_map):
    os.utime(emulator)  # changes its ctime


def _replace_binary(emulator, root, cpu_map):
    text = open(emulator).read()
    os.unlink(emulator)
    with open(emulator, "w") as f:
        f.write(text)
    os.chmod(emulator, 0o755)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


MUTATIONS = {
    "binary touched": _touch_binary,
    "binary replaced": _replace_binary,
    "CPU map file changed": lambda e, r, m: _write(m + "/x86_Skylake.xml", "<cpus><model/></cpus>\n"),
    "CPU map file added": lambda e, r, m: _write(m + "/x86_Icelake.xml", "<cpus/>\n"),
    "kernel release": lambda e, r, m: _write(r + "/proc/sys/kernel/osrelease", "6.1.0-14-amd64\n"),
    "kernel version": lambda e, r, m: _write(r + "/proc/sys/kernel/version", "#1 SMP Debian 6.1.64-1\n"),
    "microcode": lambda e, r, m: _write(r + "/proc/cpuinfo", open(r + "/proc/cpuinfo").read().replace(
        "0x5003604", "0x5003605", 1)),
    "CPU model": lambda e, r, m: _write(r + "/proc/cpuinfo", open(r + "/proc/cpuinfo").read().replace(
        "stepping\t: 7", "stepping\t: 4", 1)),
    "/dev/kvm unusable": lambda e, r, m: os.chmod(r + "/dev/kvm", 0),
    "/dev/kvm gone": lambda e, r, m: os.unlink(r + "/dev/kvm"),
    "KVM nested": lambda e, r, m: _write(r + "/sys/module/kvm_intel/parameters/nested", "Y\n"),
    "SEV enabled": lambda e, r, m: (_write(r + "/sys/module/kvm_amd/parameters/sev", "1\n"),
                                    _write(r + "/dev/sev", "")),
    "QEMU module directory": lambda e, r, m: os.utime(r + "/usr/lib/x86_64-linux-gnu/qemu", (1, 1)),
    "QEMU module directory added": lambda e, r, m: os.makedirs(r + "/usr/lib64/qemu"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_key_part_invalidates(host, name):
    emulator, root, cpu_map, _runs_log = host
    _transcript(host)
    _transcript(host)
    assert _runs(host) == 1
    MUTATIONS[name](emulator, root, cpu_map)
    _transcript(host)
    assert _runs(host) == 2, name
    _transcript(host)  # kept under the new key
    assert _runs(host) == 2, name


def test_sev_needs_both_the_parameter_and_the_device(host):
    emulator, root, cpu_map, _runs_log = host
    _transcript(host)
    _write(root + "/sys/module/kvm_amd/parameters/sev", "1\n")  # no /dev/sev: libvirt's answer unchanged
    _transcript(host)
    assert _runs(host) == 1


def test_capsfast_version_invalidates(host, monkeypatch):
    from capsfast import constants

    _transcript(host)
    monkeypatch.setattr(constants, "__version__", constants.__version__ + ".post1")
    _transcript(host)
    assert _runs(host) == 2


def test_kvm_supported_cpuid_invalidates_but_not_the_apic_id(host, monkeypatch):
    entries = [(0, 0, (0xD, 0x756E6547, 0x6C65746E, 0x49656E69)), (1, 0, (0x50657, 0x00100800, 0xF7FA3223, 0x0F8BFBFF)),
               (0xB, 0, (1, 1, 0x100, 0))]
    answer = [entries]
    monkeypatch.setattr(_native, "kvm_supported_cpuid", lambda path: (_native.OK, answer[0]))
    _transcript(host)
    # the same CPUID asked on another CPU: only the APIC ids differ
    answer[0] = [(0, 0, entries[0][2]), (1, 0, (0x50657, 0x05100800, 0xF7FA3223, 0x0F8BFBFF)), (0xB, 0, (1, 1, 0x100, 5))]
    _transcript(host)
    assert _runs(host) == 1
    answer[0] = [(0, 0, entries[0][2]), (1, 0, (0x50657, 0x00100800, 0xF7FA3223, 0x0F8BFBFE)), (0xB, 0, (1, 1, 0x100, 0))]
    _transcript(host)
    assert _runs(host) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign key", "empty", "binary"])
def test_corrupt_cache_file_is_ignored_and_replaced(host, damage):
    good = _transcript(host)
    path = cache.cache_file(host[0])
    text = open(path).read()
    with open(path, "wb") as f:
        f.write({
            "garbage": b"{nope\n",
            "truncated": text[:len(text) // 2].encode(),
            "foreign key": text.replace('"capsfast"', '"capsfest"', 1).encode(),
            "empty": b"",
            "binary": os.urandom(4096),
        }[damage])
    assert _transcript(host).processes == good.processes
    assert _runs(host) == 2
    assert open(path).read() == text  # replaced by a good file
    _transcript(host)
    assert _runs(host) == 2


def test_a_failure_is_never_cached(host):
    emulator = host[0]
    good = open(emulator).read()
    with open(emulator, "w") as f:
        f.write("#!/bin/sh\necho $6 >> %s\necho 'qemu: no' >&2\nexit 1\n" % host[3])
    with pytest.raises(CapsfastError, match="qemu: no"):
        _transcript(host)
    assert not os.path.exists(cache.cache_file(emulator))
    with pytest.raises(CapsfastError):
        _transcript(host)
    assert _runs(host) == 2  # asked again: nothing was kept
    with open(emulator, "w") as f:
        f.write(good)
    _transcript(host)
    _transcript(host)
    assert _runs(host) == 3


def test_cache_off_keeps_nothing(host, monkeypatch):
    monkeypatch.setenv("CAPSFAST_CACHE", "off")
    _transcript(host)
    _transcript(host)
    assert _runs(host) == 2
    assert not os.path.exists(cache.cache_file(host[0]))


def test_unwritable_cache_directory_only_means_no_cache(host, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    _transcript(host)
    _transcript(host)
    assert _runs(host) == 2


def test_two_emulators_two_files(host, tmp_path):
    other = tmp_path / "bin2" / "qemu-system-x86_64"
    other.parent.mkdir()
    other.write_text(open(host[0]).read())
    other.chmod(0o755)
    assert cache.cache_file(host[0]) != cache.cache_file(str(other))


def test_kvm_supported_cpuid_crossing(tmp_path):
    assert _native.kvm_supported_cpuid(str(tmp_path / "missing"))[0].code == "absent"
    assert _native.kvm_supported_cpuid("/dev/null") == (_native.kvm_supported_cpuid("/dev/null")[0], [])
    assert _native.kvm_supported_cpuid("/dev/null")[0].code == "not_kvm_device"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable here")
    outcome, entries = _native.kvm_supported_cpuid("/dev/kvm")
    assert outcome.ok
    leaves = {leaf for leaf, _sub, _regs in entries}
    assert 0 in leaves and 1 in leaves
    # leaf 0 names the vendor, as CPUID does
    ebx, ecx, edx = next(regs for leaf, sub, regs in entries if leaf == 0)[1:]
    vendor = b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx))
    assert vendor in (b"GenuineIntel", b"AuthenticAMD", b"HygonGenuine", b"CentaurHauls", b"  Shanghai  ")
