"""QEMU's answers in a recording: the collector holds libvirt's QMP
conversation (the same code as a local probe, sent along as text) and
keeps the transcript as qemu/<emulator>.replies; over SSH, a remote host
with no QEMU, or whose QEMU fails, is one line naming the host."""
import ast
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import parse, qmp
from capsfast.recording import capture, collector, remote

from ssh_server import TIMEOUT

QEMU = shutil.which("qemu-system-x86_64")
needs_qemu = pytest.mark.skipif(QEMU is None or os.uname().machine != "x86_64",
                                reason="qemu-system-x86_64 on an x86_64 host is needed")


def _sequence(transcript):
    return [[(command["execute"], command.get("arguments")) for command, _reply in process]
            for process in transcript.processes]


def _replies(transcript):
    return [[reply for _command, reply in process] for process in transcript.processes]


# ------------------------------------------------------------------ the text sent


def test_the_conversation_runs_where_capsfast_is_not():
    """qmp.py goes to the remote python3 as text: Python 3.6 syntax, the
    standard library only at module level, and it runs with capsfast
    unimportable."""
    source = open(qmp.__file__).read()
    tree = ast.parse(source, feature_version=(3, 6))
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                assert not name.startswith("capsfast"), name
                if hasattr(sys, "stdlib_module_names"):
                    assert name.split(".")[0] in sys.stdlib_module_names, name
    namespace = {"__name__": "sent"}
    saved = sys.modules.get("capsfast")
    sys.modules["capsfast"] = None  # type: ignore[assignment]
    try:
        exec(compile(source, "sent", "exec"), namespace)
    finally:
        sys.modules["capsfast"] = saved
    assert callable(namespace["conversation"]) and callable(namespace["replies_text"])


def test_the_script_carries_the_conversation_only_when_asked():
    plain = remote.script(remote.plan("h")).decode()
    asked = remote.script(remote.plan("h", domcaps=True)).decode()
    assert '\nQMP = ""\n' in plain
    assert '\nQMP = ""\n' not in asked
    assert "def conversation(" in asked and "def conversation(" not in plain
    assert "qmp" not in remote.plan("h") and remote.plan("h", domcaps=True)["qmp"]["emulator"] is None
    assert remote.plan("h", domcaps=True, emulator="/opt/q")["qmp"]["emulator"] == "/opt/q"


# ------------------------------------------------------------------ which emulator


@pytest.mark.parametrize("arch, found, expected", [
    ("x86_64", ["/usr/bin/qemu-system-i386", "/usr/bin/qemu-system-x86_64"], "/usr/bin/qemu-system-x86_64"),
    ("i686", ["/usr/bin/qemu-system-i386", "/usr/bin/qemu-system-x86_64"], "/usr/bin/qemu-system-i386"),
    ("armv7l", ["/usr/bin/qemu-system-arm"], "/usr/bin/qemu-system-arm"),
    ("x86_64", ["/usr/bin/qemu-system-x86_64-microvm", "/usr/libexec/qemu-kvm"], "/usr/libexec/qemu-kvm"),
    ("x86_64", ["/usr/bin/qemu-system-x86_64-microvm"], None),
    ("aarch64", [], None),
])
def test_the_host_architectures_own_emulator(arch, found, expected):
    assert collector.qmp_emulator(capture.qmp_plan(), arch, found) == expected


def test_a_named_emulator_wins():
    assert collector.qmp_emulator(capture.qmp_plan("/opt/qemu"), "x86_64", ["/usr/bin/qemu-system-x86_64"]) \
        == "/opt/qemu"


def test_no_qemu_is_a_collector_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    plan = capture.plan("test", domcaps=True)
    plan["emulators"]["qemu_kvm"] = str(tmp_path / "qemu-kvm")
    with pytest.raises(collector.CollectorError, match="no QEMU emulator for"):
        collector.collect(plan, qmp=qmp)


# ------------------------------------------------------------------ over SSH


@needs_qemu
def test_remote_transcript_is_the_local_one(sshd, own_tmp):
    local = qmp.converse(QEMU, timeout=30)
    with remote.fetch(sshd.uri(verify=True), timeout=TIMEOUT, domcaps=True) as directory:
        with open(os.path.join(directory, "scenario.json")) as f:
            scenario = json.load(f)
        name = "qemu/%s.replies" % os.path.basename(QEMU)
        assert scenario["qmp"] == {"emulator": QEMU, "replies": name}
        with open(os.path.join(directory, name)) as f:
            text = f.read()
    there = parse.transcript(text)
    assert parse.transcript_text(there) == text  # libvirt's layout, as a local transcript is written
    assert _sequence(there) == _sequence(local)
    assert len(there.processes[0]) >= 40
    # Nothing in QEMU's answers depends on when they were asked.
    assert _replies(there) == _replies(local)


def _fault(fn):
    with pytest.raises(CapsfastError) as caught:
        fn()
    message = str(caught.value)
    assert "\n" not in message and "@127.0.0.1:" in message.split(": ")[0], message
    return message


def test_remote_without_that_qemu(sshd, own_tmp, tmp_path):
    missing = str(tmp_path / "qemu-system-x86_64")
    message = _fault(lambda: remote.fetch(sshd.uri(verify=True), timeout=TIMEOUT, domcaps=True, emulator=missing))
    assert "the collector failed there: emulator %s: not an executable file" % missing in message


def test_remote_qemu_that_fails(sshd, own_tmp, tmp_path):
    broken = tmp_path / "qemu-system-x86_64"
    broken.write_text("#!/bin/sh\necho 'qemu: could not load PC BIOS' >&2\nexit 1\n")
    broken.chmod(0o755)
    message = _fault(lambda: remote.fetch(sshd.uri(verify=True), timeout=TIMEOUT, domcaps=True,
                                          emulator=str(broken)))
    assert "exited before answering qmp_capabilities (exit status 1): qemu: could not load PC BIOS" in message


def test_collector_error_line_has_no_class_name(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(collector, "QMP", open(qmp.__file__).read())  # as the script carries it
    monkeypatch.setenv("PATH", str(tmp_path))
    plan = capture.plan("test", domcaps=True)
    plan["emulators"]["qemu_kvm"] = str(tmp_path / "qemu-kvm")
    assert collector.main(json.dumps(plan)) == remote.COLLECTOR_FAILED
    err = capsys.readouterr().err
    assert err.startswith("capsfast collector: no QEMU emulator for ") and err.count("\n") == 1, err


@needs_qemu
def test_export_nfd_domcaps_over_ssh_is_the_local_one(sshd, own_tmp, capsys):
    from capsfast.cli import main

    assert main(["export", "nfd", "--stdout", "--domcaps"]) == 0
    here = capsys.readouterr().out
    assert main(["export", "nfd", "--stdout", "--domcaps", "--connect", sshd.uri(verify=True)]) == 0
    there = capsys.readouterr().out
    assert "capsfast-host-model-cpu." in there
    assert there == here
    assert os.listdir(str(own_tmp)) == []  # the fetched recording is gone


@needs_qemu
def test_qemu_is_asked_from_old_pythons(tmp_path, own_tmp):
    """The conversation as sent runs on Python 3.6 to 3.8 (no os.pidfd_open
    there) and gives the local transcript."""
    from test_collector import old_pythons

    pythons = old_pythons()
    if not pythons:
        pytest.skip("no Python 3.6 to 3.8 here")
    local = qmp.converse(QEMU, timeout=30)
    text = remote.script(remote.plan("here", domcaps=True, emulator=QEMU))
    for version, python in pythons:
        proc = subprocess.run([python, "-I", "-S", "-"], input=text, capture_output=True, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0 and proc.stderr == b"", (version, proc.stderr)
        with remote.read_stream(io.BytesIO(proc.stdout), version) as directory:
            with open(os.path.join(directory, "qemu", os.path.basename(QEMU) + ".replies")) as f:
                there = parse.transcript(f.read())
        assert _sequence(there) == _sequence(local), version
