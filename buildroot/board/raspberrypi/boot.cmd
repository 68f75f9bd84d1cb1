# U-Boot boot script of the Raspberry Pi 3 and Zero 2 W (docs/UPDATES.md):
# RAUC's U-Boot boot counting over the card's two root slots, as on the QEMU
# test card (scripts/qemu/boot.cmd), with the Pi's firmware in front.
# Buildroot makes it into boot.scr on the FAT partition (p1, bootable), where
# U-Boot's standard boot finds it.
#
# The firmware loads U-Boot as its "kernel" (config.txt: kernel=u-boot.bin)
# and hands it the device tree it prepared (DTB, overlays, dtparam=, and
# cmdline.txt in /chosen/bootargs) at ${fdt_addr}. The script boots the
# chosen slot's kernel (/boot/Image of that root: an update brings its own
# kernel) with that device tree and those arguments, plus root= and
# rauc.slot=, as Mender's Raspberry Pi integration does.
#
# BOOT_ORDER ("A B": try A first), BOOT_A_LEFT and BOOT_B_LEFT (tries left)
# are kept in a 16 KiB environment block (CRC32 + variables) at 512 KiB on
# the card (sector 0x400), in the gap before p1; Linux reads and writes the
# same block with fw_printenv/fw_setenv (/etc/fw_env.config: /dev/mmcblk0
# 0x80000 0x4000), which RAUC's bootloader=uboot backend calls. Not U-Boot's
# own environment (uboot.env on the FAT partition for rpi_arm64): that would
# make U-Boot write a FAT file at every boot, and never being saved also
# keeps ${fdt_addr} the firmware's. A block that is blank or torn (a power
# cut while it is written) fails the CRC: both slots then get 3 tries, A
# first.
#
# Each boot takes one try from the slot it boots; a slot with no tries left
# is skipped, so a slot that is never marked good falls back to the other one
# after 3 boots at most (or at once after mark-bad).

setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_B_LEFT
setenv slot_name
mmc dev ${devnum}
mmc read ${pxefile_addr_r} 0x400 0x20
if env import -c ${pxefile_addr_r} 0x4000; then
  echo "boot counter: BOOT_ORDER=${BOOT_ORDER} BOOT_A_LEFT=${BOOT_A_LEFT} BOOT_B_LEFT=${BOOT_B_LEFT}"
else
  echo "boot counter: none on the card yet"
fi
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${slot_name}" != "x"; then
    # skip the remaining slots
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test 0x${BOOT_A_LEFT} -gt 0; then
      echo "Found valid slot A, ${BOOT_A_LEFT} attempts remaining"
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv slot_part 2
      setenv slot_name A
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test 0x${BOOT_B_LEFT} -gt 0; then
      echo "Found valid slot B, ${BOOT_B_LEFT} attempts remaining"
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv slot_part 3
      setenv slot_name B
    fi
  fi
done

if test -z "${slot_name}"; then
  echo "No valid slot found, resetting tries to 3"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
fi
env export -c -s 0x4000 ${pxefile_addr_r} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
mmc write ${pxefile_addr_r} 0x400 0x20
if test -z "${slot_name}"; then
  reset
fi

fdt addr ${fdt_addr}
fdt get value bootargs /chosen bootargs
setenv bootargs "${bootargs} root=/dev/mmcblk0p${slot_part} rauc.slot=${slot_name}"
echo "Kernel arguments: ${bootargs}"
echo "Loading the kernel from slot ${slot_name} (partition ${slot_part})"
load mmc ${devnum}:${slot_part} ${kernel_addr_r} /boot/Image
booti ${kernel_addr_r} - ${fdt_addr}
