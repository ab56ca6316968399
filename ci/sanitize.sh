#!/bin/sh
# The C module under sanitizers.
#
# 1. tests/c/sanitize_driver.c + csrc/capsfast.c built with
#    -fsanitize=address,undefined (the x86 build; with -DCAPSFAST_NO_CPUID,
#    the non-x86 branch; with -DCAPSFAST_FAKE_CPUID, the driver answering
#    every CPUID, to play hostile CPUs to the full CPUID walk) and with
#    -fsanitize=thread, all with -DCAPSFAST_TEST_COUNTERS so the test-only
#    thread count is built and checked too; each run walks every error
#    path and must end with no report.
# 2. The cffi module rebuilt with -fsanitize=address,undefined in a copy of
#    the tree, and the Python test suite run against it with libasan
#    preloaded (leak detection off: CPython keeps its objects at exit).
# 3. A probe workload under valgrind memcheck with the normal build: no
#    error may have a capsfast frame (CPython's own reports are not ours).
#
# Usage: ci/sanitize.sh [c|python|valgrind]...  (default: all three)
set -eu

HERE=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-gcc}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/capsfast-sanitize.XXXXXX")
trap 'chmod -R u+rwx "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT INT TERM

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
# The driver checks capsfast_peak_concurrency(), which only this switch compiles in.
DRIVER="-DCAPSFAST_TEST_COUNTERS -Wall -Wextra -Werror"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS UBSAN_OPTIONS

say() { printf '== sanitize: %s\n' "$*"; }

run_c() {
    for variant in cpuid no-cpuid fake-cpuid; do
        flags=""
        [ "$variant" = no-cpuid ] && flags="-DCAPSFAST_NO_CPUID"
        [ "$variant" = fake-cpuid ] && flags="-DCAPSFAST_FAKE_CPUID"
        say "driver, ASan+UBSan, $variant"
        $CC $SAN $DRIVER $flags -I"$HERE/csrc" \
            "$HERE/csrc/capsfast.c" "$HERE/tests/c/sanitize_driver.c" -o "$WORK/driver-$variant" -lpthread
        timeout 300 "$WORK/driver-$variant"
    done
    say "driver, TSan"
    $CC -fsanitize=thread -g -O1 $DRIVER -I"$HERE/csrc" \
        "$HERE/csrc/capsfast.c" "$HERE/tests/c/sanitize_driver.c" -o "$WORK/driver-tsan" -lpthread
    # TSan needs an address layout it can map; setarch -R turns off ASLR if refused.
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 timeout 300 "$WORK/driver-tsan" ||
        TSAN_OPTIONS=halt_on_error=1 timeout 300 setarch "$(uname -m)" -R "$WORK/driver-tsan"
}

run_python() {
    say "Python suite against an ASan+UBSan build of the module"
    mkdir "$WORK/src"
    (cd "$HERE" && tar cf - --exclude=.git --exclude=build --exclude=dist --exclude='*.so' \
        --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache --exclude='*.egg-info' .) |
        (cd "$WORK/src" && tar xf -)
    (cd "$WORK/src" && CFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" "$PYTHON" build_ffi.py >/dev/null)
    libasan=$($CC -print-file-name=libasan.so)
    # The sanitized module, not the installed one, must be what the tests load.
    (cd "$WORK/src" && LD_PRELOAD="$libasan" ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" "$PYTHON" -c '
import capsfast._capsfast as m, sys
assert m.__file__.startswith(sys.argv[1]), m.__file__
print("sanitized module:", m.__file__)' "$WORK/src")
    ldd "$WORK/src/capsfast/_capsfast.abi3.so" | grep -q libasan || { say "module not linked with ASan"; return 1; }
    # Heavy loops shortened (ASan costs 2-3x).  Left out: packaging (it
    # builds wheels with the compiler, not this module) and the one test
    # that runs a script with a scrubbed environment, where the preload
    # cannot follow.  ASan's quarantine keeps freed memory, so resident
    # memory is checked in a second run without it.
    (cd "$WORK/src" && LD_PRELOAD="$libasan" ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
        CAPSFAST_LEAK_CALLS=20000 CAPSFAST_FUZZ_EXAMPLES=100 CAPSFAST_THREAD_SECONDS=2 CAPSFAST_SKIP_RSS=1 \
        PYTHONDONTWRITEBYTECODE=1 timeout 1800 "$PYTHON" -m pytest -q -p no:cacheprovider \
        --ignore=tests/test_packaging.py --ignore=tests/test_sanitize.py -k "not executable_fact" tests)
    say "fd and RSS checks against the ASan build, quarantine off"
    (cd "$WORK/src" && LD_PRELOAD="$libasan" \
        ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0:quarantine_size_mb=0:thread_local_quarantine_size_kb=0" \
        CAPSFAST_LEAK_CALLS=20000 PYTHONDONTWRITEBYTECODE=1 timeout 900 "$PYTHON" -m pytest -q \
        -p no:cacheprovider tests/test_hardening.py -k flat)
}

run_valgrind() {
    if ! command -v valgrind >/dev/null; then
        say "valgrind is not installed (Debian package valgrind)"; return 1
    fi
    say "probe workload under valgrind memcheck"
    cat > "$WORK/workload.py" <<'EOF'
import os, sys, tempfile
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
import capsfast
from capsfast import _native
from scenarios import all_scenarios
for _ in range(200):
    capsfast.probe(refresh=True)
for _ in range(20):
    _native.cpuid_walk()
capsfast.probe(deep=True)
capsfast.capabilities(format="json")
tmp = tempfile.mkdtemp()
for s in all_scenarios():
    try:
        capsfast.probe(replay=str(s.dir)).guests
        capsfast.probe(root=s.planted_root(__import__("pathlib").Path(tempfile.mkdtemp(dir=tmp))), cpuid=s.dump,
                       arch=s.arch)
    except capsfast.CapsfastError:
        pass
root = os.path.join(tmp, "hostile")
for d in ("proc", "dev/cpu/0", "sys/hypervisor"):
    os.makedirs(os.path.join(root, d))
os.mkfifo(os.path.join(root, "proc/cpuinfo"))
os.symlink("/dev/null", os.path.join(root, "dev/kvm"))
os.symlink("msr", os.path.join(root, "dev/cpu/0/msr"))
with open(os.path.join(root, "sys/hypervisor/type"), "wb") as f:
    f.write(b"\x00\xff" * 3000)
try:
    capsfast.probe(root=root)
except capsfast.CapsfastError as e:
    print("expected:", e)
print("workload done")
EOF
    # The interpreter itself, not a wrapper script (pyenv shims are bash).
    exe=$("$PYTHON" -c 'import sys; print(sys.executable)')
    PYTHONMALLOC=malloc timeout 900 valgrind --tool=memcheck --leak-check=no --log-file="$WORK/valgrind.log" \
        "$exe" "$WORK/workload.py" "$HERE"
    grep -q "ERROR SUMMARY" "$WORK/valgrind.log" || {
        say "valgrind wrote no summary"; return 1; }
    # One error report is the lines between blank "==pid== " lines.
    awk '/^==[0-9]+== $/ { if (block ~ /_capsfast|capsfast\.c|capsfast_[a-z]/) { print block; bad++ } block = ""; next }
         { block = block "\n" $0 }
         END { if (block ~ /_capsfast|capsfast\.c|capsfast_[a-z]/) { print block; bad++ } exit bad ? 1 : 0 }' "$WORK/valgrind.log" || {
        say "valgrind reported errors in capsfast (above)"; return 1; }
    say "valgrind: $(grep 'ERROR SUMMARY' "$WORK/valgrind.log" | sed 's/^==[0-9]*== //'), none in capsfast"
}

[ $# -gt 0 ] || set -- c python valgrind
for step in "$@"; do
    case $step in
        c) run_c ;;
        python) run_python ;;
        valgrind) run_valgrind ;;
        *) echo "usage: $0 [c|python|valgrind]..." >&2; exit 2 ;;
    esac
done
say "all clean"
