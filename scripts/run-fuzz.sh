#!/bin/sh
# run-fuzz.sh [--replay] [TARGET...] - build the libFuzzer targets
# (scripts/build-fuzz.sh) and run each one (default: every target built).
#
#   fuzzing (default): fuzz TARGET for FUZZ_SECONDS (default 60) starting
#       from a copy of tests/fuzz/corpus-TARGET/; new inputs stay in the
#       copy (tests/fuzz/corpus-run/TARGET, git-ignored) for the next run.
#   --replay: run every input of tests/fuzz/corpus-TARGET/ once, no
#       mutation (what `make check` does, a few seconds in all).
#
# Leaks are errors in both modes (LeakSanitizer, as in make check-asan).
# For each target one line: "TARGET: N execs, cov C, ft F, crashes K"
# ("TARGET: replayed N inputs, crashes K" with --replay).
# A crash, leak, sanitizer report or timeout leaves its reproducer under
# FUZZ_ARTIFACTS (default /tmp/qblk-fuzz-artifacts/TARGET/); copy it to
# tests/fuzz/corpus-TARGET/regress-SHORT-NAME once the bug is fixed.
# Exit: 0 all clean, 1 a target crashed or failed to run, 77 no clang.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
SECONDS_TO_RUN=${FUZZ_SECONDS:-60}
ART_ROOT=${FUZZ_ARTIFACTS:-/tmp/qblk-fuzz-artifacts}
REPLAY=0
if [ "${1:-}" = --replay ]; then
    REPLAY=1
    shift
fi

out=$(sh "$ROOT/scripts/build-fuzz.sh")
rc=$?
if [ $rc -eq 77 ]; then
    echo "run-fuzz: skipped (no clang/libFuzzer)"
    exit 77
elif [ $rc -ne 0 ]; then
    printf '%s\n' "$out" | tail -n 20 >&2
    echo "run-fuzz: building the fuzz targets failed" >&2
    exit 1
fi
if [ $# -eq 0 ]; then
    # shellcheck disable=SC2046 # one word per target
    set -- $(printf '%s\n' "$out" | sed -n 's/^build-fuzz: targets: //p' |
             sed 's/fuzz-//g')
fi

# max_len NAME - the largest input worth trying for a target.
max_len() {
    case $1 in
        qcow2|nbd) echo 65536 ;;
        qmp) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

# report NAME LOG CRASHES - the one summary line of a target.
report() {
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$2" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$2" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$2" | tail -n 1 | cut -d' ' -f2)
    echo "$1: ${execs:-?} execs, cov ${cov:-?}, ft ${ft:-?}, crashes $3"
}

failed=0
# run_one NAME - fuzz or replay one target; sets failed=1 on a crash.
run_one() {
    name=$1
    bin=$BUILD/tests/fuzz/fuzz-$name
    seeds=$ROOT/tests/fuzz/corpus-$name
    art=$ART_ROOT/$name
    log=$art/fuzz.log
    rm -rf "$art"
    mkdir -p "$art"
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        echo "$name: missing $bin or $seeds"
        failed=1
        return
    fi
    if [ $REPLAY -eq 1 ]; then
        "$bin" -print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
            -artifact_prefix="$art/" "$seeds"/* > "$log" 2>&1
        rc=$?
    else
        work=$ROOT/tests/fuzz/corpus-run/$name
        mkdir -p "$work"
        cp -n "$seeds"/* "$work/" 2>/dev/null
        "$bin" -print_final_stats=1 -max_total_time="$SECONDS_TO_RUN" \
            -timeout=30 -rss_limit_mb=2048 -max_len="$(max_len "$name")" \
            -artifact_prefix="$art/" "$work" "$seeds" > "$log" 2>&1
        rc=$?
    fi
    crashes=$(find "$art" -type f ! -name fuzz.log | wc -l)
    if [ $REPLAY -eq 1 ]; then
        echo "$name: replayed $(ls "$seeds" | wc -l) inputs, crashes $crashes"
    else
        report "$name" "$log" "$crashes"
    fi
    if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
        grep -E "ERROR|SUMMARY|^ *#[0-9]+ 0x|Test unit written" "$log" |
            head -n 30
        echo "$name: FAILED (exit $rc); log $log" \
             "reproducers: $(find "$art" -type f ! -name fuzz.log)"
        failed=1
    else
        rm -rf "$art"
    fi
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "$@"; do
    run_one "$t"
done
exit $failed
