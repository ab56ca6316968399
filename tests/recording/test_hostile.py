"""Hostile input through every reader of recordings and remote replies,
whole processes: one ``capsfast: ...`` line and exit 2, the other hosts
still answered, nothing left in the temporary directory, no ssh left
running, and no cache written for a host that is not this one."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import capsfast
from capsfast import CapsfastError

from ssh_server import LATEST, deep_json


def cli(*args, tmp, **kwargs):
    """``capsfast ARGS`` with its temporary files and caches under ``tmp``."""
    env = dict(os.environ, TMPDIR=str(tmp / "tmp"), XDG_CACHE_HOME=str(tmp / "cache"))
    (tmp / "tmp").mkdir(exist_ok=True)
    kwargs.setdefault("capture_output", True)
    return subprocess.run([sys.executable, "-m", "capsfast", *args], env=env, timeout=120, **kwargs)


def one_error_line(done, *words):
    err = done.stderr.decode() if isinstance(done.stderr, bytes) else done.stderr
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("capsfast: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def deep_recording(tmp_path):
    """A real recording (of one of the test hosts) whose scenario.json
    nests 5,000 levels deep."""
    there = tmp_path / "deep"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "hosts", "intel-enabled"), there,
                    ignore=shutil.ignore_patterns("expected*"))
    (there / "scenario.json").write_bytes(deep_json())
    return there


def test_deep_scenario_through_replay_dir(deep_recording, tmp_path):
    for command in (("check", "-q"), ("capabilities",)):
        done = cli(*command, "--replay", str(deep_recording), tmp=tmp_path)
        assert done.returncode == 2
        one_error_line(done, "scenario.json", "nests deeper than")
    with pytest.raises(CapsfastError, match="nests deeper than"):
        capsfast.probe(replay=str(deep_recording))


def test_deep_scenario_through_replay_stream(deep_recording, tmp_path):
    tar = subprocess.run(["tar", "-C", str(deep_recording), "-cf", "-", *sorted(os.listdir(deep_recording))], capture_output=True, check=True).stdout
    done = cli("check", "--replay", "-", input=tar, tmp=tmp_path)
    assert done.returncode == 2
    one_error_line(done, "standard input", "nests deeper than")
    assert os.listdir(tmp_path / "tmp") == []


def test_deep_reply_among_good_hosts(sshd, tmp_path):
    good, hostile = sshd.uri(), sshd.uri("deep")
    done = cli("capabilities", "--connect", good, "--connect", hostile, "--connect", good, tmp=tmp_path,
               text=True)
    assert done.returncode == 2
    assert done.stdout.count("<capabilities>") == 2, done.stderr
    one_error_line(done, "127.0.0.1", "nests deeper than")
    assert os.listdir(tmp_path / "tmp") == []
    single = cli("check", "-q", "--connect", hostile, tmp=tmp_path)
    assert single.returncode == 2
    one_error_line(single, "127.0.0.1", "nests deeper than")
    assert os.listdir(tmp_path / "tmp") == []


def test_ssh_warnings_are_not_the_reason(sshd, tmp_path):
    # no_verify=1 makes ssh warn that it added the host; the reason is the
    # remote's silence, not that warning.
    done = cli("check", "--connect", sshd.uri("silent"), tmp=tmp_path, text=True)
    assert done.returncode == 2
    line = one_error_line(done, "127.0.0.1")
    assert "Permanently added" not in line and "Warning" not in line, line


def ssh_processes(key):
    """The pids of processes whose command line names the key file ``key``."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if str(key).encode() in f.read().split(b"\0"):
                        found.append(int(pid))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("hosts", [1, 2])
def test_a_signal_ends_the_ssh_children(sshd, tmp_path, number, hosts):
    key = sshd.keys["sleep"]
    uris = [arg for _ in range(hosts) for arg in ("--connect", sshd.uri("sleep"))]
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "capsfast", "capabilities", *uris], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + LATEST
        while len(ssh_processes(key)) < hosts and time.monotonic() < deadline:
            time.sleep(0.05)
        running = ssh_processes(key)
        assert len(running) == hosts
        time.sleep(0.3)  # the remote side started too
        proc.send_signal(number)
        _out, err = proc.communicate(timeout=LATEST)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (-number, 128 + number, 130), (proc.returncode, err)
    deadline = time.monotonic() + 5
    while any(pid in ssh_processes(key) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in running if pid in ssh_processes(key)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # the test's own leftovers, by pid
    assert left == []
    assert os.listdir(tmp_path / "tmp") == []


# -- caches -------------------------------------------------------------------------

@pytest.fixture
def recording_tar(tmp_path):
    """This machine recorded (its CPU map included) as a tar stream.
    Recording the live host may fill the live host's own caches (its QEMU
    transcripts): those are kept apart from the caches the replays below
    must leave empty."""
    recorder = tmp_path / "recorder"
    recorder.mkdir()
    done = cli("record", "-", tmp=recorder)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_recording_writes_no_cache(recording_tar, tmp_path):
    for command in (("check", "-q"), ("capabilities",), ("capabilities", "--format", "json")):
        done = cli(*command, "--replay", "-", input=recording_tar, tmp=tmp_path)
        assert done.returncode in (0, 1), done.stderr
    kept = tmp_path / "kept"
    kept.mkdir()
    subprocess.run(["tar", "-C", str(kept), "-xf", "-"], input=recording_tar, check=True)
    assert cli("capabilities", "--replay", str(kept), tmp=tmp_path).returncode == 0
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").rglob("*")) == []
    assert os.listdir(tmp_path / "tmp") == []


def test_a_remote_host_writes_no_cache(sshd, tmp_path):
    for command in (("check", "-q"), ("capabilities",), ("capabilities", "--format", "json")):
        done = cli(*command, "--connect", sshd.uri(), tmp=tmp_path)
        assert done.returncode in (0, 1), done.stderr
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").rglob("*")) == []


def test_check_never_decodes_a_streamed_recording(recording_tar, tmp_path):
    # A CPU map that cannot be decoded: check, which never decodes, does
    # not notice; capabilities, which does, says so.
    broken = tmp_path / "map"
    broken.mkdir()
    (broken / "index.xml").write_text("<cpus><arch name='x86'><include filename='nothing.xml'/>")
    check = cli("check", "-q", "--replay", "-", "--cpu-map", str(broken), input=recording_tar, tmp=tmp_path)
    assert check.returncode in (0, 1), check.stderr
    capabilities = cli("capabilities", "--replay", "-", "--cpu-map", str(broken), input=recording_tar,
                       tmp=tmp_path)
    assert capabilities.returncode == 2
    one_error_line(capabilities)


# -- every input read once ------------------------------------------------------------

def piped(data, *args, tmp):
    """``capsfast ARGS`` with ``{fd}`` in ARGS a pipe holding ``data``
    (as ``<(...)`` in a shell): it can be read once only."""
    read_end, write_end = os.pipe()
    try:
        args = [a.replace("{fd}", "/dev/fd/%d" % read_end) for a in args]
        env = dict(os.environ, TMPDIR=str(tmp / "tmp"), XDG_CACHE_HOME=str(tmp / "cache"))
        (tmp / "tmp").mkdir(exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "capsfast", *args], pass_fds=(read_end,), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(read_end)
        read_end = -1
        os.write(write_end, data)  # a dump is a few KiB: within the pipe's buffer
        os.close(write_end)
        write_end = -1
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out, err
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)


def test_a_dump_and_a_stream_through_pipes_are_read_once(recording_tar, tmp_path):
    dump = os.path.join(os.path.dirname(__file__), "..", "hosts", "intel-enabled", "cpuid.txt")
    with open(dump, "rb") as f:
        data = f.read()
    root = os.path.join(os.path.dirname(__file__), "..", "hosts", "intel-enabled", "root")
    for command in (("check",), ("capabilities",), ("capabilities", "--format", "json")):
        status, out, err = piped(data, *command, "--root", root, "--cpuid-dump", "{fd}", tmp=tmp_path)
        assert status in (0, 1) and out and not err, err
        done = cli(*command, "--replay", "-", input=recording_tar, tmp=tmp_path)
        assert done.returncode in (0, 1) and done.stdout and not done.stderr, done.stderr


def test_sigterm_mid_stream_leaves_no_temporary_recording(recording_tar, tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "capsfast", "check", "--replay", "-"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(recording_tar[:len(recording_tar) // 2])  # half the stream, then nothing
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not os.listdir(tmp_path / "tmp") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(tmp_path / "tmp"), "no temporary recording was started"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
    assert proc.returncode == -signal.SIGTERM
    assert os.listdir(tmp_path / "tmp") == []
