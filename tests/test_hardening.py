"""Hostile roots and resource use.

The bounds capsfast guarantees for one probe of any root, whatever it
holds (checked below where a test can see them):

- bytes read: at most CPUINFO_BLOCK + 1 (16385) from proc/cpuinfo, SMALL + 1
  (4097) from each of the few sysfs/procfs files, 8 from each MSR; a CPUID
  dump is read up to 1 MiB.  Larger files are cut (cpuinfo) or refused with
  a one-line CapsfastError (the small files).
- never blocks: a FIFO, socket, directory or device where a file belongs is
  never opened (the C module looks with stat() before it opens); the only
  device ever opened is a character device numbered 10:232 (KVM) at dev/kvm
  and 202:* (msr) at dev/cpu/0/msr.
- a fixed number of system calls per probe (about three per planned file);
  symlink loops end at the kernel's limit of 40 links (ELOOP).

Each hostile probe runs in a forked child with a generous guard, so a hang
fails the test instead of stalling the suite; no test asserts a duration.

Resources: ``probe(refresh=True)`` is called CAPSFAST_LEAK_CALLS times (one
million by default, about 12 s here; ci/sanitize.sh runs 20,000 against the
ASan build) and 3,000 times with ``deep=True``; the open file descriptors
must be the same afterwards and the resident memory within 1 MiB.
"""
import errno
import os
import stat
import subprocess
import sys

import pytest

from forked import in_child

import capsfast
from scenarios import HOSTS
from capsfast import CapsfastError
from capsfast.parts.core import parse
from capsfast.parts.core import read as facts
from capsfast import host as probing
from capsfast.render import json as render_json


LEAK_CALLS = int(os.environ.get("CAPSFAST_LEAK_CALLS", "1000000"))
MB = 1 << 20


# ------------------------------------------------------------------ helpers


def guarded(fn):
    """``fn()`` in a forked child: a hang fails the test, not the suite."""
    return in_child(fn, hang="the probe hung")


def probe_guarded(root, **kwargs):
    return guarded(lambda: capsfast.probe(root=str(root), **kwargs))


def fake_root(tmp_path):
    """A small plausible root: an x86_64 KVM host with a flags line."""
    root = tmp_path / "root"
    for d in ("proc/sys/kernel", "dev/cpu/0", "sys/module/kvm", "sys/hypervisor/properties"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/kernel/arch").write_text("x86_64\n")
    (root / "proc/cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
        "stepping\t: 4\nflags\t\t: fpu pae vmx lm nx\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    )
    (root / "dev/kvm").write_text("")
    return root


def assert_error(outcome, *words):
    """A CapsfastError of one line naming ``words``."""
    assert outcome[0] == "raised" and outcome[1] == "CapsfastError", outcome
    assert "\n" not in outcome[2]
    for word in words:
        assert word in outcome[2], outcome


def rchar():
    """Bytes this process has read with read() and pread() so far."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def measured(fn):
    """(outcome of fn, bytes read while it ran)."""
    def run():
        before = rchar()
        try:
            out = ("ok", fn())
        except CapsfastError as e:
            out = ("raised", "CapsfastError", str(e))
        return out, rchar() - before
    return guarded(run)[1]


# The reading of /proc/self/io itself counts too: this much slack.
RCHAR_SLACK = 8192


def test_fake_root_helper_gives_a_sane_host(tmp_path):
    out = probe_guarded(fake_root(tmp_path))
    assert out[0] == "ok", out
    host = out[1]
    assert host.cpu.source == "cpuinfo" and "vmx" in host.cpu.features
    assert host.kvm.exists and not host.kvm.char_device and not host.kvm.usable


# ------------------------------------------------------------ symlink loops


@pytest.mark.parametrize("rel", ["proc/cpuinfo", "sys/hypervisor/type", "proc/sys/kernel/arch",
                                 "proc/xen", "sys/module/kvm_intel"])
def test_symlink_loop_in_a_file_the_probe_reads(tmp_path, rel):
    root = fake_root(tmp_path)
    path = root / rel
    if path.is_dir():
        path.rmdir()
    elif path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(path.name)  # points at itself
    assert_error(probe_guarded(root), rel, os.strerror(errno.ELOOP))


def test_symlink_loop_at_dev_kvm_is_a_fact(tmp_path):
    root = fake_root(tmp_path)
    (root / "dev/kvm").unlink()
    (root / "dev/kvm").symlink_to("kvm")
    out = probe_guarded(root)
    assert out[0] == "ok", out
    kvm = out[1].kvm
    assert not kvm.exists and not kvm.usable
    assert kvm.error == "stat: " + os.strerror(errno.ELOOP)


def test_symlink_loop_at_the_msr_is_ignored(tmp_path):
    root = fake_root(tmp_path)
    (root / "dev/cpu/0/msr").symlink_to("msr")
    out = probe_guarded(root)
    assert out[0] == "ok" and out[1].msr == (), out


def test_root_that_is_a_symlink_loop(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    assert_error(probe_guarded(tmp_path / "loop"), "root", os.strerror(errno.ELOOP))


def test_long_symlink_chains_between_two_roots(tmp_path):
    """40 hops end at the kernel's limit: an error, not a walk forever."""
    root = fake_root(tmp_path)
    (root / "proc/cpuinfo").unlink()
    for i in range(45):
        (root / ("proc/c%d" % i)).symlink_to("c%d" % (i + 1))
    (root / "proc/c45").write_text("flags\t: vmx\n")
    (root / "proc/cpuinfo").symlink_to("c0")
    assert_error(probe_guarded(root), "proc/cpuinfo", os.strerror(errno.ELOOP))


# --------------------------------------------------------- oversized files


def write_sparse(path, head, size):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def test_100mb_cpuinfo_without_flags_reads_one_bounded_block(tmp_path):
    root = fake_root(tmp_path)
    head = b"".join(b"processor\t: %d\nvendor_id\t: GenuineIntel\n" % i for i in range(4000))
    write_sparse(root / "proc/cpuinfo", head, 100 * MB)
    out, read = measured(lambda: capsfast.probe(root=str(root)))
    assert out[0] == "ok", out
    host = out[1]
    assert host.kernel_flags is None and host.cpu.source == "none"
    assert read <= facts.CPUINFO_BLOCK + 1 + RCHAR_SLACK, read


def test_100mb_cpuinfo_with_a_dump_is_still_bounded(tmp_path):
    root = fake_root(tmp_path)
    write_sparse(root / "proc/cpuinfo", b"processor\t: 0\n", 100 * MB)
    dump = tmp_path / "cpuid.txt"
    dump.write_text("CPU:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n")
    out, read = measured(lambda: capsfast.probe(root=str(root), cpuid=str(dump)))
    assert out[0] == "ok", out
    assert out[1].cpu.vendor == "GenuineIntel" and out[1].kernel_flags is None
    assert read <= facts.CPUINFO_BLOCK + 1 + dump.stat().st_size + RCHAR_SLACK, read


@pytest.mark.parametrize("rel", ["proc/xen/capabilities", "sys/hypervisor/type",
                                 "sys/hypervisor/properties/capabilities", "proc/sys/kernel/arch"])
def test_100mb_small_file_is_refused_after_a_bounded_read(tmp_path, rel):
    root = fake_root(tmp_path)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    write_sparse(root / rel, b"xen-3.0-x86_64 " * 100, 100 * MB)
    out, read = measured(lambda: capsfast.probe(root=str(root)))
    assert out[0] == "raised" and "larger than" in out[2] and rel in out[2], out
    assert read <= facts.SMALL + 1 + facts.CPUINFO_BLOCK + 1 + RCHAR_SLACK, read


def test_100mb_cpuid_dump_is_read_up_to_1mib(tmp_path):
    root = fake_root(tmp_path)
    dump = tmp_path / "huge.txt"
    line = b"   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n"
    write_sparse(dump, b"CPU:\n" + line * 20000, 100 * MB)
    out, read = measured(lambda: capsfast.probe(root=str(root), cpuid=str(dump)))
    # The first MiB ends inside the dump's lines or its NULs: a one-line
    # error naming the dump, or an answer; never 100 MB read.
    assert out[0] == "ok" or ("CPUID dump" in out[2] and "\n" not in out[2]), out
    assert read <= MB + facts.CPUINFO_BLOCK + 1 + RCHAR_SLACK, read


# ------------------------------------------- FIFOs, directories, devices


@pytest.mark.parametrize("rel", ["proc/cpuinfo", "sys/hypervisor/type", "proc/sys/kernel/arch",
                                 "sys/module/kvm_intel/parameters/nested"])
def test_fifo_where_a_file_belongs_does_not_block(tmp_path, rel):
    root = fake_root(tmp_path)
    path = root / rel
    if path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    # No writer ever opens it: reading would wait forever.
    assert_error(probe_guarded(root), rel, "not a regular file")


def test_fifo_at_dev_kvm_and_msr(tmp_path):
    root = fake_root(tmp_path)
    (root / "dev/kvm").unlink()
    os.mkfifo(root / "dev/kvm")
    os.mkfifo(root / "dev/cpu/0/msr")
    out = probe_guarded(root)
    assert out[0] == "ok", out
    assert out[1].kvm.exists and not out[1].kvm.char_device and out[1].kvm.error == "not a character device"
    assert out[1].msr == ()


def test_fifo_as_cpuid_dump_outside_the_root_is_the_callers_choice(tmp_path):
    """A dump path is given by the caller (``--cpuid-dump <(cpuid -r -1)``
    is a pipe): it is read as given.  With a writer, it works."""
    root = fake_root(tmp_path)
    fifo = tmp_path / "dump.fifo"
    os.mkfifo(fifo)
    text = b"CPU:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n"

    def run():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the writer
            with open(fifo, "wb") as f:
                f.write(text)
            os._exit(0)
        try:
            return capsfast.probe(root=str(root), cpuid=str(fifo)).cpu.vendor
        finally:
            os.waitpid(pid, 0)

    assert guarded(run) == ("ok", "GenuineIntel")


def test_dev_kvm_as_a_directory(tmp_path):
    root = fake_root(tmp_path)
    (root / "dev/kvm").unlink()
    (root / "dev/kvm").mkdir()
    out = probe_guarded(root)
    assert out[0] == "ok", out
    kvm = out[1].kvm
    assert kvm.exists and not kvm.char_device and not kvm.usable and kvm.error == "not a character device"


def device_in_root(root, rel, target):
    """The character device ``target`` of this machine made at ``rel`` in
    the root (a link to it would be followed inside the root, as in a
    chroot); skips where this user may not make device nodes."""
    if not os.path.exists(target):
        pytest.skip("%s is not on this machine" % target)
    path = root / rel
    if path.exists() or path.is_symlink():
        path.unlink()
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.stat(target).st_rdev)
    except PermissionError:
        pytest.skip("making a device node needs privilege")


@pytest.mark.parametrize("target", ["/dev/null", "/dev/zero", "/dev/tty", "/dev/full"])
def test_other_devices_at_dev_kvm_are_never_opened(tmp_path, target):
    root = fake_root(tmp_path)
    device_in_root(root, "dev/kvm", target)
    out = probe_guarded(root)
    assert out[0] == "ok", out
    kvm = out[1].kvm
    assert kvm.exists and kvm.char_device and not kvm.usable and kvm.api_version is None
    assert kvm.error == "open: " + os.strerror(errno.ENODEV)


@pytest.mark.parametrize("rel", ["proc/cpuinfo", "sys/hypervisor/type"])
def test_a_device_where_a_file_belongs_is_never_read(tmp_path, rel):
    """/dev/zero never ends; /dev/tty would wait for a keypress."""
    root = fake_root(tmp_path)
    device_in_root(root, rel, "/dev/zero")
    out, read = measured(lambda: capsfast.probe(root=str(root)))
    assert out[0] == "raised" and "not a regular file" in out[2], out
    assert read <= facts.CPUINFO_BLOCK + 1 + RCHAR_SLACK


def test_a_device_at_the_msr_is_never_read(tmp_path):
    root = fake_root(tmp_path)
    (root / "dev/cpu/0").mkdir(parents=True, exist_ok=True)
    device_in_root(root, "dev/cpu/0/msr", "/dev/zero")
    out = probe_guarded(root)
    assert out[0] == "ok" and out[1].msr == (), out


@pytest.mark.parametrize("rel", ["proc/cpuinfo", "sys/hypervisor/type"])
def test_a_directory_where_a_file_belongs(tmp_path, rel):
    root = fake_root(tmp_path)
    path = root / rel
    if path.exists():
        path.unlink()
    path.mkdir()
    assert_error(probe_guarded(root), rel, "not a regular file")


def test_a_file_where_a_directory_belongs(tmp_path):
    """proc is a regular file: proc/cpuinfo is ENOTDIR."""
    root = fake_root(tmp_path)
    for p in sorted((root / "proc").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (root / "proc").rmdir()
    (root / "proc").write_text("not a directory\n")
    assert_error(probe_guarded(root), "proc/", os.strerror(errno.ENOTDIR))


def test_msr_file_shorter_than_the_msr_offset(tmp_path):
    root = fake_root(tmp_path)
    (root / "dev/cpu/0/msr").write_bytes(b"\x05" * 16)  # MSR 0x3a is at offset 58
    out = probe_guarded(root)
    assert out[0] == "ok" and out[1].msr == (), out
    with open(root / "dev/cpu/0/msr", "r+b") as f:  # ends inside the 8 bytes
        f.seek(0x3A)
        f.write(b"\x05\x00\x00")
    out = probe_guarded(root)
    assert out[0] == "ok" and out[1].msr == (), out


def test_msr_locked_off_in_a_sparse_file_decides(tmp_path):
    """The control for the two tests above: a full MSR is read and used."""
    root = fake_root(tmp_path)
    with open(root / "dev/cpu/0/msr", "wb") as f:
        f.seek(0x3A)
        f.write((1).to_bytes(8, "little"))  # locked, VMX outside SMX off
    dump = tmp_path / "cpuid.txt"
    dump.write_text(
        "CPU:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n"
        "   0x00000001 0x00: eax=0x000306a9 ebx=0x00100800 ecx=0x7fbae3ff edx=0xbfebfbff\n"
    )
    out = probe_guarded(root, cpuid=str(dump))
    assert out[0] == "ok", out
    assert out[1].msr == ((0x3A, 1),) and out[1].hvm.status == "disabled_by_firmware"


# ---------------------------------------- NUL bytes and invalid UTF-8


JUNK = b"\x00\xff\xfe\xc3\x28\x1b[31m\x7f\xed\xa0\x80"


def test_nul_bytes_and_invalid_utf8_in_cpuinfo(tmp_path):
    root = fake_root(tmp_path)
    (root / "proc/cpuinfo").write_bytes(
        b"processor\t: 0\nvendor_id\t: Genuine" + JUNK + b"\nflags\t\t: fpu vmx" + JUNK + b" lm\n\n"
    )
    out = probe_guarded(root)
    assert out[0] == "ok", out
    host = out[1]
    assert "fpu" in host.kernel_flags and "lm" in host.kernel_flags
    assert "vmx" not in host.cpu.features  # "vmx\ufffd..." is not vmx
    for s in host.kernel_flags + (host.cpu.vendor,):
        assert all(ch in "\t" or ch == "\ufffd" or ord(ch) >= 32 and ord(ch) != 127 for ch in s), s
    doc = render_json.render(host)
    import json

    assert json.loads(doc) == render_json.host_dict(host)


def test_nul_bytes_and_invalid_utf8_in_xen_files(tmp_path):
    root = fake_root(tmp_path)
    (root / "proc/xen").mkdir()
    (root / "proc/xen/capabilities").write_bytes(b"control_d" + JUNK + b"\n")
    (root / "sys/hypervisor/type").write_bytes(b"xen\x00\n")
    (root / "sys/hypervisor/properties/capabilities").write_bytes(
        b"xen-3.0-x86_64 " + JUNK + b" hvm-3.0-x86_64\x00 hvm-3.0-x86_32\n"
    )
    out = probe_guarded(root)
    assert out[0] == "ok", out
    xen = out[1].xen
    assert xen.present and xen.role == "domU"  # "control_d\ufffd..." is not control_d
    assert xen.capabilities[0] == "xen-3.0-x86_64" and xen.capabilities[-1] == "hvm-3.0-x86_32"
    for token in xen.capabilities:
        assert all(ord(ch) > 32 and ord(ch) != 127 for ch in token), token


def test_nul_bytes_in_the_arch_file(tmp_path):
    root = fake_root(tmp_path)
    (root / "proc/sys/kernel/arch").write_bytes(b"x86\x00_64\n")
    assert_error(probe_guarded(root), "architecture")


def test_nul_bytes_in_a_dump(tmp_path):
    root = fake_root(tmp_path)
    dump = tmp_path / "cpuid.txt"
    dump.write_bytes(b"CPU:\n   0x00000000 0x00: eax=0x0\x00 ebx=0x1 ecx=0x2 edx=0x3\n")
    assert_error(probe_guarded(root, cpuid=str(dump)), "line 2")


@pytest.mark.parametrize("which", ["root", "cpuid"])
def test_nul_in_a_path_argument(tmp_path, which):
    """A path no system call can take: the documented one-line error, not
    Python's ValueError."""
    root = fake_root(tmp_path)
    args = {"root": str(root)}
    args[which] = str(root) + "\x00x"
    assert_error(guarded(lambda: capsfast.probe(**args)), "NUL")


# -------------------------------------------------------------- resources


def open_fds():
    return sorted(os.listdir("/proc/self/fd"))


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# Growth allowed between the measure after warm-up and the one after the
# loop: one page-table-and-arena's worth of noise, far below the 16+ bytes
# a leaked object per call would cost over LEAK_CALLS calls.
RSS_SLACK = 1 * MB


# ci/sanitize.sh sets it where ASan's quarantine holds freed memory on
# purpose (it runs these tests again with the quarantine off).
CHECK_RSS = os.environ.get("CAPSFAST_SKIP_RSS") != "1"


def assert_flat(call, n, warmup=2000):
    for _ in range(warmup):
        call()
    fds, rss = open_fds(), rss_bytes()
    for _ in range(n):
        call()
    assert open_fds() == fds
    grew = rss_bytes() - rss
    assert grew <= RSS_SLACK or not CHECK_RSS, "RSS grew by %d bytes over %d calls%s" % (grew, n, _kept_by(call))


def _kept_by(call):
    """What a further round of calls leaves alive, by type: named in the
    failure so that a leak says what it is."""
    import gc
    from collections import Counter

    gc.collect()
    before = Counter(type(o).__name__ for o in gc.get_objects())
    for _ in range(2000):
        call()
    gc.collect()
    after = Counter(type(o).__name__ for o in gc.get_objects())
    grown = (after - before).most_common(5)
    return "; objects kept by 2000 more calls: %s (gc %s)" % (grown or "none", "on" if gc.isenabled() else "OFF")


def test_refresh_leaves_fds_and_rss_flat():
    assert_flat(lambda: capsfast.probe(refresh=True), LEAK_CALLS, warmup=20000)


def test_deep_probes_leave_fds_and_rss_flat():
    if not capsfast.probe().kvm.usable:
        pytest.skip("KVM is not usable here, so KVM_CREATE_VM is never reached")
    assert capsfast.probe(deep=True).kvm.create_vm is True
    assert_flat(lambda: capsfast.probe(deep=True), 3000, warmup=200)


def test_fake_root_probes_leave_fds_and_rss_flat(tmp_path):
    root = str(fake_root(tmp_path))
    with open(os.path.join(root, "dev/cpu/0/msr"), "wb") as f:
        f.seek(0x3A)
        f.write((5).to_bytes(8, "little"))
    assert capsfast.probe(root=root).msr == ((0x3A, 5),)
    # In a fresh interpreter: after the rest of the suite (megabytes of QMP
    # transcripts parsed and freed), this process's heap is fragmented and
    # its RSS moves with no object kept; a leak shows in a clean heap too.
    # Each root's Host is a reference cycle (its lazy parts read its core
    # facts), freed by the cyclic collector: the heap settles only after a
    # few full collections, so the warm-up is as long as the measure (with
    # 2,000 it grew 0.6 MB in the first 20,000 calls and then never again;
    # an ASan build, 1.03 MB).
    code = (
        "import os, sys, capsfast\n"
        "sys.path.insert(0, %r)\n"
        "from test_hardening import assert_flat\n"
        "assert_flat(lambda: capsfast.probe(root=%r), 20000, warmup=20000)\n"
        % (os.path.dirname(os.path.abspath(__file__)), root)
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_failing_probes_leave_fds_and_rss_flat(tmp_path):
    """The error paths (here a FIFO at proc/cpuinfo) close what they open."""
    root = fake_root(tmp_path)
    (root / "proc/cpuinfo").unlink()
    os.mkfifo(root / "proc/cpuinfo")

    def call():
        with pytest.raises(CapsfastError):
            capsfast.probe(root=str(root))

    assert_flat(call, 20000)


def test_many_roots_leave_fds_flat(tmp_path):
    """The per-root C buffer pools are bounded."""
    base = fake_root(tmp_path)
    roots = []
    for i in range(200):
        link = tmp_path / ("r%d" % i)
        link.symlink_to(base)
        roots.append(str(link))
    for r in roots:
        capsfast.probe(root=r)
    fds, rss = open_fds(), rss_bytes()
    for _ in range(5):
        for r in roots:
            capsfast.probe(root=r)
    assert open_fds() == fds
    assert rss_bytes() - rss <= RSS_SLACK or not CHECK_RSS
    assert probing.plans_pooled() <= 65


def test_real_proc_files_are_still_read():
    """The control for the look-before-open: the live /proc/cpuinfo (a
    regular file) is read, its first block's flags reach the host."""
    with open("/proc/cpuinfo", "rb") as f:
        block = parse.cpuinfo_first_block(f.read())
    if "flags" not in block:
        pytest.skip("this kernel's /proc/cpuinfo has no flags line")
    # Not the cache, and a dump with vmx: the kernel's flags then count.
    host = capsfast.probe(cpuid=str(HOSTS / "intel-enabled" / "cpuid.txt"), arch="x86_64")
    assert host.kernel_flags == tuple(block["flags"].split())
