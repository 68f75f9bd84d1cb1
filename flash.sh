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
# Safety: refuses the disk that holds / (or /boot, /usr) whatever the
# options, refuses mounted disks unless --allow-mounted (they are unmounted
# first then), asks before writing unless --yes. DEVICE may also be a regular
# file (writes an image copy; that is how the tests run it).
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

# The whole disk a block device belongs to (itself if it is one).
whole_disk() {
    dev=$(readlink -f "$1")
    parent=$(lsblk -ndo PKNAME "$dev" 2>/dev/null | head -n 1)
    if [ -n "$parent" ]; then echo "/dev/$parent"; else echo "$dev"; fi
}

IS_BLOCK=0
if [ -b "$DEVICE" ]; then
    IS_BLOCK=1
    DEVICE=$(readlink -f "$DEVICE")
    [ "$(whole_disk "$DEVICE")" = "$DEVICE" ] ||
        die "$DEVICE is a partition; give the whole disk ($(whole_disk "$DEVICE"))"
    # Never the system disk, whatever the options.
    for m in / /boot /usr /var; do
        src=$(findmnt -no SOURCE "$m" 2>/dev/null | sed 's/\[.*//') || continue
        [ -b "$src" ] || continue
        [ "$(whole_disk "$src")" = "$DEVICE" ] &&
            die "refusing: $DEVICE holds $m (this machine's system disk)"
    done
    # Mounted partitions: refuse, or unmount with --allow-mounted.
    mounted=$(lsblk -nrpo NAME,MOUNTPOINT "$DEVICE" 2>/dev/null | awk 'NF >= 2 { print $1 " on " $2 }')
    if [ -n "$mounted" ]; then
        if [ "$ALLOW_MOUNTED" != 1 ]; then
            echo "$mounted" | sed 's/^/  mounted: /' >&2
            die "refusing: $DEVICE is mounted (unmount it, or pass --allow-mounted)"
        fi
    fi
elif [ -e "$DEVICE" ] && [ ! -f "$DEVICE" ]; then
    die "$DEVICE is neither a block device nor a regular file"
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
