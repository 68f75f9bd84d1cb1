#!/bin/sh
# StreamPulse post-build (all boards), after the board's own post-build:
# mount points for the FAT and data partitions, the update keyring and the
# board's RAUC compatible, and a record of what was built.
# Buildroot calls it with $1 = TARGET_DIR; BR2_CONFIG and BINARIES_DIR are set.
#
# STREAMPULSE_RAUC_KEYRING: the CA certificate that update bundles must be
# signed under (scripts/rauc-keys.sh DIR makes DIR/ca.cert.pem), copied to
# /etc/rauc/keyring.pem. Required: an image without it could never be
# updated. `make image` sets it (default target/rauc-keys/ca.cert.pem).
set -eu
TARGET_DIR="$1"

die() {
    echo "streampulse post-build: $*" >&2
    exit 1
}

# The update keyring: a certificate, never a private key.
keyring=${STREAMPULSE_RAUC_KEYRING:-}
[ -n "$keyring" ] || die "STREAMPULSE_RAUC_KEYRING is not set: point it at the CA certificate that signs update bundles (make one with: scripts/rauc-keys.sh DIR; then STREAMPULSE_RAUC_KEYRING=DIR/ca.cert.pem; docs/UPDATES.md)"
[ -f "$keyring" ] || die "STREAMPULSE_RAUC_KEYRING=$keyring does not exist (make one with: scripts/rauc-keys.sh DIR)"
grep -q -- '-----BEGIN CERTIFICATE-----' "$keyring" || die "$keyring holds no PEM certificate"
if grep -q -- 'PRIVATE KEY-----' "$keyring"; then
    die "$keyring holds a private key: give the CA certificate (ca.cert.pem) only"
fi
install -D -m 0644 "$keyring" "$TARGET_DIR/etc/rauc/keyring.pem"

# The board's compatible string: a bundle built for another board (make
# bundle BOARD=..., which reads this file) is refused by RAUC. The board is
# the defconfig's name, streampulse_<board>_defconfig.
board=$(sed -n 's/^BR2_DEFCONFIG=".*streampulse_\(.*\)_defconfig"$/\1/p' "$BR2_CONFIG")
[ -n "$board" ] || die "cannot tell the board from BR2_DEFCONFIG in $BR2_CONFIG (a streampulse_<board>_defconfig)"
conf=$TARGET_DIR/etc/rauc/system.conf
[ -f "$conf" ] || die "no $conf (from overlay/)"
sed -i "s/^compatible=.*/compatible=streampulse-$board/" "$conf"
grep -qx "compatible=streampulse-$board" "$conf" || die "no compatible= line in $conf"

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
