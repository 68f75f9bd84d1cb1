//! The appliance booted under `qemu-system-aarch64 -M virt` (TCG), offline,
//! with real systemd.
//!
//! Run by `make qemu-test` (scripts/qemu-boot-test.sh), which builds the
//! static aarch64 binary and a kit from Debian's arm64 packages (the kernel;
//! an initramfs that loads the virtio/ext4/vfat and Wi-Fi modules, with the
//! regulatory database cfg80211 reads as it loads, and switches to the
//! card's root; a minimal Debian userland with systemd, networkd, resolved,
//! timesyncd, udev, e2fsprogs, dosfstools and wireless-regdb, given what
//! Buildroot does at build time by `scripts/qemu/rootfs-customize`: the
//! `streampulse` user (990), an empty machine-id, systemd's presets, `/var`
//! as a tmpfs filled from a factory copy) and sets `STREAMPULSE_QEMU_KIT` and
//! `STREAMPULSE_AARCH64_BIN`. Ignored in a plain `cargo test`: it needs that
//! kit and takes a few minutes.
//!
//! The image is assembled with the appliance's real genimage layout
//! (`buildroot/board/common/genimage-mbr.cfg.in`): a FAT partition holding a
//! `config.yaml` and U-Boot's `boot.scr` (scripts/qemu/boot.cmd), two
//! read-only root slots A and B (the same image at first) with that
//! userland, our static binary at
//! `/usr/bin/streampulse` and `overlay/` copied unmodified (fstab, the units,
//! grow-data, networkd/resolved/timesyncd/journald settings, tmpfiles), and an
//! empty data partition; the disk is made larger than the image, as a card is.
//!
//! Test scaffolding that the product image does not have: a root command
//! agent (`scripts/qemu/sp-test-agent`, started by `sp-test-agent.service`)
//! on a virtio-serial port, through which the test runs `systemctl show`,
//! reads `/proc/<pid>/status`, `findmnt`, `journalctl`, sends `kill -STOP`
//! and powers off with `systemctl poweroff`; the Wi-Fi access point's side
//! (wifi.rs: hostapd, and `scripts/qemu/sp-mdns-query`, a python3 mDNS
//! querier). Everything else is the card's.
//!
//! Every boot runs Debian's U-Boot for QEMU (`u-boot-qemu`, `-bios`), whose
//! boot script picks the root slot with RAUC's boot counting and loads the
//! kernel and initramfs from that slot (docs/UPDATES.md). Asserted on the
//! first boot: U-Boot's script booted slot A (`root=/dev/vda2
//! rauc.slot=A`, `rauc status`), and the health gate marked it good once the
//! daemon wrote its health file (the boot counter read back with
//! `fw_printenv`: `BOOT_A_LEFT=3`). Between the second and the third boot,
//! `update.rs` installs signed bundles (see there).
//!
//! Asserted, under systemd: `streampulse.service` reaches active/running
//! (`Type=notify`: READY arrived) with the daemon's status text; its main
//! process runs as `streampulse` (990) with the sandbox applied (no new
//! privileges, a seccomp filter, no capabilities); root is mounted read-only
//! and `/data` read-write; grow-data and `x-systemd.growfs` grew the data
//! partition and its filesystem to the end of the disk; networkd got
//! the card's static 10.0.2.15 on QEMU's user network and the GUI answers through the
//! port forward; resolved and timesyncd run; the boot `config.yaml` is
//! imported (and renamed, password-free); `/api/status` reports a real
//! heartbeat from an RTSP camera served on the host (reached through QEMU's
//! gateway 10.0.2.2), and a second camera that refuses (nothing listens on
//! the host's port 9) fails as the camera's failure, not `box_offline`, with
//! `/healthz` saying the box is online (the daemon reads its links over
//! netlink in its sandbox); a `SIGSTOP`ped daemon is killed by systemd's
//! watchdog and restarted; no unit failed. Finding the box: the hostname is
//! the unique default (`streampulse-` + the MAC's last 4 hex digits), the
//! address is on
//! the serial console, the GUI answers on port 80 too, the static address
//! from the boot `config.yaml` (`network.ethernet`) is what networkd applied
//! (no DHCP lease), and the journal is on `/data`. After a clean power-off, a
//! `config.yaml` holding only `admin_password:` is dropped on the card: on the
//! second boot the history from the first is still there, the new password
//! logs in, nothing is re-grown, and the previous boot's journal is readable.
//! A `factory-reset` file on the card makes the third boot open `/setup`.
//!
//! The box's own camera (`camera.rs`): the initramfs loads the kernel's
//! `vivid` driver, a V4L2 webcam at `/dev/video0`; the card's config watches
//! it (`v4l2:///dev/video0`). Asserted on the first boot: the unit's device
//! filter lets the daemon open the camera and nothing else (not even as
//! root in its cgroup: the disk, `/dev/mem`), the stream is up, its live
//! MJPEG plays through the port forward, and vivid's simulated unplug takes
//! it down with reason `capture` until the device is back.
//!
//! The card goes bad (`degraded.rs`): the data partition's metadata after
//! its superblock is overwritten on the host, and the fourth boot must not
//! stop in emergency mode. Asserted: systemd-fsck gives up (exit 4, preen
//! mode), `/data` is not mounted, the boot finishes (`is-system-running`
//! `degraded`, emergency and rescue inactive, the fsck the only failed unit),
//! `streampulse.service` runs with `STATUS=` `DEGRADED (data in RAM)`,
//! `/healthz` reports `data.degraded` with the reason, `/setup` answers on
//! ports 8000 and 80 with the degraded banner, and the journal (in RAM) has
//! the daemon's `DEGRADED:` line.
//!
//! Wi-Fi (`wifi.rs`): the initramfs loads `mac80211_hwsim` (two simulated
//! radios); the test moves the second into a network namespace and runs
//! hostapd there (WPA2-PSK). The card's `network.wifi` (static address) must
//! bring the box's wlan0 onto that network through the image's own path:
//! the supplicant reaches COMPLETED, wlan0 has the address, the box pings the
//! access point and the access point's side gets the GUI over the radio
//! link; the card's `country` (GB) is the kernel's regulatory domain (`iw
//! reg get`: the supplicant's `country=` took effect, which needs
//! `regulatory.db`); from the access point's namespace, mDNS questions over
//! the radio link (multicast to 224.0.0.251:5353) get `<hostname>.local` →
//! the box's Wi-Fi address and the `_http._tcp` service of
//! `streampulse.dnssd` (PTR, SRV port 80 on `<hostname>.local`, TXT
//! `path=/`), every answer sent from the box's wlan0 address; the key is
//! only in 0600 files and not in the journal, nor in the
//! boot partition's `config.yaml.applied`. The second boot joins again from
//! `/data/config.yaml`.

mod camera; // the box's own camera: vivid's V4L2 webcam, the unit's device filter, unplug
mod checks; // what is asserted inside a running guest: sandbox, network, growth, watchdog, findability
mod degraded; // the fourth boot: a damaged data partition, degraded mode under systemd
mod guest; // one QEMU guest: boot, agent commands, GUI through the port forwards, power-off
mod rootfs; // the guest's root filesystem as Buildroot would assemble it
mod update; // signed A/B updates with RAUC: install, boot the new slot, roll back a broken one
mod wifi; // the box's Wi-Fi against hostapd on a second mac80211_hwsim radio

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::image::{self, fat_ls, fat_read, fat_write, partitions};
use super::util::{temp_dir, RtspServer, PASSWORD, USER};
use checks::{
    assert_data_grown, assert_findable, assert_network, assert_sandboxed, assert_watchdog_restarts,
    history_len,
};
use guest::Guest;
use rootfs::rootfs;
use wifi::{
    assert_mdns, assert_psk_kept_secret, assert_regdomain, assert_wifi_connected, assert_wifi_link,
    start_ap,
};

/// Bounds for one boot: TCG on a busy 2-core CI machine is slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// How much larger the "card" is than the image.
const CARD_EXTRA: u64 = 256 << 20;
/// The test card's boot partition, MiB (a board's is 64): room for an update bundle.
const BOOT_MIB: u32 = 256;
/// streampulse.service's `WatchdogSec=` (overlay/, checked below).
const WATCHDOG: Duration = Duration::from_secs(60);

fn env_path(var: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: run `make qemu-test`"));
    assert!(p.exists(), "{var}={} does not exist", p.display());
    p
}

#[test]
#[ignore = "needs the QEMU kit and the aarch64 binary: run `make qemu-test`"]
fn qemu_boot_imports_config_probes_and_keeps_history_across_reboot() {
    let test_started = Instant::now();
    let kit = env_path("STREAMPULSE_QEMU_KIT");
    let bin = env_path("STREAMPULSE_AARCH64_BIN");
    let cam = RtspServer::start();
    let dir = temp_dir("qemu");
    let url = format!("rtsp://10.0.2.2:{}/digest", cam.port);
    // The box is set up from the card: a pre-hashed admin password (argon2,
    // made here) comes with the streams.
    let admin_pw = "qemu-test-admin-password";
    let hash = streampulse::credentials::hash_password(admin_pw).unwrap();
    // A static address on QEMU's user network (what a camera LAN without
    // DHCP needs), applied before networkd starts; and the test's Wi-Fi
    // network (wifi.rs). "Gone": a camera that refuses (nothing listens on
    // the host's port 9).
    let config = format!(
        "admin_password_hash: '{hash}'\nheartbeat_seconds: 5\nstreams:\n- name: Porch\n  url: {url}\n  username: {USER}\n  password: {PASSWORD}\n  timeout: 5\n\
         - name: Gone\n  url: rtsp://10.0.2.2:9/nothing\n  timeout: 5\n{}\
         network:\n  ethernet:\n    address: 10.0.2.15/24\n    gateway: 10.0.2.2\n    dns: [10.0.2.3]\n{}",
        camera::camera_config(),
        wifi::wifi_config()
    );
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, &config).unwrap();
    // The update CA this card trusts: made for this run, thrown away after.
    let keys = update::make_keys(dir.path(), "rauc-keys");
    let root = rootfs(dir.path(), &kit, &bin, &keys.join("ca.cert.pem"));
    // U-Boot's boot script (A/B slot choice with RAUC's boot counting).
    let boot_scr = dir.path().join("boot.scr");
    image::run(
        std::process::Command::new("mkimage")
            .args([
                "-A",
                "arm64",
                "-T",
                "script",
                "-C",
                "none",
                "-n",
                "StreamPulse A/B",
            ])
            .arg("-d")
            .arg(super::util::manifest_dir().join("scripts/qemu/boot.cmd"))
            .arg(&boot_scr),
    );
    // The boot partition is larger than a board's: the update test drops a
    // bundle on it, and this Debian-based root makes ~85 MB bundles.
    let img = image::genimage_mbr_with(
        dir.path(),
        &[("config.yaml", &config_path), ("boot.scr", &boot_scr)],
        &root.img,
        Some(BOOT_MIB),
    );
    let (_, parts) = partitions(&img);
    assert_eq!(parts.len(), 4, "boot, root A, root B, data: {parts:?}");
    let fat = parts[0].start;
    let data_in_image = parts[3].size;
    // Flashed onto a card larger than the image.
    let card_len = {
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        let len = f.metadata().unwrap().len() + CARD_EXTRA;
        f.set_len(len).unwrap();
        len
    };
    eprintln!(
        "qemu: image assembled in {:.0} s",
        test_started.elapsed().as_secs_f64()
    );

    // First boot.
    let boot_started = Instant::now();
    let mut guest = Guest::boot(&img, dir.path());
    start_ap(&mut guest);
    let svc = guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    let running_after = boot_started.elapsed();
    assert_booted_a(&mut guest);
    guest.login(admin_pw);
    let status = guest.wait_json("/api/status", "a first ok heartbeat", |v| {
        v["Porch"]["status"] == "ok"
    });
    let unit = "streampulse.service";
    let t_ready = guest.journal_at(unit, "Started ");
    let t_listen = guest.journal_at(unit, "listening on http://");
    let t_up = guest.journal_at(unit, "→ up");
    let startup = guest.sh("systemd-analyze time || true");
    eprintln!(
        "qemu: under systemd, since the kernel started: web port bound at {:.1} s, READY (unit started) at {:.1} s, \
         first ok heartbeat at {:.1} s (boot to first heartbeat); the test saw the unit running {:.1} s after QEMU started\n\
         qemu: {startup}",
        t_listen.unwrap_or(f64::NAN),
        t_ready.unwrap_or(f64::NAN),
        t_up.unwrap_or(f64::NAN),
        running_after.as_secs_f64(),
    );
    assert!(t_up.is_some(), "no '→ up' line in the daemon's journal");
    let text = guest.show(unit, &["StatusText"]);
    assert!(
        text["StatusText"].contains("streams:"),
        "the daemon's STATUS= did not reach systemd: {text:?}"
    );
    assert_eq!(status["Porch"]["codec"], "h264", "{status}");
    // A camera that refuses is the camera's failure, not the box's: the
    // daemon sees its own addressed link (getifaddrs, over netlink, which
    // the unit's RestrictAddressFamilies= must allow).
    let gone = guest.wait_json("/api/status", "a probe of the refusing camera", |v| {
        v["Gone"]["probes_total"].as_u64().unwrap_or(0) >= 1
    });
    assert!(
        gone["Gone"]["status"] == "fail" && gone["Gone"]["reason"] != "box_offline",
        "a refusing camera, while the box is online: {}",
        gone["Gone"]
    );
    assert!(!status.to_string().contains(PASSWORD));

    assert_sandboxed(&mut guest, &svc["MainPID"]);
    camera::assert_device_policy(&mut guest, &svc["MainPID"]);
    camera::assert_box_camera(&mut guest);
    assert_network(&mut guest);
    assert_findable(&mut guest);
    assert_data_grown(&mut guest, data_in_image);
    let health = guest.get("/healthz").expect("/healthz answers");
    assert!(
        health["boot_config"]
            .as_str()
            .is_some_and(|s| s.starts_with("imported")),
        "{health}"
    );
    assert_eq!(health["network"]["online"], true, "{health}");
    assert_wifi_connected(&mut guest);
    let t_wifi = guest.journal_at("wpa_supplicant@wlan0.service", "CTRL-EVENT-CONNECTED");
    assert!(
        t_wifi.is_some(),
        "no CTRL-EVENT-CONNECTED from wpa_supplicant@wlan0 in the journal"
    );
    eprintln!(
        "qemu: Wi-Fi: wlan0 joined the test's WPA2-PSK network at {:.1} s (journal), address {}",
        t_wifi.unwrap_or(f64::NAN),
        wifi::BOX_ADDR
    );
    assert_wifi_link(&mut guest);
    assert_regdomain(&mut guest);
    assert_mdns(&mut guest);
    // After the import: the key is in /data/config.yaml by now.
    assert_psk_kept_secret(&mut guest);
    assert!(
        health["disk"]["total_bytes"].as_u64().unwrap() > data_in_image + CARD_EXTRA / 2,
        "the daemon does not see the grown /data: {health}"
    );
    guest.wait_json(
        "/api/streams/Porch/history?since=0&until=99999999999999",
        "three heartbeats",
        |v| history_len(v) >= 3,
    );
    let failed = guest.sh("systemctl --failed --no-legend --plain");
    if !failed.trim().is_empty() {
        guest.fail(&format!("failed units on the box: {failed}"));
    }
    let first_boot = boot_started.elapsed();
    guest.poweroff();

    // Read on the host: the boot partition imported, renamed, password-free;
    // the data partition ends at the end of the card.
    let names = fat_ls(&img, fat);
    assert!(!names.iter().any(|n| n == "config.yaml"), "{names:?}");
    let applied = fat_read(&img, fat, "config.yaml.applied").expect("config.yaml.applied");
    assert!(applied.contains("name: Porch"), "{applied}");
    assert!(
        !applied.contains(PASSWORD),
        "password left on FAT:\n{applied}"
    );
    assert!(!applied.contains(&hash), "hash left on FAT:\n{applied}");
    assert!(
        !applied.contains(wifi::PSK),
        "Wi-Fi key left on FAT:\n{applied}"
    );
    let (_, parts) = partitions(&img);
    assert_eq!(parts[3].start + parts[3].size, card_len, "{parts:?}");

    // Forgot the password: a config.yaml holding only the new one, dropped on
    // the card from a PC (no shell on the box).
    let new_pw = "a-new-password-from-the-card";
    fat_write(
        &img,
        fat,
        "config.yaml",
        &format!("admin_password: {new_pw}\n"),
        dir.path(),
    );

    // Second boot of the same card: history survived, the password reset.
    let rebooted = Instant::now();
    let mut guest = Guest::boot(&img, dir.path());
    start_ap(&mut guest);
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    // This time from /data/config.yaml (the card's file was imported).
    assert_wifi_connected(&mut guest);
    guest.login(new_pw);
    let h = guest.wait_json(
        "/api/streams/Porch/history?since=0&until=99999999999999",
        "history from the first boot",
        |v| history_len(v) >= 3,
    );
    let before_reboot = h["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| {
            let ts = b["ts_ms"].as_i64().unwrap_or(i64::MAX);
            // Guest clock = host clock (PL031 RTC); compare against the reboot.
            let reboot_ms =
                jiff::Timestamp::now().as_millisecond() - rebooted.elapsed().as_millis() as i64;
            ts < reboot_ms
        })
        .count();
    assert!(before_reboot >= 3, "history lost across reboot: {h}");
    let health = guest.get("/healthz").expect("/healthz answers");
    assert!(
        health["boot_config"]
            .as_str()
            .is_some_and(|s| s.starts_with("imported") && s.contains("new admin password")),
        "{health}"
    );
    let boots = guest.sh("journalctl --list-boots --no-pager | wc -l");
    assert!(
        boots.trim().parse::<u32>().unwrap_or(0) >= 2,
        "the journal on /data did not keep the first boot: {boots}"
    );
    let previous = guest.sh("journalctl -b -1 --no-pager -o cat -u streampulse.service");
    assert!(
        previous.contains("listening on http://"),
        "the daemon's log from the previous boot:\n{previous}"
    );
    let log = guest.sh("journalctl -b --no-pager -o cat -u streampulse-grow-data.service");
    assert!(
        log.contains("already ends at the end"),
        "grow-data on the second boot:\n{log}"
    );
    guest.wait_json("/api/status", "an ok heartbeat after reboot", |v| {
        v["Porch"]["status"] == "ok"
    });
    // Last: a killed daemon loses the heartbeats it had not flushed yet.
    assert_watchdog_restarts(&mut guest, new_pw);
    let second_boot = rebooted.elapsed();
    guest.poweroff();

    // Updates (update.rs): a signed bundle into slot B, a reboot into it, a
    // broken one rolled back, an untrusted one refused. The boots after this
    // run from slot B.
    let updates_started = Instant::now();
    let backup = update::run(dir.path(), &img, fat, &root, &keys, new_pw);
    let update_boots = updates_started.elapsed();

    // Factory reset from the card: the third boot opens first-boot setup.
    fat_write(&img, fat, "factory-reset", "", dir.path());
    let guest = Guest::boot(&img, dir.path());
    let mut guest = guest;
    // The Wi-Fi settings still apply until the daemon's reset, and this
    // time there is no access point: Wi-Fi out of range must not hold the
    // boot (wait-online --any: the wired link is enough).
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    let wait_online = guest.show(
        "systemd-networkd-wait-online.service",
        &["Result", "ActiveState"],
    );
    let wlan = guest.sh("cat /sys/class/net/wlan0/operstate");
    assert!(
        wait_online["Result"] == "success" && wlan.trim() != "up",
        "network-online with Wi-Fi out of range: wait-online {wait_online:?}, wlan0 {wlan}"
    );
    let http = guest.http.clone();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    while guest.status_of(&http, "/setup") != Some(200) {
        if Instant::now() > deadline {
            guest.fail("/setup did not open after the factory reset");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let health = guest.get("/healthz").expect("/healthz answers");
    assert!(
        health["boot_config"]
            .as_str()
            .is_some_and(|s| s.starts_with("factory reset")),
        "{health}"
    );
    guest.poweroff();
    let names = fat_ls(&img, fat);
    assert!(
        names.iter().any(|n| n == "factory-reset.done")
            && !names.iter().any(|n| n == "factory-reset"),
        "{names:?}"
    );

    // The reset box (no password, no history) gets the backup made before
    // the reset as restore.spbackup on its boot partition: history and
    // password come back.
    image::fat_copy(&img, fat, "restore.spbackup", &backup.file);
    let restored_at = Instant::now();
    let mut guest = Guest::boot(&img, dir.path());
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    guest.login(new_pw);
    let restored = update::heartbeats_before(&mut guest, backup.made_ms);
    assert!(
        restored >= backup.heartbeats,
        "restored {restored} of the backup's {} heartbeats",
        backup.heartbeats
    );
    let restore_boot = restored_at.elapsed();
    guest.poweroff();
    let names = fat_ls(&img, fat);
    assert!(
        !names.iter().any(|n| n.starts_with("restore.spbackup")),
        "the backup is still on the boot partition: {names:?}"
    );
    eprintln!(
        "qemu: backup restored from the boot partition on the reset card: {restored} heartbeats from before the backup, box up again {:.0} s after power-on",
        restore_boot.as_secs_f64()
    );

    // The card goes bad: its data partition damaged (degraded.rs). The box
    // boots without /data and the daemon runs from RAM, saying so.
    let (_, parts) = partitions(&img);
    degraded::damage_data_partition(&img, &parts[3]);
    let booted = Instant::now();
    let mut guest = Guest::boot(&img, dir.path());
    let running_after = degraded::assert_degraded_boot(&mut guest, booted);
    let degraded_boot = booted.elapsed();
    guest.poweroff();
    eprintln!(
        "qemu: first boot (with checks) {:.0} s, second boot (with the watchdog) {:.0} s, \
         update boots {:.0} s, degraded boot {:.0} s (daemon running after {:.0} s), test total {:.0} s",
        first_boot.as_secs_f64(),
        second_boot.as_secs_f64(),
        update_boots.as_secs_f64(),
        degraded_boot.as_secs_f64(),
        running_after.as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );
}

/// The card's first boot went through U-Boot's A/B script into slot A, and
/// the health gate marked it good once the daemon reported healthy.
fn assert_booted_a(guest: &mut Guest) {
    let console = guest.console_text();
    assert!(
        console.contains("Found valid slot A") && console.contains("U-Boot 20"),
        "not booted by U-Boot's A/B script:\n{console}"
    );
    let cmdline = guest.sh("cat /proc/cmdline");
    assert!(
        cmdline.contains("root=/dev/vda2") && cmdline.contains("rauc.slot=A"),
        "{cmdline}"
    );
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let log = guest.sh("journalctl -b --no-pager -o cat -u streampulse-mark-good.service");
        if log.contains("marked good") {
            break;
        }
        if Instant::now() > deadline {
            guest.fail(&format!("the health gate did not mark slot A good:\n{log}"));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let counter = guest.sh("fw_printenv BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT");
    assert_eq!(
        counter.lines().collect::<Vec<_>>(),
        ["BOOT_ORDER=A B", "BOOT_A_LEFT=3", "BOOT_B_LEFT=3"],
        "the boot counter after mark-good"
    );
    let st = guest.sh("rauc status");
    assert!(st.contains("Booted from: rootfs.0 (A)"), "{st}");
}
