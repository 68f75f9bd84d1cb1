//! Issue 18 on the real boards, offline: what picks the root slot on each
//! board family, short of the hardware.
//!
//! - The Pi 4/5 tryboot backend (`buildroot/board/raspberrypi/rauc-tryboot`)
//!   run with `/bin/sh` against a fake root (`STREAMPULSE_SYSROOT`): the
//!   firmware's side is `proc/device-tree/chosen/bootloader/{partition,tryboot}`,
//!   `reboot "0 tryboot"` is `run/systemd/reboot-param`, each slot's boot
//!   partition a directory. An install, the trial boot, the health gate's
//!   verdict, as RAUC calls it (set-state bad, set-primary, set-state good).
//! - The U-Boot scripts (`board/{raspberrypi,orangepi}/boot.cmd`) made into
//!   boot.scr by mkimage, as Buildroot does, and their boot counter block
//!   where the board's `fw_env.config` says it is.
//! - Each defconfig's own post-build scripts, run as Buildroot runs them, on
//!   a fake target: the board's `system.conf` (compatible, bootloader,
//!   slots) loads in RAUC and takes a bundle built for that board; the
//!   keyring is required and must not be a private key.
//!
//! What needs the boards (the firmware's tryboot, U-Boot reading the card,
//! the kernels) is listed in docs/UPDATES.md.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::image::run;
use super::util::{manifest_dir, temp_dir};

/// The fixed GPT PARTUUID of partition `n` (Pi 4/5 and Orange Pi cards).
fn partuuid(n: u32) -> String {
    format!("53504344-5350-4000-8000-{n:012}")
}

/// A fake Pi 4/5 as the tryboot backend sees it.
struct Pi {
    dir: tempfile::TempDir,
}

impl Pi {
    /// A fresh card as `post-image.sh` makes it (autoboot.txt: slot A
    /// committed; both boot partitions hold slot A's cmdline.txt, as a
    /// bundle's boot image does), booted normally from partition 2.
    fn new(test: &str) -> Pi {
        let pi = Pi {
            dir: temp_dir(test),
        };
        let autoboot = "# A/B boot (rauc-tryboot, docs/UPDATES.md). Committed slot: A\n# bad=\n[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";
        pi.write("boot/autoboot.txt", autoboot);
        for n in [2, 3] {
            pi.write(
                &format!("dev/disk/by-partuuid/{}/cmdline.txt", partuuid(n)),
                &format!(
                    "root=PARTUUID={} rootfstype=ext4 ro rootwait panic=10 console=tty1 rauc.slot=A\n",
                    partuuid(4)
                ),
            );
        }
        pi.boot(2, false);
        pi
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// A (re)boot: the firmware booted `partition`, in tryboot mode or not;
    /// /run starts empty.
    fn boot(&self, partition: u32, tryboot: bool) {
        let dt = self.path("proc/device-tree/chosen/bootloader");
        fs::create_dir_all(&dt).unwrap();
        fs::write(dt.join("partition"), partition.to_be_bytes()).unwrap();
        fs::write(dt.join("tryboot"), u32::from(tryboot).to_be_bytes()).unwrap();
        let _ = fs::remove_dir_all(self.path("run"));
        fs::create_dir_all(self.path("run/systemd")).unwrap();
    }

    /// What a `systemctl reboot` would do next: the partition the firmware
    /// boots and whether in tryboot mode, from autoboot.txt and the reboot
    /// parameter (the firmware's rules, docs: "autoboot.txt").
    fn reboot(&self) -> (u32, bool) {
        let tryboot = self.read("run/systemd/reboot-param").contains("tryboot");
        let autoboot = self.read("boot/autoboot.txt");
        let mut section = "";
        let (mut all, mut try_part) = (None, None);
        for line in autoboot.lines() {
            if line.starts_with('[') {
                section = line;
            } else if let Some(p) = line.strip_prefix("boot_partition=") {
                let p: u32 = p.parse().unwrap();
                match section {
                    "[all]" => all = Some(p),
                    "[tryboot]" => try_part = Some(p),
                    _ => {}
                }
            }
        }
        assert!(autoboot.contains("tryboot_a_b=1"), "{autoboot}");
        assert!(
            autoboot.len() <= 512,
            "autoboot.txt is limited to 512 bytes"
        );
        let part = if tryboot { try_part } else { all }.expect(&autoboot);
        self.boot(part, tryboot);
        (part, tryboot)
    }

    /// A reset instead of a reboot (crash, watchdog, power cut): the
    /// tryboot flag is gone, the committed partition boots.
    fn reset(&self) -> u32 {
        let _ = fs::remove_file(self.path("run/systemd/reboot-param"));
        self.reboot().0
    }

    fn handler(&self, args: &[&str]) -> Output {
        Command::new("/bin/sh")
            .arg(manifest_dir().join("buildroot/board/raspberrypi/rauc-tryboot"))
            .args(args)
            .env("STREAMPULSE_SYSROOT", self.dir.path())
            .output()
            .unwrap()
    }

    /// Runs the handler, which must succeed; returns its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.handler(args);
        assert!(
            out.status.success(),
            "rauc-tryboot {args:?}: {}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn cmdline(&self, boot_part: u32) -> String {
        self.read(&format!(
            "dev/disk/by-partuuid/{}/cmdline.txt",
            partuuid(boot_part)
        ))
    }

    fn states(&self) -> (String, String, String) {
        (
            self.ok(&["get-primary"]),
            self.ok(&["get-state", "A"]),
            self.ok(&["get-state", "B"]),
        )
    }
}

fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

/// An install into B as RAUC does it (mark B bad, write it, make it primary),
/// the trial boot from B's partition, the health gate's mark-good: B is
/// committed, and every later boot is B's without tryboot.
#[test]
fn tryboot_install_trial_and_commit() {
    let pi = Pi::new("tryboot-commit");
    assert_eq!(pi.ok(&["get-current"]), "A");
    assert_eq!(pi.states(), s("A", "good", "good"));

    pi.ok(&["set-state", "B", "bad"]);
    assert_eq!(pi.states(), s("A", "good", "bad"));
    pi.ok(&["set-primary", "B"]);
    assert_eq!(pi.read("run/systemd/reboot-param").trim(), "0 tryboot");
    // B's boot partition got slot A's cmdline.txt from the bundle: it now
    // names B's root and slot.
    assert_eq!(
        pi.cmdline(3).trim(),
        format!(
            "root=PARTUUID={} rootfstype=ext4 ro rootwait panic=10 console=tty1 rauc.slot=B",
            partuuid(5)
        )
    );
    assert!(pi
        .cmdline(2)
        .contains(&format!("root=PARTUUID={} ", partuuid(4))));
    // Nothing is committed yet: the next reboot only tries B.
    assert!(pi
        .read("boot/autoboot.txt")
        .contains("[all]\ntryboot_a_b=1\nboot_partition=2\n"));
    assert_eq!(pi.states(), s("B", "good", "good"));

    assert_eq!(pi.reboot(), (3, true));
    assert_eq!(pi.ok(&["get-current"]), "B");
    // On trial: a reset now would boot A.
    assert_eq!(pi.ok(&["get-primary"]), "A");
    pi.ok(&["set-state", "B", "good"]);
    assert_eq!(pi.states(), s("B", "good", "good"));
    assert!(pi.read("run/systemd/reboot-param").is_empty());
    assert_eq!(pi.reboot(), (3, false));
    assert_eq!(pi.reset(), 3);
    // mark-good at every later boot writes nothing.
    let before = pi.read("boot/autoboot.txt");
    pi.ok(&["set-state", "B", "good"]);
    assert_eq!(pi.read("boot/autoboot.txt"), before);
}

/// The new slot fails the health gate (mark-bad, reboot) or resets before
/// it: either way the committed slot A boots again, and RAUC sees B as bad
/// (after mark-bad) or as never committed.
#[test]
fn tryboot_failed_trial_comes_back_to_the_committed_slot() {
    let pi = Pi::new("tryboot-rollback");
    pi.ok(&["set-state", "B", "bad"]);
    pi.ok(&["set-primary", "B"]);
    assert_eq!(pi.reboot(), (3, true));
    // The health gate: mark-bad, then a plain reboot.
    pi.ok(&["set-state", "B", "bad"]);
    assert_eq!(pi.states(), s("A", "good", "bad"));
    assert_eq!(pi.reboot(), (2, false));
    assert_eq!(pi.ok(&["get-current"]), "A");

    // Installed again, then the trial boot hangs and the watchdog resets it.
    pi.ok(&["set-state", "B", "bad"]);
    pi.ok(&["set-primary", "B"]);
    assert_eq!(pi.reboot(), (3, true));
    assert_eq!(pi.reset(), 2);
    assert_eq!(pi.ok(&["get-primary"]), "A");
    assert_eq!(pi.ok(&["get-current"]), "A");
}

/// mark-bad on the committed, running slot hands the default to the other
/// (U-Boot's 0 tries left: skipped), with the right cmdline.txt; mark-active
/// on the running slot (set-primary) commits it again.
#[test]
fn tryboot_mark_bad_of_the_committed_slot_and_mark_active() {
    let pi = Pi::new("tryboot-mark");
    pi.ok(&["set-state", "A", "bad"]);
    assert_eq!(pi.states(), s("B", "bad", "good"));
    assert!(pi.cmdline(3).contains("rauc.slot=B"));
    assert!(pi
        .cmdline(3)
        .contains(&format!("root=PARTUUID={} ", partuuid(5))));
    assert!(pi.read("run/systemd/reboot-param").is_empty());
    pi.ok(&["set-primary", "A"]);
    assert_eq!(pi.states(), s("A", "good", "good"));
    assert_eq!(pi.reboot(), (2, false));
    // Both bad: the committed one stays (something must boot).
    pi.ok(&["set-state", "B", "bad"]);
    pi.ok(&["set-state", "A", "bad"]);
    assert_eq!(pi.states(), s("A", "bad", "bad"));
}

/// Refusals: an unknown slot or state, no autoboot.txt (boot partition not
/// mounted), a running slot it cannot tell.
#[test]
fn tryboot_refuses_what_it_cannot_do() {
    let pi = Pi::new("tryboot-refuse");
    for args in [
        &["set-primary", "C"][..],
        &["set-state", "A", "maybe"],
        &["get-state", "rootfs.0"],
        &["frobnicate"],
        &[],
    ] {
        let out = pi.handler(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("rauc-tryboot:"),
            "{args:?}: {out:?}"
        );
    }
    fs::remove_file(pi.path("proc/device-tree/chosen/bootloader/partition")).unwrap();
    assert!(!pi.handler(&["get-current"]).status.success());
    // Without the device tree's partition, rauc.slot= on the command line.
    pi.write("proc/cmdline", "ro rauc.slot=A quiet");
    pi.ok(&["set-primary", "A"]);
    fs::remove_file(pi.path("boot/autoboot.txt")).unwrap();
    let out = pi.handler(&["get-primary"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("autoboot.txt"));
}

/// The U-Boot boot scripts become boot.scr (what BR2_PACKAGE_HOST_UBOOT_TOOLS_BOOT_SCRIPT
/// runs), and each keeps its boot counter exactly where the board's
/// fw_env.config tells fw_printenv/fw_setenv (RAUC) to look.
#[test]
fn uboot_scripts_and_fw_env_config_agree() {
    let dir = temp_dir("boot-scr");
    let board = manifest_dir().join("buildroot/board");
    for (family, arch) in [("raspberrypi", "arm64"), ("orangepi", "arm")] {
        let cmd = board.join(family).join("boot.cmd");
        let scr = dir.path().join(format!("{family}.scr"));
        run(Command::new("mkimage")
            .args(["-C", "none", "-A", arch, "-T", "script", "-d"])
            .arg(&cmd)
            .arg(&scr));
        let info = run(Command::new("dumpimage").arg("-l").arg(&scr));
        assert!(info.contains("Script"), "{family}: {info}");

        let text = fs::read_to_string(&cmd).unwrap();
        let blocks = |verb: &str| -> (u64, u64) {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("mmc {verb} ")))
                .unwrap_or_else(|| panic!("{family}: no mmc {verb}"));
            let w: Vec<&str> = line.split_whitespace().collect();
            let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            (hex(w[3]) * 512, hex(w[4]) * 512)
        };
        let read = blocks("read");
        assert_eq!(read, blocks("write"), "{family}: read and write differ");
        assert!(text.contains("env import -c ${pxefile_addr_r} 0x4000"));
        assert!(text.contains("env export -c -s 0x4000 ${pxefile_addr_r}"));
        let fw_env = fs::read_to_string(board.join(family).join("fw_env.config")).unwrap();
        let entry: Vec<&str> = fw_env
            .lines()
            .find(|l| l.starts_with("/dev/"))
            .unwrap()
            .split_whitespace()
            .collect();
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        assert_eq!(
            (hex(entry[1]), hex(entry[2])),
            read,
            "{family}: boot.cmd's block is not fw_env.config's"
        );
        assert_eq!(read.1, 0x4000);
        // The block lies before the first partition.
        assert!(read.0 + read.1 <= 2 << 20);
        // Each slot boots with rauc.slot= (RAUC's booted slot, the health gate).
        assert!(text.contains("rauc.slot=${slot_name}"), "{family}");
    }
}

/// A defconfig's setting, unquoted.
fn defconfig_value(def: &str, key: &str) -> String {
    def.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// Runs the defconfig's StreamPulse post-build scripts as Buildroot does
/// (`script TARGET_DIR BR2_ROOTFS_POST_SCRIPT_ARGS...`) on a fake target
/// holding overlay/'s system.conf; returns the output of the last failing
/// or last script.
fn post_build(board: &str, target: &Path, scratch: &Path, keyring: Option<&Path>) -> Output {
    let ext = manifest_dir().join("buildroot");
    let def_path = ext.join(format!("configs/streampulse_{board}_defconfig"));
    let def = fs::read_to_string(&def_path).unwrap();
    fs::create_dir_all(target.join("etc/rauc")).unwrap();
    fs::create_dir_all(target.join("usr/bin")).unwrap();
    fs::copy(
        manifest_dir().join("overlay/etc/rauc/system.conf"),
        target.join("etc/rauc/system.conf"),
    )
    .unwrap();
    fs::write(target.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let br2_config = scratch.join(format!("{board}.config"));
    fs::write(
        &br2_config,
        format!("BR2_DEFCONFIG=\"{}\"\n", def_path.display()),
    )
    .unwrap();
    let binaries = scratch.join(format!("{board}-images"));
    fs::create_dir_all(&binaries).unwrap();
    let args = defconfig_value(&def, "BR2_ROOTFS_POST_SCRIPT_ARGS");
    let mut last = None;
    for script in defconfig_value(&def, "BR2_ROOTFS_POST_BUILD_SCRIPT").split_whitespace() {
        // Buildroot's own board scripts (relative paths) are not ours to run.
        let Some(rel) = script.strip_prefix("$(BR2_EXTERNAL_STREAMPULSE_PATH)/") else {
            continue;
        };
        let mut cmd = Command::new(ext.join(rel));
        cmd.arg(target)
            .args(args.split_whitespace())
            .env("BR2_CONFIG", &br2_config)
            .env("BINARIES_DIR", &binaries)
            .env_remove("STREAMPULSE_RAUC_KEYRING");
        if let Some(k) = keyring {
            cmd.env("STREAMPULSE_RAUC_KEYRING", k);
        }
        let out = cmd.output().unwrap();
        let failed = !out.status.success();
        last = Some(out);
        if failed {
            break;
        }
    }
    last.expect("the defconfig runs StreamPulse's post-build")
}

/// Every board's post-build leaves a system.conf that RAUC loads, with the
/// board's own compatible, its boot selection and its slots; a bundle made
/// for the board (make-bundle.sh, as `make bundle` calls it) is accepted
/// under that config, and the keyring is the CA certificate given.
#[test]
fn post_build_gives_each_board_its_rauc_config() {
    let dir = temp_dir("post-build");
    let keys = dir.path().join("keys");
    run(Command::new(manifest_dir().join("scripts/rauc-keys.sh")).arg(&keys));
    let ca = keys.join("ca.cert.pem");
    let rootfs = dir.path().join("rootfs.ext4");
    // Incompressible: mksquashfs must not shrink it below RAUC's minimum.
    let noise: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&rootfs, &noise).unwrap();
    let bootimg = dir.path().join("boot-a.vfat");
    fs::write(&bootimg, &noise[..512 * 1024]).unwrap();

    let boards = [
        ("rpi3_64", "uboot", Some("0x80000"), 2),
        ("rpizero2w_64", "uboot", Some("0x80000"), 2),
        ("rpi4_64", "custom", None, 4),
        ("rpi5", "custom", None, 4),
        ("orangepi_pc", "uboot", Some("0x100000"), 2),
        ("orangepi_zero3", "uboot", Some("0x100000"), 2),
    ];
    for (board, bootloader, env_offset, slots) in boards {
        let target = dir.path().join(board);
        let out = post_build(board, &target, dir.path(), Some(&ca));
        assert!(
            out.status.success(),
            "{board}: post-build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = fs::read_to_string(target.join("etc/rauc/system.conf")).unwrap();
        let compatible = format!("streampulse-{board}");
        assert!(
            conf.contains(&format!("\ncompatible={compatible}\n")),
            "{board}:\n{conf}"
        );
        assert!(
            conf.contains(&format!("\nbootloader={bootloader}\n")),
            "{board}:\n{conf}"
        );
        assert_eq!(conf.matches("\n[slot.").count(), slots, "{board}:\n{conf}");
        assert_eq!(
            fs::read(target.join("etc/rauc/keyring.pem")).unwrap(),
            fs::read(&ca).unwrap()
        );
        let fw_env = fs::read_to_string(target.join("etc/fw_env.config")).unwrap_or_default();
        match env_offset {
            Some(off) => assert!(
                fw_env.contains(&format!("/dev/mmcblk0   {off}")),
                "{board}: {fw_env}"
            ),
            None => {
                assert!(fw_env.is_empty(), "{board}: no U-Boot, no fw_env.config");
                assert!(conf.contains(
                    "\nbootloader-custom-backend=/usr/libexec/streampulse/rauc-tryboot\n"
                ));
                let handler = target.join("usr/libexec/streampulse/rauc-tryboot");
                let mode = fs::metadata(&handler).unwrap().permissions();
                assert_eq!(
                    std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111,
                    0o111
                );
            }
        }
        // The slots by the layout's fixed PARTUUIDs.
        let first_root = match (bootloader, env_offset) {
            (_, Some("0x80000")) => "/dev/disk/by-partuuid/53504344-02".to_owned(),
            ("custom", _) => format!("/dev/disk/by-partuuid/{}", partuuid(4)),
            _ => format!("/dev/disk/by-partuuid/{}", partuuid(2)),
        };
        assert!(
            conf.contains(&format!("[slot.rootfs.0]\ndevice={first_root}\n")),
            "{board}:\n{conf}"
        );

        // RAUC loads the config and accepts a bundle built for this board.
        let test_conf = dir.path().join(format!("{board}-system.conf"));
        fs::write(
            &test_conf,
            conf.replace(
                "path=/etc/rauc/keyring.pem",
                &format!("path={}", ca.display()),
            ),
        )
        .unwrap();
        let bundle = dir.path().join(format!("{board}.raucb"));
        let mut mk = Command::new(manifest_dir().join("scripts/make-bundle.sh"));
        mk.env("STREAMPULSE_RAUC_KEYS", &keys)
            .env("STREAMPULSE_RAUC_COMPATIBLE", &compatible)
            .arg(&rootfs)
            .arg("1.2.3")
            .arg(&bundle);
        if bootloader == "custom" {
            mk.arg(&bootimg);
        }
        run(&mut mk);
        let info = run(Command::new("rauc")
            .arg(format!("--conf={}", test_conf.display()))
            .arg("info")
            .arg(&bundle));
        assert!(
            info.contains(&format!("Compatible: \t'{compatible}'")),
            "{board}: {info}"
        );
        assert_eq!(
            info.contains("[boot]"),
            bootloader == "custom",
            "{board}: {info}"
        );
    }
}

/// No keyring, a missing one, or a private key instead of the CA's
/// certificate: the build stops with a message that says what to do.
#[test]
fn post_build_refuses_an_image_without_a_proper_keyring() {
    let dir = temp_dir("post-build-keyring");
    let keys = dir.path().join("keys");
    run(Command::new(manifest_dir().join("scripts/rauc-keys.sh")).arg(&keys));
    let both = dir.path().join("both.pem");
    let mut pem = fs::read(keys.join("ca.cert.pem")).unwrap();
    pem.extend(fs::read(keys.join("ca.key.pem")).unwrap());
    fs::write(&both, pem).unwrap();
    for (keyring, want) in [
        (None, "STREAMPULSE_RAUC_KEYRING is not set"),
        (Some(dir.path().join("nope.pem")), "does not exist"),
        (Some(keys.join("ca.key.pem")), "no PEM certificate"),
        (Some(both), "holds a private key"),
    ] {
        let target = dir.path().join("target");
        let _ = fs::remove_dir_all(&target);
        let out = post_build("rpi4_64", &target, dir.path(), keyring.as_deref());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{keyring:?} was accepted");
        assert!(err.contains(want), "{keyring:?}: {err}");
        assert!(err.contains("rauc-keys.sh") || keyring.is_some(), "{err}");
        assert!(!target.join("etc/rauc/keyring.pem").exists());
    }
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// RAUC itself (Debian's, as a service on a private D-Bus) driving the
/// tryboot backend on a Pi 4/5 card (the real layout on a loop device, the
/// system.conf the rpi4_64 post-build makes): `rauc install` writes slot
/// B's root and boot partition and arms a tryboot into B, `rauc status`
/// reports B as next; after the trial boot from partition 3, `rauc status
/// mark-good` commits B in autoboot.txt. What the test changes: the slot
/// devices are the loop partitions, /boot and the boot partitions the
/// backend edits are directories (this CI kernel has no vfat), the bundle
/// is "plain" (no device-mapper for verity here), and RAUC is told the
/// booted slot (`--override-boot-slot`: Debian's RAUC 1.8 predates the
/// backend's get-current; on the box the kernel command line says it).
#[test]
fn rauc_installs_and_commits_through_the_tryboot_backend() {
    super::image::need_root();
    let dir = temp_dir("rauc-tryboot");
    let d = dir.path();
    let ext4 = |text: &str, out: &Path| {
        let root = d.join(format!("{text}-root"));
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/version"), text).unwrap();
        super::image::ext4_from_dir(&root, "rootfs", 8, out);
    };
    let (old, new) = (d.join("old.ext4"), d.join("new.ext4"));
    ext4("old", &old);
    ext4("new", &new);
    let kernel = d.join("Image");
    fs::write(&kernel, vec![0x5Au8; 128 * 1024]).unwrap();
    let config = d.join("config.txt");
    fs::write(&config, "kernel=Image\n").unwrap();
    let cmdline = |n: u32, slot: &str| {
        format!(
            "root=PARTUUID={} ro rootwait rauc.slot={slot}\n",
            partuuid(n)
        )
    };
    let autoboot =
        "# A/B boot\n# bad=\n[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";
    let card_dir = d.join("card");
    fs::create_dir_all(&card_dir).unwrap();
    let built = super::image::genimage_rpi_tryboot(
        &card_dir,
        autoboot,
        [&cmdline(4, "A"), &cmdline(5, "B")],
        &[("Image", &kernel), ("config.txt", &config)],
        &old,
    );
    let card = d.join("card.img");
    fs::copy(&built, &card).unwrap();
    let lo = super::image::Loop::with_partitions(&card);

    // The backend's view of the Pi, booted normally from partition 2.
    let pi = Pi::new("rauc-tryboot-sysroot");
    pi.write("boot/autoboot.txt", autoboot);

    // The board's system.conf, pointed at the loop device and the test's files.
    let keys = d.join("keys");
    run(Command::new(manifest_dir().join("scripts/rauc-keys.sh")).arg(&keys));
    let target = d.join("target");
    let out = post_build("rpi4_64", &target, d, Some(&keys.join("ca.cert.pem")));
    assert!(out.status.success(), "{out:?}");
    let mut conf = fs::read_to_string(target.join("etc/rauc/system.conf")).unwrap();
    for n in 2..=5 {
        conf = conf.replace(
            &format!("/dev/disk/by-partuuid/{}", partuuid(n)),
            &lo.part(n),
        );
    }
    let handler = manifest_dir().join("buildroot/board/raspberrypi/rauc-tryboot");
    let conf: String = conf
        .lines()
        .filter(|l| !l.starts_with("post-install=") && !l.starts_with("bundle-formats="))
        .map(|l| match l.split_once('=') {
            Some(("path", _)) => format!("path={}", keys.join("ca.cert.pem").display()),
            Some(("statusfile", _)) => format!("statusfile={}", d.join("status.raucs").display()),
            Some(("mountprefix", _)) => format!("mountprefix={}", d.join("mnt").display()),
            Some(("bootloader-custom-backend", _)) => {
                format!("bootloader-custom-backend={}", handler.display())
            }
            _ => l.to_owned(),
        })
        .map(|l| l + "\n")
        .collect();
    assert!(conf.contains("\nbootloader=custom\n"), "{conf}");
    let conf_path = d.join("system.conf");
    fs::write(&conf_path, &conf).unwrap();
    fs::create_dir_all(d.join("mnt")).unwrap();

    // A bundle for the board: the new root and the build's boot-a.vfat.
    let content = d.join("content");
    fs::create_dir_all(&content).unwrap();
    fs::copy(&new, content.join("rootfs.ext4")).unwrap();
    let boot_a = card_dir.join("images/boot-a.vfat");
    fs::copy(&boot_a, content.join("boot.vfat")).unwrap();
    fs::write(
        content.join("manifest.raucm"),
        "[update]\ncompatible=streampulse-rpi4_64\nversion=2.0\n\n[image.rootfs]\nfilename=rootfs.ext4\n\n[image.boot]\nfilename=boot.vfat\n",
    )
    .unwrap();
    let bundle = d.join("update.raucb");
    run(Command::new("rauc")
        .arg("bundle")
        .arg(format!(
            "--cert={}",
            keys.join("signing.cert.pem").display()
        ))
        .arg(format!("--key={}", keys.join("signing.key.pem").display()))
        .arg(format!("--keyring={}", keys.join("ca.cert.pem").display()))
        .arg(&content)
        .arg(&bundle));

    // A private session bus for RAUC's service and its CLI.
    let bus = format!("unix:path={}", d.join("bus").display());
    let _dbus = Child(
        Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--address", &bus])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon) should start"),
    );
    let rauc = |args: &[&str]| {
        let mut cmd = Command::new("rauc");
        cmd.args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .env("DBUS_STARTER_BUS_TYPE", "session")
            .env("STREAMPULSE_SYSROOT", pi.dir.path());
        cmd
    };
    // Up when `rauc status` answers. Started again when it exits first: a
    // service that finds the bus not listening yet, or the name still held
    // by the one just stopped, gives up (seen once in a loaded CI run). Its
    // stderr goes to a file named in the panic.
    let service = |booted: &str| {
        let start = std::time::Instant::now();
        let log = d.join(format!("rauc-service-{booted}.log"));
        loop {
            let mut child = Child(
                rauc(&[
                    &format!("--conf={}", conf_path.display()),
                    &format!("--override-boot-slot={booted}"),
                    "service",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
            );
            loop {
                if rauc(&["status"]).output().unwrap().status.success() {
                    return child;
                }
                assert!(
                    start.elapsed().as_secs() < 30,
                    "rauc service did not come up: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
                if child.0.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let status = || {
        let out = run(&mut rauc(&["status", "--output-format=json"]));
        serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let debugfs_cat = |part: u32| {
        run(Command::new("debugfs")
            .args(["-R", "cat /etc/version"])
            .arg(lo.part(part)))
    };

    let svc = service("A");
    let out = run(&mut rauc(&["install", bundle.to_str().unwrap()]));
    assert!(out.contains("succeeded"), "{out}");
    let st = status();
    assert_eq!(st["booted"], "A", "{st}");
    assert_eq!(st["boot_primary"], "rootfs.1", "{st}");
    assert_eq!(debugfs_cat(5).trim(), "new", "slot B's root");
    assert_eq!(debugfs_cat(4).trim(), "old", "slot A's root untouched");
    assert_eq!(fs::read(lo.part(3)).unwrap(), fs::read(&boot_a).unwrap());
    assert_eq!(pi.read("run/systemd/reboot-param").trim(), "0 tryboot");
    assert!(pi
        .cmdline(3)
        .starts_with(&format!("root=PARTUUID={} ", partuuid(5))));
    assert!(pi
        .read("boot/autoboot.txt")
        .contains("[all]\ntryboot_a_b=1\nboot_partition=2\n"));
    drop(svc);

    // The reboot: tryboot into partition 3; the health gate marks B good.
    assert_eq!(pi.reboot(), (3, true));
    let _svc = service("B");
    let out = run(&mut rauc(&["status", "mark-good"]));
    assert!(out.contains("marked slot rootfs.1 as good"), "{out}");
    let st = status();
    assert_eq!(st["booted"], "B", "{st}");
    assert_eq!(st["boot_primary"], "rootfs.1", "{st}");
    assert_eq!(pi.reboot(), (3, false), "B is committed");
}

/// Runs `board/raspberrypi/post-image.sh` as Buildroot does (BINARIES_DIR
/// and BUILD_DIR set, `$1` the images directory, `$2` the mode; BR2_CONFIG
/// with or without libcamera's Raspberry Pi pipeline) on stand-in build
/// outputs, and returns the card it made.
fn pi_post_image(dir: &Path, mode: &str, camera: bool) -> PathBuf {
    let images = dir.join(format!("{mode}-images"));
    let fw = images.join("rpi-firmware");
    fs::create_dir_all(fw.join("overlays")).unwrap();
    fs::write(
        fw.join("config.txt"),
        "start_file=start4.elf\nfixup_file=fixup4.dat\nkernel=Image\narm_64bit=1\n",
    )
    .unwrap();
    let cmdline = if mode == "uboot" {
        "cmdline-uboot.txt"
    } else {
        "cmdline.txt"
    };
    fs::copy(
        manifest_dir()
            .join("buildroot/board/raspberrypi")
            .join(cmdline),
        fw.join("cmdline.txt"),
    )
    .unwrap();
    fs::write(fw.join("start4.elf"), vec![1u8; 4096]).unwrap();
    fs::write(fw.join("overlays/miniuart-bt.dtbo"), "dtbo").unwrap();
    fs::write(images.join("bcm2711-rpi-4-b.dtb"), "dtb").unwrap();
    fs::write(images.join("Image"), vec![2u8; 64 * 1024]).unwrap();
    fs::write(images.join("u-boot.bin"), vec![3u8; 4096]).unwrap();
    fs::write(images.join("boot.scr"), "scr").unwrap();
    let root = dir.join(format!("{mode}-root"));
    fs::create_dir_all(root.join("etc")).unwrap();
    super::image::ext4_from_dir(&root, "rootfs", 8, &images.join("rootfs.ext4"));
    let build = dir.join(format!("{mode}-build"));
    fs::create_dir_all(&build).unwrap();
    let br2_config = build.join(".config");
    fs::write(
        &br2_config,
        if camera {
            "BR2_PACKAGE_LIBCAMERA=y\nBR2_PACKAGE_LIBCAMERA_PIPELINE_RPI_VC4=y\n"
        } else {
            "# BR2_PACKAGE_LIBCAMERA is not set\n"
        },
    )
    .unwrap();
    run(
        Command::new(manifest_dir().join("buildroot/board/raspberrypi/post-image.sh"))
            .arg(&images)
            .arg(mode)
            .env("BINARIES_DIR", &images)
            .env("BUILD_DIR", &build)
            .env("BR2_CONFIG", &br2_config),
    );
    images.join("sdcard.img")
}

/// The Pi post-image on stand-in build outputs: in `uboot` mode (Pi 3,
/// Zero 2 W) the MBR card whose FAT has U-Boot as the firmware's kernel,
/// boot.scr, the DTBs and a command line without root= (the boot script
/// adds it); in `tryboot` mode (Pi 4, 5) the GPT card whose p1 has
/// autoboot.txt and whose boot partitions each name their own root slot.
#[test]
fn pi_post_image_builds_both_cards() {
    use super::image::{fat_ls, fat_read, partitions};
    let dir = temp_dir("pi-post-image");

    let card = pi_post_image(dir.path(), "uboot", true);
    let (label, parts) = partitions(&card);
    assert_eq!((label.as_str(), parts.len()), ("dos", 4));
    let fat = parts[0].start;
    let mut files = fat_ls(&card, fat);
    files.sort();
    assert_eq!(
        files,
        [
            "bcm2711-rpi-4-b.dtb",
            "boot.scr",
            "cmdline.txt",
            "config.txt",
            "config.yaml.example",
            "overlays/",
            "start4.elf",
            "u-boot.bin"
        ]
    );
    let config = fat_read(&card, fat, "config.txt").unwrap();
    assert!(config.contains("\nkernel=u-boot.bin\n"), "{config}");
    assert!(config.contains("dtparam=watchdog=on"), "{config}");
    // Built with libcamera's Pi pipeline: the camera module is detected.
    assert!(
        config.contains("\ncamera_auto_detect=1\ndtoverlay=cma,cma-64\n"),
        "{config}"
    );
    let cmdline = fat_read(&card, fat, "cmdline.txt").unwrap();
    assert!(!cmdline.contains("root="), "{cmdline}");
    assert!(
        cmdline.contains(" ro ") && cmdline.contains("panic=10"),
        "{cmdline}"
    );

    let card = pi_post_image(dir.path(), "tryboot", false);
    let (label, parts) = partitions(&card);
    assert_eq!((label.as_str(), parts.len()), ("gpt", 6));
    let autoboot = fat_read(&card, parts[0].start, "autoboot.txt").unwrap();
    assert!(
        autoboot.contains("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"),
        "{autoboot}"
    );
    for (p, root, slot) in [(&parts[1], 4, "A"), (&parts[2], 5, "B")] {
        let mut files = fat_ls(&card, p.start);
        files.sort();
        assert_eq!(
            files,
            [
                "Image",
                "bcm2711-rpi-4-b.dtb",
                "cmdline.txt",
                "config.txt",
                "overlays/",
                "start4.elf"
            ]
        );
        let cmdline = fat_read(&card, p.start, "cmdline.txt").unwrap();
        assert!(
            cmdline.starts_with(&format!("root=PARTUUID={} ", partuuid(root))),
            "{cmdline}"
        );
        assert!(
            cmdline.trim_end().ends_with(&format!(" rauc.slot={slot}")),
            "{cmdline}"
        );
        assert!(cmdline.contains("panic=10"), "{cmdline}");
        let config = fat_read(&card, p.start, "config.txt").unwrap();
        assert!(config.contains("\nkernel=Image\n"), "{config}");
        // Without libcamera's Pi pipeline (the Pi 5 image): no camera lines.
        assert!(!config.contains("camera_auto_detect"), "{config}");
    }
}
