"""The C module checked field by field against values read another way."""
import errno
import os
import shutil
import stat
import subprocess

import pytest

import importlib

from capsfast import _native, cpuid

probe_mod = importlib.import_module("capsfast.probe")

X86 = os.uname().machine in ("x86_64", "i686", "i586", "i386")


def run_files(specs, kvm_path=None, want_cpu=False, deep=False):
    batch = _native.Batch(kvm_path, specs)
    return batch.run(want_cpu, deep)


def cpuinfo_first_block():
    with open("/proc/cpuinfo") as f:
        text = f.read()
    block = text.split("\n\n")[0]
    return dict((k.strip(), v.strip()) for k, _s, v in (line.partition(":") for line in block.splitlines()))


@pytest.mark.skipif(not X86, reason="CPUID exists on x86 only")
def test_cpuid_leaves_agree_with_kernel_flags():
    leaves, _kvm, _files = run_files([], want_cpu=True)
    assert leaves is not None
    decoded = cpuid.decode(leaves, "cpuid")
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
    table = cpuid.parse_dump(out, "cpuid -r -1")
    tool = cpuid.gate(lambda leaf: table.get(leaf, cpuid.ZERO))
    for slot in range(len(cpuid.LEAVES)):
        if slot == cpuid.BASIC1:
            # EBX holds the APIC id of whichever CPU ran the instruction.
            mine, theirs = leaves[slot], tool[slot]
            assert (mine[0], mine[2], mine[3]) == (theirs[0], theirs[2], theirs[3])
        else:
            assert leaves[slot] == tool[slot], hex(cpuid.LEAVES[slot])


@pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="this machine has no /dev/kvm")
def test_kvm_device_fields_agree_with_os_calls():
    _cpu, kvm, _files = run_files([], kvm_path="/dev/kvm")
    stat_err, mode, access_err, open_err, api_version, create_vm = kvm
    st = os.stat("/dev/kvm")
    assert stat_err == 0 and mode == st.st_mode
    assert stat.S_ISCHR(mode)
    assert (access_err == 0) == os.access("/dev/kvm", os.R_OK | os.W_OK, effective_ids=True)
    if access_err == 0:
        import fcntl

        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        try:
            assert api_version == fcntl.ioctl(fd, 0xAE00, 0)
        finally:
            os.close(fd)
        assert open_err == 0
    assert create_vm == 0  # not asked for


def test_missing_kvm_device_is_data(tmp_path):
    _cpu, kvm, _files = run_files([], kvm_path=str(tmp_path / "kvm"))
    assert kvm[0] == -errno.ENOENT
    assert kvm[3] == 1 and kvm[4] == _native.API_VERSION_NOT_TRIED


def test_regular_file_kvm_is_never_opened(tmp_path):
    fake = tmp_path / "kvm"
    fake.write_bytes(b"")
    _cpu, kvm, _files = run_files([], kvm_path=str(fake), deep=True)
    assert kvm[0] == 0 and stat.S_ISREG(kvm[1])
    assert kvm[2] == 1 and kvm[3] == 1 and kvm[5] == 0


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
        (str(small), _native.OP_STAT, 0, 0),
        (str(small), _native.OP_READ, 0, 64),
        (str(big), _native.OP_READ, 0, 10),
        (str(cpuinfo), _native.OP_READ_BLOCK, 0, 4096),
        (str(msr), _native.OP_MSR, 0x3A, 0),
        (str(msr), _native.OP_MSR, 0xC0010114, 0),
        (str(tmp_path), _native.OP_READ, 0, 64),
        (str(fifo), _native.OP_READ, 0, 64),
        (str(tmp_path / "absent"), _native.OP_READ, 0, 64),
        (str(small / "under-a-file"), _native.OP_STAT, 0, 0),
    ]
    _cpu, _kvm, out = run_files(specs)
    assert out[0][:2] == (0, os.stat(small).st_mode)
    assert out[1][0] == 0 and out[1][2] == b"control_d\n" and out[1][3] is False
    assert out[2][2] == b"x" * 10 and out[2][3] is True
    # The block read stops at the first blank line, far short of the file.
    data = out[3][2]
    assert data.startswith(b"processor\t: 0\nflags\t\t: fpu vmx\n\n") and len(data) < 4096
    assert out[4][0] == 0 and out[4][4] == 5
    assert out[5][0] == -errno.ENODATA  # the file ends before that offset
    assert out[6][0] == -errno.EISDIR
    assert out[7][0] == -errno.EINVAL and stat.S_ISFIFO(out[7][1])  # and it did not block
    assert out[8][0] == -errno.ENOENT
    assert out[9][0] == -errno.ENOTDIR


@pytest.mark.skipif(not X86, reason="CPUID exists on x86 only")
def test_cpuid_count_is_what_design_allows(fresh_process_state):
    before = _native.cpuid_executed()
    host = probe_mod.probe()
    first = _native.cpuid_executed() - before
    leaves = probe_mod._live_cpu.leaves
    # Leaves 0, 1 and 0x80000000 always; 0x80000001 only if 0x80000000
    # allows it; 0x40000000 only with the hypervisor bit.
    expected = 3 + (leaves[cpuid.EXT0][0] >= 0x80000001) + ("hypervisor" in host.cpu.features)
    assert first == expected <= 5
    probe_mod.probe(refresh=True)
    probe_mod.probe(deep=True)
    probe_mod.kvm_usable()
    assert _native.cpuid_executed() - before == first  # the CPU is read once per process


def test_abi_matches():
    assert _native.lib.CAPSFAST_ABI == _native.ABI
    assert _native.HAS_CPUID == X86
