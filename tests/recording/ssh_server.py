"""The SSH server the remote tests start for themselves, and helpers the
remote tests share (see conftest.py for the fixtures).

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
import io
import os
import socket
import subprocess
import tarfile
import time

import pytest

from capsfast import CapsfastError
from capsfast.recording import collector
from capsfast.recording import remote

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


DEEP = 5000


def deep_json(levels=DEEP):
    """A recording's scenario.json with a value nested ``levels`` deep."""
    return ('{"format": 1, "description": ' + "[" * levels + "]" * levels + "}").encode()


def deep_recording_tar(tar):
    """The recording ``tar`` with a deeply nested scenario.json."""
    src, out = io.BytesIO(tar), io.BytesIO()
    with tarfile.open(fileobj=src) as old, tarfile.open(fileobj=out, mode="w") as new:
        for member in old:
            data = old.extractfile(member).read() if member.isfile() else None
            if member.name == "scenario.json":
                data = deep_json()
                member.size = len(data)
            new.addfile(member, None if data is None else io.BytesIO(data))
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


def first_block(data):
    end = data.find(b"\n\n")
    return data if end < 0 else data[:end + 2]
