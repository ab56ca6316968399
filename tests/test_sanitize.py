"""The C module under AddressSanitizer, UndefinedBehaviorSanitizer and
ThreadSanitizer (tests/c/sanitize_driver.c, every error path, the x86 and
the non-x86 branch), and a probe workload under valgrind memcheck: both
through ci/sanitize.sh, which fails on any report.  The Python suite against
an ASan build of the module is ``ci/sanitize.sh python`` (it runs pytest
itself, so it is not a test here)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "ci" / "sanitize.sh"


def run(step):
    if not SCRIPT.exists():
        pytest.skip("ci/sanitize.sh is not in this tree (an installed package?)")
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    done = subprocess.run(["sh", str(SCRIPT), step], capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc (with libasan, libubsan, libtsan) is not installed")
def test_c_driver_under_sanitizers():
    out = run("c")
    # Both branches and the thread build ran, every check held.
    assert out.count(" 0 failed") >= 6, out
    assert "sanitize_driver (cpuid)" in out and "sanitize_driver (no cpuid)" in out
    # Each of the three builds had CAPSFAST_TEST_COUNTERS: the thread count ran.
    assert out.count("peak threads inside capsfast_probe") >= 3, out


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_probe_workload_under_valgrind():
    out = run("valgrind")
    assert "none in capsfast" in out, out
