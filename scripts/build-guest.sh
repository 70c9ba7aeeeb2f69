#!/bin/sh
# build-guest.sh OUTDIR - the demo's Linux guest, from Debian's packages.
#
# Writes OUTDIR/vmlinuz (a copy of the installed cloud kernel) and
# OUTDIR/initrd.gz: busybox-static, the virtio block modules of that
# kernel and guest/init as /init. Nothing is downloaded here; the
# packages come from scripts/install-deps.sh. Rebuilds only when
# guest/init or the kernel changed.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: build-guest.sh OUTDIR}
mkdir -p "$OUT"

kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$kernel" ]; then
    kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$kernel" ]; then
    echo "build-guest: no kernel in /boot (install linux-image-cloud-amd64)" >&2
    exit 1
fi
version=${kernel#/boot/vmlinuz-}
moddir=/lib/modules/$version/kernel/drivers
if [ ! -x /bin/busybox ] || ! /bin/busybox --list | grep -qx insmod; then
    echo "build-guest: /bin/busybox is missing (install busybox-static)" >&2
    exit 1
fi

stamp="$version $(cksum < "$ROOT/guest/init")"
if [ -f "$OUT/initrd.gz" ] && [ -f "$OUT/vmlinuz" ] &&
   [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/bin" "$tree/proc" "$tree/sys" "$tree/dev" "$tree/tmp" \
         "$tree/lib/modules"
cp /bin/busybox "$tree/bin/busybox"
ln -s busybox "$tree/bin/sh"
cp "$ROOT/guest/init" "$tree/init"
chmod 755 "$tree/init"
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev \
         virtio/virtio_pci_modern_dev virtio/virtio_pci block/virtio_blk; do
    src="$moddir/$m.ko"
    if [ -f "$src" ]; then
        cp "$src" "$tree/lib/modules/"
    elif [ -f "$src.xz" ]; then
        xz -dc "$src.xz" > "$tree/lib/modules/$(basename "$m").ko"
    else
        # Built into this kernel: init's insmod failure is then harmless.
        echo "build-guest: $m not a module of $version" >&2
    fi
done
(cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initrd.gz.tmp"
cp "$kernel" "$OUT/vmlinuz.tmp"
mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "$stamp" > "$OUT/stamp"
echo "build-guest: $OUT/vmlinuz ($version) and $OUT/initrd.gz"
