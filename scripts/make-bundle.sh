#!/bin/sh
# Builds a signed RAUC update bundle of a root filesystem image
# (docs/UPDATES.md): `make bundle BOARD=...` runs it on Buildroot's
# rootfs.ext4, and the QEMU update test (tests/it/qemu/update.rs) on its own.
#
#   scripts/make-bundle.sh ROOTFS.ext4 VERSION OUT.raucb
#
# Environment:
#   STREAMPULSE_RAUC_KEYS  directory made by scripts/rauc-keys.sh
#                          (default: target/rauc-keys): signs with
#                          signing.key.pem/signing.cert.pem and checks the
#                          result against ca.cert.pem
#   STREAMPULSE_RAUC_COMPATIBLE  the image's compatible string (default
#                          "streampulse", as overlay/etc/rauc/system.conf)
#
# The bundle is in RAUC's "verity" format (squashfs + dm-verity hash tree)
# and holds one image, for the "rootfs" slot class (both A and B); RAUC
# writes it into whichever slot is not running. The image must fit the
# card's slot partition (the root filesystem size of the board's defconfig).
# Needs (scripts/install-deps.sh): rauc, squashfs-tools.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 ROOTFS.ext4 VERSION OUT.raucb" >&2; exit 2; }
rootfs=$1
version=$2
out=$3
keys=${STREAMPULSE_RAUC_KEYS:-$(cd "$(dirname "$0")/.." && pwd)/target/rauc-keys}
compatible=${STREAMPULSE_RAUC_COMPATIBLE:-streampulse}
for f in signing.key.pem signing.cert.pem ca.cert.pem; do
    [ -f "$keys/$f" ] || { echo "make-bundle: no $keys/$f (make one with scripts/rauc-keys.sh $keys)" >&2; exit 1; }
done
[ -f "$rootfs" ] || { echo "make-bundle: no root filesystem image $rootfs" >&2; exit 1; }
case "$version" in
*[!A-Za-z0-9._+~-]* | "") echo "make-bundle: version must be [A-Za-z0-9._+~-]+: $version" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
# A hard link where possible: the image can be hundreds of MiB.
ln "$rootfs" "$work/content/rootfs.ext4" 2>/dev/null || cp "$rootfs" "$work/content/rootfs.ext4"
cat >"$work/content/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
MANIFEST
rm -f "$out"
rauc bundle --cert="$keys/signing.cert.pem" --key="$keys/signing.key.pem" \
    --keyring="$keys/ca.cert.pem" "$work/content" "$out"
echo "make-bundle: $out ($compatible $version, $(du -h "$out" | cut -f1))"
