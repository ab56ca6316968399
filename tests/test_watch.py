"""capsfast.watch and the commands built on it: changes are reported as
they happen (inotify, uevents), once each, and the watchers stop cleanly.
Every wait here is bounded: a few seconds at most."""
import errno
import json
import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from forked import in_child

from capsfast import watch

NOBODY = (65534, 65534)


def fake_root(tmp_path):
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    (root / "sys" / "module").mkdir(parents=True)
    return root


def paths(found):
    assert found is not None, "no change reported in time"
    return {path: (old, new) for path, old, new in found[1]}


def test_fake_root_changes_are_reported_once_each_in_order(tmp_path):
    root = fake_root(tmp_path)
    kvm = root / "dev" / "kvm"
    module = root / "sys" / "module" / "kvm_intel"
    with watch.changes(root, arch="x86_64", safety=30) as changes:
        assert changes.host.kvm.exists is False
        steps = [
            (lambda: kvm.write_text(""), {"host.kvm.exists": (False, True)}),
            # Root may open it either way: an event, but no fact changed.
            (lambda: kvm.chmod(0o666), None),
            (lambda: kvm.unlink(), {"host.kvm.exists": (True, False)}),
            (lambda: module.mkdir(), {"host.kvm.modules": ([], ["kvm_intel"])}),
            # A directory that did not exist is watched once it appears.
            (lambda: (module / "parameters").mkdir(), None),
            (lambda: (module / "parameters" / "nested").write_text("Y\n"), {"host.kvm.nested": (None, True)}),
            (lambda: (module / "parameters" / "nested").write_text("N\n"), {"host.kvm.nested": (True, False)}),
            (lambda: [p.unlink() for p in (module / "parameters").iterdir()] and
             [d.rmdir() for d in (module / "parameters", module)],
             {"host.kvm.modules": (["kvm_intel"], []), "host.kvm.nested": (False, None)}),
        ]
        for act, expected in steps:
            act()
            if expected is None:
                assert changes.next_change(0.3) is None
                continue
            start = time.monotonic()
            found = paths(changes.next_change(3))
            assert time.monotonic() - start < 1
            for path, values in expected.items():
                assert found[path] == values, path
            assert set(found) - set(expected) <= {"host.kvm.failure", "host.kvm.error"}
            assert changes.next_change(0.3) is None  # once, not again


def test_close_from_another_thread_wakes_it_at_once_and_leaves_no_thread(tmp_path):
    root = fake_root(tmp_path)
    threads = threading.active_count()
    changes = watch.changes(root, arch="x86_64", safety=30)
    assert threading.active_count() == threads  # no thread of its own
    closer = threading.Timer(0.2, changes.close)
    closer.start()
    start = time.monotonic()
    assert list(changes) == []
    assert time.monotonic() - start < 1.5
    closer.join()
    with pytest.raises(StopIteration):
        changes.next_change(0)


def test_stop_event_stops_it_at_once(tmp_path):
    stop = watch.Stop()
    changes = watch.changes(fake_root(tmp_path), arch="x86_64", safety=30, stop=stop)
    threading.Timer(0.2, stop.set).start()
    start = time.monotonic()
    assert list(changes) == []
    assert time.monotonic() - start < 1.5


def test_importing_capsfast_does_not_import_the_watcher():
    code = ("import sys; import capsfast; loaded = [m for m in ('capsfast.watch', 'select', 'ctypes') "
            "if m in sys.modules]; print(loaded, capsfast.watch.changes.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout == "[] changes\n"


def _usable_kvm():
    try:
        st = os.stat("/dev/kvm")
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 10 and os.minor(st.st_rdev) == 232


@pytest.mark.skipif(os.geteuid() != 0, reason="changes the mode of /dev/kvm: needs root")
@pytest.mark.skipif(not _usable_kvm(), reason="no KVM character device at /dev/kvm here")
def test_live_chmod_of_dev_kvm_is_seen_by_another_user():
    mode = stat.S_IMODE(os.stat("/dev/kvm").st_mode)
    if mode & 0o006 == 0o006:
        pytest.skip("/dev/kvm is open to every user already")
    to_parent_r, to_parent_w = os.pipe()

    def child():
        with watch.changes(safety=30) as changes:
            before = (changes.host.kvm.accessible, changes.host.kvm.usable)
            os.write(to_parent_w, b"r")
            first = changes.next_change(5)
            os.write(to_parent_w, b"1")
            second = changes.next_change(5)
        return before, paths(first), paths(second)

    def wait_for(byte):
        ready, _, _ = select.select([to_parent_r], [], [], 10)
        return bool(ready) and os.read(to_parent_r, 1) == byte

    def choreography():
        try:
            if wait_for(b"r"):
                os.chmod("/dev/kvm", mode | 0o006)
                wait_for(b"1")
        finally:
            os.chmod("/dev/kvm", mode)

    helper = threading.Thread(target=choreography)
    helper.start()
    try:
        result = in_child(child, user=NOBODY)
    finally:
        helper.join(20)
        os.chmod("/dev/kvm", mode)
        os.close(to_parent_r)
        os.close(to_parent_w)
    assert result[0] == "ok", result
    before, first, second = result[1]
    assert before == (False, False)
    assert first["host.kvm.accessible"] == (False, True) and first["host.kvm.usable"] == (False, True)
    assert second["host.kvm.accessible"] == (True, False) and second["host.kvm.usable"] == (True, False)
    assert stat.S_IMODE(os.stat("/dev/kvm").st_mode) == mode


def _wait_armed(proc, timeout=10):
    """Until the process has an inotify descriptor with watches on it (it
    probes its baseline right after), then a moment for that probe."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            for fd in os.listdir("/proc/%d/fd" % proc.pid):
                if os.readlink("/proc/%d/fd/%s" % (proc.pid, fd)) == "anon_inode:inotify":
                    with open("/proc/%d/fdinfo/%s" % (proc.pid, fd)) as f:
                        if "inotify wd:" in f.read():
                            time.sleep(0.3)
                            return
        except OSError:
            pass
        time.sleep(0.02)
    pytest.fail("the watcher never armed inotify")


def _capsfast(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "capsfast"] + list(args), **kwargs)


def test_export_prometheus_watch_rewrites_the_file_on_change_atomically(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    root = fake_root(tmp_path)
    path = tmp_path / "out" / "capsfast.prom"
    bad, reads, seen = [], [0], []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            reads[0] += 1
            try:
                samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
                if not text.endswith("\n") or "capsfast_kvm_exists" not in samples:
                    raise ValueError("incomplete")
                seen.append(samples["capsfast_kvm_exists"])
            except ValueError:
                bad.append(text[:80])

    proc = _capsfast("export", "prometheus", "--watch", "--file", str(path), "--root", str(root),
                     "--arch", "x86_64", stderr=subprocess.PIPE)
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        _wait_armed(proc)
        start = time.monotonic()
        while not path.exists():
            assert time.monotonic() - start < 5, "the first file was never written"
            time.sleep(0.01)
        assert "capsfast_kvm_exists 0\n" in path.read_text()
        start = time.monotonic()
        (root / "dev" / "kvm").write_text("")
        while "capsfast_kvm_exists 1\n" not in path.read_text():
            assert time.monotonic() - start < 2, "the file did not change within 2 s"
            time.sleep(0.005)
        (root / "dev" / "kvm").unlink()
        while "capsfast_kvm_exists 0\n" not in path.read_text():
            assert time.monotonic() - start < 4, "the file did not change back within 2 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop.set()
        thread.join(5)
    assert proc.stderr.read() == b""
    proc.stderr.close()
    assert reads[0] > 0 and bad == []
    assert 1.0 in seen and seen[-1] == 0.0
    assert sorted(os.listdir(path.parent)) == ["capsfast.prom"]


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_watch_command_prints_one_json_line_per_change(tmp_path, stop_with):
    root = fake_root(tmp_path)
    proc = _capsfast("watch", "--format", "json", "--root", str(root), "--arch", "x86_64",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_armed(proc)
        lines = []
        for act in (lambda: (root / "dev" / "kvm").write_text(""),
                    lambda: (root / "sys" / "module" / "kvm_amd").mkdir()):
            act()
            ready, _, _ = select.select([proc.stdout], [], [], 3)
            assert ready, "no line within 3 s"
            lines.append(json.loads(proc.stdout.readline()))
        proc.send_signal(stop_with)
        assert proc.wait(10) == 0
        rest = proc.stdout.read()
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert rest == b"" and err == b""  # no traceback on SIGINT either
    first, second = ({c["path"]: (c["old"], c["new"]) for c in line["changes"]} for line in lines)
    assert first["host.kvm.exists"] == (False, True)
    assert second == {"host.kvm.modules": ([], ["kvm_amd"])}
    assert all(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S") for line in lines)


def test_watch_command_text_and_refusals(tmp_path):
    root = fake_root(tmp_path)
    for flag in (["--connect", "ssh://example.invalid"], ["--replay", str(tmp_path)]):
        out = subprocess.run([sys.executable, "-m", "capsfast", "watch"] + flag, capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr == "capsfast: unrecognised option %r\n" % flag[0]
    out = subprocess.run([sys.executable, "-m", "capsfast", "watch", "--safety", "0"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "--safety" in out.stderr
    proc = _capsfast("watch", "--root", str(root), "--arch", "x86_64", stdout=subprocess.PIPE)
    try:
        _wait_armed(proc)
        (root / "dev" / "kvm").write_text("")
        ready, _, _ = select.select([proc.stdout], [], [], 3)
        assert ready
        line = proc.stdout.readline().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert line.split(" ", 1)[1] == "host.kvm.exists: false -> true\n"


def test_out_of_inotify_watches_falls_back_to_the_safety_probe(tmp_path, monkeypatch, capsys):
    def no_space(fd, path, mask):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(watch, "_add_watch", no_space)
    monkeypatch.setattr(watch, "FALLBACK_SAFETY", 0.5)
    root = fake_root(tmp_path)
    with watch.Watcher(str(root), arch="x86_64", safety=60) as changes:
        assert changes.safety == 0.5
        (root / "dev" / "kvm").write_text("")
        found = paths(changes.next_change(3))
        assert found["host.kvm.exists"] == (False, True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of inotify watches" in err and err.startswith("capsfast: watch: ")


def test_refused_uevents_are_said_once_and_inotify_still_works(tmp_path, monkeypatch, capsys):
    def refused():
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(watch, "_bind_uevents", refused)
    root = fake_root(tmp_path)
    with watch.Watcher(str(root), arch="x86_64", safety=30, uevents=True) as changes:
        assert changes.safety == 30
        start = time.monotonic()
        (root / "dev" / "kvm").write_text("")
        assert paths(changes.next_change(3))["host.kvm.exists"] == (False, True)
        assert time.monotonic() - start < 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "uevents are not readable" in err


def test_uevent_filter():
    assert watch._uevent_matters(b"add@/module/kvm_intel\0ACTION=add\0DEVPATH=/module/kvm_intel\0SUBSYSTEM=module\0")
    assert watch._uevent_matters(b"add@/devices/virtual/misc/kvm\0ACTION=add\0SUBSYSTEM=misc\0DEVNAME=kvm\0")
    assert not watch._uevent_matters(b"add@/module/snd\0ACTION=add\0DEVPATH=/module/snd\0SUBSYSTEM=module\0")
    assert not watch._uevent_matters(b"change@/devices/x\0ACTION=change\0SUBSYSTEM=block\0DEVNAME=sda\0")


def test_a_stop_descriptor_ends_the_iteration(tmp_path):
    r, w = os.pipe()
    try:
        changes = watch.changes(fake_root(tmp_path), arch="x86_64", safety=30, stop=r)
        threading.Timer(0.2, os.write, (w, b"x")).start()
        start = time.monotonic()
        assert list(changes) == []
        assert time.monotonic() - start < 1.5
    finally:
        os.close(r)
        os.close(w)


def test_watch_command_ends_when_its_reader_goes_away(tmp_path):
    """``capsfast watch | head -1``: once the reader of its output has gone,
    watch ends (status 0) without waiting for another change to print."""
    root = fake_root(tmp_path)
    proc = _capsfast("watch", "--root", str(root), "--arch", "x86_64", "--safety", "600",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_armed(proc)
        (root / "dev" / "kvm").write_text("")
        ready, _, _ = select.select([proc.stdout], [], [], 3)
        assert ready, "no line within 3 s"
        assert "host.kvm.exists" in proc.stdout.readline().decode()
        proc.stdout.close()  # the reader goes; nothing changes from here on
        assert proc.wait(5) == 0
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert err == b""


def test_a_hangup_descriptor_ends_the_iteration(tmp_path):
    root = fake_root(tmp_path)
    r, w = os.pipe()
    try:
        with watch.changes(root, arch="x86_64", safety=600, hangup=w) as watcher:
            assert watcher.next_change(0.05) is None  # a reader is there: no hang-up
            os.close(r)
            r = -1
            start = time.monotonic()
            with pytest.raises(StopIteration):
                watcher.next_change(5)
            assert time.monotonic() - start < 4
    finally:
        os.close(w)
        if r >= 0:
            os.close(r)
