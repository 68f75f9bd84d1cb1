#!/bin/sh
# Checks StreamPulse's defconfigs against a real Buildroot tree, offline.
#
#   buildroot/check-defconfigs.sh BUILDROOT_DIR [DEFCONFIG...]
#
# For each defconfig: runs Buildroot's own kconfig (`make <name>_defconfig`
# with this BR2_EXTERNAL) into a scratch output directory, then fails if any
# line of the defconfig did not survive into the resulting .config. kconfig
# silently drops symbols that do not exist (a typo, a renamed option) or
# whose dependencies are not met (e.g. systemd without glibc), so "it loaded"
# proves nothing; comparing line by line does. Also checks that every file the
# defconfig names (post scripts, overlay, kernel fragments, firmware config)
# exists. Only kconfig's own warnings count as failures, not make's.
set -eu
# Run from `make -jN check-defconfigs`, MAKEFLAGS names a jobserver whose file
# descriptors we do not have; Buildroot's make would warn about it. Its
# kconfig runs are independent of the outer make: start them clean.
unset MAKEFLAGS MFLAGS MAKELEVEL

[ $# -ge 1 ] || { echo "usage: $0 BUILDROOT_DIR [DEFCONFIG...]" >&2; exit 2; }
BR=$(cd "$1" && pwd)
shift
[ -f "$BR/Makefile" ] && [ -d "$BR/support/kconfig" ] || { echo "$BR is not a Buildroot tree" >&2; exit 2; }
EXT=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then set -- "$EXT"/configs/*_defconfig; fi
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
echo "check-defconfigs: Buildroot $(cd "$BR" && (git describe --tags 2>/dev/null || sed -n 's/^export BR2_VERSION := //p' Makefile))"

failed=0
for def in "$@"; do
    name=$(basename "$def")
    out="$SCRATCH/${name%_defconfig}"
    errs="$SCRATCH/errors"
    : >"$errs"
    if ! make -s -C "$BR" O="$out" BR2_EXTERNAL="$EXT" "$name" >"$out.log" 2>&1; then
        echo "FAIL $name: kconfig failed:"
        sed 's/^/    /' "$out.log"
        failed=1
        continue
    fi
    config="$out/.config"
    grep -E '^(BR2_[A-Za-z0-9_]+=|# BR2_[A-Za-z0-9_]+ is not set)' "$def" | while IFS= read -r line; do
        case "$line" in
        "# "*)
            sym=${line#\# }
            sym=${sym%% *}
            if grep -q "^$sym=" "$config"; then
                echo "  $line, but .config has: $(grep "^$sym=" "$config")" >>"$errs"
            fi
            ;;
        *)
            if ! grep -qxF "$line" "$config"; then
                sym=${line%%=*}
                got=$(grep -E "^$sym=|^# $sym is not set" "$config" || true)
                echo "  $line did not survive (.config: ${got:-absent: unknown symbol or unmet dependency})" >>"$errs"
            fi
            ;;
        esac
    done
    # Files named by the defconfig must exist.
    for var in BR2_ROOTFS_POST_BUILD_SCRIPT BR2_ROOTFS_POST_IMAGE_SCRIPT BR2_ROOTFS_OVERLAY \
        BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE \
        BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE BR2_GLOBAL_PATCH_DIR \
        BR2_PACKAGE_HOST_UBOOT_TOOLS_BOOT_SCRIPT_SOURCE; do
        value=$(sed -n "s/^$var=\"\(.*\)\"$/\1/p" "$def")
        for f in $value; do
            path=$(printf '%s' "$f" | sed "s|\$(BR2_EXTERNAL_STREAMPULSE_PATH)|$EXT|")
            case "$path" in /*) ;; *) path="$BR/$path" ;; esac
            [ -e "$path" ] || echo "  $var names $f, which does not exist ($path)" >>"$errs"
        done
    done
    # kconfig's warnings (e.g. a select with unmet dependencies) matter; a
    # line from make itself ("make[1]: ...") is not about the defconfig.
    warnings=$(grep -v -E '^make(\[[0-9]+\])?: ' "$out.log" | grep -i "warning" || true)
    if [ -n "$warnings" ]; then
        echo "  kconfig warnings:" >>"$errs"
        printf '%s\n' "$warnings" | sed 's/^/    /' >>"$errs"
    fi
    if [ -s "$errs" ]; then
        echo "FAIL $name:"
        cat "$errs"
        failed=1
    else
        echo "ok   $name ($(grep -cE '^(BR2_|# BR2_)' "$def") lines survived)"
    fi
done
exit $failed
