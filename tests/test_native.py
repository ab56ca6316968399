"""The C module checked field by field against values read another way."""
import errno
import os
import shutil
import stat
import subprocess

import pytest

from capsfast import _native
from capsfast.parts.core import parse
from capsfast import host as probing

X86 = os.uname().machine in ("x86_64", "i686", "i586", "i386")


def run_files(specs, kvm_path=None, want_cpu=False, deep=False):
    """(cpu, kvm, files) of one crossing; specs may leave out ``after``."""
    specs = [tuple(spec) + (None,) * (5 - len(spec)) for spec in specs]
    results = _native.Batch(kvm_path, specs).run(want_cpu, deep)
    return results.cpu, results.kvm, results.files


def cpuinfo_first_block():
    with open("/proc/cpuinfo") as f:
        text = f.read()
    block = text.split("\n\n")[0]
    return dict((k.strip(), v.strip()) for k, _s, v in (line.partition(":") for line in block.splitlines()))


@pytest.mark.skipif(not X86, reason="CPUID exists on x86 only")
def test_cpuid_leaves_agree_with_kernel_flags():
    leaves, _kvm, _files = run_files([], want_cpu=True)
    assert leaves is not None
    decoded = parse.cpu_from_leaves(leaves, "cpuid")
    block = cpuinfo_first_block()
    flags = set(block["flags"].split())
    assert decoded.vendor == block["vendor_id"]
    assert decoded.family == int(block["cpu family"])
    assert decoded.model == int(block["model"])
    # The kernel may hide vmx (firmware lock) but never invents these.
    for name in ("pae", "lm", "nx", "hypervisor", "svm"):
        assert (name in decoded.features) == (name in flags), name
    if "vmx" in flags:
        assert "vmx" in decoded.features


@pytest.mark.skipif(not X86, reason="CPUID exists on x86 only")
@pytest.mark.skipif(shutil.which("cpuid") is None, reason="the Debian package 'cpuid' is not installed")
def test_cpuid_leaves_agree_with_the_cpuid_tool():
    leaves, _kvm, _files = run_files([], want_cpu=True)
    out = subprocess.run(["cpuid", "-r", "-1"], capture_output=True, text=True, check=True).stdout
    table = parse.parse_dump(out, "cpuid -r -1")
    tool = parse.gate(lambda leaf: table.get(leaf, parse.ZERO))
    for slot in range(len(parse.LEAVES)):
        if slot == parse.BASIC1:
            # EBX holds the APIC id of whichever CPU ran the instruction.
            mine, theirs = leaves[slot], tool[slot]
            assert (mine[0], mine[2], mine[3]) == (theirs[0], theirs[2], theirs[3])
        else:
            assert leaves[slot] == tool[slot], hex(parse.LEAVES[slot])


@pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="this machine has no /dev/kvm")
def test_kvm_device_fields_agree_with_os_calls():
    _cpu, kvm, _files = run_files([], kvm_path="/dev/kvm")
    st = os.stat("/dev/kvm")
    assert kvm.stat.ok and kvm.mode == st.st_mode
    assert stat.S_ISCHR(kvm.mode)
    assert kvm.access.ok == os.access("/dev/kvm", os.R_OK | os.W_OK, effective_ids=True)
    if kvm.access.ok:
        import fcntl

        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        try:
            assert kvm.api_version == fcntl.ioctl(fd, 0xAE00, 0)
        finally:
            os.close(fd)
        assert kvm.open.ok and kvm.api_call.ok
    else:
        assert kvm.open.code == "denied" and kvm.access.code == "denied"
        assert kvm.api_version is None and kvm.api_call.code == "not_tried"
    assert kvm.create_vm.code == "not_tried"  # not asked for


def test_missing_kvm_device_is_data(tmp_path):
    _cpu, kvm, _files = run_files([], kvm_path=str(tmp_path / "kvm"))
    assert kvm.stat.code == "absent" and kvm.stat.reason == os.strerror(errno.ENOENT)
    assert kvm.open.code == "not_tried" and kvm.api_call.code == "not_tried" and kvm.api_version is None


def test_regular_file_kvm_is_never_opened(tmp_path):
    fake = tmp_path / "kvm"
    fake.write_bytes(b"")
    _cpu, kvm, _files = run_files([], kvm_path=str(fake), deep=True)
    assert kvm.stat.ok and stat.S_ISREG(kvm.mode)
    assert (kvm.access.code, kvm.open.code, kvm.create_vm.code) == ("not_tried",) * 3


def test_outcomes_carry_their_errno_into_errors(tmp_path):
    _cpu, _kvm, (result,) = run_files([(str(tmp_path / "f" / "x"), _native.STAT, 0, 0)])
    assert result.outcome.code == "absent"
    error = result.outcome.error("cannot read it")
    assert error.errno == errno.ENOENT and str(error) == "cannot read it: " + os.strerror(errno.ENOENT)


def test_file_operations(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"control_d\n")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_bytes(b"processor\t: 0\nflags\t\t: fpu vmx\n\nprocessor\t: 1\n" + b"y" * 50000)
    msr = tmp_path / "msr"
    with open(msr, "wb") as f:
        f.seek(0x3A)
        f.write((0x5).to_bytes(8, "little"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    specs = [
        (str(small), _native.STAT, 0, 0),
        (str(small), _native.READ, 0, 64),
        (str(big), _native.READ, 0, 10),
        (str(cpuinfo), _native.READ_BLOCK, 0, 4096),
        (str(msr), _native.MSR, 0x3A, 0),
        (str(msr), _native.MSR, 0xC0010114, 0),
        (str(tmp_path), _native.READ, 0, 64),
        (str(fifo), _native.READ, 0, 64),
        (str(tmp_path / "absent"), _native.READ, 0, 64),
        (str(small / "under-a-file"), _native.STAT, 0, 0),
    ]
    _cpu, _kvm, out = run_files(specs)
    assert out[0].outcome.ok and out[0].mode == os.stat(small).st_mode
    assert out[1].outcome.ok and out[1].data == b"control_d\n" and out[1].truncated is False
    assert out[2].data == b"x" * 10 and out[2].truncated is True
    # The block read stops at the first blank line, far short of the file.
    data = out[3].data
    assert data.startswith(b"processor\t: 0\nflags\t\t: fpu vmx\n\n") and len(data) < 4096
    assert out[4].outcome.ok and out[4].value == 5
    assert out[5].outcome.code == "too_short" and out[5].value is None  # the file ends before that offset
    assert out[6].outcome.code == "not_a_file" and out[6].outcome.reason == "not a regular file (a directory)"
    assert out[7].outcome.code == "not_a_file" and stat.S_ISFIFO(out[7].mode)  # and it did not block
    assert out[8].outcome.code == "absent" and out[8].data is None
    assert out[9].outcome.code == "failed" and out[9].outcome.reason == os.strerror(errno.ENOTDIR)


@pytest.mark.skipif(not X86, reason="CPUID exists on x86 only")
def test_cpuid_count_is_what_design_allows(fresh_process_state):
    before = _native.cpuid_executed()
    host = probing.probe()
    first = _native.cpuid_executed() - before
    leaves = probing.live_leaves()
    # Leaves 0, 1 and 0x80000000 always; 0x80000001 only if 0x80000000
    # allows it; 0x40000000 only with the hypervisor bit.
    expected = 3 + (leaves[parse.EXT0][0] >= 0x80000001) + ("hypervisor" in host.cpu.features)
    assert first == expected <= 5
    probing.probe(refresh=True)
    probing.probe(deep=True)
    probing.kvm_usable()
    assert _native.cpuid_executed() - before == first  # the CPU is read once per process


def test_abi_matches():
    assert _native.lib.CAPSFAST_ABI == _native.ABI
    assert _native.HAS_CPUID == X86
