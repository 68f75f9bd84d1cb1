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
//! the test). They reach the box the ways a user has: uploaded on the
//! System page (the session and its CSRF token, as app.js sends them) and
//! copied onto the card's boot partition as `update.raucb` while it is
//! powered off. The guest reboots by itself here (no `-no-reboot`).
//!
//! Asserted:
//! - before: slot A booted (`rauc status`, `rauc.slot=A`, `GET
//!   /system/update`), marked good by the gate; `streampulse` may not mark
//!   slots (the D-Bus policy allows it the installer only);
//! - the bundle signed under another CA, uploaded, is refused (the install's
//!   phase `failed`, its message naming the signature), nothing is left in
//!   `/data/update`, and neither RAUC's slot states nor the boot counter
//!   change;
//! - the newer bundle, uploaded, installs into B (phase `rebooting`, slot B,
//!   its version), the box reboots by itself (root's
//!   streampulse-update-reboot answering the daemon's request) into B
//!   through U-Boot, runs the new `IMAGE_VERSION`, the gate marks B good
//!   (its tries reset to 3, no longer on trial), and the heartbeats
//!   recorded before the update are still in `/api/streams/…/history`;
//! - the never-ready bundle on the boot partition is taken at the next
//!   start (removed from the card), installed into A, the box reboots into
//!   it, the gate gives up on it (the service restarted 3 times), writes
//!   `/data/update/last-failure` (slot A, the bundle's version, the reason),
//!   marks A bad and reboots; U-Boot skips A and the box is back on B by
//!   itself, running the version it had, with `BOOT_A_LEFT=0`; the
//!   dashboard and the System page say "The update to … failed and was
//!   rolled back to …" until it is dismissed.
//!
//! Printed: bundle build time, upload and install times, the update time
//! (reboot to the new slot healthy) and the rollback time (reboot into the
//! broken slot to the old one healthy).

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

/// The three bundles, on the host.
struct Bundles {
    newer: PathBuf,
    broken: PathBuf,
    untrusted: PathBuf,
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
    eprintln!(
        "qemu: update bundles built in {:.0} s ({} bytes each, about)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&newer).unwrap().len()
    );
    Bundles {
        newer,
        broken,
        untrusted,
    }
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

/// Uploads `bundle` on the System page (`POST /system/update`, the
/// session and its CSRF token, as app.js does); it must be accepted.
fn upload(guest: &mut Guest, bundle: &Path) {
    let (status, body) = guest.upload("/system/update", bundle);
    if status != 202 {
        guest.fail(&format!("POST /system/update: {status} {body}"));
    }
}

/// Polls `GET /system/update` until the install's phase is one of `phases`;
/// None if the box went away (rebooting) first.
fn wait_phase(guest: &mut Guest, phases: &[&str]) -> Option<Value> {
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    let mut last = None;
    while Instant::now() < deadline {
        match guest.get("/system/update") {
            Some(v) if phases.contains(&v["progress"]["phase"].as_str().unwrap_or("")) => {
                return Some(v)
            }
            Some(v) => last = Some(v),
            None if last.is_some() => return None,
            None => {}
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    guest.fail(&format!(
        "the install did not reach {phases:?}; last GET /system/update: {last:?}"
    ));
}

/// Heartbeats of the Porch stream recorded before `before_ms` (unix ms).
pub(super) fn heartbeats_before(guest: &mut Guest, before_ms: i64) -> usize {
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

/// A backup downloaded from the System page at the end of the update boots.
pub(super) struct Backup {
    pub(super) file: PathBuf,
    /// When it was made (unix ms), and the Porch heartbeats before then.
    pub(super) made_ms: i64,
    pub(super) heartbeats: usize,
}

/// The update boots; `password`: the admin password in force; `fat`: the
/// boot partition's offset in `img`. Returns a backup made at the end.
pub(super) fn run(
    dir: &Path,
    img: &Path,
    fat: u64,
    rootfs: &Rootfs,
    keys: &Path,
    password: &str,
) -> Backup {
    let bundles = make_bundles(dir, rootfs, keys);

    // On slot A, as flashed.
    let mut guest = Guest::boot_with(img, dir, true, &[]);
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
    let st = guest.get("/system/update").expect("GET /system/update");
    assert!(
        st["available"] == true && st["running"]["slot"] == "A" && st["rolled_back"].is_null(),
        "{st}"
    );

    // The D-Bus policy: the daemon's user may install, nothing else.
    let (rc, out) = guest.sh_timeout(
        "runuser -u streampulse -- rauc status mark-bad other",
        Duration::from_secs(60),
    );
    assert!(
        rc != 0 && out.contains("Rejected send message") && out.contains("member=\"Mark\""),
        "streampulse could mark a slot bad ({rc}): {out}"
    );

    // Signed under another CA, uploaded on the System page: refused before
    // anything changes.
    let slots_before = rauc_status(&mut guest)["slots"].clone();
    let counter_before = boot_counter(&mut guest);
    upload(&mut guest, &bundles.untrusted);
    let st = wait_phase(&mut guest, &["failed", "installed", "rebooting"])
        .unwrap_or_else(|| guest.fail("the box went away after an untrusted upload"));
    let message = st["progress"]["message"].as_str().unwrap_or("").to_owned();
    assert!(
        st["progress"]["phase"] == "failed" && message.to_lowercase().contains("signature"),
        "a bundle signed under an untrusted CA: {st}"
    );
    assert_eq!(rauc_status(&mut guest)["slots"], slots_before);
    assert_eq!(boot_counter(&mut guest), counter_before);
    let (_, left) = guest.sh_timeout("ls -A /data/update", Duration::from_secs(30));
    assert!(!left.contains(".raucb"), "bundle left behind: {left}");
    eprintln!("qemu: untrusted bundle refused on upload: {message}");

    // The newer build, uploaded on the System page, into B; the box reboots
    // into it by itself.
    let banners = guest.console_count(UBOOT_BANNER);
    let uploaded = Instant::now();
    upload(&mut guest, &bundles.newer);
    let upload_secs = uploaded.elapsed().as_secs_f64();
    if let Some(st) = wait_phase(&mut guest, &["failed", "rebooting"]) {
        assert_eq!(st["progress"]["phase"], "rebooting", "{st}");
        assert_eq!(st["progress"]["slot"], "B", "{st}");
        assert_eq!(st["progress"]["version"], NEW_VERSION, "{st}");
    }
    guest.wait_console(UBOOT_BANNER, banners, INSTALL_TIMEOUT);
    let rebooted = Instant::now();
    let install_secs = uploaded.elapsed().as_secs_f64();
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
    let previous =
        guest.sh("journalctl -b -1 --no-pager -o cat -u streampulse-update-reboot.service");
    assert!(
        previous.contains("rebooting into slot B"),
        "the reboot was not root's answer to the daemon's request:\n{previous}"
    );
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
    let st = guest.get("/system/update").expect("GET /system/update");
    assert!(
        st["running"]["slot"] == "B" && st["running"]["image_version"] == NEW_VERSION,
        "{st}"
    );
    eprintln!(
        "qemu: update: uploaded in {upload_secs:.0} s, installed and rebooting {install_secs:.0} s after the upload started, \
         reboot to slot B healthy and kept in {:.0} s; {kept} earlier heartbeats kept",
        update_time.as_secs_f64()
    );
    guest.poweroff();

    // A build that never becomes ready, copied onto the card's boot
    // partition as update.raucb (the card in a PC): installed into A at the
    // next start, the box reboots into it, and must come back to B.
    image::fat_copy(img, fat, "update.raucb", &bundles.broken);
    let started = Instant::now();
    let mut guest = Guest::boot_with(img, dir, true, &[]);
    // This boot (B, taking the bundle), the broken slot's, the gate's reboot.
    guest.wait_console(UBOOT_BANNER, 1, INSTALL_TIMEOUT);
    let rebooted = Instant::now();
    let banners = guest.console_count(UBOOT_BANNER);
    guest.wait_console(UBOOT_BANNER, banners, BOOT_TIMEOUT);
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    assert_eq!(booted(&mut guest), "B", "not back on the old slot");
    let version = guest.sh("sed -n 's/^IMAGE_VERSION=//p' /etc/os-release");
    assert_eq!(version.trim(), NEW_VERSION);
    wait_gate(&mut guest, "marked good");
    let rollback_time = rebooted.elapsed();
    // Two boots back: B took the bundle from the boot partition.
    let took = guest.sh("journalctl -b -2 --no-pager -o cat -u streampulse.service");
    assert!(
        took.contains("installing update.raucb") && took.contains("installed into slot A"),
        "the boot before the broken one did not install the boot partition's bundle:\n{took}"
    );
    let (_, on_boot) = guest.sh_timeout("ls -A /boot", Duration::from_secs(30));
    assert!(
        !on_boot.contains("update.raucb"),
        "the bundle is still on the boot partition: {on_boot}"
    );
    // The previous boot (the journal is on /data) was the broken slot's.
    let previous = guest.sh(
        "journalctl -b -1 --no-pager -o cat -u streampulse.service -u streampulse-mark-good.service",
    );
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
    // The GUI says so, on every page, until dismissed on the System page.
    guest.login(password);
    let st = guest.get("/system/update").expect("GET /system/update");
    assert_eq!(st["rolled_back"]["version"], BROKEN_VERSION, "{st}");
    let said =
        format!("The update to {BROKEN_VERSION} failed and was rolled back to {NEW_VERSION}");
    for path in ["/", "/system"] {
        let page = guest.session_page(path);
        assert!(
            page.as_ref()
                .is_some_and(|(s, b)| *s == 200 && b.contains(&said)),
            "{path} does not say {said:?}: {page:?}"
        );
    }
    let (status, location) = guest.post_form("/system/update/dismiss");
    assert_eq!((status, location.as_str()), (303, "/system"));
    let page = guest.session_page("/");
    assert!(
        page.as_ref()
            .is_some_and(|(s, b)| *s == 200 && !b.contains("rolled back")),
        "the note is still shown after dismissing it: {page:?}"
    );
    eprintln!(
        "qemu: rollback: bundle from the boot partition installed and rebooted {:.0} s after power-on; \
         reboot into the never-ready slot A to slot B healthy again in {:.0} s; last-failure {failure}",
        (rebooted - started).as_secs_f64(),
        rollback_time.as_secs_f64()
    );

    // A backup, as System → Download backup gives it.
    let made_ms = jiff::Timestamp::now().as_millisecond();
    let heartbeats = heartbeats_before(&mut guest, made_ms);
    let (status, bytes) = guest.session_bytes("/system/backup.spbackup");
    assert!(
        status == 200 && bytes.starts_with(b"SQLite format 3\0"),
        "GET /system/backup.spbackup: {status}, {} bytes",
        bytes.len()
    );
    let file = dir.join("box.spbackup");
    std::fs::write(&file, &bytes).unwrap();
    guest.poweroff();
    Backup {
        file,
        made_ms,
        heartbeats,
    }
}
