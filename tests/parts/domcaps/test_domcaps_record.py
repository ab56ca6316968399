"""Record, then replay: ``capsfast record`` keeps each x86 emulator's QMP
transcript (``qemu/<basename>.replies``, libvirt's own format), swtpm's
answer, the firmware descriptors and loader placeholders; ``--replay``
gives the same document byte for byte with no QEMU in its PATH (nothing
is run), and one clear line where the recording holds no transcript."""
import os
import shutil
import subprocess
import sys

import pytest

from capsfast.parts.domcaps import parse

EMULATOR = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(EMULATOR is None, reason="qemu-system-x86_64 is not installed "
                                "(apt-get install --no-install-recommends qemu-system-x86)")


def capsfast(*args, env):
    return subprocess.run([sys.executable, "-m", "capsfast"] + list(args), capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("record")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp / "cache"))
    directory = tmp / "recording"
    done = capsfast("record", str(directory), env=env)
    assert done.returncode == 0, done.stderr
    return directory, env


def virttypes():
    return ("kvm", "qemu") if os.access("/dev/kvm", os.R_OK | os.W_OK) else ("qemu",)


def test_transcripts_kept_in_libvirts_format(recorded):
    directory, _env = recorded
    path = directory / "qemu" / "qemu-system-x86_64.replies"
    transcript = parse.transcript(path.read_text())
    assert transcript.value("query-target")["arch"] == "x86_64"
    # written as libvirt writes its tests/qemucapabilitiesdata files: parsing and formatting round-trip
    assert parse.transcript_text(transcript) == path.read_text()


def test_descriptors_kept(recorded):
    directory, _env = recorded
    here = "/usr/share/qemu/firmware"
    names = sorted(n for n in os.listdir(here) if not n.startswith(".")) if os.path.isdir(here) else []
    kept = directory / "root" / here.lstrip("/")
    assert sorted(os.listdir(kept)) == names if names else not kept.exists() or not os.listdir(kept)


@pytest.mark.parametrize("machine", [None, "q35", "pc"])
def test_replay_equals_live_running_nothing(recorded, machine):
    directory, env = recorded
    for virttype in virttypes():
        args = ["domcapabilities", "--virttype", virttype] + (["--machine", machine] if machine else [])
        live = capsfast(*args, env=env)
        assert live.returncode == 0, live.stderr
        # no QEMU to be found at replay time: it could not run one if it tried
        replayed = capsfast(*args, "--replay", str(directory), env=dict(env, PATH="/nonexistent"))
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout == live.stdout


def test_replay_without_transcript_is_one_line(recorded, tmp_path):
    directory, env = recorded
    copy = tmp_path / "older"
    shutil.copytree(directory, copy)
    shutil.rmtree(copy / "qemu")
    done = capsfast("domcapabilities", "--virttype", "qemu", "--replay", str(copy), env=dict(env, PATH="/nonexistent"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("capsfast: ") and "holds no QMP transcript" in done.stderr
    assert done.stderr.count("\n") == 1


def test_replay_api_from_a_probe(recorded, monkeypatch):
    import capsfast as api

    directory, env = recorded
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    live = api.domain_capabilities(virttype="qemu")
    monkeypatch.setenv("PATH", "/nonexistent")
    host = api.probe(replay=str(directory))
    assert api.domain_capabilities(host, virttype="qemu") == live
