#!/bin/sh
# build-fuzz.sh - configure (once) and build the libFuzzer targets in
# build-fuzz/ with clang, the whole library instrumented for coverage
# and ASan/UBSan. Exit 77 if clang or libFuzzer is not available.
# Prints the target names built (one per line) on stdout's last line as
# "build-fuzz: targets: NAME..." so callers do not keep their own list.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
SAN='-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer'

if ! command -v clang >/dev/null 2>&1; then
    echo "build-fuzz: clang not found" >&2
    exit 77
fi
# libFuzzer ships with clang's runtime; try linking a trivial target.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ return 0; }\n' \
    > "$probe/p.c"
if ! clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    echo "build-fuzz: clang cannot link libFuzzer targets" >&2
    exit 77
fi

cd "$ROOT"
if [ ! -f "$BUILD/build.ninja" ]; then
    # werror off: clang's warning set differs from gcc's, which gates CI.
    CC=clang meson setup "$BUILD" -Dfuzzing=true -Db_lundef=false \
        -Dwerror=false -Dc_args="$SAN" -Dc_link_args="$SAN"
fi
# Every tests/fuzz/fuzz-NAME.c is a target (tests/fuzz/meson.build lists
# the same names; fuzz-http only once its source exists).
TARGETS=$(cd tests/fuzz && ls fuzz-*.c | sed 's/\.c$//' | tr '\n' ' ')
ninja -C "$BUILD" $(for t in $TARGETS; do printf 'tests/fuzz/%s ' "$t"; done)
echo "build-fuzz: targets: $TARGETS"
