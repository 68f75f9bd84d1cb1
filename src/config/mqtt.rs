//! The `mqtt:` block of `config.yaml` as plain data: [`RawMqtt`] mirrors the
//! file (our keys and StreamPulse v2.2's), [`MqttConfig`] is the validated
//! result. Here, in config, so that parsing a file needs nothing of the
//! publisher; [`crate::mqtt`] reads these types (and derives its topic names
//! and the broker's log label from them).
//!
//! Canonical keys are ours (`transport`, `port`, `interval`, `tls_verify`,
//! ...). A v2.2 block works unchanged ([`V22_KEYS`]): `interval_seconds` is a
//! plain alias, `use_tls`/`use_websocket` choose the transport, `tls_port`/
//! `ws_port`/`tls_ws_port` give the port of that transport, `tls_insecure` is
//! the inverse of `tls_verify`, and `api_status_url` is accepted and ignored
//! (the publisher is inside the monitor now; it logs a note). Mixing
//! `transport` with `use_tls`/`use_websocket`, or `tls_verify` with
//! `tls_insecure`, is refused: one of the two would silently lose.
//!
//! No I/O here: TLS files are read when connecting, so `check-config` on a
//! laptop accepts an appliance's paths.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::{MAX_INTERVAL_SECS, MIN_INTERVAL_SECS};
use crate::redact::Credentials;

/// Default topic of the aggregate status (the seed's topic).
pub const DEFAULT_TOPIC: &str = "streampulse/status";
/// Default first level of the per-stream and availability topics.
pub const DEFAULT_PREFIX: &str = "streampulse";
/// Home Assistant's default discovery prefix.
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";
/// Default seconds between aggregate publications.
pub const DEFAULT_INTERVAL_SECS: u32 = 30;
/// Default HTTP path of the WebSocket endpoint (HiveMQ needs `/mqtt`;
/// Mosquitto accepts any path).
pub const DEFAULT_WS_PATH: &str = "/mqtt";

/// StreamPulse v2.2's keys of the `mqtt:` block: the last fields of
/// [`RawMqtt`] and `interval_seconds` (an alias of `interval`). The parser
/// accepts them; the web form's save ([`super::edit::apply_mqtt`]) replaces
/// them with the canonical keys.
pub const V22_KEYS: [&str; 8] = [
    "use_tls",
    "use_websocket",
    "ws_port",
    "tls_port",
    "tls_ws_port",
    "tls_insecure",
    "interval_seconds",
    "api_status_url",
];

/// How the client reaches the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttTransport {
    /// Plain MQTT over TCP (default port 1883).
    Tcp,
    /// MQTT over TLS (default port 8883).
    Tls,
    /// MQTT over WebSockets (default port 8000).
    Ws,
    /// MQTT over WebSockets over TLS (default port 8884).
    Wss,
}

impl MqttTransport {
    /// The usual port of this transport (HiveMQ's numbering for the WebSocket ones).
    pub fn default_port(self) -> u16 {
        match self {
            MqttTransport::Tcp => 1883,
            MqttTransport::Tls => 8883,
            MqttTransport::Ws => 8000,
            MqttTransport::Wss => 8884,
        }
    }

    /// `tcp`, `tls`, `ws` or `wss`.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttTransport::Tcp => "tcp",
            MqttTransport::Tls => "tls",
            MqttTransport::Ws => "ws",
            MqttTransport::Wss => "wss",
        }
    }

    /// True for `tls` and `wss`.
    pub fn is_tls(self) -> bool {
        matches!(self, MqttTransport::Tls | MqttTransport::Wss)
    }
}

/// The `mqtt:` block as written. Field docs give defaults; v2.2 keys are last.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// Default true: writing the block means "publish".
    pub enabled: Option<bool>,
    /// Broker host name or address (no scheme). Required when enabled.
    pub host: Option<String>,
    /// Broker port. Default: by transport (1883, 8883, 8000, 8884).
    pub port: Option<u16>,
    /// `tcp` (default), `tls`, `ws` or `wss`.
    pub transport: Option<MqttTransport>,
    /// WebSocket path. Default `/mqtt`.
    pub ws_path: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Default `streampulse-<device>-<random>` (random per start, so two boxes
    /// with the same name do not kick each other off the broker).
    pub client_id: Option<String>,
    /// PEM file with the CA(s) that signed the broker's certificate. Default:
    /// the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) and its key, for brokers that require them.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Default true. False accepts any broker certificate (logged as a warning).
    pub tls_verify: Option<bool>,
    /// Topic of the aggregate status JSON. Default `streampulse/status`.
    pub topic: Option<String>,
    /// First level of `<prefix>/<device>/<stream>/state` and
    /// `<prefix>/<device>/availability`. Default `streampulse`.
    pub prefix: Option<String>,
    /// Seconds between aggregate publications, at least 5. Default 30.
    #[serde(alias = "interval_seconds")]
    pub interval: Option<Spanned<u32>>,
    /// QoS of every publication: 0 (default), 1 or 2.
    pub qos: Option<Spanned<u8>>,
    /// Retain the aggregate status. Default false (per-stream states and
    /// availability are always retained).
    pub retain: Option<bool>,
    /// Publish Home Assistant MQTT discovery. Default false.
    pub discovery: Option<bool>,
    /// Default `homeassistant`.
    pub discovery_prefix: Option<String>,

    /// v2.2: port of the `ws` transport.
    pub ws_port: Option<u16>,
    /// v2.2: port of the `tls` transport.
    pub tls_port: Option<u16>,
    /// v2.2: port of the `wss` transport.
    pub tls_ws_port: Option<u16>,
    /// v2.2: with `use_websocket`, selects the transport.
    pub use_tls: Option<bool>,
    pub use_websocket: Option<bool>,
    /// v2.2: the inverse of `tls_verify`.
    pub tls_insecure: Option<bool>,
    /// v2.2: where its separate MQTT service read `/api/status`; meaningless now.
    pub api_status_url: Option<serde::de::IgnoredAny>,
}

/// TLS settings; files are read when connecting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Check the broker's certificate and name (default true).
    pub verify: bool,
}

/// A validated `mqtt:` block. Equality decides whether a reload reconnects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConfig {
    pub enabled: bool,
    /// Empty only when disabled.
    pub host: String,
    pub port: u16,
    pub transport: MqttTransport,
    /// Only used by `ws`/`wss`; starts with `/`.
    pub ws_path: String,
    /// `Debug` hides the password.
    pub credentials: Option<Credentials>,
    /// None: generated per start.
    pub client_id: Option<String>,
    pub tls: TlsFiles,
    pub topic: String,
    pub prefix: String,
    /// Slug of `device_name`: the second topic level and part of HA ids.
    pub device: String,
    /// `device_name` as written (HA device name).
    pub device_name: String,
    pub interval: Duration,
    /// 0, 1 or 2.
    pub qos: u8,
    /// Retain the aggregate status.
    pub retain: bool,
    pub discovery: bool,
    pub discovery_prefix: String,
    /// v2.2 keys accepted without meaning here; logged once at start.
    pub ignored_keys: Vec<&'static str>,
    /// The box's web GUI as a browser elsewhere reaches it, for Home
    /// Assistant's device page ([`browser_url`]); None when the box knows
    /// no such address. Set by [`crate::config::Config`]'s parser from
    /// `web:` and `network:`, not an `mqtt:` key.
    pub configuration_url: Option<String>,
}

/// A validation error and where it points.
#[derive(Debug)]
pub struct Invalid {
    pub at: Location,
    pub message: String,
}

impl MqttConfig {
    /// Validates the block at `block` (its location is used for errors that
    /// have no finer position). `device_name` is the top-level one.
    pub fn from_raw(raw: &Spanned<RawMqtt>, device_name: &str) -> Result<MqttConfig, Invalid> {
        let at = raw.referenced;
        let r = &raw.value;
        let bad = |message: String| Invalid { at, message };
        let enabled = r.enabled.unwrap_or(true);

        let host = r.host.as_deref().unwrap_or("").trim().to_owned();
        if enabled && host.is_empty() {
            return Err(bad(
                "mqtt.host: required when mqtt is enabled (or set enabled: false)".into(),
            ));
        }
        // Not quoted: a URL here may carry `user:password@`.
        if host.contains("://")
            || host.contains(['/', '@'])
            || host.chars().any(char::is_whitespace)
        {
            return Err(bad(
                "mqtt.host: should be a host name or address only; choose the protocol \
                 with transport: tcp|tls|ws|wss and give credentials as username/password"
                    .into(),
            ));
        }

        let legacy_transport = r.use_tls.is_some() || r.use_websocket.is_some();
        let transport =
            match (r.transport, legacy_transport) {
                (Some(_), true) => return Err(bad(
                    "mqtt: give either transport or the v2.2 keys use_tls/use_websocket, not both"
                        .into(),
                )),
                (Some(t), false) => t,
                (None, _) => match (r.use_tls.unwrap_or(false), r.use_websocket.unwrap_or(false)) {
                    (false, false) => MqttTransport::Tcp,
                    (true, false) => MqttTransport::Tls,
                    (false, true) => MqttTransport::Ws,
                    (true, true) => MqttTransport::Wss,
                },
            };
        // v2.2 kept one port per transport; the one of the chosen transport
        // wins. `port` is the TCP port in v2.2 and any transport's port in ours.
        let specific = match transport {
            MqttTransport::Tcp => None,
            MqttTransport::Tls => r.tls_port,
            MqttTransport::Ws => r.ws_port,
            MqttTransport::Wss => r.tls_ws_port,
        };
        let general = (transport == MqttTransport::Tcp || r.transport.is_some())
            .then_some(r.port)
            .flatten();
        let port = specific
            .or(general)
            .unwrap_or_else(|| transport.default_port());
        if port == 0 {
            return Err(bad("mqtt.port: must be between 1 and 65535".into()));
        }

        let ws_path = r.ws_path.clone().unwrap_or_else(|| DEFAULT_WS_PATH.into());
        if !ws_path.starts_with('/') || ws_path.chars().any(|c| c.is_whitespace()) {
            return Err(bad(format!(
                "mqtt.ws_path: {ws_path:?} must start with / and contain no spaces"
            )));
        }

        let credentials = match (&r.username, &r.password) {
            (None, None) => None,
            (Some(u), p) if !u.is_empty() => Some(Credentials {
                username: u.clone(),
                password: p.clone().unwrap_or_default(),
            }),
            (Some(_), None) => None,
            (_, Some(_)) => {
                return Err(bad("mqtt.password: given without a username".into()));
            }
        };
        let client_id = match r.client_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(id) if id.len() > 128 || id.contains(['+', '#', '/']) => {
                return Err(bad(format!(
                    "mqtt.client_id: {id:?} must be at most 128 bytes without + # /"
                )));
            }
            Some(id) => Some(id.to_owned()),
        };

        let verify = match (r.tls_verify, r.tls_insecure) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "mqtt: give either tls_verify or the v2.2 key tls_insecure, not both".into(),
                ))
            }
            (Some(v), None) => v,
            (None, insecure) => !insecure.unwrap_or(false),
        };
        let tls = TlsFiles {
            ca_file: r.ca_file.clone(),
            client_cert_file: r.client_cert_file.clone(),
            client_key_file: r.client_key_file.clone(),
            verify,
        };
        let has_files = tls.ca_file.is_some()
            || tls.client_cert_file.is_some()
            || tls.client_key_file.is_some();
        if has_files && !transport.is_tls() {
            return Err(bad(format!(
                "mqtt: ca_file/client_cert_file/client_key_file need transport tls or wss (transport is {})",
                transport.as_str()
            )));
        }
        if tls.client_cert_file.is_some() != tls.client_key_file.is_some() {
            return Err(bad(
                "mqtt: client_cert_file and client_key_file go together".into(),
            ));
        }

        let topic =
            check_topic("topic", r.topic.as_deref().unwrap_or(DEFAULT_TOPIC)).map_err(bad)?;
        let prefix =
            check_topic("prefix", r.prefix.as_deref().unwrap_or(DEFAULT_PREFIX)).map_err(bad)?;
        let discovery_prefix = check_topic(
            "discovery_prefix",
            r.discovery_prefix
                .as_deref()
                .unwrap_or(DEFAULT_DISCOVERY_PREFIX),
        )
        .map_err(bad)?;

        let interval_secs = match &r.interval {
            None => DEFAULT_INTERVAL_SECS,
            Some(s) if s.value < MIN_INTERVAL_SECS => {
                return Err(Invalid {
                    at: s.referenced,
                    message: format!(
                        "mqtt.interval: must be at least {MIN_INTERVAL_SECS} seconds (got {}); \
                         a broker does not need the status more often",
                        s.value
                    ),
                })
            }
            Some(s) if s.value > MAX_INTERVAL_SECS => {
                return Err(Invalid {
                    at: s.referenced,
                    message: format!(
                        "mqtt.interval: must be at most {MAX_INTERVAL_SECS} seconds (got {})",
                        s.value
                    ),
                })
            }
            Some(s) => s.value,
        };
        let qos = match &r.qos {
            None => 0,
            Some(q) if q.value > 2 => {
                return Err(Invalid {
                    at: q.referenced,
                    message: format!("mqtt.qos: must be 0, 1 or 2 (got {})", q.value),
                })
            }
            Some(q) => q.value,
        };

        let mut ignored_keys = Vec::new();
        if r.api_status_url.is_some() {
            ignored_keys.push("api_status_url");
        }
        Ok(MqttConfig {
            enabled,
            host,
            port,
            transport,
            ws_path,
            credentials,
            client_id,
            tls,
            topic,
            prefix,
            device: slug(device_name, "streampulse"),
            device_name: device_name.to_owned(),
            interval: Duration::from_secs(interval_secs.into()),
            qos,
            retain: r.retain.unwrap_or(false),
            discovery: r.discovery.unwrap_or(false),
            discovery_prefix,
            ignored_keys,
            configuration_url: None,
        })
    }
}

/// The web GUI's address for a browser on another machine, or None when the
/// box does not know one: a name the owner gave (`web.allowed_hosts`'
/// first, else `network.hostname` + `.local`, the appliance's mDNS name),
/// on the first listen port that is not loopback-only (port 80 → no port in
/// the URL). Listen addresses (`0.0.0.0`, a LAN address seen from inside)
/// are not used as the host: a wildcard is no address, and a DHCP lease
/// changes.
pub fn browser_url(
    listen: &[String],
    allowed_hosts: &[String],
    hostname: Option<&str>,
) -> Option<String> {
    let host = match (allowed_hosts.first(), hostname) {
        (Some(h), _) => h.clone(),
        (None, Some(h)) => format!("{h}.local"),
        (None, None) => return None,
    };
    let ports: Vec<u16> = listen
        .iter()
        .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.port())
        .collect();
    let port = if ports.contains(&80) {
        80
    } else {
        *ports.first()?
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(if port == 80 {
        format!("http://{host}/")
    } else {
        format!("http://{host}:{port}/")
    })
}

/// Lower-case ASCII letters and digits, everything else one `-`; `fallback`
/// if nothing is left (a name written only in, say, Japanese). The device's
/// slug is part of every topic; [`crate::mqtt::topics`] slugs stream names too.
pub fn slug(s: &str, fallback: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        fallback.to_owned()
    } else {
        out
    }
}

/// Checks a topic (or topic prefix) we publish to: no wildcards, no empty
/// levels at the ends. Returns it without surrounding slashes.
fn check_topic(key: &str, t: &str) -> Result<String, String> {
    let t = t.trim().trim_end_matches('/');
    if t.is_empty() || t.starts_with('/') {
        return Err(format!(
            "mqtt.{key}: must not be empty or start with / (got {t:?})"
        ));
    }
    if t.contains(['+', '#', '\0']) {
        return Err(format!(
            "mqtt.{key}: {t:?} must not contain the wildcards + or #"
        ));
    }
    if t.len() > 200 {
        return Err(format!("mqtt.{key}: at most 200 bytes"));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Config, Error};

    use super::*;

    fn mqtt(block: &str) -> MqttConfig {
        let c: Config = parse(&format!("mqtt:\n{block}"), "config.yaml")
            .unwrap_or_else(|e| panic!("should be accepted: {e}"));
        c.mqtt.expect("an mqtt block was given")
    }

    fn err(block: &str) -> Error {
        parse(&format!("mqtt:\n{block}"), "config.yaml").expect_err("should be rejected")
    }

    /// StreamPulse v2.2's block, every key, parses unchanged.
    #[test]
    fn mqtt_v22_block_is_accepted_unchanged() {
        let block =
            "  enabled: true\n  host: \"broker.hivemq.com\"\n  port: 1883\n  ws_port: 8000\n  \
             tls_port: 8883\n  tls_ws_port: 8884\n  use_tls: true\n  use_websocket: false\n  \
             username: null\n  password: null\n  client_id: \"stream-monitor-1\"\n  \
             topic: \"stream_monitor/status\"\n  qos: 1\n  retain: true\n  interval_seconds: 10\n  \
             api_status_url: \"http://localhost:7000/api/status\"\n  tls_insecure: true\n";
        for k in V22_KEYS {
            assert!(
                block.contains(&format!("  {k}: ")),
                "{k} is in the v2.2 block"
            );
        }
        let m = mqtt(block);
        assert!(m.enabled);
        assert_eq!(m.transport, MqttTransport::Tls);
        assert_eq!(m.port, 8883, "use_tls picks tls_port");
        assert_eq!(m.topic, "stream_monitor/status");
        assert_eq!(m.interval, Duration::from_secs(10));
        assert_eq!((m.qos, m.retain), (1, true));
        assert_eq!(m.client_id.as_deref(), Some("stream-monitor-1"));
        assert!(m.credentials.is_none());
        assert!(!m.tls.verify, "tls_insecure: true turns verification off");
        assert_eq!(m.ignored_keys, vec!["api_status_url"]);
    }

    #[test]
    fn mqtt_v22_transport_and_port_selection() {
        let legacy =
            "  host: b\n  port: 1\n  ws_port: 2\n  tls_port: 3\n  tls_ws_port: 4\n  use_tls: ";
        let pick = |tls: bool, ws: bool| {
            let m = mqtt(&format!("{legacy}{tls}\n  use_websocket: {ws}\n"));
            (m.transport, m.port)
        };
        assert_eq!(pick(false, false), (MqttTransport::Tcp, 1));
        assert_eq!(pick(true, false), (MqttTransport::Tls, 3));
        assert_eq!(pick(false, true), (MqttTransport::Ws, 2));
        assert_eq!(pick(true, true), (MqttTransport::Wss, 4));
        // v2.2's `port` is the TCP port; TLS without tls_port gets TLS's default.
        let m = mqtt("  host: b\n  port: 1884\n  use_tls: true\n");
        assert_eq!(m.port, 8883);
    }

    #[test]
    fn mqtt_canonical_keys_and_defaults() {
        let m = mqtt("  host: broker.lan\n");
        assert_eq!(
            (m.transport, m.port, m.qos, m.retain),
            (MqttTransport::Tcp, 1883, 0, false)
        );
        assert_eq!(m.topic, DEFAULT_TOPIC);
        assert_eq!(m.interval, Duration::from_secs(30));
        assert_eq!(
            m.availability_topic(),
            "streampulse/streampulse/availability"
        );
        assert!(m.tls.verify && !m.discovery);
        let m = mqtt(
            "  host: broker.lan\n  transport: wss\n  port: 443\n  ws_path: /ws\n  \
             username: sp\n  password: pw\n  interval: 5\n  prefix: home/cams/\n  discovery: true\n",
        );
        assert_eq!((m.transport, m.port), (MqttTransport::Wss, 443));
        assert_eq!(m.broker_label(), "wss://broker.lan:443/ws");
        assert_eq!(m.prefix, "home/cams");
        assert_eq!(m.credentials.as_ref().unwrap().password, "pw");
        assert!(
            !format!("{m:?}").contains("pw\""),
            "Debug must hide the password: {m:?}"
        );
    }

    #[test]
    fn mqtt_disabled_block_needs_no_host() {
        let m = mqtt("  enabled: false\n");
        assert!(!m.enabled);
    }

    /// The rule: an interval under 5 s is refused, naming the line.
    #[test]
    fn mqtt_interval_below_5_is_rejected_with_line() {
        let e = err("  host: b\n  interval: 4\n");
        assert!(e.message.contains("at least 5 seconds"), "{e}");
        assert!(e.message.contains("mqtt.interval"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
        let e = err("  host: b\n  qos: 0\n  interval_seconds: 2\n");
        assert!(e.message.contains("at least 5 seconds"), "{e}");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(parse("mqtt:\n  host: b\n  interval: 5\n", "c").is_ok());
    }

    /// HA's `configuration_url`: only from a name the owner gave, on a
    /// port a browser elsewhere reaches.
    #[test]
    fn browser_url_needs_a_name_and_a_reachable_port() {
        let l = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let appliance = l(&["0.0.0.0:80", "0.0.0.0:8000"]);
        assert_eq!(browser_url(&appliance, &[], None), None);
        assert_eq!(
            browser_url(&appliance, &[], Some("cams")).as_deref(),
            Some("http://cams.local/")
        );
        assert_eq!(
            browser_url(
                &l(&["0.0.0.0:8000"]),
                &l(&["nvr.example.lan"]),
                Some("cams")
            )
            .as_deref(),
            Some("http://nvr.example.lan:8000/")
        );
        assert_eq!(
            browser_url(&l(&["127.0.0.1:8000"]), &[], Some("cams")),
            None,
            "loopback only: no browser elsewhere reaches it"
        );
        let c = crate::config::parse(
            "network:\n  hostname: shed\nmqtt:\n  host: b\nstreams: []\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(
            c.mqtt.unwrap().configuration_url.as_deref(),
            Some("http://shed.local:8000/")
        );
    }

    #[test]
    fn mqtt_validation_rules() {
        let cases: &[(&str, &str)] = &[
            ("  port: 1883\n", "mqtt.host: required"),
            ("  host: mqtt://b\n", "host name or address only"),
            ("  host: u:pw@b\n", "host name or address only"),
            ("  host: b\n  transport: tls\n  use_tls: true\n", "not both"),
            (
                "  host: b\n  transport: carrier-pigeon\n",
                "unknown variant",
            ),
            ("  host: b\n  qos: 3\n", "mqtt.qos"),
            ("  host: b\n  topic: a/#\n", "wildcards"),
            ("  host: b\n  prefix: ''\n", "mqtt.prefix"),
            ("  host: b\n  password: x\n", "without a username"),
            (
                "  host: b\n  ca_file: /x.pem\n",
                "need transport tls or wss",
            ),
            (
                "  host: b\n  transport: tls\n  client_cert_file: /c.pem\n",
                "go together",
            ),
            (
                "  host: b\n  tls_verify: true\n  tls_insecure: true\n",
                "not both",
            ),
            ("  host: b\n  port: 0\n", "mqtt.port"),
            ("  host: b\n  ws_path: mqtt\n", "ws_path"),
            ("  host: b\n  hots: c\n", "hots"),
            (
                "  host: b\n  interval: 10\n  interval_seconds: 10\n",
                "interval",
            ),
        ];
        for (block, want) in cases {
            let e = err(block);
            assert!(
                e.message.contains(want),
                "{block:?}: got {e}, want {want:?}"
            );
            assert!(e.line.is_some(), "{block:?}: {e} should name a line");
        }
    }
}
