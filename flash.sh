#!/bin/sh
# flash.sh: write a StreamPulse image to an SD card, verify it, and
# optionally put a config.yaml on its boot partition.
#
#   ./flash.sh [options] IMAGE [DEVICE]
#
#   IMAGE    sdcard.img, sdcard.img.xz or sdcard.img.gz
#   DEVICE   the card, e.g. /dev/sdb or /dev/mmcblk0 (without it: list the
#            candidate removable disks and stop)
#
# Options:
#   --config FILE     copy FILE to the card's FAT partition as config.yaml
#                     (imported at first boot; see docs/APPLIANCE.md)
#   --yes             do not ask for confirmation
#   --dry-run         show what would happen, write nothing
#   --allow-mounted   write even if DEVICE (or a partition of it) is mounted
#   --list            list candidate disks and exit
#   -h, --help        this text
#
# Safety: refuses every disk under / (or /boot, /usr, /var, an active swap
# partition) whatever the options, also through LVM, LUKS or RAID; refuses
# mounted disks unless --allow-mounted (they are unmounted first then); asks
# before writing unless --yes. DEVICE must exist: a block device (a whole
# disk), or a regular file outside /dev (writes an image copy into it; that
# is how the tests run it).
#
# Test-only: FLASH_SH_TEST_SYSTEM_MOUNTS="DIR..." adds mount points to guard
# like / (the tests mount a loop device there); it can only refuse more.
set -eu

PROG=flash.sh
die() { echo "$PROG: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; }

CONFIG="" YES=0 DRY=0 ALLOW_MOUNTED=0 LIST=0
IMAGE="" DEVICE=""
while [ $# -gt 0 ]; do
    case "$1" in
    --config) [ $# -ge 2 ] || die "--config needs a file"; CONFIG=$2; shift ;;
    --config=*) CONFIG=${1#*=} ;;
    --yes | -y) YES=1 ;;
    --dry-run | -n) DRY=1 ;;
    --allow-mounted) ALLOW_MOUNTED=1 ;;
    --list) LIST=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
        if [ -z "$IMAGE" ]; then IMAGE=$1
        elif [ -z "$DEVICE" ]; then DEVICE=$1
        else die "too many arguments (see --help)"
        fi ;;
    esac
    shift
done

# Candidate cards: removable, USB or MMC whole disks.
list_disks() {
    echo "Candidate disks (removable, USB or SD):"
    lsblk -dnpr -o NAME,SIZE,RM,TRAN,TYPE,MODEL 2>/dev/null | while read -r name size rm tran type model; do
        [ "$type" = disk ] || continue
        case "$rm/$tran" in 1/* | */usb | */mmc) ;; *) continue ;; esac
        printf '  %-16s %8s  %-5s %s\n' "$name" "$size" "${tran:--}" "$(printf '%s' "$model" | sed 's/\\x20/ /g')"
    done
}

if [ "$LIST" = 1 ]; then list_disks; exit 0; fi
[ -n "$IMAGE" ] || { usage; exit 2; }
[ -f "$IMAGE" ] || die "no such image: $IMAGE"
if [ -z "$DEVICE" ]; then
    list_disks
    echo "Run again with the card's device, e.g.: $PROG $IMAGE /dev/sdX"
    exit 2
fi
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || die "no such config: $CONFIG"

case "$IMAGE" in
*.xz) CAT="xz -dc" ;;
*.gz) CAT="gzip -dc" ;;
*.img | *.bin | *.raw) CAT="cat" ;;
*) die "$IMAGE: expected .img, .img.xz or .img.gz" ;;
esac

# A block device and everything it is built on, one path a line, down to
# the disks: a root on LVM or LUKS is /dev/mapper/x on a partition (or on
# several) on a disk; one parent up is not enough (lsblk -s: dependencies).
under() { lsblk -snrpo NAME "$1" 2>/dev/null; }

# Block devices holding this machine's system: mounted /, /boot, /usr, /var
# (and the tests' extra mount points) and active swap partitions.
system_sources() {
    for m in / /boot /usr /var ${FLASH_SH_TEST_SYSTEM_MOUNTS:-}; do
        findmnt -rno SOURCE --mountpoint "$m" 2>/dev/null | sed 's/\[.*//' | while read -r src; do
            [ ! -b "$src" ] || echo "$m $src"
        done
    done
    awk 'NR > 1 && $2 == "partition" { print "swap " $1 }' /proc/swaps 2>/dev/null
}

IS_BLOCK=0
if [ -b "$DEVICE" ]; then
    IS_BLOCK=1
    DEVICE=$(readlink -f "$DEVICE")
    case "$(lsblk -ndo TYPE "$DEVICE" 2>/dev/null)" in
    disk | loop) ;;
    part) die "$DEVICE is a partition; give the whole disk ($(under "$DEVICE" | tail -n 1))" ;;
    *) die "$DEVICE is not a whole disk ($(lsblk -ndo TYPE "$DEVICE" 2>/dev/null)); give the card itself" ;;
    esac
    # Never a disk under the system, whatever the options.
    system_sources | while read -r what src; do
        if under "$src" | grep -qxF "$DEVICE"; then
            echo "$PROG: refusing: $DEVICE holds $what ($src; this machine's system disk)" >&2
            exit 1
        fi
    done || exit 1
    # Mounted partitions: refuse, or unmount with --allow-mounted.
    mounted=$(lsblk -nrpo NAME,MOUNTPOINT "$DEVICE" 2>/dev/null | awk 'NF >= 2 { print $1 " on " $2 }')
    if [ -n "$mounted" ]; then
        if [ "$ALLOW_MOUNTED" != 1 ]; then
            echo "$mounted" | sed 's/^/  mounted: /' >&2
            die "refusing: $DEVICE is mounted (unmount it, or pass --allow-mounted)"
        fi
    fi
elif [ ! -e "$DEVICE" ]; then
    # A mistyped /dev/sdX must not become a new file that then "verifies".
    die "no such device: $DEVICE (see --list; to write into a file, create it first)"
elif [ ! -f "$DEVICE" ]; then
    die "$DEVICE is neither a block device nor a regular file"
else
    case "$(readlink -f "$DEVICE")" in
    /dev/*) die "$DEVICE is a regular file in /dev, not a device (left by a mistyped run? remove it)" ;;
    esac
fi

# Size of the (decompressed) image, for progress and verification.
case "$CAT" in
cat) IMG_BYTES=$(stat -c %s "$IMAGE") ;;
"xz -dc") IMG_BYTES=$(xz --robot --list "$IMAGE" | awk '$1 == "totals" { print $5 }') ;;
*) IMG_BYTES=$(gzip -dc "$IMAGE" | wc -c) ;;
esac
[ "$IMG_BYTES" -gt 0 ] 2>/dev/null || die "$IMAGE: cannot tell its size (corrupt?)"
if [ "$IS_BLOCK" = 1 ]; then
    DEV_BYTES=$(blockdev --getsize64 "$DEVICE")
    [ "$DEV_BYTES" -ge "$IMG_BYTES" ] ||
        die "$DEVICE holds $DEV_BYTES bytes, the image needs $IMG_BYTES"
    what="$(lsblk -dno SIZE,MODEL "$DEVICE" 2>/dev/null | sed 's/  */ /g')"
else
    what="regular file"
fi

echo "Image:  $IMAGE ($IMG_BYTES bytes)"
echo "Target: $DEVICE ($what)"
[ -z "$CONFIG" ] || echo "Config: $CONFIG -> config.yaml on the boot partition"
if [ "$DRY" = 1 ]; then
    [ -z "${mounted:-}" ] || echo "Would unmount: $(echo "$mounted" | tr '\n' ' ')"
    echo "Dry run: would write $IMG_BYTES bytes to $DEVICE, sync, verify by SHA-256${CONFIG:+, then copy the config}."
    exit 0
fi
if [ "$YES" != 1 ]; then
    [ -t 0 ] || die "not a terminal: pass --yes to write without asking"
    printf 'Everything on %s will be erased. Type "yes" to continue: ' "$DEVICE"
    read -r answer
    [ "$answer" = yes ] || die "aborted"
fi

if [ -n "${mounted:-}" ]; then
    echo "$mounted" | awk '{ print $1 }' | while read -r p; do umount "$p"; done
fi

# Write: the image's bytes, synchronously at the end (conv=fsync).
PROGRESS=""
dd if=/dev/null of=/dev/null status=progress 2>/dev/null && PROGRESS="status=progress"
echo "Writing..."
if [ "$IS_BLOCK" = 1 ]; then
    $CAT "$IMAGE" | dd of="$DEVICE" bs=4M iflag=fullblock oflag=direct conv=fsync $PROGRESS
else
    $CAT "$IMAGE" | dd of="$DEVICE" bs=4M iflag=fullblock conv=fsync,notrunc $PROGRESS
fi
sync

# Verify: checksum of the image against the same number of bytes read back.
echo "Verifying..."
want=$($CAT "$IMAGE" | sha256sum | cut -d' ' -f1)
if [ "$IS_BLOCK" = 1 ]; then
    # Drop cached pages so the card itself is read back, not the page cache.
    blockdev --flushbufs "$DEVICE" 2>/dev/null || true
fi
got=$(head -c "$IMG_BYTES" "$DEVICE" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || die "verification failed: image $want, card $got (bad card or reader?)"
echo "Verified: sha256 $got"

if [ -n "$CONFIG" ]; then
    # The FAT partition is found in the image's partition table (label
    # STREAMPULSE); mtools writes it at its offset, no mount needed.
    command -v mcopy >/dev/null || die "mcopy (mtools) is needed for --config"
    start=""
    for n in 1 2 3 4; do
        s=$(partx -g -o START --nr "$n" "$DEVICE" 2>/dev/null) || continue
        s=$(echo "$s" | tr -d ' ')
        label=$(MTOOLS_SKIP_CHECK=1 mlabel -s -i "$DEVICE@@$((s * 512))" :: 2>/dev/null || true)
        case "$label" in *STREAMPULSE*) start=$s; break ;; esac
    done
    [ -n "$start" ] || die "no FAT partition labelled STREAMPULSE on $DEVICE"
    MTOOLS_SKIP_CHECK=1 mcopy -o -i "$DEVICE@@$((start * 512))" "$CONFIG" ::config.yaml
    sync
    echo "Copied $CONFIG to the boot partition as config.yaml"
fi
echo "Done. Put the card in the box and power it on."
