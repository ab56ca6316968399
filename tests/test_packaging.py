"""Packaging: what the sdist holds, the cibuildwheel build matrix, the
aarch64 cross-build, and (under ci/packaging.sh or cibuildwheel) that the
suite runs against the installed wheel.

Most of these need a source checkout and skip outside one; ci/packaging.sh
installs the tools they need and runs this file from the checkout.
"""
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
CHECKOUT = (TOP / ".git").exists() and (TOP / "pyproject.toml").exists()
needs_checkout = pytest.mark.skipif(not CHECKOUT, reason="not a source checkout")

# In the repository but not in the sdist: CI, the release workflow and the
# CI scripts.  Everything else must ship.
REPO_ONLY = (".github/", ".ci/", "ci/", ".gitignore", ".gitattributes")
# Build leftovers that must never ship (the .c is cffi's generated source).
LEFTOVER = re.compile(r"(\.so|\.o|\.pyc)$|(^|/)__pycache__/|^capsfast/_capsfast\.c$|^(build|dist)/")


def committable_files():
    """The files a commit of this working tree holds (tracked, and
    untracked but not ignored), as ci/packaging.sh exports them."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TOP, check=True, capture_output=True,
    ).stdout.decode()
    return sorted(p for p in set(out.split("\0")) if p and os.path.lexists(TOP / p))


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """The sdist built (PEP 517, isolated) from an export of those files."""
    pytest.importorskip("build", reason="needs the 'build' package (pip install build)")
    work = tmp_path_factory.mktemp("sdist")
    src = work / "src"
    for name in committable_files():
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(TOP / name):
            os.symlink(os.readlink(TOP / name), target)
        else:
            shutil.copy2(TOP / name, target)
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(work / "dist"), str(src)],
        check=True, capture_output=True,
    )
    (path,) = (work / "dist").glob("*.tar.gz")
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    top = members[0].name.split("/")[0]
    files = {m.name[len(top) + 1:]: m for m in members if m.name.startswith(top + "/") and not m.isdir()}
    return path, files


@needs_checkout
def test_sdist_holds_every_file_of_the_repository_but_ci(sdist):
    _, files = sdist
    missing = [p for p in committable_files() if not p.startswith(REPO_ONLY) and p not in files]
    assert not missing, "in the repository but not in the sdist (MANIFEST.in?): %s" % missing


@needs_checkout
def test_sdist_holds_what_the_build_reads_and_no_leftovers(sdist):
    _, files = sdist
    for needed in ("pyproject.toml", "setup.py", "build_ffi.py", "MANIFEST.in",
                   "csrc/capsfast.c", "csrc/capsfast.h", "capsfast/constants.py", "capsfast/model.py",
                   "capsfast/_capsfast.pyi", "capsfast/py.typed", "capsfast/schemas/capabilities.schema.json",
                   "PKG-INFO"):
        assert needed in files, needed
    leftovers = [p for p in files if LEFTOVER.search(p)]
    assert not leftovers, "build leftovers in the sdist: %s" % leftovers
    # cibuildwheel builds from the sdist and copies its test-sources from it.
    line = re.search(r"^test-sources = \[(.*)\]$", (TOP / "pyproject.toml").read_text(), re.M)
    sources = re.findall(r'"([^"]+)"', line.group(1))
    assert "tests" in sources
    for source in sources:
        assert any(p == source or p.startswith(source + "/") for p in files), source



@needs_checkout
def test_sdist_keeps_the_executable_bits(sdist):
    """The fake roots' emulators must stay executable for the suite run
    from the sdist's tests/ (and downstream packagers' runs)."""
    _, files = sdist
    wrong = [
        p for p in committable_files()
        if p in files and bool(os.stat(TOP / p).st_mode & 0o100) != bool(files[p].mode & 0o100)
    ]
    assert not wrong, "executable bit lost or gained in the sdist: %s" % wrong


@needs_checkout
def test_sdist_version_is_the_one_in_constants_py(sdist):
    path, _ = sdist
    source = (TOP / "capsfast" / "constants.py").read_text()
    version = re.search(r'^__version__ = "([^"]+)"$', source, re.M).group(1)
    assert path.name == "capsfast-%s.tar.gz" % version
    with tarfile.open(path) as tar:
        pkg_info = tar.extractfile("capsfast-%s/PKG-INFO" % version).read().decode()
    assert re.search(r"^Version: %s$" % re.escape(version), pkg_info, re.M)


def cibuildwheel_identifiers(arch):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    env["CIBW_ARCHS"] = arch
    out = subprocess.run(
        ["cibuildwheel", "--print-build-identifiers", "--platform", "linux"],
        cwd=TOP, env=env, check=True, capture_output=True, text=True,
    ).stdout
    return out.split()


@needs_checkout
@pytest.mark.skipif(shutil.which("cibuildwheel") is None, reason="needs cibuildwheel (pip install cibuildwheel)")
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_cibuildwheel_builds_cpython_39_on_for_both_libcs_and_no_free_threading(arch):
    identifiers = cibuildwheel_identifiers(arch)
    versions = {}
    for identifier in identifiers:
        match = re.fullmatch(r"cp3(\d+)-(manylinux|musllinux)_%s" % arch, identifier)
        assert match, "unexpected build (free-threaded, PyPy or another arch?): %s" % identifier
        versions.setdefault(match.group(2), []).append(int(match.group(1)))
    assert set(versions) == {"manylinux", "musllinux"}
    for libc, minors in versions.items():
        # cp39 first: the one abi3 wheel is built by the oldest CPython it
        # claims, and every later one installs and tests that wheel.
        assert minors[0] == 9, (libc, minors)
        assert minors == list(range(9, 9 + len(minors))) and minors[-1] >= 13, (libc, minors)
    assert versions["manylinux"] == versions["musllinux"]


CROSS_TOOLS = ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-readelf")
QEMU = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")


@needs_checkout
@pytest.mark.skipif(
    not all(shutil.which(t) for t in CROSS_TOOLS) or QEMU is None,
    reason="needs Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user-static",
)
def test_aarch64_cross_build_and_probe_test_under_qemu():
    run = subprocess.run(["bash", str(TOP / "ci" / "cross-aarch64.sh")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = re.search(r"^aarch64 probe test: (\d+) passed, (\d+) failed$", run.stdout, re.M)
    assert summary and int(summary.group(1)) >= 30 and summary.group(2) == "0", run.stdout


@needs_checkout
@pytest.mark.skipif(platform.machine() not in ("x86_64", "i686") or shutil.which("cc") is None,
                    reason="needs an x86 host with a C compiler")
@pytest.mark.parametrize("no_cpuid", [True, False], ids=["non-x86-branch", "x86-branch"])
def test_aarch64_probe_test_tells_the_two_cpuid_branches_apart(tmp_path, no_cpuid):
    """The C test passes on the non-x86 branch (built on x86 with
    CAPSFAST_NO_CPUID) and fails on the x86 one: it is not vacuous."""
    exe = tmp_path / "probe_test"
    defines = ["-DCAPSFAST_NO_CPUID"] if no_cpuid else []
    subprocess.run(
        ["cc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", *defines, "-I", str(TOP / "csrc"),
         str(TOP / "csrc" / "capsfast.c"), str(TOP / "tests" / "c" / "aarch64_probe_test.c"), "-o", str(exe)],
        check=True, capture_output=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=dict(os.environ, TMPDIR=str(tmp_path)))
    if no_cpuid:
        assert run.returncode == 0, run.stdout + run.stderr
    else:
        assert run.returncode == 1
        assert "capsfast_has_cpuid() == 0" in run.stderr
    # The test removes the tree it made.
    assert not list(tmp_path.glob("capsfast-aarch64.*"))


@pytest.mark.skipif(os.environ.get("CAPSFAST_TEST_INSTALLED") != "1",
                    reason="for runs against an installed wheel (ci/packaging.sh, cibuildwheel)")
def test_the_capsfast_under_test_is_the_installed_one():
    import capsfast

    where = Path(capsfast.__file__).resolve()
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    assert any(s in where.parents for s in site), "%s is not in %s" % (where, site)
    assert TOP not in where.parents, "%s comes from the tests' own tree" % where
    assert (where.parent / "_capsfast.abi3.so").exists()
