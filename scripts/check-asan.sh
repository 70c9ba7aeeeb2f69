#!/bin/sh
# check-asan.sh [BUILD_DIR] - the whole test suite (scripts/run-checks.sh:
# unit + functional tests) under AddressSanitizer, UBSan and LeakSanitizer.
#
# BUILD_DIR (default build-asan) is configured once with
#   meson setup BUILD_DIR -Db_sanitize=address,undefined -Db_lundef=false
# and rebuilt with ninja. Any sanitizer report aborts the process that
# made it, so it shows up as a failed unit test or a failed functional
# test (the daemon or tool dies, the test sees the abort).
#
# The fuzz smoke stage is not repeated here: the fuzz targets are always
# built with ASan/UBSan (build-fuzz/) and run by `make check`.
#
# Prints run-checks.sh's "N passed, N failed" as the last line; the exit
# status is non-zero if anything failed or the build failed.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build-asan}
case $BUILD in
    /*) ;;
    *) BUILD=$ROOT/$BUILD ;;
esac

cd "$ROOT"
if [ ! -f "$BUILD/build.ninja" ]; then
    if ! meson setup "$BUILD" -Db_sanitize=address,undefined \
            -Db_lundef=false; then
        echo "check-asan: meson setup failed"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi
if ! ninja -C "$BUILD"; then
    echo "check-asan: build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

# detect_leaks: every process must free what it allocated (LSan runs at
# exit). abort_on_error makes a report a crash the tests notice.
# QBLK_SANITIZED lets tests relax timing-only bounds (ASan is ~2-3x slower)
# and skip what cannot run under ASan (valgrind).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
QBLK_SANITIZED=1
export ASAN_OPTIONS UBSAN_OPTIONS QBLK_SANITIZED
QBLK_SKIP_FUZZ_SMOKE=1 exec sh "$ROOT/scripts/run-checks.sh" "$BUILD"
