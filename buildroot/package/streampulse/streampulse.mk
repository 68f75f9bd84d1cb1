################################################################################
#
# streampulse
#
# A generic package around the prebuilt static binary: Buildroot's cargo
# infrastructure would build a dynamically linked glibc binary with its own
# toolchain; the appliance ships the same static musl binary that the
# repository's tests run under QEMU (`make cross`).
#
# The local site method copies the dist directory only when the package's
# stamps are missing, so buildroot/build-image.sh runs `make
# streampulse-rebuild all`; building by hand, do the same after `make cross`.
#
################################################################################

STREAMPULSE_VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' \
	$(BR2_EXTERNAL_STREAMPULSE_PATH)/../Cargo.toml | head -n 1)
STREAMPULSE_SITE = $(call qstrip,$(BR2_PACKAGE_STREAMPULSE_DIST_DIR))
STREAMPULSE_SITE_METHOD = local
STREAMPULSE_LICENSE = MIT or Apache-2.0

ifeq ($(BR2_aarch64),y)
STREAMPULSE_BINARY = streampulse-aarch64
else
STREAMPULSE_BINARY = streampulse-armv7
endif

define STREAMPULSE_INSTALL_TARGET_CMDS
	test -f $(@D)/$(STREAMPULSE_BINARY) || \
		{ echo "streampulse: $(@D)/$(STREAMPULSE_BINARY) missing: run 'make cross' first"; exit 1; }
	$(INSTALL) -D -m 0755 $(@D)/$(STREAMPULSE_BINARY) $(TARGET_DIR)/usr/bin/streampulse
endef

# Fixed uid/gid: the FAT boot partition is mounted with uid=990 (fstab) so
# the daemon can rename an imported config.yaml, and the data partition's
# root directory is created owned by 990:990 (genimage).
define STREAMPULSE_USERS
	streampulse 990 streampulse 990 * /data - - StreamPulse daemon
endef

$(eval $(generic-package))
