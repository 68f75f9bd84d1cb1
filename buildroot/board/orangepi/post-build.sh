#!/bin/sh
# StreamPulse post-build for Orange Pi (Allwinner) boards, before
# board/common/post-build.sh: the A/B card (board/common/genimage-sunxi.cfg.in,
# docs/UPDATES.md). U-Boot runs boot.scr from the FAT partition
# (board/orangepi/boot.cmd, made by BR2_PACKAGE_HOST_UBOOT_TOOLS_BOOT_SCRIPT),
# which keeps RAUC's boot counter in the block fw_env.config names and boots
# the kernel from the chosen root slot's /boot. So no extlinux.conf (Buildroot's
# board/orangepi/common/post-build.sh is not run), and RAUC's system.conf gets
# this layout's slots (rauc-slots.conf, by GPT PARTUUID). genimage.sh
# (post-image) builds $BINARIES_DIR/genimage-streampulse.cfg.
set -eu
TARGET_DIR="$1"
BOARD_DIR="$(dirname "$0")"
COMMON_DIR="$BOARD_DIR/../common"
CONF=$TARGET_DIR/etc/rauc/system.conf
[ -f "$CONF" ] || { echo "orangepi post-build: no $CONF (from overlay/)" >&2; exit 1; }

install -m 0644 "$BOARD_DIR/fw_env.config" "$TARGET_DIR/etc/fw_env.config"
# Everything before the first slot stays (compatible, bootloader=uboot,
# keyring, bundle formats, handlers); the slots are replaced.
sed -i '/^\[slot\./,$d' "$CONF"
cat "$BOARD_DIR/rauc-slots.conf" >>"$CONF"
rm -rf "$TARGET_DIR/boot/extlinux"
cp "$COMMON_DIR/genimage-sunxi.cfg.in" "$BINARIES_DIR/genimage-streampulse.cfg"
cp "$COMMON_DIR/config.yaml.example" "$BINARIES_DIR/config.yaml.example"
