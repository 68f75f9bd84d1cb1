#!/bin/sh
# `make qemu-test`: boots the appliance's SD-card layout on an emulated
# aarch64 machine, offline, and checks it end to end (tests/it/qemu.rs).
#
# 1. the static aarch64 binary (scripts/cross.sh aarch64, checked under qemu-user);
# 2. a kit in target/qemu-kit from Debian's arm64 packages: the kernel
#    (virtio and filesystems are modules there) and busybox-static, plus an
#    initramfs that loads those modules and switches to the image's root
#    (scripts/qemu/initramfs-init);
# 3. `cargo test --test it qemu -- --ignored`: the test assembles sdcard.img
#    with genimage from buildroot/board/common/genimage-mbr.cfg.in (boot FAT
#    with config.yaml, read-only root with busybox + streampulse + overlay/,
#    ext4 data), boots it twice under qemu-system-aarch64 -M virt (TCG) and
#    talks to the daemon through a forwarded port.
#
# Needs (installed by scripts/install-deps.sh): qemu-system-arm,
# qemu-user-static, genimage, mtools, dosfstools, e2fsprogs, cpio, kmod;
# apt access to Debian's arm64 packages (dpkg --add-architecture arm64).
set -eu
cd "$(dirname "$0")/.."
KIT="${STREAMPULSE_QEMU_KIT:-$PWD/target/qemu-kit}"
BIN="${STREAMPULSE_AARCH64_BIN:-$PWD/target/cross/dist/streampulse-aarch64}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

[ "${SKIP_CROSS:-0}" = 1 ] || ./scripts/cross.sh aarch64

# Modules the guest needs, by file name; dependencies are added from modules.dep.
MODULES="virtio_pci virtio_blk virtio_net virtio-rng crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_iso8859-1 nls_utf8"

build_kit() {
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        echo "qemu-test: enabling Debian's arm64 packages (dpkg --add-architecture arm64)"
        $SUDO dpkg --add-architecture arm64
        $SUDO apt-get update -qq
    fi
    kpkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { sub(":arm64", "", $2); print $2; exit }')
    if [ -z "$kpkg" ]; then
        $SUDO apt-get update -qq
        kpkg=$(apt-cache depends linux-image-arm64:arm64 |
            awk '/Depends: linux-image-[0-9]/ { sub(":arm64", "", $2); print $2; exit }')
    fi
    [ -n "$kpkg" ] || { echo "qemu-test: cannot find Debian's arm64 kernel package" >&2; exit 1; }
    if [ -f "$KIT/initramfs.cpio.gz" ] && [ "$(cat "$KIT/kernel-package" 2>/dev/null)" = "$kpkg" ] &&
        [ "$KIT/initramfs.cpio.gz" -nt scripts/qemu/initramfs-init ]; then
        echo "qemu-test: kit up to date ($kpkg)"
        return
    fi
    echo "qemu-test: building the kit from $kpkg and busybox-static:arm64"
    rm -rf "$KIT"
    mkdir -p "$KIT/debs" "$KIT/x" "$KIT/initramfs"
    (cd "$KIT/debs" && apt-get download -q "$kpkg:arm64" busybox-static:arm64)
    for d in "$KIT"/debs/*.deb; do dpkg-deb -x "$d" "$KIT/x"; done
    kver=$(ls "$KIT/x/lib/modules")
    depmod -b "$KIT/x" "$kver"
    moddir="$KIT/x/lib/modules/$kver"
    cp "$KIT/x/boot/vmlinuz-$kver" "$KIT/vmlinuz"
    cp "$KIT/x/bin/busybox" "$KIT/busybox"

    # initramfs: busybox, the modules in dependency order, /init.
    ir="$KIT/initramfs"
    mkdir -p "$ir/bin" "$ir/lib/modules" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/newroot"
    cp "$KIT/busybox" "$ir/bin/busybox"
    for a in sh mount umount mkdir cat echo insmod sleep findfs switch_root poweroff; do
        ln -s busybox "$ir/bin/$a"
    done
    cp scripts/qemu/initramfs-init "$ir/init"
    : >"$KIT/order.tmp"
    add() { # $1: path relative to moddir
        grep -qx "$1" "$KIT/order.tmp" && return 0
        for dep in $(grep "^$1:" "$moddir/modules.dep" | cut -d: -f2); do add "$dep"; done
        echo "$1" >>"$KIT/order.tmp"
    }
    for m in $MODULES; do
        path=$(grep -E "(^|/)$m\.ko(\.xz|\.zst)?:" "$moddir/modules.dep" | cut -d: -f1 | head -n 1)
        [ -n "$path" ] || { echo "qemu-test: module $m not in $kpkg" >&2; exit 1; }
        add "$path"
    done
    while read -r p; do
        name=$(basename "$p")
        case "$name" in
        *.xz) xz -dc "$moddir/$p" >"$ir/lib/modules/${name%.xz}" ;;
        *.zst) zstd -qdc "$moddir/$p" >"$ir/lib/modules/${name%.zst}" ;;
        *) cp "$moddir/$p" "$ir/lib/modules/$name" ;;
        esac
        name=${name%.xz}
        name=${name%.zst}
        echo "${name%.ko}" >>"$ir/lib/modules/order"
    done <"$KIT/order.tmp"
    (cd "$ir" && find . | cpio -o -H newc --quiet | gzip -9) >"$KIT/initramfs.cpio.gz"
    echo "$kpkg" >"$KIT/kernel-package"
    rm -rf "$KIT/debs" "$KIT/x" "$KIT/order.tmp"
    echo "qemu-test: kit ready: $(tr '\n' ' ' <"$ir/lib/modules/order")"
}

build_kit
STREAMPULSE_QEMU_KIT="$KIT" STREAMPULSE_AARCH64_BIN="$BIN" \
    cargo test --test it qemu:: -- --ignored --nocapture --test-threads=1
