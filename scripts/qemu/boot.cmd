# U-Boot boot script of the QEMU board (tests/it/qemu/, docs/UPDATES.md):
# RAUC's U-Boot boot counting (its contrib/uboot.sh and integration docs)
# over the card's two root slots, loading the kernel and initramfs from the
# chosen slot's /boot, so an update carries its own kernel. Made into
# boot.scr (mkimage -T script) on the card's FAT partition, where U-Boot's
# distro boot finds it.
#
# BOOT_ORDER ("A B": try A first), BOOT_A_LEFT and BOOT_B_LEFT (tries left)
# are kept in a 16 KiB U-Boot environment block (CRC32 + variables) at
# 512 KiB on the card, sector 1024, in the free space before the first
# partition. Not in U-Boot's own environment (the second pflash bank): Linux
# cannot write that, as Debian's arm64 kernel has no CFI flash driver. The
# system reads and writes the same block with fw_printenv/fw_setenv
# (/etc/fw_env.config: /dev/vda 0x80000 0x4000), which is what RAUC's
# bootloader=uboot backend calls: `rauc install` puts the new slot first with
# 3 tries, `rauc status mark-good` resets the tries of the running slot,
# `mark-bad` sets them to 0.
#
# Each boot takes one try from the slot it boots; a slot with no tries left
# is skipped, so a slot that never gets marked good falls back to the other
# one after 3 boots at most (or at once after mark-bad).

setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_B_LEFT
virtio read ${pxefile_addr_r} 0x400 0x20
if env import -c ${pxefile_addr_r} 0x4000; then
  echo "boot counter: BOOT_ORDER=${BOOT_ORDER} BOOT_A_LEFT=${BOOT_A_LEFT} BOOT_B_LEFT=${BOOT_B_LEFT}"
else
  echo "boot counter: none on the card yet"
fi
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv bootargs
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${bootargs}" != "x"; then
    # skip the remaining slots
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test 0x${BOOT_A_LEFT} -gt 0; then
      echo "Found valid slot A, ${BOOT_A_LEFT} attempts remaining"
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv slot_part 2
      setenv slot_name A
      setenv bootargs "console=ttyAMA0 panic=-1 loglevel=4 root=/dev/vda2 rauc.slot=A"
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test 0x${BOOT_B_LEFT} -gt 0; then
      echo "Found valid slot B, ${BOOT_B_LEFT} attempts remaining"
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv slot_part 3
      setenv slot_name B
      setenv bootargs "console=ttyAMA0 panic=-1 loglevel=4 root=/dev/vda3 rauc.slot=B"
    fi
  fi
done

if test -z "${bootargs}"; then
  echo "No valid slot found, resetting tries to 3"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
fi
env export -c -s 0x4000 ${pxefile_addr_r} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
virtio write ${pxefile_addr_r} 0x400 0x20
if test -z "${bootargs}"; then
  reset
fi

echo "Loading the kernel and initramfs from slot ${slot_name} (partition ${slot_part})"
ext4load virtio 0:${slot_part} ${kernel_addr_r} /boot/vmlinuz
ext4load virtio 0:${slot_part} ${ramdisk_addr_r} /boot/initramfs.cpio.gz
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
