//! SD-card images with the appliance's real layout, assembled offline with
//! genimage from `buildroot/board/common/genimage-*.cfg.in` (the templates the
//! Buildroot post-image scripts use), and small readers to look inside them
//! (partition table via `sfdisk --json`, FAT via mtools, labels via blkid).
//!
//! The layout tests here run in `make test`, and so does `grow-data` (the
//! first-boot partition grower from `overlay/`) on loop devices holding both
//! layouts; the QEMU boot test (`qemu/`) and the flash tests (`flash.rs`)
//! build their images with the same code.

#![allow(dead_code)] // helpers shared by flash.rs and qemu/

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::util::manifest_dir;

/// Runs `cmd`, panicking with its output if it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (is it installed? make deps)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mkfs.ext4 -d dir`: an ext4 image of `size_mib` holding `dir` (no root, no mount).
pub fn ext4_from_dir(dir: &Path, label: &str, size_mib: u32, out: &Path) {
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-E", "root_owner=0:0", "-d"])
        .arg(dir)
        .arg(out)
        .arg(format!("{size_mib}M")));
}

/// Builds `sdcard.img` in `out` from the Raspberry Pi template
/// (`genimage-mbr.cfg.in`): FAT `boot_files` (copied from the given paths),
/// `rootfs` as partition 2, an empty data partition.
pub fn genimage_mbr(out: &Path, boot_files: &[(&str, &Path)], rootfs: &Path) -> PathBuf {
    genimage_mbr_with(out, boot_files, rootfs, None)
}

/// [`genimage_mbr`] with the boot partition `boot_mib` MiB large instead of
/// the template's size.
pub fn genimage_mbr_with(
    out: &Path,
    boot_files: &[(&str, &Path)],
    rootfs: &Path,
    boot_mib: Option<u32>,
) -> PathBuf {
    let input = out.join("input");
    std::fs::create_dir_all(&input).unwrap();
    for (name, src) in boot_files {
        std::fs::copy(src, input.join(name)).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    }
    std::fs::copy(rootfs, input.join("rootfs.ext4")).unwrap();
    let list: String = boot_files
        .iter()
        .map(|(n, _)| format!("\t\t\t\"{n}\",\n"))
        .collect();
    let template =
        std::fs::read_to_string(manifest_dir().join("buildroot/board/common/genimage-mbr.cfg.in"))
            .unwrap();
    let mut cfg = template.replace("#BOOT_FILES#\n", &list);
    if let Some(mib) = boot_mib {
        let vfat = cfg
            .find("image boot.vfat")
            .expect("the template has boot.vfat");
        let at = vfat + cfg[vfat..].find("size = ").expect("boot.vfat has a size");
        let end = at + cfg[at..].find('\n').unwrap();
        cfg.replace_range(at..end, &format!("size = {mib}M"));
    }
    genimage(out, &input, &cfg)
}

/// Builds `sdcard.img` from the Orange Pi template (`genimage-sunxi.cfg.in`):
/// `uboot` as the raw SPL + U-Boot, a stand-in `boot.scr`, `rootfs` in both
/// root slots, an empty data partition.
pub fn genimage_sunxi(out: &Path, uboot: &Path, rootfs: &Path) -> PathBuf {
    let input = out.join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(uboot, input.join("u-boot-sunxi-with-spl.bin")).unwrap();
    std::fs::copy(rootfs, input.join("rootfs.ext4")).unwrap();
    std::fs::write(input.join("boot.scr"), "boot script\n").unwrap();
    std::fs::copy(
        manifest_dir().join("buildroot/board/common/config.yaml.example"),
        input.join("config.yaml.example"),
    )
    .unwrap();
    let template = std::fs::read_to_string(
        manifest_dir().join("buildroot/board/common/genimage-sunxi.cfg.in"),
    )
    .unwrap();
    genimage(out, &input, &template)
}

/// Builds `sdcard.img` from the Raspberry Pi 4/5 template
/// (`genimage-rpi-tryboot.cfg.in`) as `board/raspberrypi/post-image.sh`
/// fills it: `autoboot.txt` and the example on p1; `boot_files` plus each
/// slot's own `cmdline.txt` on p2 and p3; `rootfs` in both root slots.
pub fn genimage_rpi_tryboot(
    out: &Path,
    autoboot: &str,
    cmdlines: [&str; 2],
    boot_files: &[(&str, &Path)],
    rootfs: &Path,
) -> PathBuf {
    let input = out.join("input");
    std::fs::create_dir_all(&input).unwrap();
    for (name, src) in boot_files {
        std::fs::copy(src, input.join(name)).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    }
    std::fs::write(input.join("autoboot.txt"), autoboot).unwrap();
    std::fs::write(input.join("cmdline-a.txt"), cmdlines[0]).unwrap();
    std::fs::write(input.join("cmdline-b.txt"), cmdlines[1]).unwrap();
    std::fs::copy(rootfs, input.join("rootfs.ext4")).unwrap();
    std::fs::copy(
        manifest_dir().join("buildroot/board/common/config.yaml.example"),
        input.join("config.yaml.example"),
    )
    .unwrap();
    let list: String = boot_files
        .iter()
        .map(|(n, _)| format!("\t\t\t\"{n}\",\n"))
        .collect();
    let template = std::fs::read_to_string(
        manifest_dir().join("buildroot/board/common/genimage-rpi-tryboot.cfg.in"),
    )
    .unwrap();
    genimage(out, &input, &template.replace("#BOOT_FILES#\n", &list))
}

fn genimage(out: &Path, input: &Path, cfg: &str) -> PathBuf {
    let cfg_path = out.join("genimage.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let root = out.join("genimage-root");
    let tmp = out.join("genimage-tmp");
    let images = out.join("images");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&images).unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
    run(Command::new("genimage")
        .arg("--rootpath")
        .arg(&root)
        .arg("--tmppath")
        .arg(&tmp)
        .arg("--inputpath")
        .arg(input)
        .arg("--outputpath")
        .arg(&images)
        .arg("--config")
        .arg(&cfg_path));
    images.join("sdcard.img")
}

/// One partition-table entry, offsets in bytes.
#[derive(Debug)]
pub struct Part {
    pub start: u64,
    pub size: u64,
    /// MBR type (`c`, `83`) or GPT type UUID, lower case.
    pub kind: String,
    pub uuid: Option<String>,
    pub bootable: bool,
    /// GPT attributes (`LegacyBIOSBootable`), if any.
    pub attrs: Option<String>,
}

/// The partition table of `img` (`sfdisk --json`); also returns the label type.
pub fn partitions(img: &Path) -> (String, Vec<Part>) {
    let v: Value = serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(img)))
        .expect("sfdisk --json prints JSON");
    let t = &v["partitiontable"];
    let sector = t["sectorsize"].as_u64().unwrap_or(512);
    let parts = t["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| Part {
            start: p["start"].as_u64().unwrap() * sector,
            size: p["size"].as_u64().unwrap() * sector,
            kind: p["type"].as_str().unwrap().to_ascii_lowercase(),
            uuid: p["uuid"].as_str().map(str::to_ascii_lowercase),
            bootable: p["bootable"].as_bool().unwrap_or(false),
            attrs: p["attrs"].as_str().map(str::to_owned),
        })
        .collect();
    (t["label"].as_str().unwrap().to_owned(), parts)
}

/// Filesystem `LABEL` and `TYPE` at byte `offset` of `img` (blkid -p).
pub fn fs_at(img: &Path, offset: u64) -> (String, String) {
    let out = run(Command::new("blkid")
        .args(["-p", "-o", "export", "-O"])
        .arg(offset.to_string())
        .arg(img));
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_owned()
    };
    (get("LABEL"), get("TYPE"))
}

/// mtools' `-i image@@offset` spec for the FAT partition at `offset`.
fn fat(img: &Path, offset: u64) -> String {
    format!("{}@@{offset}", img.display())
}

/// Names in the FAT root directory at `offset`.
pub fn fat_ls(img: &Path, offset: u64) -> Vec<String> {
    let out = run(Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-b", "-i"])
        .arg(fat(img, offset))
        .arg("::"));
    out.lines()
        .map(|l| l.trim_start_matches("::/").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Contents of `name` on the FAT partition at `offset`, if present.
pub fn fat_read(img: &Path, offset: u64, name: &str) -> Option<String> {
    let out = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(fat(img, offset))
        .arg(format!("::{name}"))
        .output()
        .expect("mtype (mtools) should run");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `name` onto the FAT partition at `offset`.
pub fn fat_write(img: &Path, offset: u64, name: &str, text: &str, scratch: &Path) {
    let src = scratch.join(format!("fat-write-{name}"));
    std::fs::write(&src, text).unwrap();
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-o", "-i"])
        .arg(fat(img, offset))
        .arg(&src)
        .arg(format!("::{name}")));
}

/// Copies the file `src` onto the FAT partition at `offset` of `img` as
/// `name` (a user copying a file onto the card with a PC).
pub fn fat_copy(img: &Path, offset: u64, name: &str, src: &Path) {
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-o", "-i"])
        .arg(fat(img, offset))
        .arg(src)
        .arg(format!("::{name}")));
}

/// Fails the test unless it runs as root (losetup, partx, mount).
pub fn need_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (loop devices, mount); CI runs as root"
    );
}

/// A loop device over a file, detached on drop.
pub struct Loop {
    /// `/dev/loopN`.
    pub dev: String,
}

impl Loop {
    /// Attaches `backing` as a whole disk.
    pub fn attach(backing: &Path) -> Loop {
        let dev = run(Command::new("losetup").args(["-f", "--show"]).arg(backing));
        Loop {
            dev: dev.trim().to_owned(),
        }
    }

    /// Attaches `backing` with its partitions as `/dev/loopNpM`. The kernel
    /// scans the table itself when it has the parser for it (`-P`); a kernel
    /// without one (this CI's VM has neither MBR nor GPT support) is told
    /// about them with `partx -a` (BLKPG), as the box's kernel would not need.
    pub fn with_partitions(backing: &Path) -> Loop {
        let dev = run(Command::new("losetup")
            .args(["-f", "--show", "-P"])
            .arg(backing));
        let lo = Loop {
            dev: dev.trim().to_owned(),
        };
        if !lo.sysfs(1).exists() {
            run(Command::new("partx").args(["-a", &lo.dev]));
        }
        lo
    }

    /// `/dev/loopNp<n>`.
    pub fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }

    /// The kernel's view of partition `n`: `/sys/class/block/loopNp<n>`.
    pub fn sysfs(&self, n: u32) -> PathBuf {
        let name = Path::new(&self.dev).file_name().unwrap().to_str().unwrap();
        PathBuf::from(format!("/sys/class/block/{name}p{n}"))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Unmounts a mount point on drop (before the [`Loop`] under it detaches:
/// declare it after the loop).
pub struct Mounted(pub PathBuf);

impl Mounted {
    pub fn new(dev: &str, at: &Path, opts: &str) -> Mounted {
        std::fs::create_dir_all(at).unwrap();
        run(Command::new("mount").args(["-o", opts, dev]).arg(at));
        Mounted(at.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The block size of the ext4 filesystem in `img` (`dumpe2fs -h`).
pub fn ext4_block_size(img: &Path) -> u32 {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(img));
    out.lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .unwrap_or_else(|| panic!("no block size in dumpe2fs output:\n{out}"))
        .trim()
        .parse()
        .unwrap()
}

/// A tiny root filesystem (a marker file) for layout tests.
pub fn tiny_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("tiny-root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/streampulse-release"), "layout test\n").unwrap();
    let img = dir.join("tiny-rootfs.ext4");
    ext4_from_dir(&root, "rootfs", 8, &img);
    img
}

/// Raspberry Pi layout: FAT (LBA, bootable, label STREAMPULSE) with the boot
/// files, ext4 root labelled `rootfs`, ext4 data labelled `SPDATA` whose root
/// directory belongs to the streampulse user (990), all MiB-aligned.
#[test]
fn raspberry_pi_layout() {
    let dir = super::util::temp_dir("layout-rpi");
    let rootfs = tiny_rootfs(dir.path());
    let example = manifest_dir().join("buildroot/board/common/config.yaml.example");
    let img = genimage_mbr(dir.path(), &[("config.yaml.example", &example)], &rootfs);
    let (label, parts) = partitions(&img);
    assert_eq!(label, "dos");
    // Boot, root slots A and B (the same image at first), data.
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!((parts[0].kind.as_str(), parts[0].bootable), ("c", true));
    assert_eq!(parts[1].kind, "83");
    assert_eq!(parts[2].kind, "83");
    assert_eq!(parts[3].kind, "83");
    // The fixed disk signature (MBR offset 440) that gives the slots their
    // PARTUUIDs 53504344-02 and -03 (overlay/etc/rauc/system.conf).
    let mbr = std::fs::read(&img).unwrap();
    assert_eq!(
        u32::from_le_bytes(mbr[440..444].try_into().unwrap()),
        0x5350_4344
    );
    for p in &parts {
        assert_eq!(p.start % (1 << 20), 0, "not MiB-aligned: {p:?}");
    }
    assert_eq!(
        fs_at(&img, parts[0].start),
        ("STREAMPULSE".into(), "vfat".into())
    );
    assert_eq!(
        fs_at(&img, parts[1].start),
        ("rootfs".into(), "ext4".into())
    );
    assert_eq!(
        fs_at(&img, parts[2].start),
        ("rootfs".into(), "ext4".into())
    );
    assert_eq!(
        fs_at(&img, parts[3].start),
        ("SPDATA".into(), "ext4".into())
    );
    assert_eq!(fat_ls(&img, parts[0].start), ["config.yaml.example"]);
    // The example on the card must itself be a valid config.
    let text = fat_read(&img, parts[0].start, "config.yaml.example").unwrap();
    streampulse::config::parse(&text, "config.yaml.example")
        .unwrap_or_else(|e| panic!("the shipped example is invalid: {e}"));
    let stat = run(Command::new("debugfs")
        .args(["-R", "stat /"])
        .arg(dir.path().join("images/data.ext4")));
    assert!(stat.contains("User:   990   Group:   990"), "{stat}");
    // 4 KiB blocks, not mke2fs's 1 KiB for a "small" filesystem: /data
    // grows to the whole card.
    assert_eq!(ext4_block_size(&dir.path().join("images/data.ext4")), 4096);
}

/// The fixed GPT PARTUUID of partition `n` on the Pi 4/5 and Orange Pi
/// cards (what RAUC's slots, the boot scripts and the tryboot handler name).
fn sp_partuuid(n: u32) -> String {
    format!("53504344-5350-4000-8000-{n:012}")
}

/// Orange Pi layout (A/B): U-Boot SPL raw at 8 KiB, GPT with its entries at
/// 1008 KiB, 1 MiB free for the boot counter, then the bootable FAT with
/// boot.scr (U-Boot's standard boot scans bootable partitions only), the
/// root slots A and B and data, all with the fixed PARTUUIDs that
/// `board/orangepi/boot.cmd` and `rauc-slots.conf` name.
#[test]
fn orange_pi_layout() {
    let dir = super::util::temp_dir("layout-sunxi");
    let rootfs = tiny_rootfs(dir.path());
    let uboot = dir.path().join("u-boot.bin");
    let spl: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&uboot, &spl).unwrap();
    let built = genimage_sunxi(dir.path(), &uboot, &rootfs);
    // As on a card: written without a backup GPT (gpt-no-backup, as
    // Buildroot's own Orange Pi layout), onto a device larger than the image.
    // (grow-data moves the backup GPT to the end at first boot.)
    let img = dir.path().join("card.img");
    std::fs::copy(&built, &img).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(f.metadata().unwrap().len() + (16 << 20)).unwrap();
    let (label, parts) = partitions(&img);
    assert_eq!(label, "gpt");
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!(
        parts[0].start,
        2 << 20,
        "p1 at 2 MiB: 1 MiB..2 MiB is the boot counter's"
    );
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            p.uuid.as_deref(),
            Some(sp_partuuid(i as u32 + 1).as_str()),
            "{p:?}"
        );
        assert_eq!(p.start % (1 << 20), 0, "not MiB-aligned: {p:?}");
    }
    assert_eq!(
        parts[0].kind, "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
        "FAT partition type"
    );
    assert_eq!(parts[0].attrs.as_deref(), Some("LegacyBIOSBootable"));
    assert_eq!(
        fs_at(&img, parts[0].start),
        ("STREAMPULSE".into(), "vfat".into())
    );
    let mut files = fat_ls(&img, parts[0].start);
    files.sort();
    assert_eq!(files, ["boot.scr", "config.yaml.example"]);
    for p in &parts[1..3] {
        assert_eq!(fs_at(&img, p.start), ("rootfs".into(), "ext4".into()));
        assert!(p.attrs.is_none(), "only the FAT is bootable: {p:?}");
    }
    assert_eq!(
        fs_at(&img, parts[3].start),
        ("SPDATA".into(), "ext4".into())
    );
    let bytes = std::fs::read(&img).unwrap();
    assert_eq!(
        &bytes[8 * 1024..8 * 1024 + spl.len()],
        &spl[..],
        "SPL at 8 KiB"
    );
    // The boot counter's block (board/orangepi/fw_env.config: 0x100000,
    // 0x4000) is blank on a new card: U-Boot's CRC check fails and the
    // script starts with 3 tries each, A first.
    assert!(bytes[0x10_0000..0x10_4000].iter().all(|&b| b == 0));
    let fw_env =
        std::fs::read_to_string(manifest_dir().join("buildroot/board/orangepi/fw_env.config"))
            .unwrap();
    assert!(
        fw_env
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["/dev/mmcblk0", "0x100000", "0x4000"]),
        "{fw_env}"
    );
    assert_eq!(ext4_block_size(&dir.path().join("images/data.ext4")), 4096);
}

/// Raspberry Pi 4/5 layout (tryboot A/B): GPT; p1 the bootable FAT
/// `STREAMPULSE` with autoboot.txt; p2/p3 each slot's FAT boot partition
/// with the same files except a cmdline.txt naming its own root; p4/p5 the
/// root slots; p6 data. The fixed PARTUUIDs are what
/// `board/raspberrypi/rauc-slots-tryboot.conf` and `rauc-tryboot` name.
#[test]
fn raspberry_pi_tryboot_layout() {
    let dir = super::util::temp_dir("layout-tryboot");
    let rootfs = tiny_rootfs(dir.path());
    let kernel = dir.path().join("Image");
    std::fs::write(&kernel, vec![0xA5u8; 256 * 1024]).unwrap();
    let config = dir.path().join("config.txt");
    std::fs::write(&config, "kernel=Image\n").unwrap();
    let autoboot = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";
    let cmdline = |n: u32, slot: &str| {
        format!(
            "root=PARTUUID={} ro rootwait rauc.slot={slot}\n",
            sp_partuuid(n)
        )
    };
    let (a, b) = (cmdline(4, "A"), cmdline(5, "B"));
    let built = genimage_rpi_tryboot(
        dir.path(),
        autoboot,
        [&a, &b],
        &[("Image", &kernel), ("config.txt", &config)],
        &rootfs,
    );
    let img = dir.path().join("card.img");
    std::fs::copy(&built, &img).unwrap();
    let (label, parts) = partitions(&img);
    assert_eq!(label, "gpt");
    assert_eq!(parts.len(), 6, "{parts:?}");
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            p.uuid.as_deref(),
            Some(sp_partuuid(i as u32 + 1).as_str()),
            "{p:?}"
        );
        assert_eq!(p.start % (1 << 20), 0, "not MiB-aligned: {p:?}");
    }
    let fat_type = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";
    let linux_type = "0fc63daf-8483-4772-8e79-3d69d8477de4";
    assert_eq!(parts[0].attrs.as_deref(), Some("LegacyBIOSBootable"));
    assert_eq!(
        fs_at(&img, parts[0].start),
        ("STREAMPULSE".into(), "vfat".into())
    );
    let mut files = fat_ls(&img, parts[0].start);
    files.sort();
    assert_eq!(files, ["autoboot.txt", "config.yaml.example"]);
    assert_eq!(
        fat_read(&img, parts[0].start, "autoboot.txt").unwrap(),
        autoboot
    );
    for (p, want) in [(&parts[1], &a), (&parts[2], &b)] {
        assert_eq!(p.kind, fat_type);
        assert_eq!(fs_at(&img, p.start), ("SPBOOT".into(), "vfat".into()));
        let mut files = fat_ls(&img, p.start);
        files.sort();
        assert_eq!(files, ["Image", "cmdline.txt", "config.txt"]);
        assert_eq!(&fat_read(&img, p.start, "cmdline.txt").unwrap(), want);
        assert_eq!(
            fat_read(&img, p.start, "config.txt").unwrap(),
            "kernel=Image\n"
        );
    }
    for p in &parts[3..5] {
        assert_eq!(p.kind, linux_type);
        assert_eq!(fs_at(&img, p.start), ("rootfs".into(), "ext4".into()));
    }
    assert_eq!(parts[5].kind, linux_type);
    assert_eq!(
        fs_at(&img, parts[5].start),
        ("SPDATA".into(), "ext4".into())
    );
    let stat = run(Command::new("debugfs")
        .args(["-R", "stat /"])
        .arg(dir.path().join("images/data.ext4")));
    assert!(stat.contains("User:   990   Group:   990"), "{stat}");
    assert_eq!(ext4_block_size(&dir.path().join("images/data.ext4")), 4096);
}

/// `grow-data` on a card larger than the image, for every layout (MBR on a
/// Pi 3/Zero 2 W, GPT written without its backup on an Orange Pi, GPT with
/// its backup at the image's end on a Pi 4/5), with the root
/// partition mounted as on the box: the data partition then ends at the end
/// of the disk (GPT: right before the backup table, which is now there and
/// valid), the kernel knows the new size, the filesystem is intact, and a
/// second run (every later boot) changes nothing.
#[test]
fn grow_data_grows_the_data_partition_on_every_layout() {
    need_root();
    let dir = super::util::temp_dir("grow-data");
    let rootfs = tiny_rootfs(dir.path());
    let example = manifest_dir().join("buildroot/board/common/config.yaml.example");
    let mbr_dir = dir.path().join("mbr");
    let gpt_dir = dir.path().join("gpt");
    std::fs::create_dir_all(&mbr_dir).unwrap();
    std::fs::create_dir_all(&gpt_dir).unwrap();
    let uboot = dir.path().join("u-boot.bin");
    std::fs::write(&uboot, vec![0x5Au8; 64 * 1024]).unwrap();
    let tryboot_dir = dir.path().join("tryboot");
    std::fs::create_dir_all(&tryboot_dir).unwrap();
    let layouts = [
        (
            "dos",
            genimage_mbr(&mbr_dir, &[("config.yaml.example", &example)], &rootfs),
            2, // root slot A
        ),
        ("gpt", genimage_sunxi(&gpt_dir, &uboot, &rootfs), 2),
        (
            "gpt",
            genimage_rpi_tryboot(
                &tryboot_dir,
                "[all]\nboot_partition=2\n",
                ["root=x\n", "root=y\n"],
                &[("config.yaml.example", &example)],
                &rootfs,
            ),
            4,
        ),
    ];
    let grow_data = manifest_dir().join("overlay/usr/libexec/streampulse/grow-data");
    for (i, (label, built, root_part)) in layouts.into_iter().enumerate() {
        let card = dir.path().join(format!("card-{i}-{label}.img"));
        std::fs::copy(&built, &card).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&card).unwrap();
        let card_len = f.metadata().unwrap().len() + (32 << 20);
        f.set_len(card_len).unwrap();
        drop(f);
        let (_, before) = partitions(&card);

        let lo = Loop::with_partitions(&card);
        let _root = Mounted::new(
            &lo.part(root_part),
            &dir.path().join(format!("root-{i}-{label}")),
            "ro",
        );
        let grow = || {
            let out = Command::new(&grow_data)
                .arg(lo.part(before.len() as u32))
                .output()
                .expect("grow-data should run");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{label}: grow-data failed:\n{text}");
            text
        };
        let first = grow();
        assert!(first.contains("growing"), "{label}: {first}");

        let (got_label, parts) = partitions(&card);
        assert_eq!(got_label, label);
        // The data partition is the last: 4th on MBR (after two root
        // slots), 4th on the Orange Pi's GPT, 6th on the Pi 4/5's.
        let n = before.len();
        assert_eq!(parts.len(), n, "{label}: {parts:?}");
        for (b, a) in before.iter().zip(&parts).take(n - 1) {
            assert_eq!(
                (b.start, b.size),
                (a.start, a.size),
                "{label}: a partition moved"
            );
        }
        let d = n - 1;
        assert_eq!(parts[d].start, before[d].start, "{label}: data moved");
        // MBR: up to the last sector. GPT: up to the backup table (32
        // sectors of entries and its header).
        let end = match label {
            "gpt" => card_len - 33 * 512,
            _ => card_len,
        };
        assert_eq!(parts[d].start + parts[d].size, end, "{label}: {parts:?}");
        let kernel_sectors: u64 = std::fs::read_to_string(lo.sysfs(n as u32).join("size"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            kernel_sectors * 512,
            parts[d].size,
            "{label}: kernel's size"
        );
        let verify = run(Command::new("sfdisk").args(["--verify", &lo.dev]));
        assert!(verify.contains("No errors detected"), "{label}: {verify}");
        if label == "gpt" {
            let bytes = std::fs::read(&card).unwrap();
            let last = &bytes[bytes.len() - 512..];
            assert_eq!(
                &last[..8],
                b"EFI PART",
                "{label}: no backup GPT header at the end"
            );
        }
        run(Command::new("e2fsck").args(["-fn", &lo.part(n as u32)]));

        let dump = || run(Command::new("sfdisk").arg("--dump").arg(&card));
        let table = dump();
        let second = grow();
        assert!(
            second.contains("already ends at the end"),
            "{label}: {second}"
        );
        assert_eq!(dump(), table, "{label}: the second run changed the table");
    }
}
