#!/usr/bin/env bash
# The non-x86 path: compile csrc/ for aarch64 with warnings as errors, link
# the C test tests/c/aarch64_probe_test.c against it and run it under
# qemu-user (CPUID reported unavailable, the full CPUID walk empty; device
# and file checks working).
#
# Needs Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and
# qemu-user-static (or qemu-user).  Exit 0 when the test passes, 1 when the
# build or the test fails, 2 when a tool is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cc=${CROSS_CC:-aarch64-linux-gnu-gcc}
readelf=${CROSS_READELF:-aarch64-linux-gnu-readelf}
qemu=${CROSS_QEMU:-}
if [ -z "$qemu" ]; then
    for candidate in qemu-aarch64-static qemu-aarch64; do
        if command -v "$candidate" >/dev/null; then
            qemu=$candidate
            break
        fi
    done
fi
for tool in "$cc" "$readelf" "$qemu"; do
    if [ -z "$tool" ] || ! command -v "$tool" >/dev/null; then
        echo "cross-aarch64: ${tool:-qemu-aarch64} not found (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)" >&2
        exit 2
    fi
done

build=$(mktemp -d "${TMPDIR:-/tmp}/capsfast-aarch64.XXXXXX")
trap 'rm -rf "$build"' EXIT

cflags=(-std=gnu11 -O2 -Wall -Wextra -Werror -I"$root/csrc")
echo "cross-aarch64: $cc ${cflags[*]}"
"$cc" "${cflags[@]}" -c "$root/csrc/capsfast.c" -o "$build/capsfast.o"
"$cc" "${cflags[@]}" -c "$root/tests/c/aarch64_probe_test.c" -o "$build/probe_test.o"
# Static, so qemu-user needs no aarch64 library tree to run it.
"$cc" -static "$build/capsfast.o" "$build/probe_test.o" -o "$build/probe_test"

machine=$("$readelf" -h "$build/probe_test" | sed -n 's/^ *Machine: *//p')
if [ "$machine" != "AArch64" ]; then
    echo "cross-aarch64: built for '$machine', not AArch64" >&2
    exit 1
fi
echo "cross-aarch64: running the $machine test under $qemu"
"$qemu" "$build/probe_test"
