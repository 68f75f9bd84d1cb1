//! The guest's root filesystem, assembled as Buildroot would: the kit's
//! Debian userland, `overlay/` unmodified, the static binary, the kernel and
//! initramfs in the slot's `/boot` (U-Boot loads them from the slot it
//! boots, so an update carries its kernel), the QEMU board's
//! `/etc/fw_env.config` (where U-Boot's boot counter is), RAUC's keyring (the
//! test's throw-away CA), and the test agent and mDNS query (scaffolding the
//! product image does not have).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::image;
use crate::util::manifest_dir;

/// A root filesystem tree and the size of the slot image made from it.
pub(super) struct Rootfs {
    /// The assembled tree (owners and modes as built).
    pub(super) dir: PathBuf,
    /// The slot image (`rootfs.ext4`, label `rootfs`).
    pub(super) img: PathBuf,
    /// Its size: every image for this card's slots is made this size.
    pub(super) size_mib: u32,
}

/// The root filesystem: the kit's Debian userland, overlay/ unmodified, our
/// binary, the slot's kernel and initramfs, the board's fw_env.config,
/// `keyring` as RAUC's keyring, and the test agent (test scaffolding, see the
/// module doc).
pub(super) fn rootfs(dir: &Path, kit: &Path, bin: &Path, keyring: &Path) -> Rootfs {
    let root = dir.join("rootfs");
    // -a: owners (root, systemd-timesync, …), modes and symlinks as built.
    image::run(
        Command::new("cp")
            .arg("-a")
            .arg(kit.join("rootfs"))
            .arg(&root),
    );
    // overlay/ as Buildroot applies it (symlinks kept).
    image::run(
        Command::new("cp")
            .arg("-a")
            .arg(manifest_dir().join("overlay/."))
            .arg(&root),
    );
    install(bin, &root.join("usr/bin/streampulse"), "0755");
    // The slot's kernel and initramfs (scripts/qemu/boot.cmd loads them with
    // ext4load; /boot is the FAT partition's mount point once Linux runs, as
    // on the Orange Pi layout, so only U-Boot sees these).
    install(&kit.join("vmlinuz"), &root.join("boot/vmlinuz"), "0644");
    install(
        &kit.join("initramfs.cpio.gz"),
        &root.join("boot/initramfs.cpio.gz"),
        "0644",
    );
    let scaffold = manifest_dir().join("scripts/qemu");
    // The board's: where fw_printenv/fw_setenv (RAUC's U-Boot backend) find
    // the boot counter.
    install(
        &scaffold.join("fw_env.config"),
        &root.join("etc/fw_env.config"),
        "0644",
    );
    install(keyring, &root.join("etc/rauc/keyring.pem"), "0644");
    // The agent, and the mDNS query the Wi-Fi test runs on the access
    // point's side (wifi.rs).
    for tool in ["sp-test-agent", "sp-mdns-query"] {
        install(
            &scaffold.join(tool),
            &root.join("usr/libexec").join(tool),
            "0755",
        );
    }
    let units = root.join("etc/systemd/system");
    std::fs::copy(
        scaffold.join("sp-test-agent.service"),
        units.join("sp-test-agent.service"),
    )
    .unwrap();
    std::fs::create_dir_all(units.join("sysinit.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "../sp-test-agent.service",
        units.join("sysinit.target.wants/sp-test-agent.service"),
    )
    .unwrap();
    let used_mib: u32 = image::run(Command::new("du").args(["-sm"]).arg(&root))
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("du -sm prints a size");
    let size_mib = used_mib + used_mib / 4 + 32;
    let img = dir.join("rootfs.ext4");
    image::ext4_from_dir(&root, "rootfs", size_mib, &img);
    Rootfs {
        dir: root,
        img,
        size_mib,
    }
}

/// `install -D -m mode src dst`.
pub(super) fn install(src: &Path, dst: &Path, mode: &str) {
    image::run(
        Command::new("install")
            .args(["-D", "-m", mode])
            .arg(src)
            .arg(dst),
    );
}
