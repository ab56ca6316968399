"""Atomic writes: a reader never sees a partial or empty file, even when
the writer is killed with SIGKILL in the middle of writing."""
import errno
import os
import random
import signal
import stat
import subprocess
import sys
import threading

import pytest

from capsfast.errors import CapsfastError
from capsfast.cli import atomic

# Two large contents: a write of one takes many syscalls, so a kill lands
# inside a write often.
BIG_A = b"A" * (1 << 20) + b"\n"
BIG_B = b"B" * (1 << 20) + b"\n"

ATOMIC_WRITER = """
import sys
from capsfast.cli import atomic
path = sys.argv[1]
contents = [b"A" * (1 << 20) + b"\\n", b"B" * (1 << 20) + b"\\n"]
sys.stdout.write("ready\\n"); sys.stdout.flush()
i = 0
while True:
    atomic.write(path, contents[i % 2]); i += 1
"""

# What atomic.write exists to avoid: truncate in place, then write in pieces.
NAIVE_WRITER = """
import sys
path = sys.argv[1]
contents = [b"A" * (1 << 20) + b"\\n", b"B" * (1 << 20) + b"\\n"]
sys.stdout.write("ready\\n"); sys.stdout.flush()
i = 0
while True:
    with open(path, "wb") as f:
        data = contents[i % 2]
        for at in range(0, len(data), 65536):
            f.write(data[at:at + 65536]); f.flush()
    i += 1
"""


class Reader(threading.Thread):
    """Reads ``path`` in a loop; counts reads and remembers bad ones."""

    def __init__(self, path, good):
        super().__init__(daemon=True)
        self.path, self.good = path, good
        self.reads = 0
        self.bad = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue  # before the first write
            self.reads += 1
            if not self.good(data):
                self.bad.append(data[:60] + b"... (%d bytes)" % len(data))


def kill_loop(argv, path, good, rounds, delay):
    """Start the writer ``rounds`` times, SIGKILL it ``delay()`` seconds
    after it is ready, while a Reader watches ``path``."""
    reader = Reader(path, good)
    reader.start()
    try:
        for _ in range(rounds):
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
            try:
                proc.stdout.readline()
                threading.Event().wait(delay())
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc.stdout.close()
    finally:
        reader.stop.set()
        reader.join()
    return reader


def whole(data):
    return data in (BIG_A, BIG_B)


def test_sigkilled_atomic_writer_never_shows_a_partial_file(tmp_path):
    path = tmp_path / "big.prom"
    rng = random.Random(6)
    reader = kill_loop([sys.executable, "-c", ATOMIC_WRITER, str(path)], path, whole,
                       rounds=12, delay=lambda: rng.uniform(0.02, 0.15))
    assert reader.reads > 0
    assert reader.bad == []
    # Every kill left its temporary file; the next writer cleaned them up,
    # so at most the last one remains.
    leftovers = [n for n in os.listdir(tmp_path) if n != "big.prom"]
    assert len(leftovers) <= 1 and all(n.startswith(".big.prom.") for n in leftovers)


def test_the_reader_does_catch_a_writer_that_is_not_atomic(tmp_path):
    # The same harness against a truncate-and-write writer: it must see
    # partial files, or the test above would prove nothing.
    path = tmp_path / "big.prom"
    rng = random.Random(6)
    reader = kill_loop([sys.executable, "-c", NAIVE_WRITER, str(path)], path, whole,
                       rounds=12, delay=lambda: rng.uniform(0.02, 0.15))
    assert reader.bad


def test_sigkilled_exporter_never_leaves_a_partial_prometheus_file(tmp_path):
    path = tmp_path / "capsfast.prom"
    argv = [sys.executable, "-m", "capsfast", "export", "prometheus", "--file", str(path)]
    subprocess.run(argv, check=True)
    last_help = "# HELP capsfast_probe_duration_seconds"

    def complete(data):
        text = data.decode()
        return text.endswith("\n") and last_help in text and text.startswith("# HELP capsfast_kvm_usable ")

    # The exporter prints nothing, so the harness' readline returns at its
    # exit or death; the kill comes at a random point of its run.
    rng = random.Random(6)
    reader = Reader(path, complete)
    reader.start()
    try:
        for _ in range(15):
            proc = subprocess.Popen(argv)
            threading.Event().wait(rng.uniform(0.0, 0.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finally:
        reader.stop.set()
        reader.join()
    assert reader.reads > 0 and reader.bad == []
    assert complete(path.read_bytes())


def test_mode_is_set_not_left_to_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic.write(tmp_path / "a", "x\n")
        atomic.write(tmp_path / "b", b"y\n", mode=0o755)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o755
    assert (tmp_path / "a").read_text() == "x\n"
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_replacing_keeps_readers_of_the_old_file_whole(tmp_path):
    path = tmp_path / "f"
    atomic.write(path, "old\n")
    with open(path) as before:
        atomic.write(path, "new\n")
        assert before.read() == "old\n"
    assert path.read_text() == "new\n"


def test_stale_temporaries_of_dead_writers_go_live_ones_stay(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / (".f.%d.tmp" % dead.pid)
    live = tmp_path / (".f.%d.tmp" % os.getppid())
    other = tmp_path / ".g.1.tmp"
    for p in (stale, live, other):
        p.write_text("partial")
    atomic.write(tmp_path / "f", "whole\n")
    names = sorted(os.listdir(tmp_path))
    assert stale.name not in names
    assert live.name in names and other.name in names and "f" in names


def test_missing_directories_are_created_with_mode_0755_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic.write(tmp_path / "a" / "b" / "f", "x\n")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "b" / "f").read_text() == "x\n"
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    # An existing directory keeps its mode.
    (tmp_path / "a").chmod(0o700)
    atomic.write(tmp_path / "a" / "g", "y\n")
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700


def test_a_directory_that_cannot_be_made_is_a_capsfast_error_with_its_errno(tmp_path):
    (tmp_path / "file").write_text("")
    # A regular file where a parent should be: root cannot get round that.
    with pytest.raises(CapsfastError) as caught:
        atomic.write(tmp_path / "file" / "a" / "f", "x")
    error = caught.value
    assert str(error) == "cannot create directory %s: %s" % (tmp_path / "file", os.strerror(errno.EEXIST))
    assert error.errno == errno.EEXIST and "\n" not in str(error)
    with pytest.raises(CapsfastError) as caught:
        atomic.make_directories(str(tmp_path / "file" / "a"))
    assert caught.value.errno == errno.EEXIST
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_an_unwritable_target_is_a_capsfast_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(CapsfastError, match="cannot write") as caught:
        atomic.write(tmp_path / "d", "x")  # a directory is in the way
    assert caught.value.errno == errno.EISDIR
    assert sorted(os.listdir(tmp_path)) == ["d"]
