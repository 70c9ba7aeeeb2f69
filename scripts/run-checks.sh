#!/bin/sh
# run-checks.sh BUILD_DIR - run every check of qblk and print one summary.
#
# 1. unit tests:       meson test -C BUILD_DIR (GTest programs in TAP mode);
#                      counted per TAP test case from meson-logs/testlog.json
#                      (a program without TAP output counts as one test)
# 2. functional tests: Debian's pytest on tests/functional, QBLK_BUILD set
# 3. fuzz smoke:       tests/fuzz/run-smoke.sh if present and executable,
#                      counted as one test (exit 77 = skipped); left out
#                      when QBLK_SKIP_FUZZ_SMOKE=1 (scripts/check-asan.sh)
#
# The last line printed is always "N passed, N failed"; the exit status is
# non-zero if anything failed. Skipped tests count as neither.

set -u

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if ! BUILD_ABS=$(cd "$BUILD" 2>/dev/null && pwd); then
    echo "run-checks: build directory '$BUILD' does not exist" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
PY=/usr/bin/python3
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT INT TERM

passed=0
failed=0

banner() {
    printf '\n==== %s ====\n' "$1"
}

# add_counts "P F": add one stage's counts to the totals.
add_counts() {
    # shellcheck disable=SC2086 # split "P F" on purpose
    set -- $1
    passed=$((passed + $1))
    failed=$((failed + $2))
}

# --- 1. unit tests --------------------------------------------------------
banner "unit tests (meson test -C $BUILD_ABS)"
meson test -C "$BUILD_ABS" --print-errorlogs
meson_rc=$?
unit=$("$PY" - "$BUILD_ABS/meson-logs/testlog.json" "$meson_rc" <<'EOF'
# Count TAP results per test program; fall back to the program's result.
import json, re, sys
path, meson_rc = sys.argv[1], int(sys.argv[2])
p = f = 0
try:
    lines = open(path).read().splitlines()
except OSError:
    lines = []
for line in lines:
    t = json.loads(line)
    tp = tf = 0
    for tap in (t.get('stdout') or '').splitlines():
        m = re.match(r'^(not ok|ok)\b(.*)$', tap)
        if not m:
            continue
        directive = m.group(2).upper()
        if '# SKIP' in directive:
            continue
        if m.group(1) == 'ok' or '# TODO' in directive:
            tp += 1
        else:
            tf += 1
    result = t.get('result', '')
    if tp + tf == 0:
        if result in ('OK', 'EXPECTEDFAIL'):
            tp = 1
        elif result != 'SKIP' and t.get('returncode') != 77:
            tf = 1   # exit 77 without TAP output means "skipped"
    elif result not in ('OK', 'EXPECTEDFAIL', 'SKIP') and tf == 0:
        tf = 1   # the program failed (crash, bad plan) after passing cases
    p += tp
    f += tf
if not lines and meson_rc != 0:
    f = 1        # meson itself failed before running anything
print(p, f)
EOF
)
echo "unit tests: $unit (passed failed)"
add_counts "$unit"

# --- 2. functional tests ----------------------------------------------------
banner "functional tests (pytest tests/functional)"
junit="$TMPD/functional.xml"
(cd "$ROOT" && QBLK_BUILD="$BUILD_ABS" "$PY" -m pytest -q -p no:cacheprovider --tb=short \
    --junitxml="$junit" -o junit_family=xunit2 tests/functional)
pytest_rc=$?
func=$("$PY" - "$junit" "$pytest_rc" <<'EOF'
# passed = tests - failures - errors - skipped; a run that produced no
# report but failed counts as one failure.
import sys
import xml.etree.ElementTree as ET
path, rc = sys.argv[1], int(sys.argv[2])
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError):
    print(0, 1 if rc not in (0, 5) else 0)
    sys.exit()
suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
t = sum(int(s.get('tests', 0)) for s in suites)
bad = sum(int(s.get('failures', 0)) + int(s.get('errors', 0)) for s in suites)
skip = sum(int(s.get('skipped', 0)) for s in suites)
if bad == 0 and rc not in (0, 5):
    bad = 1      # e.g. an internal pytest error or interrupted run
print(max(t - bad - skip, 0), bad)
EOF
)
echo "functional tests: $func (passed failed)"
add_counts "$func"

# --- 3. fuzz smoke ----------------------------------------------------------
smoke="$ROOT/tests/fuzz/run-smoke.sh"
if [ -x "$smoke" ] && [ "${QBLK_SKIP_FUZZ_SMOKE:-0}" != 1 ]; then
    banner "fuzz smoke (tests/fuzz/run-smoke.sh)"
    QBLK_BUILD="$BUILD_ABS" "$smoke"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        add_counts "1 0"
    elif [ "$rc" -eq 77 ]; then
        echo "fuzz smoke: skipped"
    else
        echo "fuzz smoke: FAILED (exit $rc)"
        add_counts "0 1"
    fi
fi

banner summary
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
