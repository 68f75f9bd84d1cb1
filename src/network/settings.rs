//! The `network:` section: [`RawNetwork`] mirrors the file, [`NetworkConfig`]
//! is the validated result. Every error points at the key's line.
//!
//! ```yaml
//! network:
//!   hostname: camera-monitor
//!   wifi: { ssid: Home, psk: "…", country: GB }
//!   ethernet: { address: 192.168.1.50/24, gateway: 192.168.1.1, dns: [192.168.1.1] }
//! ```
//! Static addresses are IPv4 (what camera LANs use); DNS servers may be
//! IPv4 or IPv6. No I/O here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// `network:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// The box's name (one DNS label). Default: `streampulse-<serial or MAC>`.
    pub hostname: Option<Spanned<String>>,
    /// Wired interfaces. Absent: DHCP with IPv4 link-local fallback.
    pub ethernet: Option<Spanned<RawLink>>,
    /// The Wi-Fi network to join. Absent: Wi-Fi stays off.
    pub wifi: Option<Spanned<RawWifi>>,
}

/// A static address as written; all absent means DHCP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    /// `192.168.1.50/24`.
    pub address: Option<Spanned<String>>,
    pub gateway: Option<Spanned<String>>,
    pub dns: Option<Vec<Spanned<String>>>,
}

/// `network.wifi:` as written (the keys of [`RawLink`] too: serde cannot
/// flatten with `deny_unknown_fields`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWifi {
    pub ssid: Option<Spanned<String>>,
    /// WPA2 passphrase (8..63 printable ASCII) or the 64-hex-digit key.
    /// Absent: an open network. A secret (see [`crate::redact::is_secret_key`]).
    pub psk: Option<Spanned<String>>,
    /// ISO 3166 alpha-2 country: which channels and powers are legal.
    pub country: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub gateway: Option<Spanned<String>>,
    pub dns: Option<Vec<Spanned<String>>>,
}

/// Validated network settings. `Default` is "nothing configured".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Lowercase DNS label; None: the unique default name.
    pub hostname: Option<String>,
    /// None: the image's own wired config (overlay 20-wired.network, DHCP).
    pub ethernet: Option<Addressing>,
    pub wifi: Option<Wifi>,
}

/// How an interface gets its IPv4 address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// DHCP, with IPv4 link-local when no server answers.
    Dhcp,
    Static(StaticIpv4),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticIpv4 {
    pub address: Ipv4Addr,
    /// 1..=30.
    pub prefix: u8,
    /// In the address's subnet.
    pub gateway: Option<Ipv4Addr>,
    /// At most [`MAX_DNS`].
    pub dns: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wifi {
    /// 1..=32 bytes, any content (written as hex).
    pub ssid: String,
    /// None: an open network.
    pub psk: Option<Psk>,
    /// Uppercase ISO 3166 alpha-2.
    pub country: String,
    pub addressing: Addressing,
}

/// The Wi-Fi key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum Psk {
    /// 8..=63 printable ASCII characters.
    Passphrase(String),
    /// 64 hex digits (lowercase): the derived key itself.
    Hex(String),
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(***)")
    }
}

/// DNS servers per interface (what resolv.conf and most DHCP servers give).
pub const MAX_DNS: usize = 3;

/// A validation error and where it points.
#[derive(Debug)]
pub struct Invalid {
    pub at: Location,
    pub message: String,
}

impl NetworkConfig {
    /// Validates `network:`.
    pub fn from_raw(raw: &Spanned<RawNetwork>) -> Result<NetworkConfig, Invalid> {
        let r = &raw.value;
        let hostname = match &r.hostname {
            None => None,
            Some(h) => Some(
                check_hostname(&h.value)
                    .map_err(|m| bad(h.referenced, format!("network.hostname: {m}")))?,
            ),
        };
        let ethernet = match &r.ethernet {
            None => None,
            Some(e) => Some(addressing(
                "network.ethernet",
                &e.value.address,
                &e.value.gateway,
                &e.value.dns,
            )?),
        };
        let wifi = match &r.wifi {
            None => None,
            Some(w) => Some(wifi(w)?),
        };
        Ok(NetworkConfig {
            hostname,
            ethernet,
            wifi,
        })
    }
}

impl fmt::Display for Addressing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addressing::Dhcp => f.write_str("DHCP"),
            Addressing::Static(s) => {
                write!(f, "{}/{}", s.address, s.prefix)?;
                if let Some(g) = s.gateway {
                    write!(f, " via {g}")?;
                }
                Ok(())
            }
        }
    }
}

/// One line for `check-config`: what the box will do (never the key).
impl fmt::Display for NetworkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.hostname.as_deref().unwrap_or("(default)");
        write!(f, "hostname {name}, ethernet ")?;
        match &self.ethernet {
            None => f.write_str("DHCP")?,
            Some(a) => write!(f, "{a}")?,
        }
        match &self.wifi {
            None => f.write_str(", Wi-Fi off"),
            Some(w) => {
                let security = if w.psk.is_some() { "WPA-PSK" } else { "open" };
                write!(
                    f,
                    ", Wi-Fi {:?} ({security}, {}) {}",
                    w.ssid, w.country, w.addressing
                )
            }
        }
    }
}

fn bad(at: Location, message: String) -> Invalid {
    Invalid { at, message }
}

fn wifi(w: &Spanned<RawWifi>) -> Result<Wifi, Invalid> {
    let r = &w.value;
    let ssid = r
        .ssid
        .as_ref()
        .ok_or_else(|| bad(w.referenced, "network.wifi.ssid: missing".into()))?;
    if ssid.value.is_empty() || ssid.value.len() > 32 {
        return Err(bad(
            ssid.referenced,
            format!(
                "network.wifi.ssid: must be 1 to 32 bytes (got {})",
                ssid.value.len()
            ),
        ));
    }
    let psk = match &r.psk {
        None => None,
        Some(p) => Some(check_psk(&p.value).map_err(|m| bad(p.referenced, m))?),
    };
    let country = r.country.as_ref().ok_or_else(|| {
        bad(
            w.referenced,
            "network.wifi.country: missing (the ISO 3166 code of where the box is, such as GB \
             or DE: it decides which channels the radio may use)"
                .into(),
        )
    })?;
    let code = country.value.trim().to_ascii_uppercase();
    if !is_country(&code) {
        return Err(bad(
            country.referenced,
            format!(
                "network.wifi.country: {:?} is not an ISO 3166 alpha-2 country code (such as GB, \
                 DE, US)",
                country.value
            ),
        ));
    }
    let addressing = addressing("network.wifi", &r.address, &r.gateway, &r.dns)?;
    Ok(Wifi {
        ssid: ssid.value.clone(),
        psk,
        country: code,
        addressing,
    })
}

/// The error never repeats the key: config errors reach logs and pages.
fn check_psk(psk: &str) -> Result<Psk, String> {
    if psk.len() == 64 && psk.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Psk::Hex(psk.to_ascii_lowercase()));
    }
    if !psk.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(
            "network.wifi.psk: may hold only printable ASCII characters (letters, digits, \
             punctuation, spaces)"
                .into(),
        );
    }
    if !(8..=63).contains(&psk.len()) {
        return Err(format!(
            "network.wifi.psk: a WPA passphrase has 8 to 63 characters (got {}), or the key \
             is 64 hex digits",
            psk.len()
        ));
    }
    Ok(Psk::Passphrase(psk.to_owned()))
}

/// DHCP when none of the keys is set, else a validated static address.
fn addressing(
    key: &str,
    address: &Option<Spanned<String>>,
    gateway: &Option<Spanned<String>>,
    dns: &Option<Vec<Spanned<String>>>,
) -> Result<Addressing, Invalid> {
    let Some(address) = address else {
        if let Some(g) = gateway {
            let m = format!("{key}.gateway: only with a static address (DHCP gives the gateway)");
            return Err(bad(g.referenced, m));
        }
        if let Some(d) = dns.iter().flatten().next() {
            let m = format!("{key}.dns: only with a static address (DHCP gives the DNS servers)");
            return Err(bad(d.referenced, m));
        }
        return Ok(Addressing::Dhcp);
    };
    let (ip, prefix) = parse_cidr(&address.value)
        .map_err(|m| bad(address.referenced, format!("{key}.address: {m}")))?;
    let mask = u32::MAX << (32 - u32::from(prefix));
    let host = u32::from(ip) & !mask;
    if host == 0 || host == !mask {
        return Err(bad(
            address.referenced,
            format!(
                "{key}.address: {ip} is the network or broadcast address of /{prefix}; choose \
                 a host address"
            ),
        ));
    }
    let gateway = match gateway {
        None => None,
        Some(g) => {
            let gw: Ipv4Addr = g.value.trim().parse().map_err(|_| {
                bad(
                    g.referenced,
                    format!(
                        "{key}.gateway: {:?} is not an IPv4 address such as 192.168.1.1",
                        g.value
                    ),
                )
            })?;
            if u32::from(gw) & mask != u32::from(ip) & mask || gw == ip {
                return Err(bad(
                    g.referenced,
                    format!("{key}.gateway: {gw} is not another address in {ip}/{prefix}'s subnet"),
                ));
            }
            Some(gw)
        }
    };
    let mut servers = Vec::new();
    for (i, d) in dns.iter().flatten().enumerate() {
        if i >= MAX_DNS {
            let m = format!("{key}.dns: at most {MAX_DNS} servers");
            return Err(bad(d.referenced, m));
        }
        let s: IpAddr = d.value.trim().parse().map_err(|_| {
            bad(
                d.referenced,
                format!("{key}.dns[{i}]: {:?} is not an IP address", d.value),
            )
        })?;
        servers.push(s);
    }
    Ok(Addressing::Static(StaticIpv4 {
        address: ip,
        prefix,
        gateway,
        dns: servers,
    }))
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let form = || format!("{s:?} is not an IPv4 address with its prefix, such as 192.168.1.50/24");
    let (ip, prefix) = s.trim().split_once('/').ok_or_else(form)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| form())?;
    let prefix: u8 = prefix.parse().map_err(|_| form())?;
    if !(1..=30).contains(&prefix) {
        return Err(format!("prefix /{prefix} must be between /1 and /30"));
    }
    Ok((ip, prefix))
}

/// One DNS label, lowercase: what mDNS announces as `<name>.local` (the
/// same rule as overlay/usr/libexec/streampulse/set-hostname).
fn check_hostname(name: &str) -> Result<String, String> {
    let n = name.trim().to_ascii_lowercase();
    let ok = (1..=63).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-');
    if !ok {
        return Err(format!(
            "{name:?} is not a hostname: 1 to 63 letters, digits and '-', not starting or \
             ending with '-' (no dots: the box is <hostname>.local)"
        ));
    }
    Ok(n)
}

/// ISO 3166-1 alpha-2, the officially assigned codes (what the kernel's
/// regulatory database knows).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI \
BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ \
GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN \
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS \
MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT \
PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF \
TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM \
ZW";

fn is_country(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split_ascii_whitespace().any(|c| c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_list_is_the_249_codes() {
        let all: Vec<&str> = COUNTRIES.split_ascii_whitespace().collect();
        assert_eq!(all.len(), 249);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert!(is_country("GB") && is_country("US") && !is_country("UK") && !is_country("G"));
    }

    #[test]
    fn psk_forms() {
        assert_eq!(
            check_psk("12345678"),
            Ok(Psk::Passphrase("12345678".into()))
        );
        let hex = "AB".repeat(32);
        assert_eq!(check_psk(&hex), Ok(Psk::Hex("ab".repeat(32))));
        for bad in ["1234567", &"x".repeat(64), "pässwörter", "tab\there!"] {
            let e = check_psk(bad).unwrap_err();
            assert!(!e.contains(bad), "{e}");
        }
    }

    #[test]
    fn cidr_and_hostname() {
        assert_eq!(
            parse_cidr("10.0.2.15/24"),
            Ok(("10.0.2.15".parse().unwrap(), 24))
        );
        assert!(parse_cidr("10.0.2.15").is_err());
        assert!(parse_cidr("10.0.2.15/31").is_err());
        assert!(parse_cidr("10.0.2/24").is_err());
        assert_eq!(check_hostname("Camera-Hall"), Ok("camera-hall".into()));
        for bad in ["", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
    }

    /// `config.yaml` with `network:` starting on line 2.
    fn parse(network: &str) -> Result<NetworkConfig, crate::config::Error> {
        crate::config::parse(&format!("streams: []\nnetwork:\n{network}"), "c.yaml")
            .map(|c| c.network)
    }

    #[track_caller]
    fn fails_at(network: &str, line: u64, want: &str) {
        let e = parse(network).unwrap_err();
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.message.contains(want), "{e}");
    }

    #[test]
    fn errors_name_the_line_of_the_key() {
        let wifi = "  wifi:\n    ssid: Home\n";
        fails_at(
            &format!("{wifi}    psk: short12\n    country: GB\n"),
            5,
            "8 to 63",
        );
        fails_at(
            &format!("{wifi}    psk: \"12345678\"\n    country: XX\n"),
            6,
            "ISO 3166",
        );
        // A missing key: the block, from its first line.
        fails_at(
            &format!("{wifi}    psk: \"12345678\"\n"),
            4,
            "country: missing",
        );
        fails_at("  hostname: bad.name\n", 3, "not a hostname");
        fails_at("  ethernet:\n    address: 10.0.0.5\n", 4, "with its prefix");
        fails_at(
            "  ethernet:\n    address: 10.0.0.5/24\n    gateway: 10.0.1.1\n",
            5,
            "not another address in 10.0.0.5/24",
        );
        fails_at(
            "  ethernet:\n    address: 10.0.0.0/24\n",
            4,
            "network or broadcast",
        );
        fails_at(
            "  ethernet:\n    address: 10.0.0.5/24\n    dns: [10.0.0.1, nope]\n",
            5,
            "dns[1]",
        );
        fails_at(
            "  ethernet:\n    gateway: 10.0.0.1\n",
            4,
            "only with a static address",
        );
        fails_at("  ethernet:\n    adress: 10.0.0.5/24\n", 4, "adress");
        fails_at("  wlan: {}\n", 3, "wlan");
    }

    #[test]
    fn a_bad_passphrase_is_never_quoted() {
        for psk in ["s3cr\u{e9}tpassphrase", "seven77"] {
            let text = format!("  wifi: {{ ssid: Home, country: GB, psk: \"{psk}\" }}\n");
            let e = parse(&text).unwrap_err().to_string();
            assert!(!e.contains(psk) && e.contains("network.wifi.psk"), "{e}");
        }
    }

    #[test]
    fn a_full_section() {
        let n = parse(
            "  hostname: Hall\n  ethernet: { address: 192.168.1.50/24, gateway: 192.168.1.1, \
             dns: [192.168.1.1] }\n  wifi: { ssid: Home, psk: \"12345678\", country: gb }\n",
        )
        .unwrap();
        assert_eq!(n.hostname.as_deref(), Some("hall"));
        assert_eq!(
            n.ethernet,
            Some(Addressing::Static(StaticIpv4 {
                address: Ipv4Addr::new(192, 168, 1, 50),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
                dns: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))],
            }))
        );
        let w = n.wifi.unwrap();
        assert_eq!((w.ssid.as_str(), w.country.as_str()), ("Home", "GB"));
        assert_eq!(w.addressing, Addressing::Dhcp);
        assert!(!format!("{:?}", w.psk).contains("12345678"));
        assert_eq!(parse("  {}\n").unwrap(), NetworkConfig::default());
    }
}
