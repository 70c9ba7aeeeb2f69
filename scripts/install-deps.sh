#!/bin/sh
# Install every Debian 12 package qblk's build, tests, demo and benchmarks need.
# Idempotent: prints nothing and touches nothing when all packages are present.
# Must run as root (or with sudo available) when something is missing.
set -e

PKGS="build-essential meson ninja-build pkg-config python3 python3-pytest
libglib2.0-dev libjson-glib-dev liburing-dev zlib1g-dev libcurl4-openssl-dev
qemu-utils qemu-system-common libnbd-bin nbdkit fio socat clang libclang-rt-14-dev llvm
nginx openssl valgrind qemu-block-extra python3-docutils
qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps: need root to install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || $SUDO apt-get update
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
