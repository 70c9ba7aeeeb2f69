#!/bin/sh
# demo.sh BUILD_DIR - a short tour of qblk-img and qblk-io.
#
# Builds a raw base image and a chain of three qcow2 overlays, writes into
# them, inspects the chain (info, map, check), compares qblk's view with
# QEMU's (qemu-img map/compare, when qemu-img is installed), then flattens
# the chain with convert, merges the top with commit and shortens the
# chain with rebase. Every command is printed before its output. All
# files live in a temporary directory that is removed on exit or Ctrl-C.
# The script stops with a non-zero status at the first failing step.

set -u

BUILD=${1:-build}
if ! BUILD_ABS=$(cd "$BUILD" 2>/dev/null && pwd); then
    echo "demo: build directory '$BUILD' does not exist" >&2
    exit 1
fi
IMG="$BUILD_ABS/qblk-img"
IO="$BUILD_ABS/qblk-io"
for t in "$IMG" "$IO"; do
    if [ ! -x "$t" ]; then
        echo "demo: $t is not built (run 'make' first)" >&2
        exit 1
    fi
done
QEMU_IMG=$(command -v qemu-img || true)

DIR=$(mktemp -d "${TMPDIR:-/tmp}/qblk-demo.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM
cd "$DIR" || exit 1

# step DESCRIPTION CMD...: print and run one command; stop on failure.
step() {
    desc=$1
    shift
    printf '\n# %s\n$ %s\n' "$desc" "$*"
    "$@"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "demo: FAILED (exit $rc): $*" >&2
        exit 1
    fi
}

# oracle DESCRIPTION CMD...: like step, but only when qemu-img exists.
oracle() {
    if [ -n "$QEMU_IMG" ]; then
        step "$@"
    else
        printf '\n# %s: skipped, qemu-img is not installed\n' "$1"
    fi
}

echo "qblk demo in $DIR"
step "a 4 MiB raw base image, filled with 0x11" \
    "$IMG" create -f raw base.raw 4M
step "write the pattern" \
    "$IO" -f raw -c 'write -P 0x11 0 4M' base.raw
step "overlay 1 on the raw base" \
    "$IMG" create -f qcow2 -b base.raw -F raw l1.qcow2
step "overlay 2" "$IMG" create -f qcow2 -b l1.qcow2 -F qcow2 l2.qcow2
step "overlay 3 (the top)" \
    "$IMG" create -f qcow2 -b l2.qcow2 -F qcow2 l3.qcow2
step "new data in overlay 1" \
    "$IO" -f qcow2 -c 'write -P 0x22 1M 64k' l1.qcow2
step "zeroes in overlay 2, over overlay 1's data" \
    "$IO" -f qcow2 -c 'write -z 1040k 16k' l2.qcow2
step "new data in the top" \
    "$IO" -f qcow2 -c 'write -P 0x33 2M 4k' -c flush l3.qcow2
step "the guest view through the whole chain" \
    "$IO" -f qcow2 -c 'read -P 0x11 0 1M' -c 'read -P 0x22 1M 16k' \
    -c 'read -P 0 1040k 16k' -c 'read -P 0x22 1056k 32k' \
    -c 'read -P 0x33 2M 4k' l3.qcow2
step "the chain, as qblk sees it" \
    "$IMG" info --backing-chain l3.qcow2
step "where the data of the top comes from" \
    "$IMG" map --output=json l3.qcow2
step "metadata check of the top" "$IMG" check l3.qcow2

"$IMG" map -f qcow2 --output=json l3.qcow2 > map.qblk
oracle "QEMU's map of the same chain" \
    "$QEMU_IMG" map -f qcow2 --output=json l3.qcow2
if [ -n "$QEMU_IMG" ]; then
    "$QEMU_IMG" map -f qcow2 --output=json l3.qcow2 > map.qemu
    step "qblk's and QEMU's maps are identical" diff -u map.qemu map.qblk
fi
oracle "QEMU checks the image qblk wrote" "$QEMU_IMG" check l3.qcow2

step "flatten the chain into one image" \
    "$IMG" convert -f qcow2 -O qcow2 l3.qcow2 flat.qcow2
step "the flat copy shows the same content" \
    "$IMG" compare l3.qcow2 flat.qcow2
oracle "QEMU agrees" "$QEMU_IMG" compare l3.qcow2 flat.qcow2
step "commit the top into overlay 2" "$IMG" commit l3.qcow2
step "overlay 2 now holds the top's view" \
    "$IMG" compare l2.qcow2 flat.qcow2
step "rebase overlay 2 straight onto the base, dropping overlay 1" \
    "$IMG" rebase -f qcow2 -b base.raw -F raw l2.qcow2
step "the content did not change" "$IMG" compare l2.qcow2 flat.qcow2
oracle "QEMU agrees" "$QEMU_IMG" compare l2.qcow2 flat.qcow2
step "the shorter chain" "$IMG" info --backing-chain l2.qcow2

printf '\ndemo: all steps succeeded\n'
