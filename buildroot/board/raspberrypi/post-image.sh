#!/bin/bash
# StreamPulse post-image for Raspberry Pi boards: Buildroot's Raspberry Pi
# logic (the FAT partition holds the firmware, DTBs, overlays and kernel)
# with StreamPulse's layout (board/common/genimage-mbr.cfg.in): FAT labelled
# STREAMPULSE with config.yaml.example, read-only root, and a data partition.
set -euo pipefail

BOARD_DIR="$(dirname "$0")"
COMMON_DIR="$BOARD_DIR/../common"
GENIMAGE_CFG="$BINARIES_DIR/genimage.cfg"
GENIMAGE_TMP="$BUILD_DIR/genimage.tmp"
FW="$BINARIES_DIR/rpi-firmware"

# The hardware watchdog (bcm2835-wdt) that systemd pets (RuntimeWatchdogSec).
grep -q '^dtparam=watchdog=on' "$FW/config.txt" || printf '\n# StreamPulse\ndtparam=watchdog=on\n' >>"$FW/config.txt"

cp "$COMMON_DIR/config.yaml.example" "$BINARIES_DIR/config.yaml.example"

FILES=()
for i in "$BINARIES_DIR"/*.dtb "$FW"/*; do
    FILES+=("${i#"$BINARIES_DIR"/}")
done
KERNEL=$(sed -n 's/^kernel=//p' "$FW/config.txt")
FILES+=("$KERNEL" "config.yaml.example")
BOOT_FILES=$(printf '\\t\\t\\t"%s",\\n' "${FILES[@]}")
sed "s|#BOOT_FILES#|${BOOT_FILES}|" "$COMMON_DIR/genimage-mbr.cfg.in" >"$GENIMAGE_CFG"

trap 'rm -rf "$ROOTPATH_TMP"' EXIT
ROOTPATH_TMP="$(mktemp -d)"
rm -rf "$GENIMAGE_TMP"
genimage \
    --rootpath "$ROOTPATH_TMP" \
    --tmppath "$GENIMAGE_TMP" \
    --inputpath "$BINARIES_DIR" \
    --outputpath "$BINARIES_DIR" \
    --config "$GENIMAGE_CFG"
