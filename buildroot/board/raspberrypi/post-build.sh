#!/bin/sh
# StreamPulse post-build for Raspberry Pi boards, after Buildroot's board
# post-build and before board/common/post-build.sh. $1 is TARGET_DIR, $2 the
# board's boot selection (BR2_ROOTFS_POST_SCRIPT_ARGS, docs/UPDATES.md):
#
#   uboot    Pi 3, Zero 2 W: U-Boot's boot counter (board/raspberrypi/boot.cmd)
#            in a block that fw_env.config names; overlay/etc/rauc/system.conf
#            as it is (bootloader=uboot, the MBR slots p2 and p3).
#   tryboot  Pi 4, 5: the firmware's tryboot through RAUC's custom backend
#            (board/raspberrypi/rauc-tryboot); system.conf gets
#            bootloader=custom and the GPT layout's slots (a root and its
#            boot partition each, rauc-slots-tryboot.conf).
set -eu
TARGET_DIR=$1
MODE=${2:-}
BOARD_DIR=$(dirname "$0")
CONF=$TARGET_DIR/etc/rauc/system.conf
[ -f "$CONF" ] || { echo "raspberrypi post-build: no $CONF (from overlay/)" >&2; exit 1; }

case "$MODE" in
uboot)
    install -m 0644 "$BOARD_DIR/fw_env.config" "$TARGET_DIR/etc/fw_env.config"
    ;;
tryboot)
    install -D -m 0755 "$BOARD_DIR/rauc-tryboot" "$TARGET_DIR/usr/libexec/streampulse/rauc-tryboot"
    # Everything before the first slot stays (compatible, keyring, bundle
    # formats, the post-install handler); the slots are replaced.
    sed -i -e 's/^bootloader=.*/bootloader=custom/' \
        -e '/^post-install=/a bootloader-custom-backend=/usr/libexec/streampulse/rauc-tryboot' \
        -e '/^\[slot\./,$d' "$CONF"
    cat "$BOARD_DIR/rauc-slots-tryboot.conf" >>"$CONF"
    grep -q '^bootloader-custom-backend=' "$CONF" || { echo "raspberrypi post-build: no [handlers] post-install= line in $CONF to add the backend after" >&2; exit 1; }
    rm -f "$TARGET_DIR/etc/fw_env.config"
    ;;
*)
    echo "raspberrypi post-build: BR2_ROOTFS_POST_SCRIPT_ARGS must be uboot or tryboot, not '$MODE'" >&2
    exit 1
    ;;
esac
