//! Signed A/B updates with RAUC on the same card, between the second and
//! the third boot of the main test (docs/UPDATES.md).
//!
//! The card boots through U-Boot, whose boot script (scripts/qemu/boot.cmd)
//! implements RAUC's boot counting (`BOOT_ORDER`, `BOOT_A_LEFT`,
//! `BOOT_B_LEFT`) and loads the kernel from the slot it picks; the guest
//! runs Debian's `rauc` with `overlay/etc/rauc/system.conf`, and the health
//! gate `streampulse-mark-good.service` from overlay/. Three bundles are
//! made on the host with `scripts/make-bundle.sh` from this card's root
//! filesystem: a "newer build" (same binary, `IMAGE_VERSION` in
//! `/etc/os-release` and the bundle version differ), a build whose
//! `/usr/bin/streampulse` is a script that exits 1, and the newer build
//! signed under a second, untrusted CA (`scripts/rauc-keys.sh`, made during
//! the test). They reach the guest as extra read-only virtio disks and are
//! copied to `/data/update/` owned by `streampulse`; every `rauc install`
//! runs as that user (`runuser -u streampulse`), as the daemon's upload will.
//! The guest reboots by itself here (no `-no-reboot`).
//!
//! Asserted:
//! - before: slot A booted (`rauc status`, `rauc.slot=A`), marked good by the
//!   gate; `streampulse` may not mark slots (the D-Bus policy allows it the
//!   installer only);
//! - the bundle signed under another CA is refused (`rauc install` fails,
//!   naming the signature) and neither RAUC's slot states nor the boot
//!   counter change;
//! - the newer bundle installs into B (`BOOT_ORDER=B A`), the box reboots
//!   into B through U-Boot, runs the new `IMAGE_VERSION`, the gate marks B
//!   good (its tries reset to 3, no longer on trial), and the heartbeats
//!   recorded before the update are still in `/api/streams/…/history`;
//! - the never-ready bundle installs into A, the box reboots into it, the
//!   gate gives up on it (the service restarted 3 times), writes
//!   `/data/update/last-failure` (slot A, the bundle's version, the reason),
//!   marks A bad and reboots; U-Boot skips A and the box is back on B by
//!   itself, running the version it had, with `BOOT_A_LEFT=0`.
//!
//! Printed: bundle build time, install times, the update time (reboot to the
//! new slot healthy) and the rollback time (reboot into the broken slot to
//! the old one healthy).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::checks::history_len;
use super::guest::Guest;
use super::rootfs::Rootfs;
use super::BOOT_TIMEOUT;
use crate::image;
use crate::util::manifest_dir;

/// The newer build's version (bundle and `IMAGE_VERSION`).
const NEW_VERSION: &str = "2.0.0-qemu";
/// The never-ready build's bundle version.
const BROKEN_VERSION: &str = "2.0.1-broken";
/// U-Boot's banner: one per (re)boot of the machine.
const UBOOT_BANNER: &str = "U-Boot 20";
/// A bundle install under TCG: squashfs + dm-verity reads, the slot write.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Makes the test's throw-away CA and signing key (scripts/rauc-keys.sh).
pub(super) fn make_keys(dir: &Path, name: &str) -> PathBuf {
    let keys = dir.join(name);
    image::run(
        Command::new(manifest_dir().join("scripts/rauc-keys.sh"))
            .arg(&keys)
            .arg(format!("StreamPulse test {name}")),
    );
    keys
}

/// `scripts/make-bundle.sh` with the keys in `keys`.
fn bundle(rootfs: &Path, version: &str, keys: &Path, out: &Path) {
    image::run(
        Command::new(manifest_dir().join("scripts/make-bundle.sh"))
            .env("STREAMPULSE_RAUC_KEYS", keys)
            .arg(rootfs)
            .arg(version)
            .arg(out),
    );
}

/// A copy of `bundle` padded to whole sectors, to attach as a disk; returns
/// it and the bundle's real length.
fn as_disk(bundle: &Path) -> (PathBuf, u64) {
    let len = std::fs::metadata(bundle).unwrap().len();
    let disk = bundle.with_extension("disk");
    std::fs::copy(bundle, &disk).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    f.set_len(len.div_ceil(512) * 512).unwrap();
    (disk, len)
}

/// The three bundles, as disks for the guest.
struct Bundles {
    /// (disk image, bundle length), in attach order: /dev/vdb, vdc, vdd.
    disks: Vec<(PathBuf, u64)>,
}

impl Bundles {
    const NEWER: usize = 0;
    const BROKEN: usize = 1;
    const UNTRUSTED: usize = 2;

    fn device(i: usize) -> String {
        format!("/dev/vd{}", (b'b' + i as u8) as char)
    }
}

fn make_bundles(dir: &Path, rootfs: &Rootfs, keys: &Path) -> Bundles {
    let started = Instant::now();
    let next = dir.join("rootfs-next");
    image::run(Command::new("cp").arg("-a").arg(&rootfs.dir).arg(&next));
    // The newer build: same binary, a new image version.
    let os_release = next.join("etc/os-release");
    let mut text = std::fs::read_to_string(&os_release).unwrap();
    text.push_str(&format!(
        "IMAGE_ID=streampulse\nIMAGE_VERSION={NEW_VERSION}\n"
    ));
    std::fs::remove_file(&os_release).unwrap(); // Debian's is a symlink
    std::fs::write(&os_release, text).unwrap();
    let newer_img = dir.join("rootfs-newer.ext4");
    image::ext4_from_dir(&next, "rootfs", rootfs.size_mib, &newer_img);
    let newer = dir.join("newer.raucb");
    bundle(&newer_img, NEW_VERSION, keys, &newer);
    // The same image, signed under a CA the box does not trust.
    let other = make_keys(dir, "untrusted-keys");
    let untrusted = dir.join("untrusted.raucb");
    bundle(&newer_img, NEW_VERSION, &other, &untrusted);
    std::fs::remove_file(&newer_img).unwrap();
    // A build that never becomes ready.
    let bin = next.join("usr/bin/streampulse");
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(
        &bin,
        "#!/bin/sh\necho 'streampulse: test build that never becomes ready' >&2\nexit 1\n",
    )
    .unwrap();
    image::run(Command::new("chmod").arg("0755").arg(&bin));
    let broken_img = dir.join("rootfs-broken.ext4");
    image::ext4_from_dir(&next, "rootfs", rootfs.size_mib, &broken_img);
    let broken = dir.join("broken.raucb");
    bundle(&broken_img, BROKEN_VERSION, keys, &broken);
    std::fs::remove_file(&broken_img).unwrap();
    image::run(Command::new("rm").arg("-rf").arg(&next));
    let disks = vec![as_disk(&newer), as_disk(&broken), as_disk(&untrusted)];
    eprintln!(
        "qemu: update bundles built in {:.0} s ({} bytes each, about)",
        started.elapsed().as_secs_f64(),
        disks[0].1
    );
    Bundles { disks }
}

/// `rauc status --output-format=json`.
fn rauc_status(guest: &mut Guest) -> Value {
    let out = guest.sh("rauc status --output-format=json 2>/dev/null");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("rauc status JSON: {e}: {out}"))
}

/// The boot counter as the system sees it (fw_printenv, RAUC's backend).
fn boot_counter(guest: &mut Guest) -> String {
    guest.sh("fw_printenv BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT")
}

/// The slot the running system was booted from: `rauc status` and the
/// kernel command line must agree.
fn booted(guest: &mut Guest) -> String {
    let st = rauc_status(guest);
    let cmdline = guest.sh("cat /proc/cmdline");
    let slot = st["booted"].as_str().unwrap_or("?").to_owned();
    assert!(
        cmdline.contains(&format!("rauc.slot={slot}")),
        "rauc status says {slot}, the kernel command line: {cmdline}"
    );
    slot
}

/// Waits for the health gate's verdict on this boot: its journal line.
fn wait_gate(guest: &mut Guest, needle: &str) -> String {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let log =
            guest.sh("journalctl -b --no-pager -o cat -u streampulse-mark-good.service || true");
        if log.contains(needle) {
            return log;
        }
        if Instant::now() > deadline {
            guest.fail(&format!(
                "the health gate did not log {needle:?}; its log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Copies bundle `i` from its disk to /data/update/NAME, owned by the
/// daemon's user (as its upload would leave it).
fn copy_in(guest: &mut Guest, bundles: &Bundles, i: usize, name: &str) -> String {
    let path = format!("/data/update/{name}");
    guest.sh(&format!(
        "head -c {} {} >{path} && chown streampulse:streampulse {path} && chmod 0640 {path}",
        bundles.disks[i].1,
        Bundles::device(i)
    ));
    path
}

/// `rauc install` as the streampulse user; (exit status, output, seconds).
fn install_as_daemon_user(guest: &mut Guest, path: &str) -> (i32, String, f64) {
    let started = Instant::now();
    let (rc, out) = guest.sh_timeout(
        &format!("runuser -u streampulse -- rauc install {path}"),
        INSTALL_TIMEOUT,
    );
    (rc, out, started.elapsed().as_secs_f64())
}

/// Heartbeats of the Porch stream recorded before `before_ms` (unix ms).
fn heartbeats_before(guest: &mut Guest, before_ms: i64) -> usize {
    let h = guest.wait_json(
        "/api/streams/Porch/history?since=0&until=99999999999999",
        "history",
        |v| history_len(v) >= 1,
    );
    h["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["ts_ms"].as_i64().unwrap_or(i64::MAX) < before_ms)
        .count()
}

/// Reboots the guest through systemd and waits for U-Boot's banner.
fn reboot(guest: &mut Guest) -> Instant {
    let banners = guest.console_count(UBOOT_BANNER);
    let at = Instant::now();
    guest.sh("systemctl --no-block reboot");
    guest.wait_console(UBOOT_BANNER, banners, Duration::from_secs(180));
    at
}

/// The update boots; `password`: the admin password in force.
pub(super) fn run(dir: &Path, img: &Path, rootfs: &Rootfs, keys: &Path, password: &str) {
    let bundles = make_bundles(dir, rootfs, keys);
    let disks: Vec<PathBuf> = bundles.disks.iter().map(|(d, _)| d.clone()).collect();

    // On slot A, as flashed.
    let mut guest = Guest::boot_with(img, dir, true, &disks);
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    assert_eq!(booted(&mut guest), "A");
    wait_gate(&mut guest, "marked good");
    guest.login(password);
    let before_update_ms = jiff::Timestamp::now().as_millisecond();
    let old_heartbeats = heartbeats_before(&mut guest, before_update_ms);
    assert!(
        old_heartbeats >= 3,
        "history before the update: {old_heartbeats}"
    );
    let old_version = guest.sh("grep -c '^IMAGE_VERSION=' /etc/os-release || true");
    assert_eq!(old_version.trim(), "0", "slot A has no IMAGE_VERSION yet");

    // The D-Bus policy: the daemon's user may install, nothing else.
    let (rc, out) = guest.sh_timeout(
        "runuser -u streampulse -- rauc status mark-bad other",
        Duration::from_secs(60),
    );
    assert!(
        rc != 0 && out.contains("Rejected send message") && out.contains("member=\"Mark\""),
        "streampulse could mark a slot bad ({rc}): {out}"
    );

    // Signed under another CA: refused before anything changes.
    let slots_before = rauc_status(&mut guest)["slots"].clone();
    let counter_before = boot_counter(&mut guest);
    let path = copy_in(&mut guest, &bundles, Bundles::UNTRUSTED, "untrusted.raucb");
    let (rc, out, _) = install_as_daemon_user(&mut guest, &path);
    assert!(
        rc != 0 && out.to_lowercase().contains("signature"),
        "a bundle signed under an untrusted CA: rauc install exited {rc}: {out}"
    );
    assert_eq!(rauc_status(&mut guest)["slots"], slots_before);
    assert_eq!(boot_counter(&mut guest), counter_before);
    eprintln!(
        "qemu: untrusted bundle refused: {}",
        out.lines().last().unwrap_or("")
    );

    // The newer build, into B.
    let path = copy_in(&mut guest, &bundles, Bundles::NEWER, "newer.raucb");
    let (rc, out, secs) = install_as_daemon_user(&mut guest, &path);
    if rc != 0 {
        guest.fail(&format!(
            "rauc install of the newer bundle exited {rc}: {out}"
        ));
    }
    let counter = boot_counter(&mut guest);
    assert!(
        counter.contains("BOOT_ORDER=B A") && counter.contains("BOOT_B_LEFT=3"),
        "after installing into B: {counter}"
    );
    let pending = guest.sh("cat /data/rauc/pending");
    assert!(
        pending.contains("slot=B") && pending.contains(NEW_VERSION),
        "{pending}"
    );
    eprintln!("qemu: newer bundle installed into slot B in {secs:.0} s (as streampulse)");
    guest.sh("rm /data/update/newer.raucb /data/update/untrusted.raucb");

    // Reboot into B.
    let rebooted = reboot(&mut guest);
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    assert_eq!(booted(&mut guest), "B");
    let version = guest.sh("sed -n 's/^IMAGE_VERSION=//p' /etc/os-release");
    assert_eq!(version.trim(), NEW_VERSION);
    let gate = wait_gate(&mut guest, "kept");
    let update_time = rebooted.elapsed();
    assert!(
        gate.contains(&format!("slot B (version {NEW_VERSION}) kept")),
        "{gate}"
    );
    let counter = boot_counter(&mut guest);
    assert!(
        counter.contains("BOOT_ORDER=B A") && counter.contains("BOOT_B_LEFT=3"),
        "after B was marked good: {counter}"
    );
    let (_, pending) = guest.sh_timeout(
        "test -e /data/rauc/pending; echo $?",
        Duration::from_secs(30),
    );
    assert_eq!(pending.trim(), "1", "slot B still on trial");
    let st = rauc_status(&mut guest);
    eprintln!("qemu: on slot B: {st}");
    guest.login(password);
    let kept = heartbeats_before(&mut guest, before_update_ms);
    assert!(
        kept >= old_heartbeats,
        "history lost across the update: {kept} of {old_heartbeats} heartbeats"
    );
    guest.wait_json("/api/status", "an ok heartbeat on slot B", |v| {
        v["Porch"]["status"] == "ok"
    });
    eprintln!(
        "qemu: update: reboot to slot B healthy and kept in {:.0} s; {kept} earlier heartbeats kept",
        update_time.as_secs_f64()
    );

    // A build that never becomes ready, into A; the box must come back to B.
    let path = copy_in(&mut guest, &bundles, Bundles::BROKEN, "broken.raucb");
    let (rc, out, secs) = install_as_daemon_user(&mut guest, &path);
    if rc != 0 {
        guest.fail(&format!(
            "rauc install of the broken bundle exited {rc}: {out}"
        ));
    }
    eprintln!("qemu: never-ready bundle installed into slot A in {secs:.0} s");
    let counter = boot_counter(&mut guest);
    assert!(
        counter.contains("BOOT_ORDER=A B"),
        "after installing into A: {counter}"
    );
    guest.sh("rm /data/update/broken.raucb");
    let rebooted = reboot(&mut guest);
    // The broken slot's boot, then the gate's reboot: U-Boot again.
    let banners = guest.console_count(UBOOT_BANNER);
    guest.wait_console(UBOOT_BANNER, banners, BOOT_TIMEOUT);
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    assert_eq!(booted(&mut guest), "B", "not back on the old slot");
    let version = guest.sh("sed -n 's/^IMAGE_VERSION=//p' /etc/os-release");
    assert_eq!(version.trim(), NEW_VERSION);
    wait_gate(&mut guest, "marked good");
    let rollback_time = rebooted.elapsed();
    // The previous boot (the journal is on /data) was the broken slot's.
    let previous = guest.sh("journalctl -b -1 --no-pager -o cat -u streampulse.service -u streampulse-mark-good.service");
    assert!(
        previous.contains("never becomes ready") && previous.contains("rolling back from slot A"),
        "the previous boot was not the broken slot A rolled back by the gate:\n{previous}"
    );
    let failure: Value = serde_json::from_str(&guest.sh("cat /data/update/last-failure"))
        .expect("last-failure is JSON");
    assert_eq!(failure["slot"], "A", "{failure}");
    assert_eq!(failure["version"], BROKEN_VERSION, "{failure}");
    assert!(
        failure["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without becoming healthy")),
        "{failure}"
    );
    let counter = boot_counter(&mut guest);
    assert!(
        counter.contains("BOOT_A_LEFT=0"),
        "slot A not marked bad: {counter}"
    );
    let failed = guest.sh("systemctl --failed --no-legend --plain");
    if !failed.trim().is_empty() {
        guest.fail(&format!("failed units after the rollback: {failed}"));
    }
    eprintln!(
        "qemu: rollback: reboot into the never-ready slot A to slot B healthy again in {:.0} s; last-failure {failure}",
        rollback_time.as_secs_f64()
    );
    guest.poweroff();
}
