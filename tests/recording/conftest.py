"""Fixtures of the recording tests: the test's own sshd (ssh_server.py)
and a temporary directory that shows what a fetch leaves behind."""
import getpass
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time

import pytest

from ssh_server import SSHD, Server, deep_recording_tar, free_port, keygen, recording_tar, script, unavailable


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
            ("good", "stranger", "junk", "cut", "sleep", "stall", "nopython", "hostile", "endless", "guarded",
                      "deep", "silent")}
    tar = recording_tar()
    (d / "cut.tar").write_bytes(tar[:len(tar) // 2 + 100])
    (d / "head.tar").write_bytes(tar[:3000])
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as t:
        info = tarfile.TarInfo("../escaped")
        info.size = 4
        t.addfile(info, io.BytesIO(b"evil"))
    (d / "hostile.tar").write_bytes(hostile.getvalue())
    (d / "deep.tar").write_bytes(deep_recording_tar(tar))
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
        # A well-formed tar whose scenario.json nests 5,000 levels deep.
        "deep": script(d / "fake-deep", "cat '%s'\n" % (d / "deep.tar")),
        "silent": script(d / "fake-silent", "exit 1\n"),
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
