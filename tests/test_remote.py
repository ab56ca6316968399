"""Remote hosts over SSH: ``capsfast.recording.remote`` (URI, ssh, the reply's safe
extraction) and ``capsfast.recording.collector`` (what runs there).

The tests start an ``sshd`` of their own on 127.0.0.1 (an unused port, a
host key and client keys made with ssh-keygen in a temporary directory, a
config of their own) and stop it by its pid; the machine's own sshd, its
config and ~/.ssh are never touched (every URI names its known_hosts file
or says no_verify=1, which records nothing).  Faults come from keys whose
authorized_keys line forces a fake command: one that prints junk, one that
cuts a real recording short, one that sleeps, one with a PATH without
python3.  Without sshd or ssh the tests skip on a developer's machine and
fail in CI (``CI=true``): Debian's openssh-server and openssh-client.
"""
import ast
import getpass
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time

import pytest

import capsfast
from capsfast import CapsfastError
from capsfast.recording import collector
from capsfast.recording import remote
from capsfast.constants import KVM_DEVICE, __version__

SSHD = "/usr/sbin/sshd"
TIMEOUT = 3.0
# A fault must be told within the connect timeout plus the grace, and a
# little for starting processes on a busy machine.
LATEST = TIMEOUT + remote.GRACE + 3.0


def unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail("the SSH tests cannot run in CI: " + reason)
    pytest.skip(reason)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "capsfast-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


def recording_tar():
    """A real recording of this machine, as the collector writes it."""
    out = io.BytesIO()
    collector.write_tar(collector.collect(remote.plan("test")), out)
    return out.getvalue()


def script(path, text):
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return path


class Server:
    """The test's sshd: its port, a key per behaviour, and a known_hosts file."""

    def __init__(self, directory, port, keys, known_hosts, user):
        self.directory = directory
        self.port = port
        self.keys = keys
        self.known_hosts = known_hosts
        self.user = user

    def uri(self, key="good", verify=False, port=None):
        check = "known_hosts=%s" % self.known_hosts if verify else "no_verify=1"
        return "ssh://%s@127.0.0.1:%d?keyfile=%s&%s" % (self.user, port or self.port, self.keys[key], check)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            unavailable("no %s (Debian's openssh-client)" % tool)
    if not os.access(SSHD, os.X_OK):
        unavailable("no %s (Debian's openssh-server)" % SSHD)
    home_ssh = os.path.expanduser("~/.ssh")
    before = sorted(os.listdir(home_ssh)) if os.path.isdir(home_ssh) else None
    d = tmp_path_factory.mktemp("sshd")
    user = getpass.getuser()
    host_key = keygen(d / "host_key")
    keys = {name: keygen(d / ("key_" + name)) for name in
            ("good", "stranger", "junk", "cut", "sleep", "stall", "nopython", "hostile", "endless", "guarded")}
    tar = recording_tar()
    (d / "cut.tar").write_bytes(tar[:len(tar) // 2 + 100])
    (d / "head.tar").write_bytes(tar[:3000])
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as t:
        info = tarfile.TarInfo("../escaped")
        info.size = 4
        t.addfile(info, io.BytesIO(b"evil"))
    (d / "hostile.tar").write_bytes(hostile.getvalue())
    fakes = {
        "junk": script(d / "fake-junk", "echo 'Welcome! This is not a tar stream.'\n"),
        "cut": script(d / "fake-cut", "cat '%s'\n" % (d / "cut.tar")),
        "sleep": script(d / "fake-sleep", "echo $$ >> '%s'\nexec sleep 60\n" % (d / "sleep.pid")),
        "stall": script(d / "fake-stall", "cat '%s'\necho $$ >> '%s'\nexec sleep 60\n"
                        % (d / "head.tar", d / "stall.pid")),
        # The shell finds no python3 in this PATH: exit 127, as on a host without it.
        "nopython": script(d / "fake-nopython", 'PATH=/nonexistent\nexport PATH\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'),
        "hostile": script(d / "fake-hostile", "cat '%s'\n" % (d / "hostile.tar")),
        "endless": script(d / "fake-endless", "exec yes capsfast\n"),
        # The collector as sent, run where importing capsfast fails outright.
        "guarded": script(d / "fake-guarded", "exec python3 -I -S -c \"import sys; sys.modules['capsfast'] = None; "
                          "exec(compile(sys.stdin.read(), 'collector', 'exec'), {'__name__': '__main__'})\"\n"),
    }
    lines = [(d / "key_good.pub").read_text().strip()]
    for name, fake in fakes.items():
        lines.append('command="%s",no-pty %s' % (fake, (d / ("key_%s.pub" % name)).read_text().strip()))
    (d / "authorized_keys").write_text("\n".join(lines) + "\n")
    port = free_port()
    config = d / "sshd_config"
    config.write_text("\n".join([
        "Port %d" % port,
        "ListenAddress 127.0.0.1",
        "HostKey %s" % host_key,
        "AuthorizedKeysFile %s" % (d / "authorized_keys"),
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "StrictModes no",
        "UsePAM no",
        "PidFile %s" % (d / "sshd.pid"),
        "LogLevel VERBOSE",
        "",
    ]))
    (d / "known_hosts").write_text("[127.0.0.1]:%d %s\n" % (port, (d / "host_key.pub").read_text().strip()))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        for _ in range(100):
            if proc.poll() is not None:
                unavailable("sshd did not start: %s" % (d / "sshd.log").read_text()[-500:])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            unavailable("sshd does not listen on port %d" % port)
        yield Server(d, port, keys, d / "known_hosts", user)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        for name in ("sleep.pid", "stall.pid"):  # the fakes this module started, by pid
            pids = (d / name).read_text().split() if (d / name).exists() else []
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
    after = sorted(os.listdir(home_ssh)) if os.path.isdir(home_ssh) else None
    assert before == after, "~/.ssh changed"


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Temporary recordings made under ``tmp_path/tmp``, to see what is left."""
    place = tmp_path / "tmp"
    place.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(place))
    return place


def timed(fn):
    start = time.monotonic()
    try:
        fn()
    except CapsfastError as e:
        return str(e), time.monotonic() - start
    raise AssertionError("no CapsfastError")


def one_line_fault(fn, *words):
    message, took = timed(fn)
    assert "\n" not in message
    assert "127.0.0.1" in message, message  # names the host
    for word in words:
        assert word in message, message
    assert took < LATEST, (took, message)
    return message


# ------------------------------------------------------------------ URIs


@pytest.mark.parametrize("uri, user, host, port, params", [
    ("ssh://example.org", None, "example.org", None, {}),
    ("ssh://root@example.org:2222", "root", "example.org", 2222, {}),
    ("ssh://alice@10.0.0.1/", "alice", "10.0.0.1", None, {}),
    ("ssh://[::1]:22", None, "::1", 22, {}),
    ("qemu+ssh://root@kvm1.example.org/system", "root", "kvm1.example.org", None, {}),
    ("qemu+ssh://kvm1:2200/system?keyfile=/k/id&no_verify=1", None, "kvm1", 2200,
     {"keyfile": "/k/id", "no_verify": True}),
    ("ssh://h?known_hosts=/k/known&no_verify=0", None, "h", None, {"known_hosts": "/k/known"}),
])
def test_parse_uri(uri, user, host, port, params):
    target = remote.parse_uri(uri)
    assert (target.user, target.host, target.port) == (user, host, port)
    assert target.keyfile == params.get("keyfile")
    assert target.known_hosts == params.get("known_hosts")
    assert target.no_verify == params.get("no_verify", False)


@pytest.mark.parametrize("uri, why", [
    ("", "empty"),
    ("example.org", "not of the form"),
    ("qemu:///system", "scheme qemu"),
    ("qemu+tcp://h/system", "scheme qemu+tcp"),
    ("http://h", "scheme http"),
    ("qemu+ssh://h/session", "only /system"),
    ("qemu+ssh://h", "only /system"),
    ("ssh://h/some/path", "names a host only"),
    ("ssh://", "no host"),
    ("ssh://-oProxyCommand=x", "not a host name"),
    ("ssh://-x@h", "not a user name"),
    ("ssh://u:secret@h", "password"),
    ("ssh://h:0", "port"),
    ("ssh://h:65536", "port"),
    ("ssh://h:22x", "port"),
    ("ssh://h:", "port"),
    ("ssh://h?command=rm", "parameter 'command' is not supported"),
    ("ssh://h?keyfile=", "keyfile is empty"),
    ("ssh://h?keyfile=a&keyfile=b", "twice"),
    ("ssh://h?no_verify=yes", "no_verify"),
    ("ssh://h?keyfile=a%0Ab", "control characters"),
    ("ssh://h#x", "fragment"),
    ("ssh://h x", "spaces"),
    ("ssh://h\n", "control"),
    ("ssh://[zz]:22", "IPv6"),
])
def test_parse_uri_refuses(uri, why):
    with pytest.raises(CapsfastError) as info:
        remote.parse_uri(uri)
    message = str(info.value)
    assert "\n" not in message and message.startswith("bad remote URI")
    assert why in message, message


def test_ssh_command_line():
    target = remote.parse_uri("qemu+ssh://root@kvm1:2200/system?keyfile=/k/id&known_hosts=/k/kh")
    argv = target.ssh_argv(2.5)
    assert argv[0] == "ssh"
    text = " ".join(argv)
    for part in ("-o BatchMode=yes", "-o ConnectTimeout=3", "-p 2200", "-i /k/id", "-o UserKnownHostsFile=/k/kh"):
        assert part in text
    assert "StrictHostKeyChecking" not in text
    # The destination comes after "--": no host can pass for an option.
    assert argv[-3:] == ["--", "root@kvm1", remote.REMOTE_COMMAND]
    loose = remote.parse_uri("ssh://h?no_verify=1").ssh_argv(10)
    assert "StrictHostKeyChecking=no" in loose and "UserKnownHostsFile=/dev/null" in loose


# ------------------------------------------------------------------ the collector


def test_collector_is_standalone_and_old_python_syntax():
    source = open(collector.__file__).read()
    tree = ast.parse(source, feature_version=(3, 6))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            modules.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.JoinedStr):
            raise AssertionError("an f-string: fine on 3.6, but the package style is %")
    assert "capsfast" not in modules
    if hasattr(sys, "stdlib_module_names"):
        assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)
    assert "from __future__" not in source


def test_remote_command_cannot_import_an_installed_capsfast(tmp_path):
    # Here capsfast is importable (installed, or editable); with the flags
    # the remote command uses it is not, so neither is it for the collector.
    flags = remote.REMOTE_COMMAND.split()[1:-1]
    assert flags == ["-I", "-S"]
    plain = subprocess.run([sys.executable, "-c", "import capsfast"], cwd=tmp_path, capture_output=True)
    isolated = subprocess.run([sys.executable] + flags + ["-c", "import capsfast"], cwd=tmp_path,
                              capture_output=True)
    if plain.returncode != 0:
        pytest.skip("capsfast is not importable from outside the checkout here")
    assert isolated.returncode != 0


def test_script_carries_the_plan_and_runs_locally(tmp_path):
    text = remote.script(remote.plan("here", deep=False))
    proc = subprocess.run([sys.executable, "-I", "-S", "-"], input=text, capture_output=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    names = tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r|").getnames()
    assert "scenario.json" in names and "root/proc/cpuinfo" in names


def old_pythons():
    """Interpreters older than the package's own minimum (3.9), as remote
    hosts have them: python3.6 to python3.8 on the PATH, or pyenv's."""
    found = {}
    candidates = [shutil.which("python3.%d" % minor) for minor in (6, 7, 8)]
    if shutil.which("pyenv"):
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        for version in versions:
            if version.startswith(("3.6.", "3.7.", "3.8.")):
                prefix = subprocess.run(["pyenv", "prefix", version], capture_output=True, text=True).stdout.strip()
                candidates.append(os.path.join(prefix, "bin", "python3") if prefix else None)
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() < "3.9":
            found.setdefault(probe.stdout.strip(), candidate)
    return sorted(found.items())


def test_collector_runs_on_old_pythons(tmp_path, own_tmp):
    pythons = old_pythons()
    if not pythons:
        pytest.skip("no Python 3.6 to 3.8 here")
    text = remote.script(remote.plan("here"))
    for version, python in pythons:
        proc = subprocess.run([python, "-I", "-S", "-"], input=text, capture_output=True, cwd=tmp_path, timeout=60)
        assert proc.returncode == 0 and proc.stderr == b"", (version, proc.stderr)
        with remote.read_stream(io.BytesIO(proc.stdout), version) as directory:
            with open(os.path.join(directory, "scenario.json")) as f:
                assert json.load(f)["format"] == 1


def test_collector_without_plan_fails_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-I", "-S", collector.__file__], capture_output=True, cwd=tmp_path)
    assert proc.returncode == remote.COLLECTOR_FAILED and proc.stdout == b""
    assert proc.stderr.decode().count("\n") == 1


def fake_cpu(table, default=(0, 0, 0, 0)):
    return lambda leaf, sub: table.get((leaf, sub), table.get((leaf, None), default))


def test_walk_follows_libvirt():
    table = {
        (0, 0): (0x17, 0, 0, 0),
        (1, 0): (0, 0, 1 << 31, 0),                 # the hypervisor bit
        (4, 0): (0x121, 0, 0, 0), (4, 1): (0x122, 0, 0, 0), (4, 2): (0x143, 0, 0, 0),  # then type 0
        (7, 0): (1, 1 << 2, 0, 0), (7, 1): (0, 5, 0, 0),                               # SGX
        (0xB, 0): (1, 2, 0x100, 0), (0xB, 1): (4, 8, 0x201, 0),                        # then ECX[15:8] = 0
        (0xD, 0): (0b111, 0, 0, 1), (0xD, 1): (0, 0, 1 << 8, 0),                       # 2, 8, 32
        (0xF, 0): (0, 0, 0, 0b10),
        (0x10, 0): (0, 0b110, 0, 0),
        (0x12, 0): (1, 0, 0, 0), (0x12, 2): (1, 0, 0, 0), (0x12, 3): (1, 0, 0, 0),    # 4: EAX[3:0] = 0
        (0x14, 0): (2, 0, 0, 0),
        (0x17, 0): (2, 0, 0, 0),                    # EAX < 3: skipped
        (0x40000000, 0): (0x40000001, 0x4B4D564B, 0x564B4D56, 0x4D),
        (0x80000000, 0): (0x80000001, 0, 0, 0),
    }
    walked = collector.walk(fake_cpu(table))
    subs = {}
    for leaf, sub, _regs in walked:
        subs.setdefault(leaf, []).append(sub)
    assert subs[4] == [0, 1, 2, 3]
    assert subs[7] == [0, 1]
    assert subs[0xB] == [0, 1]
    assert subs[0xD] == [0, 1, 2, 8, 32]
    assert subs[0xF] == [0, 1]
    assert subs[0x10] == [0, 1, 2]
    assert subs[0x12] == [0, 1, 2, 3]
    assert subs[0x14] == [0, 1, 2]
    assert 0x17 not in subs
    assert subs[0x40000000] == [0] and subs[0x40000001] == [0]
    assert subs[0x80000000] == [0] and subs[0x80000001] == [0]
    # libvirt's order: basic, extended, then the hypervisor's; the dump sorts them.
    order = [leaf >> 28 for leaf, _s, _r in walked]
    assert order == sorted(order, key=lambda top: {0: 0, 8: 1, 4: 2}[top])
    lines = collector.format_walk(walked).splitlines()[1:]
    assert lines == sorted(lines)
    # The dump reads back as the five leaves capsfast decodes.
    from capsfast.parts.core import cpuid

    leaves = cpuid.leaves_from_dump(collector.format_walk(walked))
    assert leaves[cpuid.HV0][1] == 0x4B4D564B


def test_walk_without_sgx_or_hypervisor():
    table = {(0, 0): (0x12, 0, 0, 0), (0x12, 0): (1, 0, 0, 0), (0x40000000, 0): (0x40000005, 0, 0, 0),
             (0x80000000, 0): (5, 0, 0, 0)}   # a CPU without extended leaves echoes a basic one
    leaves = {leaf for leaf, _s, _r in collector.walk(fake_cpu(table))}
    # 0xb with ECX[15:8] = 0 has no valid subleaf; 0x12 needs SGX; the
    # extended range keeps its base leaf.
    assert leaves == set(range(0x13)) - {0xB, 0x12} | {0x80000000}


def all_ones(leaf, sub):
    return (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


def test_walk_is_bounded_whatever_the_cpu_says():
    reads = []

    def hostile(leaf, sub):
        reads.append((leaf, sub))
        return all_ones(leaf, sub)

    walked = collector.walk(hostile)
    # Every bound reached at once, and no more.
    assert len(walked) == collector.MAX_LINES
    assert all(sub < collector.MAX_SUBLEAVES and leaf & 0x3FFFFFFF < collector.MAX_RANGE
               for leaf, sub, _regs in walked)
    assert len(reads) <= collector.MAX_LINES + 8
    assert len(collector.format_walk(walked)) < remote.MAX_DUMP




def test_cpuid_dump_equals_the_c_walk():
    from capsfast import _native

    if not hasattr(_native, "cpuid_walk"):
        pytest.skip("the C module has no CPUID walk")
    dump = collector.cpuid_dump()
    if dump is None:
        pytest.skip("no readable /dev/cpu/0/cpuid here")
    if os.sched_getaffinity(0) != {0}:
        # The C walk runs on whichever CPU this thread is on: pin it to CPU 0.
        pinned = subprocess.run(
            [sys.executable, "-c", "import os; os.sched_setaffinity(0, {0}); from capsfast import _native; "
             "from capsfast.recording import collector; print(collector.format_walk(_native.cpuid_walk()), end='')"], capture_output=True, text=True)
        assert pinned.returncode == 0, pinned.stderr
        assert dump == pinned.stdout
    else:
        assert dump == collector.format_walk(_native.cpuid_walk())


def c_steps(device):
    """The C core's KvmDevice as the recording spells its steps."""
    def spell(outcome):
        return outcome.code if outcome.code in ("ok", "not_tried") else "%s: %s" % (outcome.code, outcome.reason)

    return {"mode": oct(device.mode) if device.stat.ok else None, "stat": spell(device.stat),
            "access": spell(device.access), "open": spell(device.open), "api_call": spell(device.api_call),
            "api_version": device.api_version, "create_vm": spell(device.create_vm)}


@pytest.mark.parametrize("deep", [False, True])
def test_kvm_device_steps_equal_the_c_core(deep):
    from capsfast import _native

    device = _native.Batch(KVM_DEVICE, []).run(False, deep).kvm
    assert collector.kvm_device(KVM_DEVICE, deep) == c_steps(device)


def test_kvm_device_other_char_device_is_not_opened():
    from capsfast import _native

    # /dev/null is 1:3: looked at, never opened, as C does.
    observed = collector.kvm_device("/dev/null", False)
    assert observed["open"] == "not_kvm_device: No such device" and observed["api_call"] == "not_tried"
    assert observed == c_steps(_native.Batch("/dev/null", []).run().kvm)


def test_kvm_device_not_a_device(tmp_path):
    (tmp_path / "kvm").write_text("")
    observed = collector.kvm_device(str(tmp_path / "kvm"), True)
    assert observed["stat"] == "ok" and observed["open"] == "not_tried" and observed["api_version"] is None
    missing = collector.kvm_device(str(tmp_path / "nothing"), False)
    assert missing["stat"] == "absent: No such file or directory" and missing["mode"] is None


def test_search_path_holds_only_recordable_directories():
    assert collector.search_path("/usr/../bin://usr/local/bin/:.:bin::/x\n:/", "/bin") == "/bin:/usr/local/bin:/"
    assert collector.search_path(None, "/bin:/usr/bin") == "/bin:/usr/bin"


def test_emulators_in_odd_path_entries(tmp_path):
    (tmp_path / "bin").mkdir()
    for name in ("qemu-system-x86_64", "qemu-system-bad\nname"):
        (tmp_path / "bin" / name).write_text("")
        (tmp_path / "bin" / name).chmod(0o755)
    odd = "%s/../%s/bin/" % (tmp_path, tmp_path.name)
    found = collector.emulators(collector.search_path(odd, ""), "qemu-system-", "/nonexistent")
    assert found == [str(tmp_path / "bin" / "qemu-system-x86_64")]


def test_plan_files_never_open_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert collector.probe_file(str(fifo), "read", 0, 4096).err != 0
    assert collector.probe_file(str(tmp_path), "read", 0, 4096).err != 0
    (tmp_path / "big").write_bytes(b"x" * 10000)
    assert collector.probe_file(str(tmp_path / "big"), "read", 0, 4096).data == b"x" * 4096


# ------------------------------------------------------------------ extraction


def tar_of(*members):
    """A tar stream of (TarInfo, data or None)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def member(name, data=b"", kind=tarfile.REGTYPE, **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, (data if kind == tarfile.REGTYPE else None)


SCENARIO = member("scenario.json", b'{"format": 1}')


def everything_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def extract_into(tmp_path, data):
    """Extract ``data`` into tmp_path/box/dest; the error and what exists
    under tmp_path/box afterwards."""
    box = tmp_path / "box"
    dest = box / "dest"
    dest.mkdir(parents=True)
    try:
        remote.extract(io.BytesIO(data) if isinstance(data, bytes) else data, str(dest), "test")
        error = None
    except CapsfastError as e:
        error = str(e)
    return error, everything_under(box)


def test_extracts_a_real_recording(tmp_path):
    error, files = extract_into(tmp_path, recording_tar())
    assert error is None
    assert "dest/scenario.json" in files and "dest/root/proc/cpuinfo" in files
    for name in files:
        path = tmp_path / "box" / name
        assert not path.is_symlink()
        if "qemu-system-" in name:
            assert path.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("members, why", [
    ([member("../escaped", b"evil"), SCENARIO], "climbs out"),
    ([member("root/../../escaped", b"evil"), SCENARIO], "climbs out"),
    ([member("PLACEHOLDER_ABSOLUTE", b"evil"), SCENARIO], "absolute path"),
    ([member("root/link", kind=tarfile.SYMTYPE, linkname="../.."), member("root/link/escaped", b"evil")], "a link"),
    ([member("root/link", kind=tarfile.SYMTYPE, linkname="/etc")], "a link"),
    ([member("root/hard", kind=tarfile.LNKTYPE, linkname="scenario.json")], "a link"),
    ([member("root/dev/kvm", kind=tarfile.CHRTYPE, devmajor=10, devminor=232)], "a device node"),
    ([member("root/dev/sda", kind=tarfile.BLKTYPE, devmajor=8, devminor=0)], "a device node"),
    ([member("root/fifo", kind=tarfile.FIFOTYPE)], "not a regular file"),
    ([member("evil.sh", b"#!/bin/sh\n")], "no place in a recording"),
    ([member("cpuid.txt/x", b"")], "no place"),
    ([member("root/proc/cpuinfo", b"x" * (remote.MAX_ROOT_FILE + 1))], "more than"),
    ([member("root/a", b"1"), member("root/a", b"2")], "twice"),
    ([member("root/a", b"1"), member("root/a/b", b"2")], "where a directory belongs"),
    ([member("root/./a", b"1")], "refused"),
    ([member("root//a", b"1")], "refused"),
    ([member("root/a\x1b[2J", b"1")], "refused"),
    ([member("root/a")], "no scenario.json"),
    ([member("scenario.json", b"[1, 2]")], "names no recording format"),
    ([member("scenario.json", b"{not json")], "not JSON"),
])
def test_hostile_tars_write_nothing_outside(tmp_path, members, why):
    members = [member(str(tmp_path / "escaped"), b"evil") if info.name == "PLACEHOLDER_ABSOLUTE" else (info, data)
               for info, data in members]
    error, files = extract_into(tmp_path, tar_of(*members))
    assert error is not None and why in error, error
    assert "\n" not in error
    assert all(name == "dest" or name.startswith("dest/") for name in files), files
    assert not (tmp_path / "escaped").exists()
    assert not any(os.path.islink(tmp_path / "box" / name) for name in files)
    if "escaped" in why or why == "climbs out":
        assert not (tmp_path / "box" / "escaped").exists()


def test_existing_symlink_in_the_way_is_not_followed(tmp_path):
    box = tmp_path / "box"
    (box / "dest").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", box / "dest" / "root")
    with pytest.raises(CapsfastError, match="a file or a link where a directory belongs"):
        remote.extract(io.BytesIO(tar_of(member("root/x", b"1"), SCENARIO)), str(box / "dest"), "test")
    assert everything_under(tmp_path / "outside") == []


class Endless(io.RawIOBase):
    """A stream that never ends: ``chunk`` forever (with ``first`` before)."""

    def __init__(self, chunk, first=b""):
        self.chunk = chunk
        self.pending = first
        self.served = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.pending:
            self.pending = self.chunk
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.served += n
        return n


def endless_members():
    """Endless distinct small members, as a generator of tar blocks."""
    class Members(io.RawIOBase):
        def __init__(self):
            self.i = 0
            self.pending = b""
            self.served = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            if not self.pending:
                self.i += 1
                info = tarfile.TarInfo("root/f%d" % self.i)
                self.pending = info.tobuf(tarfile.GNU_FORMAT)
            n = min(len(buffer), len(self.pending))
            buffer[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            self.served += n
            return n

    return Members()


@pytest.mark.parametrize("make, why", [
    (lambda: Endless(b"\0" * 4096), "larger than"),                       # end-of-archive, then more forever
    (lambda: Endless(b"A" * 4096), "not a recording"),                    # garbage forever
    (lambda: Endless(b"x" * 4096, first=member("root/big", b"")[0].tobuf(tarfile.GNU_FORMAT)), "larger than"),
    (endless_members, "more than %d members" % remote.MAX_MEMBERS),
])
def test_endless_streams_stop_at_the_bounds(tmp_path, make, why):
    stream = make()
    if why == "larger than" and not isinstance(stream, Endless):
        pytest.fail("bad parameters")
    error, files = extract_into(tmp_path, io.BufferedReader(stream))
    assert error is not None and why in error, error
    assert stream.served <= remote.MAX_REPLY + 2 * 65536
    assert all(name == "dest" or name.startswith("dest/") for name in files)


def test_huge_declared_member_is_refused_before_reading(tmp_path):
    info = tarfile.TarInfo("cpuid.txt")
    info.size = 1 << 40
    stream = Endless(b"x" * 4096, first=info.tobuf(tarfile.GNU_FORMAT))
    error, _files = extract_into(tmp_path, io.BufferedReader(stream))
    assert "more than" in error
    assert stream.served < 1 << 20


def test_every_truncation_is_an_error(tmp_path):
    tar = recording_tar()
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r|") as t:
        for _member in t:
            pass
        end = t.offset + 1024  # after the two end-of-archive blocks: only padding follows
    cuts = sorted(set(range(0, end, 512)) | {1, 100, 511, 513, end - 1} | set(range(7, end, 1531)))
    for i, cut in enumerate(cuts):
        dest = tmp_path / str(i)
        dest.mkdir()
        with pytest.raises(CapsfastError) as info:
            remote.extract(io.BytesIO(tar[:cut]), str(dest), "test")
        message = str(info.value)
        assert any(word in message for word in ("truncated", "empty", "no scenario.json", "not a recording")), \
            (cut, message)


def test_read_stream_removes_its_directory_on_error(own_tmp):
    with pytest.raises(CapsfastError):
        remote.read_stream(io.BytesIO(tar_of(member("../x", b"1"))), "test")
    assert list(own_tmp.iterdir()) == []
    with remote.read_stream(io.BytesIO(recording_tar()), "test") as directory:
        assert os.path.isfile(os.path.join(directory, "scenario.json"))
        assert os.path.dirname(directory) == str(own_tmp)
    assert list(own_tmp.iterdir()) == []


# ------------------------------------------------------------------ over SSH


def first_block(data):
    end = data.find(b"\n\n")
    return data if end < 0 else data[:end + 2]


def test_fetch_records_this_machine(sshd, own_tmp):
    with remote.fetch(sshd.uri(verify=True), timeout=TIMEOUT) as directory:
        top = sorted(os.listdir(directory))
        with open(os.path.join(directory, "scenario.json")) as f:
            scenario = json.load(f)
        root = os.path.join(directory, "root")
        with open("/proc/cpuinfo", "rb") as f:
            here = first_block(f.read(1 << 20))
        with open(os.path.join(root, "proc/cpuinfo"), "rb") as f:
            assert f.read() == here
        with open("/proc/sys/kernel/arch", "rb") as f, open(os.path.join(root, "proc/sys/kernel/arch"), "rb") as g:
            assert g.read() == f.read()
        # Each plan entry: there in the recording exactly where it is here.
        for key, path, op, _msr, _size in remote.plan("x")["files"]:
            if op == "msr":
                continue
            there = os.path.lexists(root + path)
            assert there == os.path.exists(path), (key, path)
            if there and os.path.isdir(path):
                assert os.path.isfile(root + path + "/.present")
        # Emulators: empty executable stand-ins for executables on the remote PATH.
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                if name.startswith("qemu-system-"):
                    real = os.path.join(dirpath[len(root):], name)
                    assert os.access(real, os.X_OK) and real.rpartition("/")[0] in scenario["path"].split(":")
                    assert os.stat(os.path.join(dirpath, name)).st_mode & 0o777 == 0o755
        cpuid_txt = None
        if os.path.exists(os.path.join(directory, "cpuid.txt")):
            with open(os.path.join(directory, "cpuid.txt")) as f:
                cpuid_txt = f.read()
    assert list(own_tmp.iterdir()) == []  # removed after the with block
    assert top[-1] == "scenario.json" and "root" in top
    assert scenario["format"] == 1 and scenario["capsfast"] == __version__
    assert "127.0.0.1" in scenario["description"]
    host = capsfast.probe()
    assert scenario["arch"] == host.arch
    assert scenario["cpu_source"] == ("cpuid" if collector.cpuid_dump() is not None else "cpuinfo")
    assert cpuid_txt == collector.cpuid_dump()
    kvm = scenario["devices"][KVM_DEVICE]
    mode = int(kvm["mode"], 8) if kvm["mode"] else 0
    assert (kvm["stat"] == "ok") == host.kvm.exists
    assert stat.S_ISCHR(mode) == host.kvm.char_device
    assert (host.kvm.char_device and kvm["access"] == "ok") == host.kvm.accessible
    assert kvm["api_version"] == host.kvm.api_version
    assert kvm["create_vm"] == "not_tried" and scenario["deep"] is False


def test_connect_replays_as_this_host(sshd):
    import inspect

    if "connect" not in inspect.signature(capsfast.probe).parameters:
        pytest.skip("probe() has no connect yet")
    host = capsfast.probe()
    there = capsfast.probe(connect=sshd.uri())
    for field in ("arch", "kvm", "xen", "kqemu", "hvm"):
        assert getattr(there, field) == getattr(host, field), field
    assert there.cpu.vendor == host.cpu.vendor and there.cpu.features == host.cpu.features


def test_collector_never_imports_capsfast(sshd, own_tmp):
    with remote.fetch(sshd.uri("guarded"), timeout=TIMEOUT) as directory:
        assert os.path.isfile(os.path.join(directory, "scenario.json"))


def test_qemu_ssh_uri_with_deep(sshd):
    uri = "qemu+ssh://%s@127.0.0.1:%d/system?keyfile=%s&no_verify=1" % (sshd.user, sshd.port, sshd.keys["good"])
    with remote.fetch(uri, timeout=TIMEOUT, deep=True) as directory:
        with open(os.path.join(directory, "scenario.json")) as f:
            scenario = json.load(f)
    assert scenario["deep"] is True
    kvm = scenario["devices"][KVM_DEVICE]
    if kvm["api_call"] == "ok":
        assert kvm["create_vm"] != "not_tried"


def test_fault_nothing_listens(sshd):
    one_line_fault(lambda: remote.fetch(sshd.uri(port=free_port()), timeout=TIMEOUT), "connection refused")


def test_fault_server_never_speaks(sshd):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections complete in the kernel, nobody answers
        port = silent.getsockname()[1]
        message, took = timed(lambda: remote.fetch(sshd.uri(port=port), timeout=2))
    assert "timed out" in message and "127.0.0.1" in message, message
    assert took < 2 + remote.GRACE + 3


def test_fault_key_not_authorized(sshd):
    one_line_fault(lambda: remote.fetch(sshd.uri("stranger"), timeout=TIMEOUT), "authentication refused")


def test_fault_host_key_mismatch(sshd, tmp_path):
    other = keygen(tmp_path / "other_host_key")
    wrong = tmp_path / "known_hosts"
    wrong.write_text("[127.0.0.1]:%d %s\n" % (sshd.port, (tmp_path / "other_host_key.pub").read_text().strip()))
    uri = "ssh://%s@127.0.0.1:%d?keyfile=%s&known_hosts=%s" % (sshd.user, sshd.port, sshd.keys["good"], wrong)
    one_line_fault(lambda: remote.fetch(uri, timeout=TIMEOUT), "host key mismatch")
    assert other.exists()


def test_fault_host_key_unknown(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    uri = "ssh://%s@127.0.0.1:%d?keyfile=%s&known_hosts=%s" % (sshd.user, sshd.port, sshd.keys["good"], empty)
    one_line_fault(lambda: remote.fetch(uri, timeout=TIMEOUT), "host key not known")
    assert empty.read_text() == ""


def test_fault_missing_key_file(sshd, tmp_path):
    uri = "ssh://127.0.0.1:%d?keyfile=%s&no_verify=1" % (sshd.port, tmp_path / "nokey")
    one_line_fault(lambda: remote.fetch(uri, timeout=TIMEOUT), "keyfile", "No such file")


def test_fault_no_python3(sshd):
    one_line_fault(lambda: remote.fetch(sshd.uri("nopython"), timeout=TIMEOUT), "no python3")


def test_fault_garbage(sshd, own_tmp):
    one_line_fault(lambda: remote.fetch(sshd.uri("junk"), timeout=TIMEOUT), "not a recording")
    assert list(own_tmp.iterdir()) == []


def test_fault_truncated(sshd, own_tmp):
    one_line_fault(lambda: remote.fetch(sshd.uri("cut"), timeout=TIMEOUT), "truncated")
    assert list(own_tmp.iterdir()) == []


def test_fault_hang_before_any_reply(sshd):
    one_line_fault(lambda: remote.fetch(sshd.uri("sleep"), timeout=TIMEOUT), "no reply within")


def test_fault_hang_mid_stream(sshd):
    one_line_fault(lambda: remote.fetch(sshd.uri("stall"), timeout=TIMEOUT), "mid-stream")


def test_fault_endless_reply(sshd):
    one_line_fault(lambda: remote.fetch(sshd.uri("endless"), timeout=TIMEOUT), "larger than")


def test_fault_hostile_reply_end_to_end(sshd, own_tmp):
    one_line_fault(lambda: remote.fetch(sshd.uri("hostile"), timeout=TIMEOUT), "climbs out")
    assert list(own_tmp.iterdir()) == []
    assert not (own_tmp.parent / "escaped").exists()


def test_fetch_many_one_dead(sshd, own_tmp):
    uris = [sshd.uri(), sshd.uri(port=free_port()), sshd.uri(verify=True)]
    results = remote.fetch_many(uris, parallel=3, timeout=TIMEOUT)
    try:
        assert [r.uri for r in results] == uris
        assert results[1].recording is None and "connection refused" in str(results[1].error)
        for r in (results[0], results[2]):
            assert r.error is None
            assert os.path.isfile(os.path.join(r.recording.path, "scenario.json"))
    finally:
        for r in results:
            r.close()
    assert list(own_tmp.iterdir()) == []


def test_fetch_many_bounds_its_parallelism(sshd, monkeypatch):
    monkeypatch.setattr(remote, "GRACE", 1.0)
    deadline = 1.0 + 1.0
    start = time.monotonic()
    results = remote.fetch_many([sshd.uri("sleep")] * 4 + ["http://bad"], parallel=2, timeout=1.0)
    took = time.monotonic() - start
    assert all(r.error is not None and r.recording is None for r in results)
    assert "bad remote URI" in str(results[-1].error)
    # Four hangs two at a time: two rounds of the deadline, not one, not four.
    assert 2 * deadline - 0.5 < took < 3 * deadline + 2, took


# ------------------------------------------------ the command line, end to end

def cli(*args, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([sys.executable, "-m", "capsfast", *args], timeout=120, **kwargs)


def comparable(doc, cpu_source):
    """The parts of a JSON document a remote answer must equal: all but
    host.cpu.source with a CPUID walk; else (CPU facts from /proc/cpuinfo)
    the KVM facts, the verdict's status and the guests."""
    if cpu_source == "cpuid":
        doc = json.loads(json.dumps(doc))
        doc["host"]["cpu"].pop("source")
        return doc
    return {"kvm": doc["host"]["kvm"], "hvm": doc["host"]["hvm"]["status"], "guests": doc["guests"]}


def remote_cpu_source(sshd):
    with remote.fetch(sshd.uri(), timeout=TIMEOUT) as directory:
        with open(os.path.join(directory, "scenario.json")) as f:
            return json.load(f)["cpu_source"]


def test_cli_connect_equals_the_live_answer(sshd):
    source = remote_cpu_source(sshd)
    live = json.loads(cli("capabilities", "--format", "json").stdout)
    there = cli("capabilities", "--format", "json", "--connect", sshd.uri())
    assert there.returncode == 0, there.stderr
    assert comparable(json.loads(there.stdout), source) == comparable(live, source)
    check_here, check_there = cli("check"), cli("check", "--connect", sshd.uri())
    assert check_there.returncode == check_here.returncode
    kvm_lines = [line for line in check_here.stdout.splitlines() if "/dev/kvm" in line]
    assert kvm_lines and all(line in check_there.stdout for line in kvm_lines), check_there.stdout
    if source == "cpuid":
        assert check_there.stdout == check_here.stdout
        assert cli("capabilities", "--connect", sshd.uri()).stdout == cli("capabilities").stdout


def test_record_over_ssh_pipes_into_a_replay(sshd):
    """ssh host capsfast record - | capsfast check --replay -"""
    key = sshd.keys["good"]
    ssh = ["ssh", "-p", str(sshd.port), "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "%s@127.0.0.1" % sshd.user,
           "%s -m capsfast record -" % sys.executable]
    recorder = subprocess.Popen(ssh, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    replay = subprocess.run([sys.executable, "-m", "capsfast", "check", "--replay", "-"], stdin=recorder.stdout,
                            capture_output=True, text=True, timeout=120)
    recorder.stdout.close()
    assert recorder.wait(timeout=60) == 0, recorder.stderr.read()
    live = cli("check")
    assert (replay.returncode, replay.stdout) == (live.returncode, live.stdout), replay.stderr


def test_record_connect_saves_the_remote_recording(sshd, tmp_path):
    done = cli("record", "--connect", sshd.uri(), str(tmp_path / "rec"))
    assert done.returncode == 0, done.stderr
    source = json.loads((tmp_path / "rec" / "scenario.json").read_text())["cpu_source"]
    replayed = json.loads(cli("capabilities", "--format", "json", "--replay", str(tmp_path / "rec")).stdout)
    live = json.loads(cli("capabilities", "--format", "json").stdout)
    assert comparable(replayed, source) == comparable(live, source)


def test_many_hosts_one_dead(sshd, tmp_path):
    dead = sshd.uri(port=free_port())
    hosts = tmp_path / "hosts"
    hosts.write_text("# two good, one dead\n%s\n%s  # again\n" % (sshd.uri(), dead))
    started = time.monotonic()
    done = cli("capabilities", "--format", "json", "--connect", sshd.uri(), "--hosts", str(hosts))
    assert time.monotonic() - started < LATEST * 2
    assert done.returncode == 2
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["uri"] for d in docs] == [sshd.uri(), sshd.uri()]
    assert all(d["schema_version"] == 1 and d["host"]["kvm"] for d in docs)
    errors = done.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("capsfast: ") and "127.0.0.1" in errors[0], done.stderr
    xml = cli("capabilities", "--connect", sshd.uri(), "--connect", sshd.uri())
    assert xml.returncode == 0 and xml.stdout.count("<capabilities>") == 2
    assert xml.stdout.count("<!-- capsfast: ssh://") == 2


def test_several_hosts_only_for_capabilities(sshd):
    done = cli("check", "--connect", sshd.uri(), "--connect", sshd.uri())
    assert done.returncode == 2 and "takes several" in done.stderr
