#!/bin/sh
# `make qemu-test`: boots the appliance's SD-card layout on an emulated
# aarch64 machine under real systemd and checks it end to end
# (tests/it/qemu/).
#
# 1. the static aarch64 binary (scripts/cross.sh aarch64, checked under
#    qemu-user; SKIP_CROSS=1 reuses the one in target/cross/dist);
# 2. a kit in target/qemu-kit, cached:
#    - from Debian's arm64 packages, the kernel (virtio and the filesystems
#      are modules there) and an initramfs with busybox-static that loads
#      those modules and mac80211_hwsim's simulated Wi-Fi radios (with the
#      regulatory database from wireless-regdb), and switches to the
#      image's root (scripts/qemu/initramfs-init);
#    - rootfs/: a Debian arm64 userland with systemd (networkd, resolved,
#      timesyncd, udev, e2fsprogs, dosfstools, fdisk, wpasupplicant,
#      wireless-regdb; hostapd and python3-minimal for the test's access
#      point and its mDNS query) made with mmdebstrap
#      under qemu-user, then given what Buildroot does to the appliance's
#      target directory (scripts/qemu/rootfs-customize). Rebuilt when the
#      package list or that script changes;
# 3. `cargo test --test it qemu -- --ignored`: the test copies rootfs/, adds
#    overlay/ unmodified, the binary and a test-only command agent, assembles
#    sdcard.img with genimage from buildroot/board/common/genimage-mbr.cfg.in
#    (boot FAT with config.yaml, read-only root, ext4 data), boots it four
#    times under qemu-system-aarch64 -M virt (TCG) and checks the box through
#    the agent, a forwarded port and a Wi-Fi access point in the guest (the
#    fourth boot with the data partition damaged: degraded mode).
#
# Needs (installed by scripts/install-deps.sh): qemu-system-arm,
# qemu-user-static, mmdebstrap, genimage, mtools, dosfstools, e2fsprogs, cpio,
# kmod, systemd (its systemctl applies the presets); apt access to Debian's
# arm64 packages (dpkg --add-architecture arm64) and to the Debian archive (mmdebstrap).
set -eu
cd "$(dirname "$0")/.."
KIT="${STREAMPULSE_QEMU_KIT:-$PWD/target/qemu-kit}"
BIN="${STREAMPULSE_AARCH64_BIN:-$PWD/target/cross/dist/streampulse-aarch64}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

[ "${SKIP_CROSS:-0}" = 1 ] || ./scripts/cross.sh aarch64

# Modules the guest needs before its root is mounted, by file name;
# dependencies are added from modules.dep. The root filesystem has no
# modules: everything else the test uses is built into Debian's kernel.
# virtio_console: the test agent's virtio-serial port. mac80211_hwsim: two
# simulated Wi-Fi radios (its default radios=2; cfg80211, mac80211 come from
# modules.dep), wlan0 for the box's supplicant and wlan1 for the test's
# access point; ccm and ctr: WPA2's CCMP (ccm(aes)), which the crypto API
# would otherwise ask modprobe for (hostapd: "key addition failed").
# loop, squashfs, dm-verity: RAUC mounts an update bundle (a squashfs image
# with a dm-verity hash tree) through a loop device. vivid: the kernel's
# virtual video test driver, the box camera's V4L2 webcam (/dev/video0,
# tests/it/qemu/camera.rs), present from boot like a webcam plugged in.
MODULES="virtio_pci virtio_blk virtio_net virtio-rng virtio_console crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_iso8859-1 nls_utf8 mac80211_hwsim ctr ccm loop squashfs dm-verity vivid"
# cfg80211 (loaded here, before the card's root is mounted) reads the
# regulatory database when it loads, from the initramfs's /lib/firmware, and
# after a failure not again (short of `iw reg reload`): without it every
# country= is refused and the radios stay in the built-in world domain. So the initramfs carries Debian's signed
# regulatory.db (wireless-regdb, the package the rootfs and the Pi images
# have too); on a Pi cfg80211 is a module loaded from the root, which has it.
REGDB=wireless-regdb

# The userland: Debian's suite of the build machine (the kernel comes from it
# too), minimal, without documentation. wpasupplicant is the image's (its
# wpa_supplicant@.service runs the box's Wi-Fi); hostapd, iw (to move the
# access point's radio into its own network namespace) and ping are for the
# test's side of the Wi-Fi link only. wireless-regdb: the image's regulatory
# database (BR2_PACKAGE_WIRELESS_REGDB). python3-minimal: the test's mDNS
# query from the access point's side (tests/it/qemu/mdns.py), not the image's.
# rauc, rauc-service (its D-Bus service) and libubootenv-tool (fw_printenv,
# fw_setenv: RAUC's U-Boot backend): the A/B updates (docs/UPDATES.md).
# v4l-utils: the test's v4l2-ctl, which presses vivid's Disconnect button
# (an unplugged webcam); not the image's.
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
PACKAGES="systemd,systemd-sysv,systemd-resolved,systemd-timesyncd,udev,dbus,e2fsprogs,dosfstools,fdisk,iproute2,kmod,procps,wpasupplicant,hostapd,iw,iputils-ping,wireless-regdb,python3-minimal,rauc,rauc-service,libubootenv-tool,v4l-utils"

build_kernel_kit() {
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
    stamp="$kpkg $MODULES $REGDB"
    if [ -f "$KIT/initramfs.cpio.gz" ] && [ "$(cat "$KIT/kernel-stamp" 2>/dev/null)" = "$stamp" ] &&
        [ "$KIT/initramfs.cpio.gz" -nt scripts/qemu/initramfs-init ]; then
        echo "qemu-test: kernel and initramfs up to date ($kpkg)"
        return
    fi
    echo "qemu-test: building the kernel kit from $kpkg and busybox-static:arm64"
    rm -rf "$KIT/debs" "$KIT/x" "$KIT/initramfs" "$KIT/vmlinuz" "$KIT/initramfs.cpio.gz"
    mkdir -p "$KIT/debs" "$KIT/x" "$KIT/initramfs"
    (cd "$KIT/debs" && apt-get download -q "$kpkg:arm64" busybox-static:arm64 "$REGDB")
    for d in "$KIT"/debs/*.deb; do dpkg-deb -x "$d" "$KIT/x"; done
    kver=$(ls "$KIT/x/lib/modules")
    depmod -b "$KIT/x" "$kver"
    moddir="$KIT/x/lib/modules/$kver"
    cp "$KIT/x/boot/vmlinuz-$kver" "$KIT/vmlinuz"

    # initramfs: busybox, the modules in dependency order, /init.
    ir="$KIT/initramfs"
    mkdir -p "$ir/bin" "$ir/lib/modules" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/newroot"
    cp "$KIT/x/bin/busybox" "$ir/bin/busybox"
    for a in sh mount umount mkdir cat echo insmod sleep findfs switch_root poweroff; do
        ln -s busybox "$ir/bin/$a"
    done
    cp scripts/qemu/initramfs-init "$ir/init"
    # Debian's own signature (its kernels trust Debian's key), the file the
    # package's alternatives select as regulatory.db.
    mkdir -p "$ir/lib/firmware"
    cp "$KIT/x/lib/firmware/regulatory.db-debian" "$ir/lib/firmware/regulatory.db"
    cp "$KIT/x/lib/firmware/regulatory.db.p7s-debian" "$ir/lib/firmware/regulatory.db.p7s"
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
    echo "$stamp" >"$KIT/kernel-stamp"
    rm -rf "$KIT/debs" "$KIT/x" "$KIT/order.tmp"
    echo "qemu-test: kernel kit ready: $(tr '\n' ' ' <"$ir/lib/modules/order")"
}

# mmdebstrap runs the arm64 maintainer scripts under qemu-user: the kernel
# must hand aarch64 binaries to qemu-aarch64-static (binfmt_misc).
need_binfmt() {
    bm=/proc/sys/fs/binfmt_misc
    [ -e "$bm/register" ] || $SUDO mount -t binfmt_misc binfmt_misc "$bm"
    if [ ! -e "$bm/qemu-aarch64" ]; then
        conf=/usr/lib/binfmt.d/qemu-aarch64.conf
        [ -f "$conf" ] || { echo "qemu-test: $conf missing (apt-get install qemu-user-static)" >&2; exit 1; }
        $SUDO sh -c "cat $conf >$bm/register"
    fi
}

build_rootfs() {
    stamp="$SUITE $PACKAGES $(sha256sum <scripts/qemu/rootfs-customize)"
    if [ -d "$KIT/rootfs" ] && [ "$(cat "$KIT/rootfs-stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "qemu-test: root filesystem up to date ($SUITE: $PACKAGES)"
        return
    fi
    echo "qemu-test: building the root filesystem with mmdebstrap ($SUITE arm64: $PACKAGES)"
    need_binfmt
    $SUDO rm -rf "$KIT/rootfs" "$KIT/rootfs.new"
    mkdir -p "$KIT"
    # No mirror given: mmdebstrap's default Debian mirror, plus the release's
    # updates and security suites, which it adds for a stable release name.
    $SUDO mmdebstrap --arch=arm64 --variant=minbase --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        "$SUITE" "$KIT/rootfs.new" </dev/null
    $SUDO ./scripts/qemu/rootfs-customize "$KIT/rootfs.new"
    $SUDO mv "$KIT/rootfs.new" "$KIT/rootfs"
    echo "$stamp" >"$KIT/rootfs-stamp"
    echo "qemu-test: root filesystem ready: $(du -sh "$KIT/rootfs" | cut -f1)"
}

build_kernel_kit
build_rootfs
STREAMPULSE_QEMU_KIT="$KIT" STREAMPULSE_AARCH64_BIN="$BIN" \
    cargo test --test it qemu:: -- --ignored --nocapture --test-threads=1
