#!/bin/sh
# Run every atheris harness for SECONDS each (default 60) and print how many
# inputs each ran.  A crash stops with the harness's report and the input
# saved as crash-* in the current directory.
#   fuzz/run.sh [SECONDS] [harness...]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- fuzz_dump fuzz_cpuinfo fuzz_xen fuzz_libvirt_xml fuzz_cli fuzz_root
total=0
for h in "$@"; do
    log=$(mktemp)
    if ! "$PYTHON" "$HERE/$h.py" -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
        cat "$log"; rm -f "$log"
        echo "fuzz: $h found a failure (above)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' "$log" | tail -n 1)
    rm -f "$log"
    echo "fuzz: $h: ${runs% *} inputs in ${runs#* } s"
    total=$((total + ${runs% *}))
done
echo "fuzz: $total inputs in all"
