//! A card whose data partition went bad: the fourth boot of the same card,
//! with the data partition damaged on the host first. The box must not stop
//! in emergency mode (root is locked: nobody could log in); it boots without
//! `/data` (fstab's `nofail`), and the daemon runs degraded with its data in
//! RAM and says so.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::guest::Guest;
use super::BOOT_TIMEOUT;
use crate::image::Part;

/// What is overwritten, from the partition's start + 2 KiB: the group
/// descriptors, bitmaps and inode tables of the first flex group.
const DAMAGE: u64 = 16 << 20;

/// Overwrites the data partition's metadata with garbage, keeping its boot
/// block and primary superblock: the label stays, so the partition is still
/// found, checked and mounted by label, but e2fsck's automatic repair
/// (`-a`, systemd's default `fsck.repair=preen`) gives up (exit 4,
/// "UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY"), and so would the mount.
/// (With the Pi's `fsck.repair=yes`, e2fsck `-y` rebuilds an empty
/// filesystem instead: checked on the host, exit 1.)
pub(super) fn damage_data_partition(img: &Path, data: &Part) {
    let mut f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.seek(SeekFrom::Start(data.start + 2048)).unwrap();
    // xorshift64: reproducible garbage.
    let mut x: u64 = 0x5eed_0015_dead_beef;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..DAMAGE >> 20 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
}

/// The boot with a bad data partition: not in emergency or rescue mode,
/// `/data` not mounted because fsck refused it, the only failed unit the
/// fsck; streampulse.service active and running, degraded (`/healthz`
/// `data.degraded` with the reason, the status text, the banner on the GUI
/// page, here first-boot setup: the config was on `/data`); the journal still
/// works (in RAM). Returns how long after QEMU started the daemon was
/// running.
pub(super) fn assert_degraded_boot(guest: &mut Guest, booted: Instant) -> Duration {
    let unit = "streampulse.service";
    let svc = guest.wait_running(unit, BOOT_TIMEOUT);
    let running_after = booted.elapsed();
    // The boot job list drains (emergency mode would stop it).
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let state = loop {
        let (_, state) = guest.sh_timeout("systemctl is-system-running", BOOT_TIMEOUT);
        if !matches!(state.as_str(), "initializing" | "starting") {
            break state;
        }
        if Instant::now() > deadline {
            guest.fail(&format!("the boot did not finish: {state}"));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let modes = guest.sh("systemctl is-active emergency.target rescue.target || true");
    if !matches!(state.as_str(), "running" | "degraded")
        || modes.lines().any(|l| l.trim() != "inactive")
    {
        guest.fail(&format!(
            "a bad data partition must not stop the boot: system {state}, emergency/rescue {modes:?}"
        ));
    }
    let mounted = guest.sh("findmnt -n -o SOURCE,FSTYPE /data || true");
    assert!(
        mounted.is_empty(),
        "the damaged data partition is mounted: {mounted}"
    );
    let fsck = guest.sh("journalctl -b --no-pager -o cat -u 'systemd-fsck@*'");
    assert!(
        fsck.contains("fsck failed with exit status 4"),
        "systemd-fsck on the damaged data partition:\n{fsck}"
    );
    // The health gate's `rauc status mark-good` writes U-Boot's environment
    // on the card; the block device's change event makes systemd try /data
    // (and its fsck) once more. Read the failed units once that is over.
    let settle = Instant::now() + Duration::from_secs(120);
    loop {
        let jobs = guest.sh("systemctl list-jobs --no-legend --plain || true");
        let (_, gate) = guest.sh_timeout(
            "systemctl is-active streampulse-mark-good.service",
            Duration::from_secs(30),
        );
        if jobs.trim().is_empty() && !matches!(gate.trim(), "active" | "activating") {
            break;
        }
        if Instant::now() > settle {
            guest.fail(&format!(
                "the boot's jobs did not settle: health gate {gate}, jobs:\n{jobs}"
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let failed = guest.sh("systemctl --failed --no-legend --plain");
    let others: Vec<&str> = failed
        .lines()
        .filter(|l| {
            !l.trim()
                .starts_with("systemd-fsck@dev-disk-by\\x2dlabel-SPDATA.service")
        })
        .collect();
    if !others.is_empty() || failed.trim().is_empty() {
        guest.fail(&format!(
            "with a bad data partition only its fsck may fail, failed:\n{failed}"
        ));
    }

    let main_pid = svc["MainPID"].clone();
    let text = guest.show(unit, &["StatusText", "MainPID"]);
    assert!(
        text["StatusText"].starts_with("DEGRADED (data in RAM)"),
        "the daemon's status: {text:?}"
    );
    assert_eq!(text["MainPID"], main_pid, "the daemon restarted: {text:?}");
    let health = guest.get("/healthz").expect("/healthz answers");
    let reason = health["data"]["reason"].as_str().unwrap_or_default();
    assert!(
        health["data"]["degraded"] == true
            && reason.contains("/data is not usable")
            && reason.contains("/run/streampulse-ram"),
        "/healthz does not report degraded mode with its reason: {health}"
    );
    // The config was on /data: the box opens first-boot setup, on port 80
    // too, with the banner.
    for base in [guest.http.clone(), guest.http80.clone()] {
        let page = guest.page(&base, "/setup");
        let Some((200, body)) = page else {
            guest.fail(&format!("GET {base}/setup on the degraded box: {page:?}"));
        };
        assert!(
            body.contains("Degraded: the data partition is not usable"),
            "no degraded banner on /setup:\n{body}"
        );
    }
    eprintln!(
        "qemu: degraded boot: system {state}, failed: {}; /healthz data.reason: {reason}",
        failed.trim()
    );
    let log = guest.sh("journalctl -b --no-pager -o cat -u streampulse.service");
    assert!(
        log.contains("DEGRADED: data directory /data is not usable"),
        "the daemon's journal (in RAM) on the degraded box:\n{log}"
    );
    running_after
}
