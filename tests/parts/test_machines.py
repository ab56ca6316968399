"""--machines with an emulator that never answers: the run is bounded, the
emulator and every process it started are killed, one stderr line names
it, and nothing about it is cached."""
import os
import signal
import time

import pytest

from capsfast.parts.guests import discover as emulators
from capsfast.parts.guests import machines
from capsfast.cli import main

# Forks a child that holds the output pipe open, records both pids, then
# never answers: what a wedged wrapper script does.
HANGING = """#!/bin/sh
echo run >> {runs}
sleep 1000 &
echo $! >> {pids}
echo $$ >> {pids}
exec sleep 1000
"""


def alive(pid):
    """True while ``pid`` runs.  A killed process whose parent has not
    reaped it yet (a zombie: it runs nothing, and in a container PID 1 may
    never reap it) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def read_pids(path):
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def survivors(pids, grace=2.0):
    """The pids still running after ``grace`` seconds (SIGKILL is delivered
    at once, but the kernel finishes a process a moment later)."""
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [pid for pid in pids if alive(pid)]


def kill_all(pids_file):
    """Clean up after a failing run: kill whatever it left behind."""
    for pid in read_pids(pids_file):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def hanging_emulator(tmp_path, monkeypatch):
    root = tmp_path / "root"
    binary = root / "usr/bin/qemu-system-x86_64"
    binary.parent.mkdir(parents=True)
    runs, pids = tmp_path / "runs", tmp_path / "pids"
    binary.write_text(HANGING.format(runs=runs, pids=pids))
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # A short bound keeps the test quick; the real one is a few seconds too.
    monkeypatch.setattr(machines, "TIMEOUT", 1.0)
    emulators.forget()
    yield root, binary, runs, pids
    emulators.forget()
    kill_all(pids)


def capabilities_with_machines(root):
    started = time.monotonic()
    status = main(["capabilities", "--root", str(root), "--arch", "x86_64", "--machines"])
    return status, time.monotonic() - started


def test_the_default_bound_is_a_few_seconds():
    assert 1 <= machines.TIMEOUT <= 10


def test_a_hanging_emulator_is_bounded_killed_named_and_not_cached(hanging_emulator, capsys):
    root, binary, runs, pids = hanging_emulator
    status, elapsed = capabilities_with_machines(root)
    assert status == 0
    assert elapsed < machines.TIMEOUT + 3
    out, err = capsys.readouterr()
    # The capabilities are still printed, without machine types.
    assert "/usr/bin/qemu-system-x86_64" in out and "<machine" not in out
    # i686 and x86_64 share the binary: one run, one line.
    assert err.count("\n") == 1 and err.startswith("capsfast: ")
    assert str(binary) in err and "no answer within" in err

    started = read_pids(pids)
    assert len(started) == 2  # the script and the child it forked
    assert survivors(started) == []

    # The timeout is no answer: nothing cached, so the next run asks again.
    cache = root.parent / ("cache/capsfast/machines-%d" % machines.CACHE_VERSION)
    assert not cache.exists() or machines._load(str(cache)) == {}
    status, elapsed = capabilities_with_machines(root)
    assert status == 0 and elapsed < machines.TIMEOUT + 3
    assert runs.read_text().count("run") == 2
    assert str(binary) in capsys.readouterr().err


def test_machines_for_reports_through_the_callers_function(hanging_emulator):
    _root, binary, runs, _pids = hanging_emulator
    reported = []
    found = machines.machines_for([str(binary)], cache_file=str(binary.parent / "m.cache"),
                                  report=reported.append)
    assert found == {str(binary): None}
    assert len(reported) == 1 and str(binary) in reported[0]
    assert not (binary.parent / "m.cache").exists()


def test_children_left_behind_by_an_emulator_that_answered_are_killed(tmp_path):
    pids = tmp_path / "pids"
    binary = tmp_path / "qemu-system-x86_64"
    # Answers and exits at once, but leaves a child behind (its output
    # closed, so the answer is complete).
    binary.write_text("#!/bin/sh\nsleep 1000 >/dev/null 2>&1 &\necho $! > %s\necho 'pc  Standard PC'\n" % pids)
    binary.chmod(0o755)
    try:
        assert machines.run_help(str(binary)) == "pc  Standard PC\n"
        assert len(read_pids(pids)) == 1
        assert survivors(read_pids(pids)) == []
    finally:
        kill_all(pids)


# An emulator that answers with something other than a machine list: 2 MB
# of random bytes, a list far longer than any QEMU prints, text of another
# shape.  Each exits 0.
NOT_A_MACHINE_LIST = {
    "random bytes": "head -c 2000000 /dev/urandom",
    "endless list": "echo 'Supported machines are:'\n"
                    "i=0; while [ $i -lt 20000 ]; do echo \"m$i                 Machine $i\"; i=$((i+1)); done",
    "other text": "echo 'usage: qemu [options]'\necho 'pc  Standard PC'",
    "binary lines": "echo 'Supported machines are:'\nprintf 'pc\\001\\002  x\\n'",
}


@pytest.mark.parametrize("script", NOT_A_MACHINE_LIST.values(), ids=list(NOT_A_MACHINE_LIST))
def test_an_answer_that_is_no_machine_list_is_refused_named_and_not_cached(tmp_path, monkeypatch, capsys,
                                                                            script):
    root = tmp_path / "root"
    binary = root / "usr/bin/qemu-system-x86_64"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho run >> %s\n%s\n" % (tmp_path / "runs", script))
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    emulators.forget()
    try:
        status, _elapsed = capabilities_with_machines(root)
    finally:
        emulators.forget()
    out, err = capsys.readouterr()
    assert status == 0
    assert "/usr/bin/qemu-system-x86_64" in out and "<machine" not in out
    assert len(out) < 100_000
    assert err.count("\n") == 1 and err.startswith("capsfast: ") and str(binary) in err
    assert "machine types are left out" in err
    cache = tmp_path / ("cache/capsfast/machines-%d" % machines.CACHE_VERSION)
    assert not cache.exists() or machines._load(str(cache)) == {}


def test_a_real_shaped_list_within_the_bound_is_taken(tmp_path):
    binary = tmp_path / "qemu-system-x86_64"
    binary.write_text("#!/bin/sh\necho 'Supported machines are:'\n"
                      "echo 'pc                   Standard PC (alias of pc-i440fx-7.2)'\n"
                      "echo 'pc-i440fx-7.2        Standard PC (default)'\n")
    binary.chmod(0o755)
    found = machines.machines_for([str(binary)], cache_file=str(tmp_path / "m.json"), report=pytest.fail)
    assert [m.name for m in found[str(binary)]] == ["pc", "pc-i440fx-7.2"]


def test_cache_off_runs_the_emulator_each_time_and_keeps_nothing(tmp_path, monkeypatch):
    binary = tmp_path / "qemu-system-x86_64"
    binary.write_text("#!/bin/sh\necho 'Supported machines are:'\necho 'pc   Standard PC'\n")
    binary.chmod(0o755)
    runs = []

    def runner(path):
        runs.append(path)
        return machines.run_help(path)

    kept = tmp_path / "machines"
    monkeypatch.setenv("CAPSFAST_CACHE", "off")
    for _ in range(2):
        found = machines.machines_for([str(binary)], runner=runner, cache_file=str(kept), report=pytest.fail)
        assert [m.name for m in found[str(binary)]] == ["pc"]
    assert runs == [str(binary)] * 2 and not kept.exists()
    monkeypatch.delenv("CAPSFAST_CACHE")
    for _ in range(2):
        machines.machines_for([str(binary)], runner=runner, cache_file=str(kept), report=pytest.fail)
    assert runs == [str(binary)] * 3 and kept.exists()
