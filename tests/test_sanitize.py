"""The C module under AddressSanitizer, UndefinedBehaviorSanitizer and
ThreadSanitizer (tests/c/sanitize_driver.c, every error path, the x86 and
the non-x86 branch, hostile CPUs played to the full CPUID walk), and a
probe workload (with CPUID walks) under valgrind memcheck: both
through ci/sanitize.sh, which fails on any report.  The Python suite against
an ASan build of the module is ``ci/sanitize.sh python`` (it runs pytest
itself, so it is not a test here)."""
import os
import re
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
    # Both branches, the hostile CPUs of the fake-CPUID build and the thread
    # build ran, every check held.
    finals = re.findall(r"sanitize_driver \((cpuid|no cpuid|fake cpuid)\): \d+ checks, (\d+) failed", out)
    assert sorted(build for build, _failed in finals) == ["cpuid", "cpuid", "fake cpuid", "no cpuid"], out
    assert all(failed == "0" for _build, failed in finals), out
    assert not re.search(r" [1-9]\d* failed", out), out
    # Each of the four builds had CAPSFAST_TEST_COUNTERS: the thread count ran.
    assert out.count("peak threads inside capsfast_probe") >= 4, out
    # The full CPUID walk ran on the CPU in the three builds that have one.
    assert out.count("sanitize_driver: CPUID walk: ") == 3, out


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_probe_workload_under_valgrind():
    out = run("valgrind")
    assert "none in capsfast" in out, out
