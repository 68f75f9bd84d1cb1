#!/bin/sh
# Builds a signed RAUC update bundle of a root filesystem image
# (docs/UPDATES.md): `make bundle BOARD=...` runs it on Buildroot's
# rootfs.ext4, and the QEMU update test (tests/it/qemu/update.rs) on its own.
#
#   scripts/make-bundle.sh ROOTFS.ext4 VERSION OUT.raucb [BOOT.vfat]
#
# BOOT.vfat: the boards whose firmware boots a slot's own FAT partition (Pi 4
# and 5, tryboot: system.conf has "boot" slots) need that partition's image
# too (boot-a.vfat from the build; board/raspberrypi/rauc-tryboot makes its
# cmdline.txt name the slot it lands in).
#
# Environment:
#   STREAMPULSE_RAUC_KEYS  directory made by scripts/rauc-keys.sh
#                          (default: target/rauc-keys): signs with
#                          signing.key.pem/signing.cert.pem and checks the
#                          result against ca.cert.pem
#   STREAMPULSE_RAUC_COMPATIBLE  the image's compatible string (default
#                          "streampulse", as overlay/etc/rauc/system.conf and
#                          the QEMU card; a Buildroot image has
#                          streampulse-<board>, which `make bundle` reads
#                          from the image's /etc/rauc/system.conf)
#
# The bundle is in RAUC's "verity" format (squashfs + dm-verity hash tree)
# and holds one image, for the "rootfs" slot class (both A and B), and with
# BOOT.vfat one for the "boot" class; RAUC writes them into whichever slot is
# not running. The images must fit the card's slot partitions (the root
# filesystem size of the board's defconfig; 64 MiB for a boot partition).
# Needs (scripts/install-deps.sh): rauc, squashfs-tools.
set -eu
[ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: $0 ROOTFS.ext4 VERSION OUT.raucb [BOOT.vfat]" >&2; exit 2; }
rootfs=$1
version=$2
out=$3
bootimg=${4:-}
keys=${STREAMPULSE_RAUC_KEYS:-$(cd "$(dirname "$0")/.." && pwd)/target/rauc-keys}
compatible=${STREAMPULSE_RAUC_COMPATIBLE:-streampulse}
for f in signing.key.pem signing.cert.pem ca.cert.pem; do
    [ -f "$keys/$f" ] || { echo "make-bundle: no $keys/$f (make one with scripts/rauc-keys.sh $keys)" >&2; exit 1; }
done
[ -f "$rootfs" ] || { echo "make-bundle: no root filesystem image $rootfs" >&2; exit 1; }
[ -z "$bootimg" ] || [ -f "$bootimg" ] || { echo "make-bundle: no boot partition image $bootimg" >&2; exit 1; }
case "$compatible" in
*[!A-Za-z0-9._+-]* | "") echo "make-bundle: compatible must be [A-Za-z0-9._+-]+: $compatible" >&2; exit 2 ;;
esac
case "$version" in
*[!A-Za-z0-9._+~-]* | "") echo "make-bundle: version must be [A-Za-z0-9._+~-]+: $version" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
# A hard link where possible: the image can be hundreds of MiB.
ln "$rootfs" "$work/content/rootfs.ext4" 2>/dev/null || cp "$rootfs" "$work/content/rootfs.ext4"
if [ -n "$bootimg" ]; then
    ln "$bootimg" "$work/content/boot.vfat" 2>/dev/null || cp "$bootimg" "$work/content/boot.vfat"
fi
cat >"$work/content/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
MANIFEST
if [ -n "$bootimg" ]; then
    printf '\n[image.boot]\nfilename=boot.vfat\n' >>"$work/content/manifest.raucm"
fi
rm -f "$out"
rauc bundle --cert="$keys/signing.cert.pem" --key="$keys/signing.key.pem" \
    --keyring="$keys/ca.cert.pem" "$work/content" "$out"
echo "make-bundle: $out ($compatible $version, $(du -h "$out" | cut -f1))"
