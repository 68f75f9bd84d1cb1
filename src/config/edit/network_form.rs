//! The network form of the settings (`/settings/network`): the box's name,
//! the Wi-Fi network to join and static addresses, written to the
//! `network:` section that `streampulse network apply` turns into networkd
//! and wpa_supplicant files (see [`crate::network`]).
//!
//! The Wi-Fi key is write-only like every other secret here: the form never
//! shows it, a blank field keeps the stored one unless the network name
//! changed (a key must not follow the box to another network), and
//! "remove" makes the network an open one. The checks are the config's own
//! ([`crate::network::NetworkConfig::from_raw`]), run on the new section
//! alone, and each error is put next to the field it names.

use super::{EditError, FieldErrors, Yaml};
use crate::config;

/// The network form. Empty strings mean "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkForm {
    pub hostname: String,
    /// Join a Wi-Fi network.
    pub wifi: bool,
    pub ssid: String,
    /// Write-only: empty keeps the stored key (same network name only).
    pub psk: String,
    pub clear_psk: bool,
    pub country: String,
    /// `192.168.1.50/24`; empty: DHCP.
    pub wifi_address: String,
    pub wifi_gateway: String,
    /// Comma- or space-separated.
    pub wifi_dns: String,
    pub ethernet_address: String,
    pub ethernet_gateway: String,
    pub ethernet_dns: String,
}

/// The form fields and the config keys they write, for error placement.
const FIELD_KEYS: [(&str, &str); 10] = [
    ("hostname", "network.hostname"),
    ("ssid", "network.wifi.ssid"),
    ("password", "network.wifi.psk"),
    ("country", "network.wifi.country"),
    ("wifi_address", "network.wifi.address"),
    ("wifi_gateway", "network.wifi.gateway"),
    ("wifi_dns", "network.wifi.dns"),
    ("ethernet_address", "network.ethernet.address"),
    ("ethernet_gateway", "network.ethernet.gateway"),
    ("ethernet_dns", "network.ethernet.dns"),
];

impl NetworkForm {
    /// The form pre-filled from the file's `network:` section (never the key).
    pub fn from_tree(tree: &Yaml) -> NetworkForm {
        let net = tree.get("network");
        let text = |section: Option<&Yaml>, k: &str| {
            section
                .and_then(|s| s.get(k))
                .and_then(Yaml::as_text)
                .unwrap_or_default()
        };
        let dns = |section: Option<&Yaml>| match section.and_then(|s| s.get("dns")) {
            Some(Yaml::Seq(v)) => v
                .iter()
                .filter_map(Yaml::as_text)
                .collect::<Vec<_>>()
                .join(", "),
            Some(other) => other.as_text().unwrap_or_default(),
            None => String::new(),
        };
        let wifi = net.and_then(|n| n.get("wifi"));
        let eth = net.and_then(|n| n.get("ethernet"));
        NetworkForm {
            hostname: text(net, "hostname"),
            wifi: wifi.is_some(),
            ssid: text(wifi, "ssid"),
            psk: String::new(),
            clear_psk: false,
            country: text(wifi, "country"),
            wifi_address: text(wifi, "address"),
            wifi_gateway: text(wifi, "gateway"),
            wifi_dns: dns(wifi),
            ethernet_address: text(eth, "address"),
            ethernet_gateway: text(eth, "gateway"),
            ethernet_dns: dns(eth),
        }
    }
}

/// Whether the file has a Wi-Fi key now.
pub fn has_wifi_key(tree: &Yaml) -> bool {
    stored_psk(tree).is_some_and(|k| !k.is_empty())
}

fn stored_psk(tree: &Yaml) -> Option<String> {
    tree.get("network")?.get("wifi")?.get("psk")?.as_text()
}

/// Replaces the `network:` section with the form's.
///
/// # Errors
/// Field errors (the config's own checks, each next to its field); nothing
/// is changed then.
pub fn apply_network(tree: &mut Yaml, f: &NetworkForm) -> Result<(), EditError> {
    let mut net = Yaml::Map(Vec::new());
    let set = |m: &mut Yaml, k: &str, v: &str| {
        let v = v.trim();
        if !v.is_empty() {
            m.set(k, Yaml::Str(v.to_owned()));
        }
    };
    let addressing = |m: &mut Yaml, address: &str, gateway: &str, dns: &str| {
        set(m, "address", address);
        set(m, "gateway", gateway);
        let servers: Vec<Yaml> = dns
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Yaml::Str(s.to_owned()))
            .collect();
        if !servers.is_empty() {
            m.set("dns", Yaml::Seq(servers));
        }
    };
    set(&mut net, "hostname", &f.hostname);
    let mut eth = Yaml::Map(Vec::new());
    addressing(
        &mut eth,
        &f.ethernet_address,
        &f.ethernet_gateway,
        &f.ethernet_dns,
    );
    if eth != Yaml::Map(Vec::new()) {
        net.set("ethernet", eth);
    }
    if f.wifi {
        let mut wifi = Yaml::Map(Vec::new());
        set(&mut wifi, "ssid", &f.ssid);
        let old_ssid = tree
            .get("network")
            .and_then(|n| n.get("wifi"))
            .and_then(|w| w.get("ssid"))
            .and_then(Yaml::as_text);
        let kept =
            stored_psk(tree).filter(|_| !f.clear_psk && old_ssid.as_deref() == Some(f.ssid.trim()));
        // The key is taken as typed (spaces may belong to a passphrase).
        match (f.psk.is_empty(), kept) {
            (false, _) => wifi.set("psk", Yaml::Str(f.psk.clone())),
            (true, Some(k)) => wifi.set("psk", Yaml::Str(k)),
            (true, None) => {}
        }
        set(&mut wifi, "country", &f.country.to_ascii_uppercase());
        addressing(&mut wifi, &f.wifi_address, &f.wifi_gateway, &f.wifi_dns);
        net.set("wifi", wifi);
    }
    check(&net)?;
    if net == Yaml::Map(Vec::new()) {
        tree.remove("network");
    } else {
        tree.set("network", net);
    }
    Ok(())
}

/// The config's checks on `network:` alone; the error goes to the field
/// whose key it names (the most specific key first).
fn check(net: &Yaml) -> Result<(), EditError> {
    let text = super::render_body(&Yaml::Map(vec![("network".into(), net.clone())]))
        .map_err(EditError::Invalid)?;
    let Err(e) = config::parse(&text, "network") else {
        return Ok(());
    };
    let field = FIELD_KEYS
        .iter()
        .filter(|(_, key)| e.message.starts_with(key))
        .max_by_key(|(_, key)| key.len())
        .map_or("hostname", |(field, _)| field);
    let mut errs = FieldErrors::default();
    errs.add(field, e.message);
    Err(EditError::Fields(errs))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{reparse, tree};
    use super::*;
    use crate::network::settings::Psk;
    use crate::network::Addressing;

    fn wifi_form() -> NetworkForm {
        NetworkForm {
            hostname: "porch-box".into(),
            wifi: true,
            ssid: "Home".into(),
            psk: "correct horse".into(),
            country: "gb".into(),
            ..NetworkForm::default()
        }
    }

    #[test]
    fn wifi_and_a_static_address_are_written_and_validated() {
        let mut t = tree("streams: []\n");
        let f = NetworkForm {
            ethernet_address: "192.168.1.50/24".into(),
            ethernet_gateway: "192.168.1.1".into(),
            ethernet_dns: "192.168.1.1, 1.1.1.1".into(),
            ..wifi_form()
        };
        apply_network(&mut t, &f).unwrap();
        let n = reparse(&t).network;
        assert_eq!(n.hostname.as_deref(), Some("porch-box"));
        let w = n.wifi.unwrap();
        assert_eq!((w.ssid.as_str(), w.country.as_str()), ("Home", "GB"));
        assert_eq!(w.psk, Some(Psk::Passphrase("correct horse".into())));
        assert_eq!(w.addressing, Addressing::Dhcp);
        match n.ethernet.unwrap() {
            Addressing::Static(s) => {
                assert_eq!(s.address.to_string(), "192.168.1.50");
                assert_eq!(s.dns.len(), 2);
            }
            Addressing::Dhcp => panic!("static address expected"),
        }
        // Read back: everything but the key.
        let back = NetworkForm::from_tree(&t);
        assert_eq!(back.psk, "");
        assert_eq!(back.ethernet_dns, "192.168.1.1, 1.1.1.1");
        assert!(back.wifi && has_wifi_key(&t));
    }

    #[test]
    fn a_blank_key_is_kept_for_the_same_network_only() {
        let mut t = tree("streams: []\n");
        apply_network(&mut t, &wifi_form()).unwrap();
        let blank = NetworkForm {
            psk: String::new(),
            ..wifi_form()
        };
        apply_network(&mut t, &blank).unwrap();
        assert!(reparse(&t).network.wifi.unwrap().psk.is_some(), "kept");
        let other = NetworkForm {
            ssid: "Neighbour".into(),
            ..blank.clone()
        };
        apply_network(&mut t, &other).unwrap();
        assert!(
            reparse(&t).network.wifi.unwrap().psk.is_none(),
            "a key must not follow the box to another network"
        );
        apply_network(&mut t, &wifi_form()).unwrap();
        let cleared = NetworkForm {
            clear_psk: true,
            ..blank
        };
        apply_network(&mut t, &cleared).unwrap();
        assert!(reparse(&t).network.wifi.unwrap().psk.is_none(), "removed");
    }

    #[test]
    fn errors_go_to_their_field_and_change_nothing() {
        let mut t = tree("streams: []\n");
        for (f, field) in [
            (
                NetworkForm {
                    psk: "short".into(),
                    ..wifi_form()
                },
                "password",
            ),
            (
                NetworkForm {
                    country: "XX".into(),
                    ..wifi_form()
                },
                "country",
            ),
            (
                NetworkForm {
                    ethernet_address: "192.168.1.50/24".into(),
                    ethernet_gateway: "10.0.0.1".into(),
                    ..NetworkForm::default()
                },
                "ethernet_gateway",
            ),
            (
                NetworkForm {
                    hostname: "not a name".into(),
                    ..NetworkForm::default()
                },
                "hostname",
            ),
        ] {
            match apply_network(&mut t, &f) {
                Err(EditError::Fields(e)) => {
                    assert!(e.get(field).is_some(), "{field}: {e:?}");
                    assert!(!format!("{e:?}").contains("short"), "the key is not echoed");
                }
                other => panic!("{field}: expected a field error, got {other:?}"),
            }
        }
        assert!(t.get("network").is_none(), "nothing written");
    }

    #[test]
    fn an_empty_form_removes_the_section() {
        let mut t = tree("streams: []\nnetwork:\n  hostname: old-name\n");
        apply_network(&mut t, &NetworkForm::default()).unwrap();
        assert!(t.get("network").is_none());
        assert_eq!(
            reparse(&t).network,
            crate::network::NetworkConfig::default()
        );
    }
}
