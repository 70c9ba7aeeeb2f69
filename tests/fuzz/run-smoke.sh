#!/bin/sh
# run-smoke.sh - the fuzz stage of `make check`: build every libFuzzer
# target and replay its seed corpus tests/fuzz/corpus-NAME/ (regression
# inputs included) once, without mutation, under ASan/UBSan/LSan.
# Exit 0: no crash; 1: crash (reproducer and log kept, see run-fuzz.sh);
# 77: clang/libFuzzer unavailable. Real fuzzing: make fuzz.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
exec sh "$ROOT/scripts/run-fuzz.sh" --replay
