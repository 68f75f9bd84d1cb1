#!/bin/sh
# Runs a board's A/B boot script in real U-Boot under QEMU, on a card with
# the board's real layout, and drives its boot counter from the host with
# libubootenv's fw_printenv/fw_setenv through the board's fw_env.config
# offsets, one fw_setenv per variable, as RAUC's bootloader=uboot backend
# does on the box (docs/UPDATES.md):
#
#   rpi3      buildroot/board/raspberrypi/boot.cmd, genimage-mbr.cfg.in; Debian's
#             rpi_arm64 U-Boot (package u-boot-rpi:arm64) under
#             qemu-system-aarch64 -M raspi3b, QEMU playing the firmware (U-Boot
#             as the kernel, a Pi 3 device tree, cmdline-uboot.txt as -append)
#   orangepi  buildroot/board/orangepi/boot.cmd, genimage-sunxi.cfg.in; an H3/H2+
#             u-boot-sunxi-with-spl.bin (UBOOT=; Debian's u-boot-sunxi:armhf has
#             orangepi_zero) under qemu-system-arm -M orangepi-pc, which boots the
#             SPL from the card at 8 KiB like the boot ROM
#
# Boots: 1. blank counter: slot A, 2 tries left after; 2. RAUC's install
# into B (BOOT_ORDER="B A", BOOT_B_LEFT=3): slot B; 3. RAUC's mark-bad of B
# (BOOT_B_LEFT=0): slot A; rpi3 only (QEMU's orangepi-pc cannot reset):
# 4. no tries left anywhere: both get 3 again, U-Boot resets, B boots.
# The kernel and the Orange Pi's DTB are stand-ins: "Starting kernel" ends
# U-Boot's part.
#
#   scripts/qemu/uboot-ab-check.sh rpi3|orangepi [WORKDIR]
#
# Needs: qemu-system-arm, genimage, u-boot-tools (mkimage), e2fsprogs,
# mtools, dosfstools, libubootenv-tool (fw_printenv); rpi3: a Pi 3 DTB
# (RPI3_DTB=; Debian's linux-image-*-arm64 has
# usr/lib/linux-image-*/broadcom/bcm2837-rpi-3-b.dtb), UBOOT= if not
# /usr/lib/u-boot/rpi_arm64/u-boot.bin; orangepi: device-tree-compiler.
# Not part of `make test` (arm64/armhf packages); about 30 s per board.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 rpi3|orangepi [WORKDIR]" >&2; exit 2; }
board=$1
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BOARD=$REPO/buildroot/board
work=${2:-$(mktemp -d)}
mkdir -p "$work/in" "$work/root/boot" "$work/out"
cd "$work"
die() {
    echo "uboot-ab-check: $*" >&2
    exit 1
}

case $board in
rpi3)
    family=raspberrypi
    UBOOT=${UBOOT:-/usr/lib/u-boot/rpi_arm64/u-boot.bin}
    if [ -z "${RPI3_DTB:-}" ]; then
        for f in /usr/lib/linux-image-*-arm64/broadcom/bcm2837-rpi-3-b.dtb; do
            [ -f "$f" ] && RPI3_DTB=$f
        done
    fi
    if [ -z "${RPI3_DTB:-}" ] || [ ! -f "$RPI3_DTB" ]; then
        die "no Pi 3 DTB (RPI3_DTB=)"
    fi
    # A stand-in arm64 Image: the header booti checks
    # (Documentation/arch/arm64/booting.rst), image size 64 KiB, "ARM\x64".
    {
        printf '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0'
        printf '\0\0\1\0\0\0\0\0\12\0\0\0\0\0\0\0'
        printf '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0'
        printf 'ARM\144\0\0\0\0'
    } >root/boot/Image
    truncate -s 64K root/boot/Image
    mkimage_arch=arm64
    template=genimage-mbr.cfg.in
    root_a="root=/dev/mmcblk0p2 rauc.slot=A"
    root_b="root=/dev/mmcblk0p3 rauc.slot=B"
    ;;
orangepi)
    family=orangepi
    if [ -z "${UBOOT:-}" ] || [ ! -f "$UBOOT" ]; then
        die "UBOOT= an H3/H2+ u-boot-sunxi-with-spl.bin"
    fi
    cp "$UBOOT" in/u-boot-sunxi-with-spl.bin
    # A stand-in zImage (the magic bootz checks) and DTB under every name
    # an H3/H2+ U-Boot may have in ${fdtfile}.
    python3 -c "
import struct, sys
b = bytearray(64 * 1024)
struct.pack_into('<III', b, 0x24, 0x016f2818, 0, len(b))
struct.pack_into('<I', b, 0x30, 0x04030201)
open('root/boot/zImage', 'wb').write(b)"
    printf '/dts-v1/;\n/ { #address-cells = <1>; #size-cells = <1>; model = "stand-in";\n  chosen { }; cpus { #address-cells = <1>; #size-cells = <0>; };\n  memory@40000000 { device_type = "memory"; reg = <0x40000000 0x40000000>; }; };\n' >stand-in.dts
    for dtb in sun8i-h3-orangepi-pc sun8i-h3-orangepi-plus sun8i-h2-plus-orangepi-zero; do
        dtc -q -O dtb -o "root/boot/$dtb.dtb" stand-in.dts
    done
    mkimage_arch=arm
    template=genimage-sunxi.cfg.in
    root_a="root=PARTUUID=53504344-5350-4000-8000-000000000002 rauc.slot=A"
    root_b="root=PARTUUID=53504344-5350-4000-8000-000000000003 rauc.slot=B"
    ;;
*) die "unknown board $board (rpi3 or orangepi)" ;;
esac

mkfs.ext4 -q -F -L rootfs -d root in/rootfs.ext4 32M
mkimage -C none -A "$mkimage_arch" -T script -d "$BOARD/$family/boot.cmd" in/boot.scr >/dev/null
cp "$BOARD/common/config.yaml.example" in/
list=$(printf '\\t\\t\\t"%s",\\n' boot.scr config.yaml.example)
sed "s|^#BOOT_FILES#\$|$list|" "$BOARD/common/$template" >genimage.cfg
rm -rf tmp
genimage --rootpath root --tmppath tmp --inputpath in --outputpath out --config genimage.cfg >genimage.log 2>&1 ||
    die "genimage failed: $work/genimage.log"
cp out/sdcard.img card.img
truncate -s 256M card.img # QEMU's SD card: a power of two
# The board's fw_env.config, pointed at the card image.
sed -n 's|^/dev/mmcblk0[[:space:]]|card.img |p' "$BOARD/$family/fw_env.config" >fw_env.config

n=0
# One power-on until U-Boot hands over to the kernel.
boot() {
    n=$((n + 1))
    log=boot$n.log
    : >"$log"
    case $board in
    rpi3)
        qemu-system-aarch64 -M raspi3b -kernel "$UBOOT" -dtb "$RPI3_DTB" \
            -append "$(cat "$BOARD/raspberrypi/cmdline-uboot.txt")" \
            -drive file=card.img,if=sd,format=raw -display none -monitor none \
            -serial file:serial0-$n.log -serial file:"$log" &
        ;;
    orangepi)
        qemu-system-arm -M orangepi-pc -drive file=card.img,if=sd,format=raw \
            -display none -monitor none -nic none -serial file:"$log" &
        ;;
    esac
    pid=$!
    waited=0
    until grep -q 'Starting kernel' "$log"; do
        sleep 1
        waited=$((waited + 1))
        if [ "$waited" -ge 120 ]; then
            kill "$pid"
            tail -n 30 "$log" >&2
            die "boot $n: no kernel start in 120 s ($work/$log)"
        fi
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    grep -E 'boot counter|Found valid slot|No valid slot|Kernel arguments|Loading the kernel' "$log" | sed "s/^/  boot $n: /"
}
expect() {
    grep -qF -- "$1" "$log" || die "boot $n: no '$1' in $work/$log"
}
env_is() {
    got=$(fw_printenv -c fw_env.config "$1" 2>/dev/null || true)
    [ "$got" = "$1=$2" ] || die "after boot $n: '$got', expected $1=$2"
}

boot
expect "boot counter: none on the card yet"
expect "$root_a"
expect "rootwait fsck.repair=yes panic=10"
env_is BOOT_A_LEFT 2

fw_setenv -c fw_env.config BOOT_ORDER "B A"
fw_setenv -c fw_env.config BOOT_B_LEFT 3
boot
expect "$root_b"
env_is BOOT_B_LEFT 2
env_is BOOT_A_LEFT 2

fw_setenv -c fw_env.config BOOT_B_LEFT 0
boot
expect "$root_a"
env_is BOOT_A_LEFT 1

if [ "$board" = rpi3 ]; then
    fw_setenv -c fw_env.config BOOT_A_LEFT 0
    fw_setenv -c fw_env.config BOOT_B_LEFT 0
    boot
    expect "No valid slot found, resetting tries to 3"
    expect "$root_b"
    env_is BOOT_B_LEFT 2
    env_is BOOT_A_LEFT 3
fi
echo "uboot-ab-check: $board ok ($n boots; logs in $work)"
