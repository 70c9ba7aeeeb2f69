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

work=$(mktemp -d /tmp/qblk-fuzz-XXXXXX)
mkdir "$work/corpus" "$work/artifacts"
cp "$ROOT"/tests/fuzz/corpus-qcow2/* "$work/corpus/"
# Leak detection is off: a node left open by an error path is not a crash.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$BUILD/tests/fuzz/fuzz-qcow2" -max_total_time="$SECONDS_TO_RUN" \
    -rss_limit_mb=2048 -timeout=20 -max_len=65536 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" \
    > "$work/fuzz.log" 2>&1
rc=$?
crash=$(ls "$work"/artifacts/* 2>/dev/null | head -n 1)
if [ $rc -ne 0 ] || [ -n "$crash" ]; then
    grep -E "ERROR|SUMMARY|#[0-9]+ 0x" "$work/fuzz.log" | head -n 30 >&2
    echo "run-smoke: crash; reproducer: ${crash:-none saved} (log $work/fuzz.log)" >&2
    exit 1
fi
grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$work/fuzz.log" | tail -n 1
rm -rf "$work"
echo "run-smoke: no crash in ${SECONDS_TO_RUN}s"

# fuzz-qmp: the QMP input path (streamer, dispatcher, argument checking).
if ! ninja -C "$BUILD" tests/fuzz/fuzz-qmp >/dev/null; then
    echo "run-smoke: building fuzz-qmp failed" >&2
    exit 1
fi
work=$(mktemp -d /tmp/qblk-fuzz-qmp-XXXXXX)
mkdir "$work/corpus" "$work/artifacts"
cp "$ROOT"/tests/fuzz/corpus-qmp/* "$work/corpus/"
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$BUILD/tests/fuzz/fuzz-qmp" -max_total_time="$SECONDS_TO_RUN" \
    -rss_limit_mb=2048 -timeout=20 -max_len=16384 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" \
    > "$work/fuzz.log" 2>&1
rc=$?
crash=$(ls "$work"/artifacts/* 2>/dev/null | head -n 1)
if [ $rc -ne 0 ] || [ -n "$crash" ]; then
    grep -E "ERROR|SUMMARY|#[0-9]+ 0x" "$work/fuzz.log" | head -n 30 >&2
    echo "run-smoke: fuzz-qmp crash; reproducer: ${crash:-none saved} (log $work/fuzz.log)" >&2
    exit 1
fi
grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$work/fuzz.log" | tail -n 1
rm -rf "$work"
echo "run-smoke: fuzz-qmp: no crash in ${SECONDS_TO_RUN}s"
exit 0
