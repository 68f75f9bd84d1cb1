#!/bin/sh
# Runs the Raspberry Pi 3 / Zero 2 W A/B boot script
# (buildroot/board/raspberrypi/boot.cmd) in real U-Boot: Debian's rpi_arm64
# build (package u-boot-rpi) under qemu-system-aarch64 -M raspi3b, which
# emulates the Pi 3's SD controller, on a card with the real layout
# (buildroot/board/common/genimage-mbr.cfg.in). QEMU plays the firmware: it
# loads U-Boot as the kernel with a Pi 3 device tree whose /chosen/bootargs
# is cmdline-uboot.txt (-append). The boot counter is read and written from
# the host with libubootenv's fw_printenv/fw_setenv through the board's
# fw_env.config offsets, as RAUC's bootloader=uboot backend does on the box:
#
#   1. blank counter: slot A, root=/dev/mmcblk0p2 rauc.slot=A, A has 2 tries left
#   2. RAUC's install into B (BOOT_ORDER="B A", BOOT_B_LEFT=3): slot B, p3
#   3. RAUC's mark-bad of B (BOOT_B_LEFT=0): slot A again
#   4. no tries left anywhere: U-Boot resets both to 3 and resets the board;
#      the next boot takes B (first in BOOT_ORDER)
#
# The kernel is a stand-in (an arm64 Image header; "Starting kernel" is the
# end of U-Boot's part) unless KERNEL=<arm64 Image> is given.
#
#   scripts/qemu/rpi3-uboot-check.sh [WORKDIR]
#
# Needs: qemu-system-arm, genimage, u-boot-tools (mkimage), e2fsprogs,
# libubootenv-tool (fw_printenv), u-boot-rpi:arm64 (dpkg --add-architecture
# arm64; UBOOT= another u-boot.bin), and a Pi 3 DTB (RPI3_DTB=; found in
# Debian's linux-image-*-arm64 as usr/lib/linux-image-*/broadcom/bcm2837-rpi-3-b.dtb).
# Not part of `make test`: about a minute, and arm64 packages.
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BOARD=$REPO/buildroot/board
UBOOT=${UBOOT:-/usr/lib/u-boot/rpi_arm64/u-boot.bin}
if [ -z "${RPI3_DTB:-}" ]; then
    for f in /usr/lib/linux-image-*-arm64/broadcom/bcm2837-rpi-3-b.dtb; do
        [ -f "$f" ] && RPI3_DTB=$f
    done
fi
[ -f "$UBOOT" ] || { echo "rpi3-uboot-check: no $UBOOT (apt-get install u-boot-rpi:arm64, or UBOOT=)" >&2; exit 2; }
if [ -z "${RPI3_DTB:-}" ] || [ ! -f "$RPI3_DTB" ]; then
    echo "rpi3-uboot-check: no Pi 3 DTB (RPI3_DTB=)" >&2
    exit 2
fi
work=${1:-$(mktemp -d)}
mkdir -p "$work/in" "$work/root/boot" "$work/out"
cd "$work"

if [ -n "${KERNEL:-}" ]; then
    cp "$KERNEL" root/boot/Image
else
    # An arm64 Image header (Documentation/arch/arm64/booting.rst): text
    # offset 0, image size 64 KiB, magic "ARM\x64" at 56; enough for booti.
    {
        printf '\0\0\0\0\0\0\0\0' # code0, code1
        printf '\0\0\0\0\0\0\0\0' # text_offset
        printf '\0\0\1\0\0\0\0\0' # image_size = 0x10000
        printf '\12\0\0\0\0\0\0\0' # flags: little endian, 4K pages
        printf '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0'
        printf 'ARM\144\0\0\0\0'
    } >root/boot/Image
    truncate -s 64K root/boot/Image
fi
mkfs.ext4 -q -F -L rootfs -d root in/rootfs.ext4 64M
mkimage -C none -A arm64 -T script -d "$BOARD/raspberrypi/boot.cmd" in/boot.scr >/dev/null
cp "$BOARD/common/config.yaml.example" in/
list=$(printf '\\t\\t\\t"%s",\\n' boot.scr config.yaml.example)
sed "s|^#BOOT_FILES#\$|$list|" "$BOARD/common/genimage-mbr.cfg.in" >genimage.cfg
rm -rf tmp
genimage --rootpath root --tmppath tmp --inputpath in --outputpath out --config genimage.cfg >genimage.log 2>&1
cp out/sdcard.img card.img
truncate -s 256M card.img # QEMU's SD card: a power of two
# The board's fw_env.config, pointed at the card image.
sed -n 's|^/dev/mmcblk0[[:space:]]|card.img |p' "$BOARD/raspberrypi/fw_env.config" >fw_env.config
cmdline=$(cat "$BOARD/raspberrypi/cmdline-uboot.txt")

n=0
# One power-on until U-Boot hands over to the kernel (or KERNEL's command
# line shows up); $1: how many "Starting kernel" lines to wait for.
boot() {
    n=$((n + 1))
    log=boot$n.log
    : >"$log"
    qemu-system-aarch64 -M raspi3b -kernel "$UBOOT" -dtb "$RPI3_DTB" -append "$cmdline" \
        -drive file=card.img,if=sd,format=raw -display none -monitor none \
        -serial file:serial0-$n.log -serial file:"$log" &
    pid=$!
    waited=0
    until [ "$(cat "$log" serial0-$n.log 2>/dev/null | grep -c 'Starting kernel')" -ge "${1:-1}" ]; do
        sleep 1
        waited=$((waited + 1))
        if [ "$waited" -ge 120 ]; then
            kill "$pid"
            echo "rpi3-uboot-check: boot $n: no kernel start in 120 s; $work/$log:" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    grep -E 'boot counter|Found valid slot|No valid slot|Kernel arguments|Loading the kernel' "$log" | sed "s/^/  boot $n: /"
}
expect() {
    grep -qF -- "$1" "$log" || { echo "rpi3-uboot-check: boot $n: no '$1' in $work/$log" >&2; exit 1; }
}
env_is() {
    got=$(fw_printenv -c fw_env.config "$1" 2>/dev/null || true)
    [ "$got" = "$1=$2" ] || { echo "rpi3-uboot-check: after boot $n: $got, expected $1=$2" >&2; exit 1; }
}

boot
expect "boot counter: none on the card yet"
expect "root=/dev/mmcblk0p2 rauc.slot=A"
expect "rootwait fsck.repair=yes panic=10"
env_is BOOT_A_LEFT 2

# As RAUC's uboot backend does it: one fw_setenv per variable.
fw_setenv -c fw_env.config BOOT_ORDER "B A"
fw_setenv -c fw_env.config BOOT_B_LEFT 3
boot
expect "root=/dev/mmcblk0p3 rauc.slot=B"
env_is BOOT_B_LEFT 2
env_is BOOT_A_LEFT 2

fw_setenv -c fw_env.config BOOT_B_LEFT 0
boot
expect "root=/dev/mmcblk0p2 rauc.slot=A"
env_is BOOT_A_LEFT 1

fw_setenv -c fw_env.config BOOT_A_LEFT 0
fw_setenv -c fw_env.config BOOT_B_LEFT 0
boot 1
expect "No valid slot found, resetting tries to 3"
expect "root=/dev/mmcblk0p3 rauc.slot=B"
env_is BOOT_B_LEFT 2
env_is BOOT_A_LEFT 3
echo "rpi3-uboot-check: ok ($n boots; logs in $work)"
