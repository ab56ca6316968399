"""The QMP probe with real processes: this host's QEMU holds libvirt 9.0's
conversation, command for command; hostile emulators (small scripts
written here) each end in one CapsfastError line, within the time bound,
with nothing of theirs left running and nothing cached."""
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import cache, parse, qmp

QEMU = shutil.which("qemu-system-x86_64")


def _sequence(process):
    """(command, arguments) of each exchange of one process, in order."""
    return [(command["execute"], command.get("arguments")) for command, _reply in process]


def _qemu_version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(n) for n in out.split("version", 1)[1].split()[0].split(".")[:2])


@pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")
@pytest.mark.parametrize("tcg_early", [True, False], ids=["side-by-side", "one-after-the-other"])
def test_real_qemu_holds_libvirts_conversation(libvirt_src, tcg_early):
    if _qemu_version(QEMU) != (7, 2):
        pytest.skip("this QEMU is not 7.2: libvirt's caps_7.2.0 conversation is not its own")
    transcript = qmp.converse(QEMU, timeout=30, tcg_early=tcg_early)
    reference = parse.transcript(open(os.path.join(
        libvirt_src, "tests", "qemucapabilitiesdata", "caps_7.2.0.x86_64.replies")).read())

    kvm = transcript.value("query-kvm")
    assert isinstance(kvm, dict)
    if kvm["enabled"] and kvm["present"]:
        assert len(transcript.processes) == 2
    else:  # no TCG process where KVM was not used, as libvirt
        assert len(transcript.processes) == 1
    for ours, libvirts in zip(transcript.processes, reference.processes):
        assert _sequence(ours) == _sequence(libvirts)
        # libvirt numbers its commands per process
        assert [c["id"] for c, _r in ours] == ["libvirt-%d" % i for i in range(1, len(ours) + 1)]
        assert all(r["id"] == c["id"] for c, r in ours)
    assert [len(p) for p in reference.processes] == [51, 5]

    text = parse.transcript_text(transcript)
    again = parse.transcript(text)
    assert again.processes == transcript.processes
    assert parse.transcript_text(again) == text
    assert transcript.value("query-target") == {"arch": "x86_64"}


@pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")
def test_real_qemu_leaves_nothing_running(tmp_path):
    wrapper = _script(tmp_path, "qemu", "#!/bin/sh\necho $$ >> %s\nexec %s \"$@\"\n" % (tmp_path / "pids", QEMU))
    transcript = qmp.converse(wrapper, timeout=30, tcg_early=True)
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    # the first process and the TCG one, started together (without KVM the
    # TCG one may be dropped before its wrapper got to write)
    assert len(pids) == 2 or (len(pids) == 1 and len(transcript.processes) == 1)
    for pid in pids:
        assert not _group_alive(pid)


# -- hostile emulators ----------------------------------------------------------------

def _script(directory, name, text):
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def _alive(pid):
    """Whether ``pid`` still runs, given a few seconds to die: SIGKILL is
    delivered to the rest of a group as the scheduler gets to it."""
    for _attempt in range(100):
        if not _running(pid):
            return False
        time.sleep(0.05)
    return True


def _running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _group_alive(pgid):
    """Whether any live process is in process group ``pgid``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and _alive(int(entry)):
            return True
    return False


# Each script records its own pid (its process group: the probe starts it
# in a session of its own) and that of a child it leaves behind in the
# pids file, then misbehaves.  %(pids)s is that file.
_PROLOGUE = "#!/bin/sh\nsleep 300 &\necho $$ $! >> %(pids)s\n"
_PY_PROLOGUE = ("#!%(python)s\nimport os, subprocess, sys\n"
                "child = subprocess.Popen(['sleep', '300'])\n"
                "open(%(pids)r, 'a').write('%%d %%d\\n' %% (os.getpid(), child.pid))\n")

HOSTILE = {
    "never answers": (_PROLOGUE + "exec sleep 300\n", "no answer within"),
    "exits at once": (_PROLOGUE + "echo 'qemu: could not load PC BIOS' >&2\nexit 1\n",
                      "exited before answering qmp_capabilities (exit status 1): qemu: could not load PC BIOS"),
    "malformed JSON": (_PROLOGUE + "printf '{\"QMP\": {}}\\n{\"return\": nope}\\n'\nexec sleep 300\n",
                       "malformed JSON in reply to qmp_capabilities"),
    "endless JSON": (_PROLOGUE + "printf '{\"return\": \"'\ncat /dev/zero | tr '\\000' a\n",
                     "larger than"),
    "deeply nested JSON": (_PY_PROLOGUE + "sys.stdout.write('[' * 100000 + ']' * 100000 + '\\n')\n"
                           "sys.stdout.flush()\nimport time\ntime.sleep(300)\n",
                           "nested deeper than"),
    "an error for every command": (
        _PY_PROLOGUE + "import json\nprint(json.dumps({'QMP': {}}), flush=True)\n"
        "for line in sys.stdin:\n"
        "    print(json.dumps({'id': json.loads(line)['id'], 'error': {'class': 'GenericError',"
        " 'desc': 'not today'}}), flush=True)\n",
        "qmp_capabilities failed: not today"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_emulator_is_one_error_and_leaves_nothing(tmp_path, monkeypatch, name):
    text, expected = HOSTILE[name]
    pids_file = tmp_path / "pids"
    emulator = _script(tmp_path, "qemu-system-x86_64", text % {"pids": str(pids_file), "python": sys.executable})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CAPSFAST_CACHE", raising=False)
    timeout = 2.0
    started = time.monotonic()
    with pytest.raises(CapsfastError) as caught:
        # both processes started at once: both must go
        cache.transcript(emulator, timeout=timeout,
                         converse=lambda e, timeout: qmp.converse(e, timeout=timeout, tcg_early=True))
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and emulator in message
    # Liveness, not speed: the probe gave up at its deadline instead of hanging.
    assert elapsed < timeout + 10
    pids = [int(p) for p in pids_file.read_text().split()]
    # The first process and its child; the TCG process and its child too
    # unless it was killed before it got that far.
    assert len(pids) in (2, 4)
    for pid in pids:
        assert not _alive(pid), (name, pid)
    for pgid in pids[0::2]:
        assert not _group_alive(pgid), (name, pgid)
    cached = tmp_path / "cache" / "capsfast"
    assert not cached.exists() or not os.listdir(cached)


def test_not_executable_is_one_error(tmp_path):
    path = tmp_path / "qemu-system-x86_64"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o644)
    for emulator in (str(path), str(tmp_path / "missing"), str(tmp_path)):
        with pytest.raises(CapsfastError, match="not an executable file"):
            qmp.converse(emulator, timeout=5)
    assert not stat.S_IXUSR & path.stat().st_mode


# -- every QEMU in libvirt's corpus --------------------------------------------------

# An emulator that is one of libvirt's recorded QEMUs: it answers each
# command with the reply libvirt recorded for it, provided it is the very
# command libvirt sent at that point, and an error otherwise (which ends
# the conversation).  The first process (accel=kvm:tcg) plays the file's
# first process, the TCG-only one its second.
REPLAY = r'''#!%(python)s
import json, sys
sys.path[:0] = %(path)r
from capsfast.parts.domcaps import parse
process = parse.transcript(open(%(replies)r).read()).processes[0 if "kvm" in sys.argv[sys.argv.index("-machine") + 1] else 1]
print(json.dumps({"QMP": {"version": {}, "capabilities": []}}), flush=True)
for (expected, reply), line in zip(process, sys.stdin):
    command = json.loads(line)
    if (command["execute"], command.get("arguments")) != (expected["execute"], expected.get("arguments")):
        reply = {"id": command["id"], "error": {"class": "GenericError",
                 "desc": "libvirt sent %%s here, not %%s" %% (expected["execute"], command["execute"])}}
    print(json.dumps(reply), flush=True)
for line in sys.stdin:
    print(json.dumps({"id": json.loads(line)["id"], "error": {"class": "GenericError", "desc": "libvirt sent no more"}}), flush=True)
'''


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "ppc64", "s390x", "riscv64", "sparc"])
def test_every_recorded_qemu_gets_libvirts_conversation(libvirt_src, tmp_path, arch):
    """Each of libvirt 9.0's recorded QEMUs (4.2 to 8.0) is asked exactly
    what libvirt asked it: the conditions (which devices, which CPU
    expansions, SEV, SGX, the TCG process) hold for every version."""
    import glob

    files = sorted(glob.glob(os.path.join(libvirt_src, "tests", "qemucapabilitiesdata", "caps_*.%s.replies" % arch)))
    assert files
    package = os.path.dirname(os.path.dirname(os.path.abspath(qmp.__file__)))
    for path in files:
        recorded = parse.transcript(open(path).read())
        emulator = _script(tmp_path, "qemu-" + os.path.basename(path), REPLAY % {
            "python": sys.executable, "path": [os.path.dirname(package)], "replies": path})
        transcript = qmp.converse(emulator, timeout=60, tcg_early=False)
        assert transcript.processes == recorded.processes, path
