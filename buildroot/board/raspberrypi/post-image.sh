#!/bin/bash
# StreamPulse post-image for Raspberry Pi boards: Buildroot's Raspberry Pi
# logic (the firmware, DTBs and overlays on a FAT partition) with
# StreamPulse's A/B layouts (docs/UPDATES.md). $1 is BINARIES_DIR, $2 the
# board's boot selection (BR2_ROOTFS_POST_SCRIPT_ARGS):
#
#   uboot    Pi 3, Zero 2 W (board/common/genimage-mbr.cfg.in): the firmware
#            starts U-Boot (config.txt kernel=u-boot.bin), whose boot.scr
#            picks a root slot and boots the kernel in that slot's /boot.
#   tryboot  Pi 4, 5 (board/common/genimage-rpi-tryboot.cfg.in): autoboot.txt
#            on p1 picks boot partition p2 or p3, each with the firmware,
#            kernel and a cmdline.txt naming its own root slot.
set -euo pipefail

MODE=${2:-}
BOARD_DIR="$(dirname "$0")"
COMMON_DIR="$BOARD_DIR/../common"
GENIMAGE_CFG="$BINARIES_DIR/genimage.cfg"
GENIMAGE_TMP="$BUILD_DIR/genimage.tmp"
FW="$BINARIES_DIR/rpi-firmware"

# The hardware watchdog (bcm2835-wdt) that systemd pets (RuntimeWatchdogSec).
grep -q '^dtparam=watchdog=on' "$FW/config.txt" || printf '\n# StreamPulse\ndtparam=watchdog=on\n' >>"$FW/config.txt"

# The box camera (docs/APPLIANCE.md "The box's own camera"), on images built
# with libcamera's Raspberry Pi pipeline: the firmware finds an official
# camera module and loads its overlay (camera_auto_detect), and the kernel
# reserves 64 MB of CMA for libcamera's frame buffers (the Pi kernels'
# defconfig leaves a few MB; the "cma" overlay, as without vc4-kms-v3d).
if grep -q '^BR2_PACKAGE_LIBCAMERA_PIPELINE_RPI_VC4=y' "${BR2_CONFIG:-/dev/null}" &&
    ! grep -q '^camera_auto_detect=' "$FW/config.txt"; then
    printf 'camera_auto_detect=1\ndtoverlay=cma,cma-64\n' >>"$FW/config.txt"
fi

cp "$COMMON_DIR/config.yaml.example" "$BINARIES_DIR/config.yaml.example"

# Lines for genimage's "files = { ... }" (the template's #BOOT_FILES# line).
files_list() {
    printf '\\t\\t\\t"%s",\\n' "$@"
}

case "$MODE" in
uboot)
    # U-Boot instead of the kernel; its console on the UART.
    sed -i 's/^kernel=.*/kernel=u-boot.bin/' "$FW/config.txt"
    grep -q '^enable_uart=1' "$FW/config.txt" || printf 'enable_uart=1\n' >>"$FW/config.txt"
    for f in u-boot.bin boot.scr; do
        [ -f "$BINARIES_DIR/$f" ] || { echo "post-image: no $BINARIES_DIR/$f (BR2_TARGET_UBOOT, BR2_PACKAGE_HOST_UBOOT_TOOLS_BOOT_SCRIPT)" >&2; exit 1; }
    done
    FILES=()
    for i in "$BINARIES_DIR"/*.dtb "$FW"/*; do
        FILES+=("${i#"$BINARIES_DIR"/}")
    done
    FILES+=("u-boot.bin" "boot.scr" "config.yaml.example")
    sed "s|^#BOOT_FILES#\$|$(files_list "${FILES[@]}")|" "$COMMON_DIR/genimage-mbr.cfg.in" >"$GENIMAGE_CFG"
    ;;
tryboot)
    # Each slot's cmdline.txt names its root by the card's fixed PARTUUIDs
    # (p4, p5); rauc.slot= tells RAUC and the health gate which slot runs.
    for s in a:A:04 b:B:05; do
        IFS=: read -r lower slot part <<<"$s"
        sed -e "s|root=[^ ]*|root=PARTUUID=53504344-5350-4000-8000-0000000000$part|" \
            -e "s|\$| rauc.slot=$slot|" "$FW/cmdline.txt" >"$BINARIES_DIR/cmdline-$lower.txt"
        grep -q "root=PARTUUID=" "$BINARIES_DIR/cmdline-$lower.txt" || { echo "post-image: no root= in $FW/cmdline.txt" >&2; exit 1; }
    done
    # Boot partition 2 (slot A) unless a tryboot reboot asks for the other
    # (board/raspberrypi/rauc-tryboot rewrites this file).
    cat >"$BINARIES_DIR/autoboot.txt" <<'AUTOBOOT'
# A/B boot (rauc-tryboot, docs/UPDATES.md). Committed slot: A
# bad=
[all]
tryboot_a_b=1
boot_partition=2
[tryboot]
boot_partition=3
AUTOBOOT
    KERNEL=$(sed -n 's/^kernel=//p' "$FW/config.txt")
    FILES=()
    for i in "$BINARIES_DIR"/*.dtb "$FW"/*; do
        [ "$i" = "$FW/cmdline.txt" ] && continue
        FILES+=("${i#"$BINARIES_DIR"/}")
    done
    FILES+=("$KERNEL")
    sed "s|^#BOOT_FILES#\$|$(files_list "${FILES[@]}")|" "$COMMON_DIR/genimage-rpi-tryboot.cfg.in" >"$GENIMAGE_CFG"
    ;;
*)
    echo "post-image: BR2_ROOTFS_POST_SCRIPT_ARGS must be uboot or tryboot, not '$MODE'" >&2
    exit 1
    ;;
esac

trap 'rm -rf "$ROOTPATH_TMP"' EXIT
ROOTPATH_TMP="$(mktemp -d)"
rm -rf "$GENIMAGE_TMP"
genimage \
    --rootpath "$ROOTPATH_TMP" \
    --tmppath "$GENIMAGE_TMP" \
    --inputpath "$BINARIES_DIR" \
    --outputpath "$BINARIES_DIR" \
    --config "$GENIMAGE_CFG"
