//! The guest's root filesystem, assembled as Buildroot would: the kit's
//! Debian userland, `overlay/` unmodified, the static binary, and the test
//! agent and mDNS query (scaffolding the product image does not have).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::image;
use crate::util::manifest_dir;

/// The root filesystem: the kit's Debian userland, overlay/ unmodified, our
/// binary, and the test agent (test scaffolding, see the module doc).
pub(super) fn rootfs(dir: &Path, kit: &Path, bin: &Path) -> PathBuf {
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
    image::run(
        Command::new("install")
            .args(["-m", "0755"])
            .arg(bin)
            .arg(root.join("usr/bin/streampulse")),
    );
    let scaffold = manifest_dir().join("scripts/qemu");
    // The agent, and the mDNS query the Wi-Fi test runs on the access
    // point's side (wifi.rs).
    for tool in ["sp-test-agent", "sp-mdns-query"] {
        image::run(
            Command::new("install")
                .args(["-D", "-m", "0755"])
                .arg(scaffold.join(tool))
                .arg(root.join("usr/libexec").join(tool)),
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
    let img = dir.join("rootfs.ext4");
    image::ext4_from_dir(&root, "rootfs", used_mib + used_mib / 4 + 32, &img);
    img
}
