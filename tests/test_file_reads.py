"""What a file read costs in system calls: open, read, close.

strace follows a child that reads sysfs attributes of this machine and
files of a directory tree through the C batch, between two markers; no
stat() or fstat() may appear where a file reads as one (its size is never
needed), and a directory listing is open, getdents64, close."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from capsfast import _native

READ_SCRIPT = r"""
import os, sys
from capsfast import _native
op = sys.argv[1]
paths = sys.argv[2:]
files = [(path, op, 4096) for path in paths]
_native.read_files(files)  # warm: the first crossing loads nothing more
try:
    os.stat("/capsfast-trace-start")
except OSError:
    pass
out = _native.read_files(files)
try:
    os.stat("/capsfast-trace-end")
except OSError:
    pass
assert all(data is not None for _outcome, data, _truncated in out) or os.environ.get("ABSENT"), out
"""

STATS = ("stat", "lstat", "fstat", "newfstatat", "fstatat64", "statx", "stat64", "fstat64", "lstat64")


def traced(tmp_path, op, paths, env=None):
    """{system call name: count} between the markers of READ_SCRIPT."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (Debian package 'strace')")
    log = tmp_path / "strace.log"
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), sys.executable, "-c", READ_SCRIPT, op] + paths,
                   check=True, capture_output=True, timeout=120, env=env)
    lines = log.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "/capsfast-trace-start" in line)
    end = next(i for i, line in enumerate(lines) if "/capsfast-trace-end" in line)
    counts: "dict[str, int]" = {}
    for line in lines[start + 1:end]:
        m = re.match(r"\d+\s+(\w+)\(", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def traced_absent(tmp_path, op, paths):
    return traced(tmp_path, op, paths, env=dict(os.environ, ABSENT="1"))


def sysfs_attributes():
    """A few sysfs attributes every Linux machine has."""
    candidates = ["/sys/devices/system/cpu/online", "/sys/devices/system/cpu/present",
                  "/sys/devices/system/cpu/possible", "/sys/devices/system/cpu/cpu0/topology/core_id",
                  "/sys/devices/system/cpu/cpu0/topology/thread_siblings_list",
                  "/sys/kernel/mm/transparent_hugepage/enabled"]
    found = [path for path in candidates if os.path.isfile(path)]
    if len(found) < 3:
        pytest.skip("this machine's sysfs lacks the CPU attributes")
    return found


def tree_files(tmp_path, n=5):
    paths = []
    for i in range(n):
        path = tmp_path / ("file%d" % i)
        path.write_text("%d\n" % i)
        paths.append(str(path))
    return paths


def assert_no_stat(counts):
    assert not {name: n for name, n in counts.items() if name in STATS}, counts


def test_sysfs_attribute_read_once_is_open_read_close(tmp_path):
    paths = sysfs_attributes()
    counts = traced(tmp_path, _native.READ_ONCE, paths)
    assert_no_stat(counts)
    assert counts.get("openat", 0) == len(paths) and counts.get("read", 0) == len(paths), counts
    assert counts.get("close", 0) == len(paths), counts


def test_tree_file_read_once_is_open_read_close(tmp_path):
    paths = tree_files(tmp_path)
    counts = traced(tmp_path, _native.READ_ONCE, paths)
    assert_no_stat(counts)
    assert counts.get("openat", 0) == counts.get("read", 0) == counts.get("close", 0) == len(paths), counts


def test_block_read_looks_at_nothing_either(tmp_path):
    """READ_BLOCK reads until a blank line or the end (a procfs file of
    many records comes a page at a time): reads more, still no stat."""
    paths = tree_files(tmp_path) + ["/proc/self/status"]
    counts = traced(tmp_path, _native.READ_BLOCK, paths)
    assert_no_stat(counts)
    assert counts.get("openat", 0) == counts.get("close", 0) == len(paths), counts


def test_read_looks_first_at_what_is_often_absent(tmp_path):
    """READ is for files that are often absent (a module's parameter):
    one stat each, which fails more cheaply than an open, and no open."""
    paths = [str(tmp_path / ("absent%d" % i)) for i in range(4)]
    counts = traced_absent(tmp_path, _native.READ, paths)
    assert counts.get("openat", 0) == 0 and sum(n for name, n in counts.items() if name in STATS) == 4, counts


def test_listing_is_open_getdents_close(tmp_path):
    for i in range(3):
        (tmp_path / ("d%d" % i)).mkdir()
        (tmp_path / ("d%d" % i) / "x").write_text("")
    paths = [str(tmp_path / ("d%d" % i)) for i in range(3)]
    counts = traced(tmp_path, _native.LIST, paths)
    assert_no_stat(counts)
    assert counts.get("openat", 0) == counts.get("close", 0) == len(paths), counts


def test_read_once_stops_at_a_short_read_and_still_sees_truncation(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"12\n")
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * 16)
    longer = tmp_path / "longer"
    longer.write_bytes(b"y" * 17)
    out = _native.read_files([(str(small), _native.READ_ONCE, 16), (str(exact), _native.READ_ONCE, 16),
                              (str(longer), _native.READ_ONCE, 16)])
    assert out[0] == (_native.OK, b"12\n", False)
    assert out[1] == (_native.OK, b"x" * 16, False)
    assert out[2] == (_native.OK, b"y" * 16, True)


@pytest.mark.parametrize("op", [_native.READ, _native.READ_ONCE, _native.READ_BLOCK])
def test_what_is_not_a_file_is_still_refused(tmp_path, op):
    """Found out after opening, named as if looked at first."""
    import stat

    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("data\n")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "empty").write_text("")
    devices = [path for path in ("/dev/zero", "/dev/null") if os.path.exists(path)]
    for device in devices:
        (tmp_path / os.path.basename(device)).symlink_to(device)
    specs = [(str(tmp_path / name), op, 0, 64, None) for name in ["dir", "fifo", "link", "empty"]
             + [os.path.basename(d) for d in devices]]
    files = _native.Batch(None, specs).run().files
    assert files[0].outcome.code == "not_a_file" and stat.S_ISDIR(files[0].mode) and files[0].data is None
    assert files[1].outcome.code == "not_a_file" and stat.S_ISFIFO(files[1].mode) and files[1].data is None
    assert files[2].outcome.ok and files[2].data == b"data\n"
    assert files[3].outcome.ok and files[3].data == b""
    for result in files[4:]:  # a link to a device: looked at, never opened
        assert result.outcome.code == "not_a_file" and stat.S_ISCHR(result.mode) and result.data is None
