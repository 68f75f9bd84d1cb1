#!/bin/sh
# StreamPulse post-build for Orange Pi (Allwinner) boards. Runs after
# Buildroot's board/orangepi/common/post-build.sh, which wrote extlinux.conf
# and a genimage.cfg with a fresh root PARTUUID: mount the root read-only and
# use StreamPulse's layout (board/common/genimage-sunxi.cfg.in) with the same
# PARTUUID. The FAT partition only carries config.yaml here (U-Boot boots
# from the root partition's /boot).
set -eu
TARGET_DIR="$1"
COMMON_DIR="$(dirname "$0")/../common"

sed -i -e 's/ rootwait/ ro rootwait/' -e 's/ ro ro / ro /' "$TARGET_DIR/boot/extlinux/extlinux.conf"
PARTUUID=$(sed -n 's/.*partition-uuid = *//p' "$BINARIES_DIR/genimage.cfg" | head -n 1)
[ -n "$PARTUUID" ] || { echo "orangepi post-build: no partition-uuid in $BINARIES_DIR/genimage.cfg" >&2; exit 1; }
sed "s/%PARTUUID%/$PARTUUID/g" "$COMMON_DIR/genimage-sunxi.cfg.in" >"$BINARIES_DIR/genimage-streampulse.cfg"
cp "$COMMON_DIR/config.yaml.example" "$BINARIES_DIR/config.yaml.example"
