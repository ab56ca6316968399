"""Fetching a remote host over SSH, and every way that can fail (one line, bounded time)."""
import json
import os
import socket
import stat
import time

import pytest

import capsfast
from capsfast.recording import collector
from capsfast.recording import remote
from capsfast.constants import KVM_DEVICE, __version__

from ssh_server import TIMEOUT, first_block, free_port, keygen, one_line_fault, timed


# ------------------------------------------------------------------ over SSH


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
