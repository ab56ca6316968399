"""capsfast never needs root, never loads a kernel module, never writes,
and reports device access as the calling user sees it.

The unprivileged checks need root to create a user (``useradd``) and drop
to it; elsewhere they skip.  The probe runs in a forked child that has
given up root (``setgroups``/``setgid``/``setuid``), so the module is the
one already loaded and the interpreter need not be reachable by that user.
The system-call checks need ``strace``.
"""
import errno
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from forked import in_child

import capsfast
from capsfast import CapsfastError

USER = "capsfast-test"
HANG_GUARD = 120
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="dropping to an unprivileged user needs root (useradd, setuid)")


@pytest.fixture(scope="module")
def user():
    """(uid, gid) of an unprivileged user, created with useradd if needed."""
    if not IS_ROOT:
        pytest.skip("creating a user needs root")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed (Debian package 'passwd')")
    created = False
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                       check=False, capture_output=True)
        entry = pwd.getpwnam(USER)  # KeyError here: useradd failed
        created = True
    assert entry.pw_uid != 0
    yield entry.pw_uid, entry.pw_gid
    if created:
        subprocess.run(["userdel", USER], check=False, capture_output=True)


def as_user(ids, work):
    """``work()`` in a forked child running as ``ids``; its answer."""
    return in_child(work, user=ids, hang="the unprivileged probe hung")


@pytest.fixture
def shared_dir():
    """A directory the unprivileged user can traverse (pytest's tmp_path
    lives under a root-only directory)."""
    d = tempfile.mkdtemp(prefix="capsfast-priv-")
    os.chmod(d, 0o755)
    yield d
    for dirpath, dirnames, _files in os.walk(d):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    shutil.rmtree(d)


def msr_root(base):
    """A fake root whose MSR (root-only, mode 0600) says VMX is locked off."""
    root = os.path.join(base, "root")
    for d in ("proc/sys/kernel", "dev/cpu/0", "sys/module/kvm_intel"):
        os.makedirs(os.path.join(root, d), mode=0o755)
    with open(os.path.join(root, "proc/sys/kernel/arch"), "w") as f:
        f.write("x86_64\n")
    with open(os.path.join(root, "proc/cpuinfo"), "w") as f:
        f.write("processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu pae vmx lm nx\n\n")
    with open(os.path.join(root, "dev/kvm"), "w"):
        pass
    msr = os.path.join(root, "dev/cpu/0/msr")
    with open(msr, "wb") as f:
        f.seek(0x3A)
        f.write((1).to_bytes(8, "little"))  # locked, VMX outside SMX off
    os.chmod(msr, 0o600)
    dump = os.path.join(base, "cpuid.txt")
    with open(dump, "w") as f:
        f.write("CPU:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n"
                "   0x00000001 0x00: eax=0x000306a9 ebx=0x00100800 ecx=0x7fbae3ff edx=0xbfebfbff\n")
    for dirpath, _dirs, files in os.walk(base):
        os.chmod(dirpath, 0o755)
        for name in files:
            if name != "msr":
                os.chmod(os.path.join(dirpath, name), 0o644)
    return root, dump


# ------------------------------------------------------------- /dev/kvm


@needs_root
def test_dev_kvm_access_is_reported_as_the_user_sees_it(user):
    if not os.path.exists("/dev/kvm"):
        pytest.skip("no /dev/kvm on this machine")

    def work():
        kvm = capsfast.probe(refresh=True).kvm
        try:
            os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
            opens = True
        except OSError as e:
            opens = e.errno
        return kvm, os.access("/dev/kvm", os.R_OK | os.W_OK), opens, capsfast.kvm_usable()

    out = as_user(user, work)
    assert out[0] == "ok", out
    kvm, access, opens, usable = out[1]
    assert kvm.exists and kvm.char_device
    assert kvm.accessible == access
    assert kvm.usable == usable
    if opens is True:
        assert kvm.error is None or not kvm.error.startswith("open:")
    else:
        assert not kvm.usable and kvm.error == "open: " + os.strerror(opens)
    # And root's own view, for contrast: root opens it.
    mine = capsfast.probe(refresh=True).kvm
    assert mine.accessible == os.access("/dev/kvm", os.R_OK | os.W_OK)


@needs_root
def test_live_probe_needs_no_root(user):
    def work():
        host = capsfast.probe(refresh=True)
        return host.arch, capsfast.capabilities(format="json").startswith("{")

    out = as_user(user, work)
    assert out == ("ok", (capsfast.probe().arch, True))


# ------------------------------------------------------------------ MSR


@needs_root
def test_msr_is_read_only_when_readable(user, shared_dir):
    root, dump = msr_root(shared_dir)
    mine = capsfast.probe(root=root, cpuid=dump)
    assert mine.msr == ((0x3A, 1),)
    assert mine.hvm.status == "disabled_by_firmware" and "msr.feature-control-locked-off" in mine.hvm.evidence

    def work():
        host = capsfast.probe(root=root, cpuid=dump)
        try:
            open(os.path.join(root, "dev/cpu/0/msr"), "rb").close()
            readable = True
        except PermissionError:
            readable = False
        return host, readable

    out = as_user(user, work)
    assert out[0] == "ok", out
    host, readable = out[1]
    assert readable is False
    assert host.msr == ()
    assert "msr.feature-control-locked-off" not in host.hvm.evidence


# ------------------------------------------------------------- EACCES


@needs_root
def test_unreadable_directories_under_a_fake_root(user, shared_dir):
    root, _dump = msr_root(shared_dir)
    os.makedirs(os.path.join(root, "sys/hypervisor"), mode=0o755)
    with open(os.path.join(root, "sys/hypervisor/type"), "w") as f:
        f.write("xen\n")
    os.chmod(os.path.join(root, "sys/hypervisor"), 0)
    out = as_user(user, lambda: capsfast.probe(root=root))
    assert out[0] == "raised" and out[1] == "CapsfastError", out
    assert out[2] == "cannot read %s/sys/hypervisor/type: %s" % (root, os.strerror(errno.EACCES))
    os.chmod(os.path.join(root, "sys/hypervisor"), 0o755)

    os.chmod(os.path.join(root, "dev"), 0)
    out = as_user(user, lambda: capsfast.probe(root=root).kvm)
    assert out[0] == "ok", out
    assert not out[1].exists and out[1].error == "stat: " + os.strerror(errno.EACCES)


@needs_root
def test_unreadable_root(user, shared_dir):
    root, _dump = msr_root(shared_dir)
    os.chmod(shared_dir, 0o700)
    out = as_user(user, lambda: capsfast.probe(root=root))
    assert out[0] == "raised" and out[1] == "CapsfastError" and "\n" not in out[2], out


# ------------------------------------------------ system calls (strace)

PROBE_SCRIPT = r"""
import os, sys
import capsfast
from capsfast import cli
from capsfast.render import json as _json  # imports done before the marker
os.environ["CAPSFAST_TRACE"] = "1"
try:
    os.stat("/capsfast-trace-start")  # marks where the traced part begins
except OSError:
    pass
capsfast.probe()
capsfast.probe(refresh=True)
capsfast.probe(deep=True)
capsfast.kvm_usable()
capsfast.capabilities(format="json")
capsfast.probe(root=sys.argv[1], cpuid=sys.argv[2])
cli.main(["check", "-q"])
cli.main(["check", "-q", "--root", sys.argv[1], "--cpuid-dump", sys.argv[2]])
"""

WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND|O_TMPFILE")
FORBIDDEN = ("init_module", "finit_module", "delete_module", "execve", "execveat", "fork", "vfork",
             "clone", "clone3", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
             "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
             "chown", "fchown", "fchownat", "lchown", "truncate", "ftruncate", "mknod", "mknodat",
             "mount", "umount2", "setxattr", "fsetxattr", "lsetxattr", "kill", "tgkill", "setuid",
             "setgid", "pwrite64", "pwritev", "pwritev2", "sendfile", "copy_file_range")


def cache_fds(calls, cache):
    """The descriptors opened for writing in the cache directory."""
    return tuple(result.rsplit("=", 1)[-1].strip() for name, result in calls
                 if name == "openat" and cache in result and WRITE_FLAGS.search(result))


def traced_calls(tmp_path):
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (Debian package 'strace')")
    root, dump = msr_root(str(tmp_path))
    log = tmp_path / "strace.log"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), sys.executable, "-c", PROBE_SCRIPT, root, dump],
                   check=True, env=env, capture_output=True, timeout=HANG_GUARD)
    lines = log.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "/capsfast-trace-start" in line)
    calls = []
    for line in lines[start + 1:]:
        m = re.match(r"\d+\s+(\w+)\((.*)$", line)
        if m and m.group(1) not in ("exit_group", "exit"):
            calls.append((m.group(1), m.group(2)))
    return calls, root


def test_probing_writes_nothing_loads_nothing_spawns_nothing(tmp_path):
    calls, root = traced_calls(tmp_path)
    assert calls, "strace saw nothing after the marker"
    # The one place written: the disk cache of the decoded host CPU model
    # (capabilities reads Host.cpu_model), made and replaced atomically.
    cache = '"%s' % (tmp_path / "cache")
    cached = {"mkdir", "mkdirat", "rename", "renameat", "renameat2", "chmod", "fchmod", "fchmodat"}
    names = {name for name, args in calls if not (name in cached and cache in args)}
    assert names.isdisjoint(FORBIDDEN), sorted(names & set(FORBIDDEN))
    for name, args in calls:
        if name in ("open", "openat", "openat2", "creat"):
            if WRITE_FLAGS.search(args) and cache in args:
                continue
            if WRITE_FLAGS.search(args):
                # The one file opened for writing: the KVM device, which
                # takes its ioctls on a read-write descriptor.
                assert '"/dev/kvm"' in args and "O_CREAT" not in args and "O_TRUNC" not in args, args
        if name in ("write", "writev") and cache_fds(calls, cache):
            assert args.split(",")[0] in ("1", "2") + cache_fds(calls, cache), args  # stdout, stderr, the cache
        elif name in ("write", "writev"):
            assert args.split(",")[0] in ("1", "2"), args  # stdout and stderr only
        if name == "ioctl":
            fd_target = args.split(",")[1].strip()
            # KVM_CHECK_EXTENSION: the JSON's host.kvm.caps (a question, no change);
            # KVM_GET_MSRS on the system fd and a vCPU's KVM_GET_TSC_KHZ: the host CPU model's.
            assert fd_target in ("KVM_GET_API_VERSION", "KVM_CREATE_VM", "KVM_CHECK_EXTENSION", "TCGETS",
                                 "FIOCLEX", "KVM_CREATE_VCPU", "KVM_GET_TSC_KHZ", "KVM_GET_MSRS") or \
                fd_target.startswith("_IOC(") or fd_target.startswith("0xae"), args
    # The fake root is read, and only read.
    assert any(root in args for _name, args in calls)


def test_msr_is_never_read_without_an_open_descriptor(tmp_path):
    """pread() happens only on a descriptor that open() gave: an MSR the
    process cannot open is never read."""
    calls, _root = traced_calls(tmp_path)
    msr_fds = set()
    for name, args in calls:
        if name == "openat" and "/dev/cpu/0/msr" in args:
            result = args.rsplit("=", 1)[1].strip()
            if result.split()[0].isdigit():
                msr_fds.add(result.split()[0])
        if name == "pread64":
            assert args.split(",")[0] in msr_fds, args


def test_probe_raises_capsfast_error_not_permission_error(tmp_path):
    """Whatever the user may not read, the error is the documented type."""
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc/cpuinfo").mkdir()  # EISDIR even for root
    with pytest.raises(CapsfastError) as info:
        capsfast.probe(root=str(root))
    assert "\n" not in str(info.value)
