#!/bin/sh
# `make image BOARD=<board>`: builds the SD-card image with Buildroot.
#
#   buildroot/build-image.sh BOARD [BUILDROOT_VERSION]
#
# Needs the internet (Buildroot downloads its toolchain, the kernel, U-Boot
# or the Pi firmware and every package) and ~15 GB of disk; takes 30-90 min
# the first time. BUILDROOT=/path uses an existing Buildroot tree instead of
# cloning the pinned release into target/buildroot-<version>.
# Output: target/image-<board>/images/sdcard.img (+ .xz), for ./flash.sh.
#
# The image trusts update bundles signed under the CA certificate
# STREAMPULSE_RAUC_KEYRING (default: $STREAMPULSE_RAUC_KEYS/ca.cert.pem, and
# that defaults to target/rauc-keys, as for `make bundle`); checked here
# before the long build, installed by board/common/post-build.sh.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 BOARD [BUILDROOT_VERSION]" >&2; exit 2; }
BOARD=$1
VERSION=${2:-2026.05.1}
# `make -jN image` hands us its jobserver in MAKEFLAGS, but not its file
# descriptors (this recipe is not a sub-make): every make and cargo below
# would warn "jobserver unavailable" and check-defconfigs would fail. They
# are separate builds with their own parallelism; start them clean.
unset MAKEFLAGS MFLAGS MAKELEVEL
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEF="$REPO/buildroot/configs/streampulse_${BOARD}_defconfig"
if [ ! -f "$DEF" ]; then
    echo "unknown BOARD=$BOARD; one of:" >&2
    ls "$REPO/buildroot/configs" | sed -n 's/^streampulse_\(.*\)_defconfig$/  \1/p' >&2
    exit 2
fi

keys=${STREAMPULSE_RAUC_KEYS:-$REPO/target/rauc-keys}
STREAMPULSE_RAUC_KEYRING=${STREAMPULSE_RAUC_KEYRING:-$keys/ca.cert.pem}
if [ ! -f "$STREAMPULSE_RAUC_KEYRING" ]; then
    echo "no update keyring $STREAMPULSE_RAUC_KEYRING: make the keys once with" >&2
    echo "  scripts/rauc-keys.sh $keys" >&2
    echo "(keep them out of git and back them up), or set STREAMPULSE_RAUC_KEYRING to your CA certificate" >&2
    exit 2
fi
STREAMPULSE_RAUC_KEYRING=$(cd "$(dirname "$STREAMPULSE_RAUC_KEYRING")" && pwd)/$(basename "$STREAMPULSE_RAUC_KEYRING")
export STREAMPULSE_RAUC_KEYRING

# The static binary the package installs (buildroot/package/streampulse).
if grep -q '^BR2_aarch64=y' "$DEF"; then arch=aarch64; else arch=armv7; fi
"$REPO/scripts/cross.sh" "$arch"

BR=${BUILDROOT:-$REPO/target/buildroot-$VERSION}
if [ ! -f "$BR/Makefile" ]; then
    git clone --depth 1 --branch "$VERSION" https://gitlab.com/buildroot.org/buildroot.git "$BR"
fi
OUT="$REPO/target/image-$BOARD"
brmake() { make -C "$BR" O="$OUT" "$@"; }
brmake BR2_EXTERNAL="$REPO/buildroot" "streampulse_${BOARD}_defconfig"
"$REPO/buildroot/check-defconfigs.sh" "$BR" "$DEF"
# The streampulse package (local site method) copies target/cross/dist into
# its build directory once and then trusts its stamps: a plain `make` on an
# existing output would ship the binary of the first build. Buildroot's
# documented way for local/override sources is `<pkg>-rebuild all`, which
# re-syncs the source and re-runs the install before the images are made.
brmake streampulse-rebuild all
xz -T0 -k -f "$OUT/images/sdcard.img"
ls -l "$OUT/images/sdcard.img" "$OUT/images/sdcard.img.xz"
echo "Write it with: sudo ./flash.sh $OUT/images/sdcard.img.xz /dev/sdX"
