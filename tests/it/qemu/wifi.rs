//! Wi-Fi for real inside the guest. The kit's initramfs loads
//! `mac80211_hwsim`, which gives two simulated radios that hear each other:
//! the box keeps wlan0, run by the image's own path (the card's
//! `network.wifi` → `streampulse network apply` → `wpa_supplicant@wlan0` and
//! networkd's `10-streampulse-wifi.network`), and the test moves wlan1's
//! radio into a network namespace `ap` where hostapd serves a WPA2-PSK
//! network. The two ends are in different namespaces, so their traffic can
//! only cross the simulated radio link.
//!
//! Test side only (through the agent): the namespace, hostapd, the access
//! point's static address and its mDNS questions (`sp-mdns-query`). Nothing
//! of the box's is touched.

use std::time::{Duration, Instant};

use super::guest::Guest;
use super::BOOT_TIMEOUT;

/// With a space: the supplicant's file carries the SSID in hex.
pub(super) const SSID: &str = "StreamPulse QEMU";
/// Unique enough to grep for in every file and the journal.
pub(super) const PSK: &str = "qemu-wifi-psk-5f3a9c1e";
/// `network.wifi.country`: not the world domain's "00", so that `iw reg get`
/// shows whether the supplicant's `country=` took effect.
const COUNTRY: &str = "GB";
/// The box's static Wi-Fi address (`network.wifi.address`, /24).
pub(super) const BOX_ADDR: &str = "192.168.77.2";
/// The access point's, set by the test in its namespace.
const AP_ADDR: &str = "192.168.77.1";
/// Test-only files (hostapd's config holds the key: made under umask 077).
/// Also where `hostapd_cli` binds its reply socket (`-s`; its default, /tmp,
/// is on the read-only root); `wpa_cli` uses /run for the same reason.
const AP_DIR: &str = "/run/sp-test-ap";

/// The `network:` lines of the card's config.yaml for the test's network.
pub(super) fn wifi_config() -> String {
    format!(
        "  wifi:\n    ssid: \"{SSID}\"\n    psk: \"{PSK}\"\n    country: {COUNTRY}\n    address: {BOX_ADDR}/24\n"
    )
}

/// Starts the access point as soon as the agent answers, so the box's
/// supplicant finds it when it starts scanning.
pub(super) fn start_ap(guest: &mut Guest) {
    guest.sh_timeout("true", BOOT_TIMEOUT);
    // hwsim names its radios in order (phy0/wlan0, phy1/wlan1), but the
    // phy's number is read, not assumed.
    let (rc, phy) = guest.sh_timeout(
        "cat /sys/class/net/wlan0/phy80211/name && cat /sys/class/net/wlan1/phy80211/name",
        Duration::from_secs(30),
    );
    if rc != 0 {
        guest.fail(&format!(
            "no mac80211_hwsim radios wlan0 and wlan1 in the guest: {phy}"
        ));
    }
    let ap_phy = phy.lines().nth(1).unwrap_or_default().trim().to_owned();
    guest.sh(&format!(
        "ip netns add ap && iw phy {ap_phy} set netns name ap"
    ));
    // hw_mode=g channel 1: usable in the world regulatory domain (before the
    // box's supplicant sets network.wifi.country) and in GB.
    let conf = [
        "interface=wlan1",
        "driver=nl80211",
        &format!("ctrl_interface={AP_DIR}/ctrl"),
        &format!("ssid={SSID}"),
        "hw_mode=g",
        "channel=1",
        "wpa=2",
        "wpa_key_mgmt=WPA-PSK",
        "rsn_pairwise=CCMP",
        &format!("wpa_passphrase={PSK}"),
    ]
    .map(|l| format!("'{l}'"))
    .join(" ");
    guest.sh(&format!(
        "umask 077 && mkdir -p {AP_DIR} && printf '%s\\n' {conf} >{AP_DIR}/hostapd.conf"
    ));
    let ns = "ip netns exec ap";
    guest.sh(&format!(
        "{ns} ip link set lo up && {ns} ip addr add {AP_ADDR}/24 dev wlan1"
    ));
    let (rc, out) = guest.sh_timeout(
        &format!(
            "umask 077 && {ns} hostapd -B -P {AP_DIR}/hostapd.pid -f {AP_DIR}/hostapd.log {AP_DIR}/hostapd.conf \
             && {ns} hostapd_cli -s {AP_DIR} -p {AP_DIR}/ctrl -i wlan1 status; cat {AP_DIR}/hostapd.log"
        ),
        Duration::from_secs(60),
    );
    if rc != 0 || !out.contains("state=ENABLED") {
        guest.fail(&format!(
            "hostapd on wlan1 (namespace ap) did not start:\n{out}"
        ));
    }
}

/// Polls `cmd` until its output contains `want`; fails after `timeout`.
fn wait_for(guest: &mut Guest, cmd: &str, want: &str, timeout: Duration, what: &str) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, out) = guest.sh_timeout(cmd, Duration::from_secs(30));
        if out.contains(want) {
            return out;
        }
        if Instant::now() > deadline {
            guest.fail(&format!("{what}: no {want:?} in `{cmd}`:\n{out}"));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The box's supplicant joined the test's network and networkd gave wlan0
/// the card's static address.
pub(super) fn assert_wifi_connected(guest: &mut Guest) {
    let status = wait_for(
        guest,
        "wpa_cli -s /run -p /run/wpa_supplicant -i wlan0 status",
        "wpa_state=COMPLETED",
        Duration::from_secs(120),
        "wpa_supplicant@wlan0 did not join the test's access point",
    );
    assert!(
        status.contains(&format!("\nssid={SSID}\n")) && status.contains("key_mgmt=WPA2-PSK"),
        "joined, but not the test's WPA2-PSK network:\n{status}"
    );
    wait_for(
        guest,
        "ip -4 -o addr show dev wlan0",
        &format!("inet {BOX_ADDR}/24"),
        Duration::from_secs(60),
        "wlan0 did not get the static address of network.wifi",
    );
    let net = guest.sh("networkctl status wlan0 --no-pager || true");
    assert!(
        net.contains("10-streampulse-wifi.network"),
        "wlan0 is not configured by the file `network apply` wrote:\n{net}"
    );
}

/// Across the radio link, both ways: the box pings the access point, and
/// the access point's side gets the GUI from the box's Wi-Fi address.
pub(super) fn assert_wifi_link(guest: &mut Guest) {
    let ping = guest.sh(&format!("ping -c 3 -W 5 -I wlan0 {AP_ADDR}"));
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    // bash's /dev/tcp: the image has no HTTP client, and one is not worth
    // a package.
    let reply = guest.sh(&format!(
        "ip netns exec ap timeout 30 bash -c 'exec 3<>/dev/tcp/{BOX_ADDR}/80 && printf \"GET /healthz HTTP/1.0\\r\\nHost: {BOX_ADDR}\\r\\nConnection: close\\r\\n\\r\\n\" >&3 && cat <&3'"
    ));
    assert!(
        reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
        "GET /healthz from the access point's side over Wi-Fi:\n{reply}"
    );
}

/// The key is only in files no one else can read (0600: the supplicant's
/// file, the merged `/data/config.yaml`, the test's hostapd config) and
/// nowhere in the journal (any field of any boot).
pub(super) fn assert_psk_kept_secret(guest: &mut Guest) {
    let holders = guest.sh(&format!(
        "grep -rlsF -D skip -- '{PSK}' /run /data /boot /etc /var /tmp /dev/shm /root | sort -u | xargs -r stat -c '%a %U %n'"
    ));
    assert!(
        holders.contains("/run/streampulse/wpa_supplicant-wlan0.conf")
            && holders.contains("/data/config.yaml"),
        "the key is not where it must be (grep found nothing?):\n{holders}"
    );
    for line in holders.lines() {
        assert!(
            line.starts_with("600 "),
            "the Wi-Fi key is in a file others can read:\n{holders}"
        );
    }
    // The supplicant's file is root's, in a directory only root writes:
    // root's wpa_supplicant reads it, and a config it reads can name
    // libraries to load, so the daemon's user must not be able to change it.
    let owners =
        guest.sh("stat -c '%U %a %n' /run/streampulse /run/streampulse/wpa_supplicant-wlan0.conf");
    assert!(
        owners.lines().all(|l| l.starts_with("root "))
            && ["755", "750", "700"]
                .iter()
                .any(|m| owners.contains(&format!("root {m} /run/streampulse\n"))),
        "the supplicant's config must be root's alone:\n{owners}"
    );
    let in_journal = guest.sh(&format!(
        "journalctl --no-pager -o export | grep -caF -- '{PSK}' || true"
    ));
    assert_eq!(in_journal.trim(), "0", "the Wi-Fi key is in the journal");
}

/// The card's `network.wifi.country` is the kernel's regulatory domain once
/// the box joined: the supplicant's `country=` (written by `network apply`)
/// was accepted, which needs the image's `regulatory.db` (wireless-regdb;
/// here cfg80211 read the copy in the kit's initramfs, see
/// scripts/qemu-boot-test.sh). Without it cfg80211 refuses every country and
/// stays in the world domain ("country 00").
pub(super) fn assert_regdomain(guest: &mut Guest) {
    let files = guest.sh("ls -L /lib/firmware/regulatory.db /lib/firmware/regulatory.db.p7s");
    assert_eq!(
        files.lines().count(),
        2,
        "the image's regulatory.db:\n{files}"
    );
    let reg = wait_for(
        guest,
        "iw reg get",
        &format!("country {COUNTRY}:"),
        Duration::from_secs(30),
        "the card's network.wifi.country is not the regulatory domain",
    );
    // The first block is the global domain (per-phy blocks may follow).
    let global = reg.split("\n\n").next().unwrap_or_default();
    assert!(
        global.starts_with("global") && global.contains(&format!("country {COUNTRY}:")),
        "the global regulatory domain is not {COUNTRY}:\n{reg}"
    );
    let dmesg = guest.sh("dmesg | grep -i regulatory || true");
    assert!(
        !dmesg.contains("failed to load") && !dmesg.contains("invalid"),
        "cfg80211 and regulatory.db:\n{dmesg}"
    );
    eprintln!(
        "qemu: Wi-Fi: iw reg get: {}",
        global.lines().take(2).collect::<Vec<_>>().join(" / ")
    );
}

/// mDNS and DNS-SD over the radio link, asked from the access point's side
/// (its namespace's only link is the simulated radio) as a phone would:
/// `<hostname>.local` resolves to the box's Wi-Fi address, and the
/// `_http._tcp` service of `/etc/systemd/dnssd/streampulse.dnssd` is browsed
/// (PTR) and resolved (SRV: port 80 on `<hostname>.local`; TXT `path=/`).
/// Every answer must come from the box's wlan0 address: systemd-resolved on
/// wlan0 (MulticastDNS=yes in resolved.conf.d and in the
/// `10-streampulse-wifi.network` that `network apply` wrote).
pub(super) fn assert_mdns(guest: &mut Guest) {
    let host = guest.sh("hostname").trim().to_owned();
    let instance = format!("{host}._http._tcp.local");
    let asked = Instant::now();
    let (rc, out) = guest.sh_timeout(
        &format!(
            "ip netns exec ap /usr/libexec/sp-mdns-query {AP_ADDR} 30 A:{host}.local PTR:_http._tcp.local SRV:{instance} TXT:{instance}"
        ),
        Duration::from_secs(60),
    );
    if rc != 0 {
        let link = guest.sh("resolvectl mdns; resolvectl status wlan0 --no-pager || true");
        guest.fail(&format!(
            "mDNS over Wi-Fi from the access point's side: not answered (exit {rc}):\n{out}\n--- resolved:\n{link}"
        ));
    }
    let has = |line: &str| out.lines().any(|l| l == line);
    for want in [
        format!("{BOX_ADDR} A {host}.local {BOX_ADDR}"),
        format!("{BOX_ADDR} PTR _http._tcp.local {instance}"),
        format!("{BOX_ADDR} SRV {instance} 80 {host}.local"),
        format!("{BOX_ADDR} TXT {instance} path=/"),
    ] {
        assert!(has(&want), "mDNS over Wi-Fi: no {want:?} in:\n{out}");
    }
    assert!(
        out.lines().all(|l| l.starts_with(&format!("{BOX_ADDR} "))),
        "an mDNS answer over Wi-Fi that is not from the box's wlan0 address:\n{out}"
    );
    eprintln!(
        "qemu: Wi-Fi: mDNS from the access point's side answered in {:.1} s by {BOX_ADDR}:\n  {}",
        asked.elapsed().as_secs_f64(),
        out.replace('\n', "\n  ")
    );
}
