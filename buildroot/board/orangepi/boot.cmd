# U-Boot boot script of the Orange Pi PC and Zero 3 (docs/UPDATES.md):
# RAUC's U-Boot boot counting over the card's two root slots, as on the QEMU
# test card (scripts/qemu/boot.cmd). Buildroot makes it into boot.scr on the
# FAT partition (p1, bootable), where U-Boot's standard (or distro) boot finds
# it before anything else: it scans the bootable partitions only.
#
# The kernel and device tree come from the chosen slot's /boot (an update
# brings its own kernel), where Buildroot installs them: Image (Zero 3,
# booti) or zImage (PC, bootz), and ${fdtfile}, U-Boot's name for the board's
# DTB (allwinner/sun50i-h618-orangepi-zero3.dtb, sun8i-h3-orangepi-pc.dtb).
#
# BOOT_ORDER ("A B": try A first), BOOT_A_LEFT and BOOT_B_LEFT (tries left)
# are kept in a 16 KiB environment block (CRC32 + variables) at 1 MiB on the
# card (sector 0x800): after the SPL and U-Boot (8 KiB to 1008 KiB) and the
# GPT (to 1 MiB), before p1 (at 2 MiB). Linux reads and writes the same block
# with fw_printenv/fw_setenv (/etc/fw_env.config: /dev/mmcblk0 0x100000
# 0x4000), which RAUC's bootloader=uboot backend calls. Not U-Boot's own
# environment: U-Boot never saves it. A block that is blank or torn (a power
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
mmc read ${pxefile_addr_r} 0x800 0x20
if env import -c ${pxefile_addr_r} 0x4000; then
  echo "boot counter: BOOT_ORDER=${BOOT_ORDER} BOOT_A_LEFT=${BOOT_A_LEFT} BOOT_B_LEFT=${BOOT_B_LEFT}"
else
  echo "boot counter: none on the card yet"
fi
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

# The root slots by their fixed GPT partition UUIDs
# (board/common/genimage-sunxi.cfg.in).
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${slot_name}" != "x"; then
    # skip the remaining slots
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test 0x${BOOT_A_LEFT} -gt 0; then
      echo "Found valid slot A, ${BOOT_A_LEFT} attempts remaining"
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv slot_part 2
      setenv slot_uuid 53504344-5350-4000-8000-000000000002
      setenv slot_name A
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test 0x${BOOT_B_LEFT} -gt 0; then
      echo "Found valid slot B, ${BOOT_B_LEFT} attempts remaining"
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv slot_part 3
      setenv slot_uuid 53504344-5350-4000-8000-000000000003
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
mmc write ${pxefile_addr_r} 0x800 0x20
if test -z "${slot_name}"; then
  reset
fi

setenv bootargs "console=tty1 console=${console} rootfstype=ext4 ro rootwait fsck.repair=yes panic=10 root=PARTUUID=${slot_uuid} rauc.slot=${slot_name}"
echo "Kernel arguments: ${bootargs}"
echo "Loading the kernel from slot ${slot_name} (partition ${slot_part})"
load mmc ${devnum}:${slot_part} ${fdt_addr_r} /boot/${fdtfile}
if load mmc ${devnum}:${slot_part} ${kernel_addr_r} /boot/Image; then
  booti ${kernel_addr_r} - ${fdt_addr_r}
else
  load mmc ${devnum}:${slot_part} ${kernel_addr_r} /boot/zImage
  bootz ${kernel_addr_r} - ${fdt_addr_r}
fi
