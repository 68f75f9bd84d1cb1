//! The files that carry [`NetworkConfig`] to systemd-networkd,
//! wpa_supplicant and the hostname script. Pure: [`files`] returns their
//! contents, [`super::apply`] writes them.
//!
//! The `.network` files sort before the image's `20-wired.network`, so
//! networkd uses them instead; without `network.ethernet` that file applies
//! (DHCP). The supplicant's file is always written (with no network block
//! when Wi-Fi is not configured), so `wpa_supplicant@wlan0` starts idle
//! instead of failing on a missing file.

use std::fmt::Write as _;

use super::settings::{Addressing, NetworkConfig, Psk, Wifi};

/// Which tree a file lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// `/run` (tmpfs: rewritten at every boot).
    Run,
    /// `/data` (persistent).
    Data,
}

/// networkd's runtime directory, under [`Root::Run`].
pub const ETHERNET: &str = "systemd/network/10-streampulse-ethernet.network";
pub const WIFI: &str = "systemd/network/10-streampulse-wifi.network";
/// Under [`Root::Run`]; `/etc/wpa_supplicant/wpa_supplicant-wlan0.conf`
/// links here (the root is read-only).
pub const WPA: &str = "streampulse/wpa_supplicant-wlan0.conf";
/// Under [`Root::Data`]; read by overlay/usr/libexec/streampulse/set-hostname.
pub const HOSTNAME: &str = "system/hostname";

/// One file as it should be; `contents: None` means it should not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub root: Root,
    pub path: &'static str,
    pub contents: Option<String>,
    pub mode: u32,
}

const HEADER: &str = "# Written by `streampulse network apply` from the network: section of\n\
                      # /data/config.yaml, at boot and on every change: edit that file, not this one.\n";

/// Every file the settings decide, present or absent.
pub fn files(n: &NetworkConfig) -> Vec<File> {
    let run = |path, contents, mode| File {
        root: Root::Run,
        path,
        contents,
        mode,
    };
    vec![
        run(
            ETHERNET,
            n.ethernet.as_ref().map(|a| network("Type=ether", a)),
            0o644,
        ),
        run(
            WIFI,
            n.wifi
                .as_ref()
                .map(|w| network("Name=wlan0", &w.addressing)),
            0o644,
        ),
        // The passphrase is in here: root only.
        run(WPA, Some(wpa_supplicant(n.wifi.as_ref())), 0o600),
        File {
            root: Root::Data,
            path: HOSTNAME,
            contents: n.hostname.as_ref().map(|h| format!("{h}\n")),
            mode: 0o644,
        },
    ]
}

/// A `.network` file with the same mDNS and DHCP choices as the image's
/// 20-wired.network.
fn network(matching: &str, a: &Addressing) -> String {
    let mut s = format!("{HEADER}[Match]\n{matching}\n\n[Network]\n");
    match a {
        Addressing::Dhcp => {
            // IPv4 link-local only when DHCP gives nothing (see 20-wired.network).
            s.push_str("DHCP=yes\nMulticastDNS=yes\nLinkLocalAddressing=yes\n\n");
            s.push_str("[DHCPv4]\nClientIdentifier=mac\nUseHostname=no\n");
        }
        Addressing::Static(st) => {
            let _ = writeln!(s, "Address={}/{}", st.address, st.prefix);
            if let Some(g) = st.gateway {
                let _ = writeln!(s, "Gateway={g}");
            }
            for d in &st.dns {
                let _ = writeln!(s, "DNS={d}");
            }
            // With no DHCP, networkd would start IPv4LL at once and give the
            // link a second, 169.254 address: keep IPv6 link-local only.
            s.push_str("MulticastDNS=yes\nLinkLocalAddressing=ipv6\n");
        }
    }
    s
}

/// wpa_supplicant's config for wlan0. The SSID is written as hex, so quotes,
/// `#` and non-ASCII need no escaping; a passphrase is printable ASCII and
/// wpa_supplicant reads a quoted value up to the line's last `"`.
fn wpa_supplicant(w: Option<&Wifi>) -> String {
    let mut s = format!("{HEADER}ctrl_interface=/run/wpa_supplicant\nupdate_config=0\n");
    let Some(w) = w else {
        return s;
    };
    let ssid: String = w.ssid.bytes().map(|b| format!("{b:02x}")).collect();
    let _ = write!(
        s,
        "country={}\n\nnetwork={{\n\tssid={ssid}\n\t# Hidden networks too.\n\tscan_ssid=1\n",
        w.country
    );
    match &w.psk {
        None => s.push_str("\tkey_mgmt=NONE\n"),
        Some(Psk::Passphrase(p)) => {
            let _ = writeln!(s, "\tkey_mgmt=WPA-PSK\n\tpsk=\"{p}\"");
        }
        Some(Psk::Hex(k)) => {
            let _ = writeln!(s, "\tkey_mgmt=WPA-PSK\n\tpsk={k}");
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::settings::StaticIpv4;

    fn contents(n: &NetworkConfig, path: &str) -> Option<String> {
        files(n)
            .into_iter()
            .find(|f| f.path == path)
            .unwrap()
            .contents
    }

    fn wifi(ssid: &str, psk: Option<Psk>, addressing: Addressing) -> Wifi {
        Wifi {
            ssid: ssid.into(),
            psk,
            country: "GB".into(),
            addressing,
        }
    }

    #[test]
    fn nothing_configured_leaves_the_image_defaults() {
        let n = NetworkConfig::default();
        assert_eq!(contents(&n, ETHERNET), None);
        assert_eq!(contents(&n, WIFI), None);
        assert_eq!(contents(&n, HOSTNAME), None);
        assert_eq!(
            contents(&n, WPA).unwrap(),
            format!("{HEADER}ctrl_interface=/run/wpa_supplicant\nupdate_config=0\n")
        );
    }

    #[test]
    fn dhcp_ethernet_matches_the_image_choices() {
        let n = NetworkConfig {
            ethernet: Some(Addressing::Dhcp),
            hostname: Some("hall".into()),
            ..Default::default()
        };
        assert_eq!(
            contents(&n, ETHERNET).unwrap(),
            format!(
                "{HEADER}[Match]\nType=ether\n\n[Network]\nDHCP=yes\nMulticastDNS=yes\n\
                 LinkLocalAddressing=yes\n\n[DHCPv4]\nClientIdentifier=mac\nUseHostname=no\n"
            )
        );
        assert_eq!(contents(&n, HOSTNAME).unwrap(), "hall\n");
    }

    #[test]
    fn static_wifi_and_hex_ssid() {
        let st = StaticIpv4 {
            address: "192.168.1.50".parse().unwrap(),
            prefix: 24,
            gateway: Some("192.168.1.1".parse().unwrap()),
            dns: vec![
                "192.168.1.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ],
        };
        let n = NetworkConfig {
            wifi: Some(wifi(
                "Caf\u{e9} \"Nord\" #2",
                Some(Psk::Passphrase("a \"quoted\" #pass".into())),
                Addressing::Static(st),
            )),
            ..Default::default()
        };
        assert_eq!(
            contents(&n, WIFI).unwrap(),
            format!(
                "{HEADER}[Match]\nName=wlan0\n\n[Network]\nAddress=192.168.1.50/24\n\
                 Gateway=192.168.1.1\nDNS=192.168.1.1\nDNS=2001:db8::1\nMulticastDNS=yes\n\
                 LinkLocalAddressing=ipv6\n"
            )
        );
        // "Café \"Nord\" #2" in UTF-8, as hex.
        assert_eq!(
            contents(&n, WPA).unwrap(),
            format!(
                "{HEADER}ctrl_interface=/run/wpa_supplicant\nupdate_config=0\ncountry=GB\n\n\
                 network={{\n\tssid=436166c3a920224e6f726422202332\n\t# Hidden networks too.\n\
                 \tscan_ssid=1\n\tkey_mgmt=WPA-PSK\n\tpsk=\"a \"quoted\" #pass\"\n}}\n"
            )
        );
    }

    #[test]
    fn the_key_is_only_in_the_0600_file() {
        for psk in [
            Psk::Passphrase("s3cret-passphrase".into()),
            Psk::Hex("ab".repeat(32)),
        ] {
            let key = match &psk {
                Psk::Passphrase(p) | Psk::Hex(p) => p.clone(),
            };
            let n = NetworkConfig {
                hostname: Some("hall".into()),
                ethernet: Some(Addressing::Dhcp),
                wifi: Some(wifi("Home", Some(psk), Addressing::Dhcp)),
            };
            for f in files(&n) {
                let has = f.contents.as_deref().unwrap_or("").contains(&key);
                assert_eq!(has, f.path == WPA, "{}", f.path);
                assert_eq!(f.mode == 0o600, f.path == WPA, "{}", f.path);
            }
        }
    }

    #[test]
    fn open_network() {
        let n = NetworkConfig {
            wifi: Some(wifi("Cafe", None, Addressing::Dhcp)),
            ..Default::default()
        };
        let wpa = contents(&n, WPA).unwrap();
        assert!(
            wpa.contains("\tkey_mgmt=NONE\n") && !wpa.contains("psk"),
            "{wpa}"
        );
    }
}
