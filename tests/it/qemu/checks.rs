//! What the boot test asserts inside a running guest, one function per
//! concern: the sandbox, the network, the grown data partition, the
//! watchdog's restart, and how the box is found on the LAN.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::guest::Guest;
use super::{CARD_EXTRA, WATCHDOG};

pub(super) fn history_len(v: &Value) -> usize {
    v["heartbeats"].as_array().map_or(0, Vec::len)
}

/// `Key:` line of a `/proc/<pid>/status`, whitespace-normalised.
pub(super) fn proc_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: in /proc/<pid>/status:\n{status}"))
        .trim()
}

/// The daemon runs as its own user with the unit's sandbox applied, on a
/// read-only root with `/data` mounted.
pub(super) fn assert_sandboxed(guest: &mut Guest, pid: &str) {
    let status = guest.sh(&format!("cat /proc/{pid}/status"));
    for key in ["Uid", "Gid"] {
        let ids: Vec<&str> = proc_field(&status, key).split_whitespace().collect();
        assert!(
            ids.iter().all(|id| *id == "990"),
            "streampulse runs with {key} {ids:?}, not the streampulse user (990): User=/Group= not applied\n{status}"
        );
    }
    assert_eq!(
        proc_field(&status, "NoNewPrivs"),
        "1",
        "NoNewPrivileges= not applied:\n{status}"
    );
    assert_eq!(
        proc_field(&status, "Seccomp"),
        "2",
        "no seccomp filter (SystemCallFilter=) on the daemon:\n{status}"
    );
    for key in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(
            proc_field(&status, key),
            "0000000000000000",
            "{key}: the daemon has capabilities (CapabilityBoundingSet= is empty):\n{status}"
        );
    }
    let root_opts = guest.sh("findmnt -no OPTIONS /");
    assert!(
        root_opts.split(',').any(|o| o == "ro"),
        "root is not mounted read-only: {root_opts}"
    );
    let data = guest.sh("findmnt -no FSTYPE,OPTIONS /data");
    assert!(
        data.starts_with("ext4 ") && data.contains("rw,") && data.contains("noexec"),
        "/data is not the card's ext4 data partition (fstab): {data:?}"
    );
    let boot = guest.sh("findmnt -no FSTYPE /boot");
    assert_eq!(boot, "vfat", "/boot is not the card's FAT partition");
    // Read-only once the daemon is up: streampulse.service remounts it
    // read-write only around the start (the import), then read-only again
    // (ExecStartPost). The later boots' imports (password reset, factory
    // reset) prove the read-write window works.
    let boot_opts = guest.sh("findmnt -no OPTIONS /boot");
    assert!(
        boot_opts.split(',').any(|o| o == "ro"),
        "/boot is still read-write with the daemon running: {boot_opts}"
    );
    // Inside the daemon's mount namespace: /var is read-only
    // (ProtectSystem=strict; outside it is a writable tmpfs). Its devices:
    // camera.rs (the unit's device filter).
    guest.sh("touch /var/.sp-write-test && rm /var/.sp-write-test");
    for (cmd, what) in [
        (
            "touch /var/.sp-write-test",
            "write to /var (ProtectSystem=strict)",
        ),
        (
            "touch /boot/.sp-write-test",
            "write to the boot partition after its start (ExecStartPost remount)",
        ),
    ] {
        let (rc, out) = guest.sh_timeout(
            &format!("nsenter -t {pid} -m -- {cmd}"),
            Duration::from_secs(30),
        );
        assert_ne!(rc, 0, "the daemon's namespace can {what}: {out}");
    }
}

/// networkd configured the wired link with the card's static address on
/// QEMU's user network;
/// resolved and timesyncd run.
pub(super) fn assert_network(guest: &mut Guest) {
    let addrs = guest.sh("ip -4 -o addr show scope global");
    assert!(
        addrs.contains("inet 10.0.2.15/24"),
        "no 10.0.2.15/24 on the wired link (the card's static address, networkd): {addrs}"
    );
    let routes = guest.sh("ip -4 route show default");
    assert!(
        routes.contains("default via 10.0.2.2"),
        "no default route via QEMU's gateway: {routes}"
    );
    for unit in ["systemd-networkd", "systemd-resolved", "systemd-timesyncd"] {
        let s = guest.show(unit, &["ActiveState", "SubState"]);
        if (s["ActiveState"].as_str(), s["SubState"].as_str()) != ("active", "running") {
            guest.fail(&format!(
                "{unit} does not run (enabled by systemd's presets on the card): {s:?}"
            ));
        }
    }
}

/// grow-data grew the data partition to the end of the disk and systemd-growfs
/// (x-systemd.growfs) its filesystem: much larger than in the image.
pub(super) fn assert_data_grown(guest: &mut Guest, data_in_image: u64) {
    let s = guest.show("streampulse-grow-data.service", &["ActiveState", "Result"]);
    let log = guest.sh("journalctl -b --no-pager -o cat -u streampulse-grow-data.service");
    assert_eq!(
        (s["ActiveState"].as_str(), s["Result"].as_str()),
        ("active", "success"),
        "streampulse-grow-data.service:\n{log}"
    );
    assert!(
        log.contains("grow-data: growing"),
        "grow-data did not grow on first boot:\n{log}"
    );
    let part = guest.sh("basename $(findmnt -no SOURCE /data)");
    let disk = guest.sh(&format!(
        "basename $(readlink -f /sys/class/block/{part}/..)"
    ));
    let sectors = |g: &mut Guest, f: String| -> u64 {
        g.sh(&format!("cat {f}")).parse().expect("a sector count")
    };
    let start = sectors(guest, format!("/sys/class/block/{part}/start"));
    let size = sectors(guest, format!("/sys/class/block/{part}/size"));
    let disk_size = sectors(guest, format!("/sys/class/block/{disk}/size"));
    assert_eq!(
        start + size,
        disk_size,
        "the data partition {part} does not end at the end of {disk}"
    );
    let fs_bytes: u64 = guest
        .sh("df -B1 --output=size /data | tail -n 1")
        .trim()
        .parse()
        .unwrap();
    assert!(
        fs_bytes > data_in_image + CARD_EXTRA * 3 / 4,
        "/data's filesystem was not grown (x-systemd.growfs): {fs_bytes} bytes, image had {data_in_image}"
    );
    let growfs = guest.show("systemd-growfs@data.service", &["Result"]);
    assert_eq!(growfs["Result"], "success", "systemd-growfs@data.service");
}

/// `kill -STOP` the daemon: its watchdog pings stop, systemd kills it after
/// `WatchdogSec=` and restarts it; the web port answers again.
pub(super) fn assert_watchdog_restarts(guest: &mut Guest, admin_pw: &str) {
    let unit = "streampulse.service";
    let before = guest.show(unit, &["MainPID", "NRestarts", "WatchdogUSec"]);
    assert_eq!(
        before["WatchdogUSec"], "1min",
        "streampulse.service's WatchdogSec= changed: update WATCHDOG"
    );
    let pid = before["MainPID"].clone();
    guest.sh(&format!("kill -STOP {pid}"));
    let stopped = Instant::now();
    let deadline = stopped + WATCHDOG + Duration::from_secs(150);
    let after = loop {
        let s = guest.show(unit, &["ActiveState", "SubState", "MainPID", "NRestarts"]);
        if s["MainPID"] != pid
            && s["MainPID"] != "0"
            && s["ActiveState"] == "active"
            && s["SubState"] == "running"
        {
            break s;
        }
        if Instant::now() > deadline {
            guest.fail(&format!(
                "a SIGSTOPped daemon was not restarted within WatchdogSec + 150 s: {s:?}"
            ));
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let took = stopped.elapsed();
    let restarts = |s: &BTreeMap<String, String>| s["NRestarts"].parse::<u32>().unwrap();
    assert_eq!(
        restarts(&after),
        restarts(&before) + 1,
        "{before:?} → {after:?}"
    );
    // The daemon pings every WatchdogSec/2: the last ping before the stop
    // was at most that long ago.
    assert!(
        took >= WATCHDOG / 2,
        "restarted after {took:?}, before the watchdog could have fired"
    );
    let log = guest.sh(&format!("journalctl -b --no-pager -o cat -u {unit}"));
    assert!(
        log.contains("Watchdog timeout"),
        "the restart was not the watchdog's:\n{log}"
    );
    guest.login(admin_pw);
    guest.wait_json("/api/status", "an ok heartbeat after the restart", |v| {
        v["Porch"]["status"] == "ok"
    });
    eprintln!(
        "qemu: watchdog: SIGSTOP → killed and running again (pid {pid} → {}) after {:.0} s, web port answers",
        after["MainPID"],
        took.as_secs_f64()
    );
}

/// Finding the box and its settings from the card: the unique default
/// hostname (`streampulse-` + the last 4 hex digits of the wired MAC, no
/// serial number on QEMU's virt board), the address on the console, the GUI
/// on port 80, the static address from the boot `config.yaml` applied by
/// `streampulse-network.service` (not DHCP), and the journal on `/data`.
pub(super) fn assert_findable(guest: &mut Guest) {
    // The wired interface under udev's predictable name (enp0s2 here); the
    // Wi-Fi radios (wifi.rs) are hardware Ethernet-type links too.
    let iface = guest.sh(
        "for i in /sys/class/net/*; do [ -e $i/device ] && [ ! -e $i/phy80211 ] && [ $(cat $i/type) = 1 ] && basename $i; done | head -n 1",
    );
    let iface = iface.trim().to_owned();
    let mac = guest.sh(&format!("cat /sys/class/net/{iface}/address"));
    let hex: String = mac.trim().chars().filter(char::is_ascii_hexdigit).collect();
    let want = format!("streampulse-{}", &hex[hex.len() - 4..]);
    assert_eq!(guest.sh("hostname").trim(), want, "unique default hostname");
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = format!("http://{want}.local");
    while !guest.console_text().contains(&line) {
        if Instant::now() > deadline {
            guest.fail(&format!("no {line:?} on the serial console (console-url)"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let http80 = guest.http80.clone();
    assert_eq!(
        guest.status_of(&http80, "/healthz"),
        Some(200),
        "the GUI on the guest's port 80"
    );
    let net = guest.sh(&format!("networkctl status {iface} --no-pager || true"));
    assert!(
        net.contains("10-streampulse-ethernet.network"),
        "the static address from the boot config.yaml is not what networkd applied:\n{net}"
    );
    let leases = guest.sh("ls /run/systemd/netif/leases/ 2>/dev/null | wc -l");
    assert_eq!(leases.trim(), "0", "a static address takes no DHCP lease");
    let journal = guest.sh("findmnt -n -o SOURCE /var/log/journal || true");
    assert!(
        journal.contains("/log/journal"),
        "the journal is not on /data: {journal:?}"
    );
}
