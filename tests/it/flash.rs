//! `flash.sh` against image files and loop devices, never a real disk:
//! writes `.img`, `.img.xz` and `.img.gz`, verifies, drops a `config.yaml` on
//! the FAT partition, refuses the system disk (also under a partition, swap
//! or device-mapper), mounted devices and targets that are not devices, and
//! `--dry-run` writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::image::{self, fat_read, need_root, partitions, Loop, Mounted};
use super::util::{manifest_dir, temp_dir};

fn flash(args: &[&str]) -> Output {
    flash_env(args, &[])
}

fn flash_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(manifest_dir().join("flash.sh"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("flash.sh should run")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A real-layout image (genimage, Raspberry Pi template) of a few dozen MiB.
fn test_image(dir: &Path) -> PathBuf {
    let rootfs = image::tiny_rootfs(dir);
    let example = manifest_dir().join("buildroot/board/common/config.yaml.example");
    image::genimage_mbr(dir, &[("config.yaml.example", &example)], &rootfs)
}

fn sha256(path: &Path, len: Option<u64>) -> String {
    let cmd = match len {
        None => format!("sha256sum < '{}'", path.display()),
        Some(n) => format!("head -c {n} '{}' | sha256sum", path.display()),
    };
    image::run(Command::new("sh").arg("-c").arg(cmd))
}

#[test]
fn writes_compressed_images_verifies_and_adds_the_config() {
    let dir = temp_dir("flash-file");
    let img = test_image(dir.path());
    let img_str = img.to_str().unwrap();
    let len = std::fs::metadata(&img).unwrap().len();
    let config = dir.path().join("my-config.yaml");
    std::fs::write(&config, "heartbeat_seconds: 30\nstreams: []\n").unwrap();
    for (ext, compress) in [
        ("img", None),
        ("img.xz", Some("xz")),
        ("img.gz", Some("gzip")),
    ] {
        let src = dir.path().join(format!("sdcard.{ext}"));
        match compress {
            None => {
                std::fs::copy(&img, &src).unwrap();
            }
            Some(tool) => {
                image::run(
                    Command::new("sh")
                        .arg("-c")
                        .arg(format!("{tool} -c '{img_str}' > '{}'", src.display())),
                );
            }
        }
        // A "card" bigger than the image, with old data after it.
        let card = dir.path().join(format!("card-{ext}.bin"));
        std::fs::write(&card, vec![0xA5u8; len as usize + (8 << 20)]).unwrap();
        let o = flash(&[
            "--yes",
            "--config",
            config.to_str().unwrap(),
            src.to_str().unwrap(),
            card.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{ext}: {}", text(&o));
        assert!(text(&o).contains("Verified: sha256"), "{}", text(&o));
        let (_, parts) = partitions(&card);
        assert_eq!(
            fat_read(&card, parts[0].start, "config.yaml").as_deref(),
            Some("heartbeat_seconds: 30\nstreams: []\n"),
            "{ext}"
        );
        // Only the FAT partition changed: everything after it is the image's.
        let after_fat = parts[1].start;
        let tail = |p: &Path| {
            let b = std::fs::read(p).unwrap();
            sha256_bytes(&b[after_fat as usize..len as usize])
        };
        assert_eq!(tail(&card), tail(&img), "{ext}: rootfs/data differ");
        assert_eq!(
            std::fs::metadata(&card).unwrap().len(),
            len + (8 << 20),
            "the card keeps its size"
        );
    }
    // Without --config the card is the image byte for byte.
    let card = dir.path().join("plain.bin");
    std::fs::write(&card, vec![0u8; len as usize]).unwrap();
    let o = flash(&["--yes", img_str, card.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(sha256(&card, Some(len)), sha256(&img, None));
}

fn sha256_bytes(b: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

#[test]
fn dry_run_writes_nothing_and_bad_input_is_refused() {
    let dir = temp_dir("flash-dry");
    let img = test_image(dir.path());
    let card = dir.path().join("card.bin");
    std::fs::write(&card, b"old contents").unwrap();
    let o = flash(&["--dry-run", img.to_str().unwrap(), card.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Dry run: would write"), "{}", text(&o));
    assert_eq!(std::fs::read(&card).unwrap(), b"old contents");

    // No terminal and no --yes: refuse instead of hanging on a prompt.
    let o = flash(&[img.to_str().unwrap(), card.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--yes"), "{}", text(&o));
    assert_eq!(std::fs::read(&card).unwrap(), b"old contents");

    let notimg = dir.path().join("notes.txt");
    std::fs::write(&notimg, "x").unwrap();
    let o = flash(&["--yes", notimg.to_str().unwrap(), card.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("expected .img"), "{}", text(&o));
    let o = flash(&["--yes", "--bogus", img.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown option"), "{}", text(&o));
}

/// The disk holding `/` is refused even with `--yes` (and `--dry-run`, so a
/// bug here could never write to it).
#[test]
fn refuses_the_system_disk() {
    let root = image::run(Command::new("findmnt").args(["-no", "SOURCE", "/"]));
    let root = root.trim().split('[').next().unwrap().to_owned();
    assert!(
        Path::new(&root).exists(),
        "this test needs / on a block device (got {root:?}); CI runs on a VM"
    );
    let disk = image::run(Command::new("lsblk").args(["-ndo", "PKNAME", &root]));
    let disk = match disk.trim() {
        "" => root.clone(),
        d => format!("/dev/{d}"),
    };
    let dir = temp_dir("flash-root");
    let img = test_image(dir.path());
    let o = flash(&["--yes", "--dry-run", img.to_str().unwrap(), &disk]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("refusing"), "{}", text(&o));
    assert!(text(&o).contains("system disk"), "{}", text(&o));
}

/// A loop device: refused while mounted, written once unmounted, and the
/// FAT config lands on it.
#[test]
fn loop_device_mounted_is_refused_unmounted_is_written() {
    need_root();
    let dir = temp_dir("flash-loop");
    let img = test_image(dir.path());
    let len = std::fs::metadata(&img).unwrap().len();
    let backing = dir.path().join("card.bin");
    std::fs::write(&backing, vec![0u8; len as usize + (4 << 20)]).unwrap();
    let lo = Loop::attach(&backing);
    let dev = lo.dev.clone();
    let mnt = dir.path().join("mnt");
    image::run(Command::new("mkfs.ext4").args(["-q", &dev]));
    let mounted = Mounted::new(&dev, &mnt, "rw");

    let img_s = img.to_str().unwrap();
    let o = flash(&["--yes", img_s, &dev]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("is mounted"), "{}", text(&o));
    let o = flash(&["--yes", "--dry-run", "--allow-mounted", img_s, &dev]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Would unmount"), "{}", text(&o));

    drop(mounted);
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, "streams: []\n").unwrap();
    let o = flash(&["--yes", "--config", config.to_str().unwrap(), img_s, &dev]);
    assert!(o.status.success(), "{}", text(&o));
    let (_, parts) = partitions(&backing);
    assert_eq!(
        fat_read(&backing, parts[0].start, "config.yaml").as_deref(),
        Some("streams: []\n")
    );
}

/// A card path that does not exist (a mistyped `/dev/sdX`) is refused and
/// no file appears there; neither is a regular file in `/dev` written (an
/// earlier such run's leftover).
#[test]
fn refuses_a_target_that_is_not_a_device() {
    need_root();
    let dir = temp_dir("flash-nodev");
    let img = test_image(dir.path());
    let img_s = img.to_str().unwrap();
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let missing = Remove(PathBuf::from(format!(
        "/dev/streampulse-it-missing-{}",
        std::process::id()
    )));
    let o = flash(&["--yes", img_s, missing.0.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no such device"), "{}", text(&o));
    assert!(!missing.0.exists(), "flash.sh created {:?}", missing.0);

    let stale = Remove(PathBuf::from(format!(
        "/dev/streampulse-it-stale-{}",
        std::process::id()
    )));
    std::fs::write(&stale.0, b"left over").unwrap();
    let o = flash(&["--yes", img_s, stale.0.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("regular file in /dev"), "{}", text(&o));
    assert_eq!(std::fs::read(&stale.0).unwrap(), b"left over");
}

/// A loop "disk" holding the card layout, attached with its partitions.
fn loop_card(dir: &Path) -> (PathBuf, Loop) {
    let img = test_image(dir);
    let backing = dir.join("system-disk.bin");
    std::fs::copy(&img, &backing).unwrap();
    let lo = Loop::with_partitions(&backing);
    (img, lo)
}

/// Asserts flash.sh refuses `disk` as the system disk even with
/// `--allow-mounted` (dry run: a bug could not write).
fn assert_refused_as_system_disk(img: &Path, disk: &str, env: &[(&str, &str)], why: &str) {
    let o = flash_env(
        &[
            "--yes",
            "--dry-run",
            "--allow-mounted",
            img.to_str().unwrap(),
            disk,
        ],
        env,
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("refusing"), "{}", text(&o));
    assert!(text(&o).contains("system disk"), "{}", text(&o));
    assert!(text(&o).contains(why), "{}", text(&o));
}

/// The disk under an active swap partition is the system's too.
#[test]
fn refuses_the_disk_under_an_active_swap_partition() {
    need_root();
    let dir = temp_dir("flash-swap");
    let (img, lo) = loop_card(dir.path());
    let swap = lo.part(3);
    image::run(Command::new("mkswap").arg(&swap));
    image::run(Command::new("swapon").arg(&swap));
    struct SwapOff(String);
    impl Drop for SwapOff {
        fn drop(&mut self) {
            let _ = Command::new("swapoff").arg(&self.0).status();
        }
    }
    let _on = SwapOff(swap);
    assert_refused_as_system_disk(&img, &lo.dev, &[], "holds swap");
}

/// A "system" filesystem on a partition (declared one with flash.sh's
/// test-only FLASH_SH_TEST_SYSTEM_MOUNTS): its disk is refused.
#[test]
fn refuses_the_disk_under_a_system_mount() {
    need_root();
    let dir = temp_dir("flash-sysmount");
    let (img, lo) = loop_card(dir.path());
    let mnt = dir.path().join("sysroot");
    let _m = Mounted::new(&lo.part(2), &mnt, "ro");
    let env = [("FLASH_SH_TEST_SYSTEM_MOUNTS", mnt.to_str().unwrap())];
    assert_refused_as_system_disk(&img, &lo.dev, &env, mnt.to_str().unwrap());
}

/// Root on LVM/LUKS: the system filesystem is on a device-mapper device
/// (dm-linear here, as LVM makes) over a partition over the disk; every
/// level down to the disk is found (lsblk -s), not just one parent. The dm
/// device itself is not a card either.
#[test]
#[ignore = "needs device-mapper (dm-mod), which this CI VM's kernel lacks: \
            cargo test --test it flash:: -- --ignored on a machine with it"]
fn refuses_the_disk_under_a_system_mount_on_device_mapper() {
    need_root();
    let dir = temp_dir("flash-dm");
    let (img, lo) = loop_card(dir.path());
    let part = lo.part(3);
    let sectors = image::run(Command::new("blockdev").args(["--getsz", &part]));
    let name = format!("streampulse-it-{}", std::process::id());
    image::run(Command::new("dmsetup").args([
        "create",
        &name,
        "--table",
        &format!("0 {} linear {part} 0", sectors.trim()),
    ]));
    struct DmRemove(String);
    impl Drop for DmRemove {
        fn drop(&mut self) {
            let _ = Command::new("dmsetup").args(["remove", &self.0]).status();
        }
    }
    let _dm = DmRemove(name.clone());
    let mapper = format!("/dev/mapper/{name}");
    image::run(Command::new("mkfs.ext4").args(["-q", &mapper]));
    let mnt = dir.path().join("sysroot");
    let _m = Mounted::new(&mapper, &mnt, "ro");
    let env = [("FLASH_SH_TEST_SYSTEM_MOUNTS", mnt.to_str().unwrap())];
    assert_refused_as_system_disk(&img, &lo.dev, &env, mnt.to_str().unwrap());
    let o = flash_env(
        &["--yes", "--dry-run", img.to_str().unwrap(), &mapper],
        &env,
    );
    assert!(!o.status.success(), "{}", text(&o));
}
