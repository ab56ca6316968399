"""The C call runs without the GIL.

The shipped module does not count threads (it would cost atomics on every
probe), so these tests compile their own copy of the C module with
CAPSFAST_TEST_COUNTERS defined, from the same csrc/ sources and header and
with build_ffi.py's own build configuration, and load it under another
name.  capsfast_peak_concurrency() then reports the most threads seen inside
capsfast_probe at once: several at once is impossible if the call held the
GIL.
"""
import importlib.util
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_FFI = ROOT / "build_ffi.py"
MODULE = "_capsfast_test_counters"
THREADS = 8


def load_build_ffi():
    spec = importlib.util.spec_from_file_location("build_ffi", BUILD_FFI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def counting(tmp_path_factory):
    """The C module built with CAPSFAST_TEST_COUNTERS: its ``(ffi, lib)``."""
    if not (BUILD_FFI.exists() and (ROOT / "csrc" / "capsfast.c").exists()):
        pytest.skip("build_ffi.py and csrc/ are not in this tree (an installed package?)")
    builder = load_build_ffi().make_ffibuilder(
        MODULE, define_macros=[("CAPSFAST_TEST_COUNTERS", "1")], absolute=True)
    built = builder.compile(tmpdir=str(tmp_path_factory.mktemp("counters")))
    spec = importlib.util.spec_from_file_location(MODULE, built)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Counting, not the -1 of a build without the switch.
    assert module.lib.capsfast_peak_concurrency(1) >= 0
    return module.ffi, module.lib


def stat_batch(ffi, path, n):
    """n stat operations on one path: a call that lasts long enough (a few
    thousand system calls) for other threads to enter meanwhile."""
    encoded = ffi.new("char[]", path.encode())
    files = ffi.new("struct capsfast_file[]", n)
    for i in range(n):
        files[i].path = encoded
        files[i].op = 0  # CAPSFAST_OP_STAT, checked below
    return files, encoded


def probe_threads(counting, tmp_path, lock=None):
    """THREADS threads, each probing up to 50 times (until two are seen
    inside at once); ``lock``, if given, is held around each call.  Returns
    the peak each thread saw last."""
    ffi, lib = counting
    assert lib.CAPSFAST_OP_STAT == 0
    target = tmp_path / "file"
    target.write_text("x\n")
    lib.capsfast_peak_concurrency(1)
    seen = []

    def worker():
        files, _keep = stat_batch(ffi, str(target), 4000)
        for _ in range(50):
            if lock is None:
                rc = lib.capsfast_probe(0, ffi.NULL, ffi.NULL, 0, ffi.NULL, files, 4000)
            else:
                with lock:
                    rc = lib.capsfast_probe(0, ffi.NULL, ffi.NULL, 0, ffi.NULL, files, 4000)
            assert rc == 0 and files[3999].err == 0
            if lib.capsfast_peak_concurrency(0) >= 2:
                break
        seen.append(lib.capsfast_peak_concurrency(0))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == THREADS  # no worker died on an assertion
    return seen


def test_the_c_call_releases_the_gil(counting, tmp_path):
    """Threads inside capsfast_probe at the same time: impossible if the
    call held the GIL (the count would never pass 1)."""
    seen = probe_threads(counting, tmp_path)
    assert max(seen) >= 2, "never two threads inside the C call at once: %s" % seen


def test_calls_serialized_by_a_lock_are_never_counted_together(counting, tmp_path):
    """The control for the test above: calls that cannot overlap, as they
    could not if the GIL were held, leave the peak at 1."""
    seen = probe_threads(counting, tmp_path, lock=threading.Lock())
    assert max(seen) == 1, seen


def test_peak_counter_stays_at_one_without_threads(counting, tmp_path):
    """One thread alone is never counted twice."""
    ffi, lib = counting
    files, _keep = stat_batch(ffi, str(tmp_path), 10)
    lib.capsfast_peak_concurrency(1)
    for _ in range(100):
        assert lib.capsfast_probe(0, ffi.NULL, ffi.NULL, 0, ffi.NULL, files, 10) == 0
    assert lib.capsfast_peak_concurrency(0) == 1
    assert lib.capsfast_peak_concurrency(1) == 1  # the reset returns the old peak
    assert lib.capsfast_peak_concurrency(0) == 0


def test_the_shipped_module_does_not_count():
    """Built without CAPSFAST_TEST_COUNTERS: the probe pays no atomics for
    the count, and the function, still there, answers -1."""
    from capsfast._capsfast import ffi, lib

    assert lib.capsfast_probe(0, ffi.NULL, ffi.NULL, 0, ffi.NULL, ffi.NULL, 0) == 0
    assert lib.capsfast_peak_concurrency(0) == -1
    assert lib.capsfast_peak_concurrency(1) == -1
