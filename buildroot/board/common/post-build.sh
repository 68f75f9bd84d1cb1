#!/bin/sh
# StreamPulse post-build (all boards), after the board's own post-build:
# mount points for the FAT and data partitions, and a record of what was built.
# Buildroot calls it with $1 = TARGET_DIR; BR2_CONFIG and BINARIES_DIR are set.
set -eu
TARGET_DIR="$1"

# /boot is the card's FAT partition on every board (see overlay/etc/fstab).
mkdir -p "$TARGET_DIR/boot" "$TARGET_DIR/data"

# The root filesystem is read-only: nothing may expect to write to /etc.
# systemd needs a machine-id at boot; an empty file makes it generate one in
# /run every boot (there is no persistent identity to keep).
: >"$TARGET_DIR/etc/machine-id"

# No static hostname: each box names itself at boot (streampulse-<serial or
# MAC>, overlay/usr/libexec/streampulse/set-hostname). With /etc/hostname
# present, hostnamectl would show "streampulse" as the static name beside the
# real one; BR2_TARGET_GENERIC_HOSTNAME stays set because Buildroot also makes
# it systemd's fallback hostname (used until the script has run). The
# 127.0.1.1 line Buildroot adds for it would resolve the wrong name.
rm -f "$TARGET_DIR/etc/hostname"
sed -i '/^127\.0\.1\.1[[:space:]]/d' "$TARGET_DIR/etc/hosts"

version=$("$TARGET_DIR/usr/bin/streampulse" --version 2>/dev/null || true)
[ -n "$version" ] || version="streampulse (binary for the target; not runnable on the build host)"
{
    echo "$version"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(sed -n 's/^BR2_DEFCONFIG="\(.*\)"/\1/p' "$BR2_CONFIG")"
} >"$TARGET_DIR/etc/streampulse-release"
