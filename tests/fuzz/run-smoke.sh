#!/bin/sh
# run-smoke.sh - build fuzz-qcow2 and fuzz-qmp and fuzz each for a short
# while over a copy of its seed corpus. Exit 0: no crash; 1: crash
# (reproducer printed and kept); 77: clang/libFuzzer unavailable.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
SECONDS_TO_RUN=${FUZZ_SECONDS:-10}

sh "$ROOT/scripts/build-fuzz.sh"
rc=$?
if [ $rc -eq 77 ]; then
    echo "run-smoke: skipped (no clang/libFuzzer)"
    exit 77
elif [ $rc -ne 0 ]; then
    echo "run-smoke: building the fuzz target failed" >&2
    exit 1
fi

# run_target NAME CORPUS MAX_LEN - fuzz one target for SECONDS_TO_RUN over a
# copy of its seed corpus; exit 1 on a crash (reproducer and log kept).
# Leak detection is off: a node left open by an error path is not a crash.
run_target() {
    work=$(mktemp -d "/tmp/qblk-$1-XXXXXX")
    mkdir "$work/corpus" "$work/artifacts"
    cp "$ROOT"/tests/fuzz/"$2"/* "$work/corpus/"
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$BUILD/tests/fuzz/$1" -max_total_time="$SECONDS_TO_RUN" \
        -rss_limit_mb=2048 -timeout=20 -max_len="$3" \
        -artifact_prefix="$work/artifacts/" "$work/corpus" \
        > "$work/fuzz.log" 2>&1
    rc=$?
    crash=$(ls "$work"/artifacts/* 2>/dev/null | head -n 1)
    if [ $rc -ne 0 ] || [ -n "$crash" ]; then
        grep -E "ERROR|SUMMARY|#[0-9]+ 0x" "$work/fuzz.log" | head -n 30 >&2
        echo "run-smoke: $1 crash; reproducer: ${crash:-none saved}" \
             "(log $work/fuzz.log)" >&2
        exit 1
    fi
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$work/fuzz.log" | tail -n 1
    rm -rf "$work"
    echo "run-smoke: $1: no crash in ${SECONDS_TO_RUN}s"
}

# fuzz-qcow2: the qcow2 header and table parser.
run_target fuzz-qcow2 corpus-qcow2 65536
# fuzz-qmp: the QMP input path (streamer, dispatcher, argument checking).
run_target fuzz-qmp corpus-qmp 16384
exit 0
