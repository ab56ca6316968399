"""One writer of recordings: ``capsfast record`` here and the collector
``--connect`` sends to a remote python3 write the same recording of the
same host (the description apart); and a part declared in a test, made of
files only, is recorded, replayed and read remotely with no change
anywhere but its declaration."""
import json
import os
import subprocess
import sys
import tarfile
import io

import pytest

from capsfast.recording import remote

CPUID_DEVICE = "/dev/cpu/0/cpuid"


def on_cpu_zero(code):
    """``code`` run by this Python pinned to CPU 0 (the cpuid driver's node
    is CPU 0's: the APIC ids a CPUID walk sees are its CPU's)."""
    return subprocess.run([sys.executable, "-c", "import os; os.sched_setaffinity(0, {0})\n" + code],
                          capture_output=True, timeout=120)


def tree(directory):
    """{relative path: bytes, or None for a directory} of a directory."""
    out = {}
    for dirpath, dirs, names in os.walk(directory):
        for name in dirs:
            out[os.path.relpath(os.path.join(dirpath, name), directory)] = None
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                out[os.path.relpath(os.path.join(dirpath, name), directory)] = f.read()
    return out


def without_description(data):
    doc = json.loads(data)
    doc.pop("description")
    return doc


@pytest.mark.skipif(not os.access(CPUID_DEVICE, os.R_OK), reason="the cpuid driver's node is not readable here: "
                    "the collector cannot walk CPUID as the C module does")
def test_a_local_recording_equals_the_collectors(tmp_path):
    local = tmp_path / "local"
    made = on_cpu_zero("from capsfast.recording import format; print(format.record(%r))" % str(local))
    assert made.returncode == 0, made.stderr
    # The collector as --connect sends it: its text with the plan, run by a
    # python3 that cannot import capsfast.
    script = remote.script(remote.plan("here"))
    # This interpreter, not a "python3" from PATH: a shim there may change
    # the PATH the recording keeps.
    sent = subprocess.run([sys.executable, "-c", "import os, subprocess, sys; os.sched_setaffinity(0, {0}); "
                           "sys.stdout.buffer.write(subprocess.run([sys.executable, '-I', '-S', '-'], input=sys.stdin"
                           ".buffer.read(), capture_output=True, check=True).stdout)"],
                          input=script, capture_output=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    remote_dir = tmp_path / "remote"
    with tarfile.open(fileobj=io.BytesIO(sent.stdout), mode="r|") as tar:
        tar.extractall(remote_dir)
    here, there = tree(local), tree(remote_dir)
    assert sorted(here) == sorted(there)
    assert without_description(here.pop("scenario.json")) == without_description(there.pop("scenario.json"))
    # Free memory moves between two recordings; every other byte is the host's.
    moving = ("meminfo", "free_hugepages")
    different = [name for name in here if here[name] != there[name] and not name.endswith(moving)]
    assert different == []


@pytest.fixture
def files_only_part(monkeypatch):
    from capsfast import parts

    monkeypatch.setattr(parts, "PARTS", parts.PARTS + ["files_only_part"])
    return parts.part("files_only_part")


def test_a_files_only_part_is_recorded_replayed_and_read_remotely(files_only_part, tmp_path, sshd):
    from capsfast.recording import format as recording
    from capsfast.sources.live import Live
    from scenarios import HOSTS

    part = files_only_part
    here = part.fields(Live("x86_64"), None)
    with open("/proc/sys/kernel/osrelease", "rb") as f:
        assert here["release"] == f.read() and here["hostname"]
    recording.record(str(tmp_path / "rec"))
    replay = recording.read(str(tmp_path / "rec"))
    assert replay.captured(part.NAME)
    assert part.fields(replay, None) == here
    # A recording made before the part existed cannot tell: unknown, not absent.
    assert part.fields(recording.read(str(HOSTS / "intel-enabled")), None) == part.UNKNOWN
    with remote.fetch(sshd.uri(), timeout=10.0) as directory:
        assert part.fields(recording.read(directory), None) == here
