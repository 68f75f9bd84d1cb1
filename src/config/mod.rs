//! `config.yaml`: parse and validate; [`Config`] is what every other module
//! reads.
//!
//! Two stages, as ripgrep splits its arguments: [`RawConfig`] mirrors the file
//! (serde, `deny_unknown_fields`, no I/O; in `raw.rs`), then
//! [`Config::from_raw`] validates it and builds the derived values the
//! monitor uses ([`StreamConfig`] with a credential-free [`crate::probe::Target`]).
//! Every error names the file, line and column, and never quotes a secret.
//!
//! This file is the entry (load, parse, [`Error`]) and the top-level keys;
//! each section with rules of its own has its file: `streams:` (`stream.rs`),
//! `web:` (`web.rs`), `live:` (`live.rs`), `mqtt:` ([`mqtt`]), `notify:`
//! ([`webhooks`]). Config owns the plain data of these sections, so parsing
//! a file needs none of the modules that use it (the MQTT publisher and the
//! webhook sender read config, never the other way round); `network:` is
//! [`crate::network`]'s, a leaf that reads nothing of ours. [`Reloader`]
//! (`reload.rs`) watches the file; [`edit`] changes it.
//!
//! The seed format (`heartbeat_seconds`, `timezone`, `streams: [{name, url}]`,
//! and StreamPulse v2.2's `mqtt:` block) is accepted unchanged.

pub mod capture;
pub mod edit;
mod live;
pub mod mqtt;
pub mod picture;
mod raw;
mod reload;
mod secrets;
mod stream;
mod web;
pub mod webhooks;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::redact;
pub use live::LiveConfig;
pub use raw::{Listen, RawConfig, RawLive, RawMonitor, RawRetention, RawStream, RawTime, RawWeb};
pub use reload::Reloader;
pub(crate) use stream::stream_from_raw;
pub use stream::{
    StreamConfig, DEFAULT_TIMEOUT_SECS, MAX_INTERVAL_SECS, MAX_TIMEOUT_SECS, MIN_INTERVAL_SECS,
};
pub use web::{DEFAULT_LISTEN, DEFAULT_SESSION_HOURS};

/// Default seconds between heartbeats of a stream (the seed's default).
pub const DEFAULT_HEARTBEAT_SECS: u32 = 20;

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub device_name: String,
    pub timezone: String,
    pub heartbeat: Duration,
    pub streams: Vec<StreamConfig>,
    /// `web.listen`: the addresses the web server binds, in order (the
    /// first one must bind; see [`crate::web::start`]).
    pub web_listen: Vec<String>,
    pub web_workers: usize,
    /// `web.public_status`: `/api/status` and `/metrics` need no login.
    pub web_public_status: bool,
    /// `web.session_hours`: idle lifetime of a web login.
    pub web_session_hours: u32,
    /// `web.allowed_hosts`: extra names requests may carry in `Host`
    /// (lowercase, no trailing dot); see [`crate::web::host`].
    pub web_allowed_hosts: Vec<String>,
    pub heartbeat_retention_days: u32,
    pub rollup_retention_days: u32,
    pub max_concurrent_probes: usize,
    pub commit_interval: Duration,
    /// `monitor.heartbeat_flush_seconds`: longest time a raw heartbeat
    /// waits in memory before it is written (store/blocks.rs).
    pub heartbeat_flush: Duration,
    /// The `mqtt:` block, validated; None when absent (it may be present but disabled).
    pub mqtt: Option<mqtt::MqttConfig>,
    /// Webhooks of `notify:`, in file order.
    pub notify: Vec<webhooks::Webhook>,
    /// NTP servers the clock's offset is measured against (`time.ntp_servers`).
    pub ntp_servers: Vec<String>,
    /// The live view's limits (`live:`).
    pub live: LiveConfig,
    /// Admin password hash from the file, if any (see [`RawConfig`]).
    pub admin_password_hash: Option<String>,
    /// `network:`; default when absent.
    pub network: crate::network::NetworkConfig,
}

/// A config error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub path: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.path, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.path, self.message),
            _ => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for Error {}

/// Builds errors positioned at a YAML node.
struct At<'a> {
    path: &'a str,
}

impl At<'_> {
    fn err(&self, loc: &serde_saphyr::Location, message: impl Into<String>) -> Error {
        let (line, column) = (loc.line(), loc.column());
        Error {
            path: self.path.to_owned(),
            line: (line > 0).then_some(line),
            column: (column > 0).then_some(column),
            message: message.into(),
        }
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, Error> {
    let label = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| Error {
        path: label.clone(),
        line: None,
        column: None,
        message: format!("cannot read: {e}"),
    })?;
    parse_bytes(&text, &label)
}

/// Validates `bytes` as a config file named `label` (used in errors).
pub fn parse_bytes(bytes: &[u8], label: &str) -> Result<Config, Error> {
    // A config is a few KB; refuse absurd files before parsing them.
    const MAX_CONFIG_BYTES: usize = 4 << 20;
    let plain = |message: String| Error {
        path: label.to_owned(),
        line: None,
        column: None,
        message,
    };
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(plain(format!(
            "file is {} bytes; the limit is {MAX_CONFIG_BYTES}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64
            + 1;
        Error {
            path: label.to_owned(),
            line: Some(line),
            column: None,
            message: "not UTF-8 text".into(),
        }
    })?;
    parse(text, label)
}

/// Validates `text` as a config file named `label` (used in errors).
///
/// # Errors
/// The first problem, with its position. The message never quotes a secret
/// of `text` (scrubbed by [`redact::redact_text`]): config errors reach logs,
/// the start-up failure and the web pages.
pub fn parse(text: &str, label: &str) -> Result<Config, Error> {
    parse_unscrubbed(text, label).map_err(|mut e| {
        e.message = redact::redact_text(&e.message, &redact::secrets_in_yaml(text));
        e
    })
}

fn parse_unscrubbed(text: &str, label: &str) -> Result<Config, Error> {
    if text.trim().is_empty() {
        return Err(Error {
            path: label.into(),
            line: None,
            column: None,
            message: "file is empty".into(),
        });
    }
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
        let loc = e.location();
        let message = e.without_snippet().to_string();
        // The rendered message may repeat the position; keep the first line.
        let mut message = message.lines().next().unwrap_or("invalid YAML").to_owned();
        for ty in ["u32", "u64", "usize", "i64"] {
            message = message.replace(&format!("invalid {ty}"), "expected a whole number");
        }
        // The position is printed in front; drop saphyr's own " at line L, column C".
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        // saphyr's advice to its caller, not to whoever edits the file.
        if let Some(i) = message.find(", set DuplicateKeyPolicy") {
            message.truncate(i);
        }
        Error {
            path: label.into(),
            line: loc.map(|l| l.line()).filter(|&l| l > 0),
            column: loc.map(|l| l.column()).filter(|&c| c > 0),
            message,
        }
    })?;
    Config::from_raw(raw, label)
}

impl Config {
    /// Validates a parsed file; see the module docs.
    pub fn from_raw(raw: RawConfig, label: &str) -> Result<Config, Error> {
        let at = At { path: label };
        let heartbeat_secs = match &raw.heartbeat_seconds {
            None => DEFAULT_HEARTBEAT_SECS,
            Some(s) => {
                stream::check_interval(s.value)
                    .map_err(|m| at.err(&s.referenced, format!("heartbeat_seconds: {m}")))?;
                s.value
            }
        };
        let timezone = match &raw.timezone {
            None => "UTC".to_owned(),
            Some(tz) => {
                jiff::tz::TimeZone::get(&tz.value).map_err(|_| {
                    at.err(&tz.referenced, format!("timezone: unknown time zone {:?} (expected an IANA name such as Europe/Berlin)", tz.value))
                })?;
                tz.value.clone()
            }
        };

        let web = web::from_raw(raw.web.as_ref(), &at)?;
        let (heartbeat_days, rollup_days) = match &raw.retention {
            None => (7, 730),
            Some(r) => {
                let h = r.value.heartbeat_days.unwrap_or(7);
                let ro = r.value.rollup_days.unwrap_or(730);
                if !(1..=3650).contains(&h) || !(1..=36500).contains(&ro) {
                    return Err(at.err(
                        &r.referenced,
                        "retention: heartbeat_days must be 1..3650 and rollup_days 1..36500",
                    ));
                }
                (h, ro)
            }
        };
        let (max_concurrent, commit_secs, flush_secs) = match &raw.monitor {
            None => (16, 5, 600),
            Some(m) => {
                let c = m.value.max_concurrent_probes.unwrap_or(16);
                let s = m.value.commit_seconds.unwrap_or(5);
                let f = m.value.heartbeat_flush_seconds.unwrap_or(600);
                if !(1..=1024).contains(&c) {
                    return Err(at.err(
                        &m.referenced,
                        "monitor.max_concurrent_probes: must be between 1 and 1024",
                    ));
                }
                if !(1..=300).contains(&s) {
                    return Err(at.err(
                        &m.referenced,
                        "monitor.commit_seconds: must be between 1 and 300",
                    ));
                }
                if !(1..=600).contains(&f) {
                    return Err(at.err(
                        &m.referenced,
                        "monitor.heartbeat_flush_seconds: must be between 1 and 600",
                    ));
                }
                (c, s, f)
            }
        };

        let ntp_servers = match &raw.time {
            None => Vec::new(),
            Some(t) => {
                let list = t.value.ntp_servers.clone().unwrap_or_default();
                if list.len() > 8 {
                    return Err(at.err(&t.referenced, "time.ntp_servers: at most 8 servers"));
                }
                if let Some(bad) = list
                    .iter()
                    .find(|s| s.is_empty() || s.len() > 253 || s.contains(char::is_whitespace))
                {
                    return Err(at.err(
                        &t.referenced,
                        format!("time.ntp_servers: {bad:?} is not a host or host:port"),
                    ));
                }
                list
            }
        };
        let admin_password_hash = match &raw.admin_password_hash {
            None => None,
            Some(h) if h.value.starts_with("$argon2") => Some(h.value.clone()),
            Some(h) => {
                let m = "admin_password_hash: expected an argon2 hash ($argon2id$...)";
                return Err(at.err(&h.referenced, m));
            }
        };

        let mut mqtt = match &raw.mqtt {
            None => None,
            Some(m) => Some(
                mqtt::MqttConfig::from_raw(m, raw.device_name.as_deref().unwrap_or("streampulse"))
                    .map_err(|e| at.err(&e.at, e.message))?,
            ),
        };
        let network = match &raw.network {
            None => crate::network::NetworkConfig::default(),
            Some(n) => {
                crate::network::NetworkConfig::from_raw(n).map_err(|e| at.err(&e.at, e.message))?
            }
        };
        if let Some(m) = mqtt.as_mut() {
            m.configuration_url =
                mqtt::browser_url(&web.listen, &web.allowed_hosts, network.hostname.as_deref());
        }
        let notify = webhooks::from_raw(raw.notify.as_deref(), &at)?;
        let live = live::from_raw(raw.live.as_ref(), &at)?;
        let streams = stream::streams_from_raw(&raw.streams, heartbeat_secs, &at)?;

        Ok(Config {
            device_name: raw.device_name.unwrap_or_else(|| "streampulse".into()),
            timezone,
            heartbeat: Duration::from_secs(heartbeat_secs.into()),
            streams,
            web_listen: web.listen,
            web_workers: web.workers,
            web_public_status: web.public_status,
            web_session_hours: web.session_hours,
            web_allowed_hosts: web.allowed_hosts,
            heartbeat_retention_days: heartbeat_days,
            rollup_retention_days: rollup_days,
            max_concurrent_probes: max_concurrent,
            commit_interval: Duration::from_secs(commit_secs.into()),
            heartbeat_flush: Duration::from_secs(flush_secs.into()),
            mqtt,
            notify,
            ntp_servers,
            live,
            admin_password_hash,
            network,
        })
    }

    /// The configured time zone (validated at load).
    pub fn tz(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.timezone).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Kind;

    const SEED: &str = "\
# --- mqtt settings ---
mqtt:
  enabled: false
  host: \"broker.hivemq.com\"
  port: 1883
  use_tls: false
  username: null
  topic: \"stream_monitor/status\"
  interval_seconds: 10
  api_status_url: \"http://localhost:7000/api/status\"

heartbeat_seconds: 20
timezone: Asia/Calcutta
streams:
- name: Testing streams
  url: http://158.58.130.148/mjpg/video.mjpg
- name: Tapo
  url: rtsp://admin:se%40cret@192.0.2.10:554/stream1
";

    fn err(text: &str) -> Error {
        parse(text, "config.yaml").expect_err("should be rejected")
    }

    #[test]
    fn seed_format_is_accepted_unchanged() {
        let c = parse(SEED, "config.yaml").unwrap();
        assert_eq!(c.heartbeat, Duration::from_secs(20));
        assert_eq!(c.timezone, "Asia/Calcutta");
        let mqtt = c.mqtt.as_ref().expect("the seed's mqtt block is kept");
        assert!(!mqtt.enabled);
        assert_eq!(mqtt.topic, "stream_monitor/status");
        assert_eq!(mqtt.interval, Duration::from_secs(10));
        assert_eq!(c.streams.len(), 2);
        assert_eq!(c.streams[0].target.kind, Kind::Mjpeg);
        let tapo = &c.streams[1];
        assert_eq!(tapo.target.kind, Kind::Rtsp);
        assert_eq!(tapo.target.url.as_str(), "rtsp://192.0.2.10:554/stream1");
        assert_eq!(tapo.target.creds.as_ref().unwrap().password, "se@cret");
        assert_eq!(tapo.url_redacted, "rtsp://admin:***@192.0.2.10:554/stream1");
        assert_eq!(tapo.target.timeout, Duration::from_secs(10));
        assert_eq!((tapo.fail_threshold, tapo.ok_threshold), (2, 1));
    }

    #[test]
    fn yaml_syntax_error_names_line() {
        let e = err("heartbeat_seconds: 20\nstreams:\n  - name: a\n    url: [unclosed\n");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().starts_with("config.yaml:4:"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_expectation() {
        let e = err("heartbeat_seconds: twenty\n");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.message.contains("whole number"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected_with_line() {
        let e =
            err("heartbeat_seconds: 20\nstreams:\n- name: a\n  url: rtsp://h/x\n  intervall: 30\n");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("intervall"), "{e}");
    }

    #[test]
    fn box_camera_streams_validate_with_line_numbers() {
        let c = parse(
            "streams:\n- name: Pi camera\n  url: libcamera:0\n  capture:\n    width: 640\n    \
             height: 480\n- name: Webcam\n  url: v4l2:///dev/video0\n",
            "config.yaml",
        )
        .unwrap();
        let pi = &c.streams[0].target;
        assert_eq!(pi.kind, Kind::Local);
        let cap = pi
            .capture
            .as_ref()
            .expect("libcamera: has a capture command");
        assert_eq!((cap.width, cap.height, cap.framerate), (640, 480, 15));
        assert_eq!(c.streams[1].target.kind, Kind::Local);
        let webcam = c.streams[1]
            .target
            .capture
            .as_ref()
            .expect("v4l2: is captured too");
        assert_eq!(
            webcam.source,
            crate::probe::capture::Source::V4l2("/dev/video0".into())
        );

        let e = err("heartbeat_seconds: 20\nstreams:\n- name: a\n  url: 'libcamera:'\n  capture:\n    framerate: 0\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("capture.framerate"), "{e}");
        let e = err("streams:\n- name: a\n  url: libcamera:1\n  capture:\n    fps: 10\n");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("fps"), "{e}");
        let e = err("streams:\n- name: a\n  url: rtsp://cam/x\n  capture: {width: 640}\n");
        assert!(e.message.contains("capture: only applies"), "{e}");
    }

    #[test]
    fn duplicate_key_is_rejected() {
        let e = err("heartbeat_seconds: 20\nheartbeat_seconds: 30\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(
            e.message
                .ends_with("duplicate mapping key: heartbeat_seconds"),
            "{e}"
        );
    }

    #[test]
    fn validation_rules() {
        let cases: &[(&str, &str, u64)] = &[
            ("heartbeat_seconds: 2\n", "at least 5", 1),
            ("timezone: Mars/Olympus\n", "unknown time zone", 1),
            (
                "streams:\n- name: a\n  url: rtsp://h/x\n- name: A\n  url: rtsp://h/y\n",
                "duplicate stream name",
                4,
            ),
            (
                "streams:\n- name: a\n  url: ftp://h/x\n",
                "unsupported scheme",
                2,
            ),
            (
                "streams:\n- name: a\n  url: not a url\n",
                "not a valid URL",
                2,
            ),
            (
                "streams:\n- name: a\n  url: rtsp://h/x\n  interval: 4\n",
                "at least 5",
                2,
            ),
            (
                "streams:\n- name: a\n  url: rtsp://h/x\n  interval: 30\n  timeout: 0\n",
                "timeout",
                2,
            ),
            (
                "streams:\n- name: a\n  url: rtsp://h/x\n  interval: 10\n  timeout: 20\n",
                "longer than the interval",
                2,
            ),
            (
                "streams:\n- name: a\n  url: rtsp://h/x\n  fail_threshold: 0\n",
                "fail_threshold",
                2,
            ),
            (
                "streams:\n- name: a\n  url: rtsp://u:p@h/x\n  username: v\n",
                "both in the URL",
                2,
            ),
            (
                "streams:\n- name: a\n  url: rtsp://h/x\n  password: p\n",
                "without a username",
                2,
            ),
            (
                "streams:\n- name: ''\n  url: rtsp://h/x\n",
                "must not be empty",
                2,
            ),
            (
                "streams:\n- name: a\n  url: http://h/x\n  kind: rtsp\n",
                "does not fit kind",
                2,
            ),
            (
                "streams:\n- name: a\n  url: http://h/x\n  transport: udp\n",
                "only applies to rtsp",
                2,
            ),
            ("web:\n  listen: everywhere\n", "web.listen[0]", 2),
            (
                "web:\n  listen:\n  - 0.0.0.0:80\n  - everywhere\n",
                "web.listen[1]",
                3,
            ),
            (
                "web:\n  listen:\n  - 0.0.0.0:80\n  - 0.0.0.0:80\n",
                "listed twice",
                3,
            ),
            ("web:\n  listen: []\n", "at least one", 2),
        ];
        for (text, want, line) in cases {
            let e = err(text);
            assert!(e.message.contains(want), "{text:?}: got {e}, want {want:?}");
            assert_eq!(e.line, Some(*line), "{text:?}: {e}");
        }
    }

    #[test]
    fn errors_never_show_passwords() {
        let e = err("streams:\n- name: a\n  url: rtsp://u:hunter22@h/x\n  interval: 1\n");
        assert!(!e.to_string().contains("hunter22"), "{e}");
    }

    /// See: #14 (finding 3). Errors reach anonymous pages and logs: whatever
    /// the parser or a check quotes, a secret of the file is not in it.
    #[test]
    fn errors_quote_no_secret() {
        for (text, secret) in [
            (
                "mqtt:\n  host: mqtt://user:S3cretPw@127.0.0.1:1\n",
                "S3cretPw",
            ),
            ("mqtt:\n  host: user:S3cretPw@127.0.0.1\n", "S3cretPw"),
            (
                "mqtt:\n  host: b\n  port: mqtt://u:S3cretPw@b\n",
                "S3cretPw",
            ),
            (
                "mqtt:\n  host: b\n  username: u\n  password: [4711]\n",
                "4711",
            ),
            (
                "streams:\n- name: a\n  url: rtsp://h/\n  password: 4711\n",
                "4711",
            ),
            (
                "heartbeat_seconds: hunter22\nmqtt: {password: hunter22}\n",
                "hunter22",
            ),
            (
                "notify: ['http://u:tok3n@h/', 'http://u:tok3n@h/']\n",
                "tok3n",
            ),
            ("time:\n  ntp_servers: ['u:S3cretPw@h x']\n", "S3cretPw"),
        ] {
            let e = err(text);
            assert!(e.line.is_some(), "{text:?}: {e} should name the line");
            assert!(!e.to_string().contains(secret), "{text:?}: {e}");
        }
        let e = err("mqtt:\n  host: mqtt://user:S3cretPw@127.0.0.1:1\n");
        assert!(e.message.starts_with("mqtt.host:"), "{e}");
    }

    #[test]
    fn non_utf8_and_empty_are_clear() {
        let e = parse_bytes(b"heartbeat_seconds: 20\n\xff\xfe\n", "c.yaml").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(parse_bytes(b"", "c.yaml")
            .unwrap_err()
            .message
            .contains("empty"));
    }

    #[test]
    fn ntp_servers_and_admin_hash() {
        let c = parse(
            "time:\n  ntp_servers: [pool.ntp.org, '10.0.0.1:123']\n\
             admin_password_hash: $argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(c.ntp_servers, ["pool.ntp.org", "10.0.0.1:123"]);
        assert!(c.admin_password_hash.unwrap().starts_with("$argon2id$"));
        assert!(parse("heartbeat_seconds: 20\n", "c.yaml")
            .unwrap()
            .ntp_servers
            .is_empty());
        let e = parse("admin_password_hash: hunter2\n", "c.yaml").unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = parse("time:\n  ntp_servers: ['a b']\n", "c.yaml").unwrap_err();
        assert!(e.message.contains("ntp_servers"), "{e}");
        assert!(parse("time:\n  servers: [x]\n", "c.yaml").is_err());
    }
}

/// Property tests: no input crashes the parser, and every error names a
/// line that exists in the file.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = "heartbeat_seconds: 20\ntimezone: Europe/Berlin\nweb:\n  listen: 127.0.0.1:8000\nstreams:\n- name: a\n  url: rtsp://u:p@10.0.0.1/x\n  interval: 30\n- name: b\n  url: http://10.0.0.2:8081/\n  kind: mjpeg\n";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Err(e) = parse_bytes(&bytes, "c.yaml") {
                let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                prop_assert!(e.line.is_none_or(|l| l <= lines + 1), "{e}");
            }
        }

        #[test]
        fn truncated_or_mutated_good_config_never_panics(cut in 0usize..GOOD.len(), at in 0usize..GOOD.len(), b in any::<u8>()) {
            let _ = parse(&GOOD[..cut], "c.yaml");
            let mut m = GOOD.as_bytes().to_vec();
            m[at] = b;
            if let Err(e) = parse_bytes(&m, "c.yaml") {
                prop_assert!(!e.message.is_empty());
                prop_assert!(!e.to_string().contains("u:p@"), "{e}");
            }
        }
    }

    #[test]
    fn ten_thousand_streams_parse() {
        let mut s = String::from("streams:\n");
        for i in 0..10_000 {
            s.push_str(&format!(
                "- name: cam{i}\n  url: rtsp://10.0.{}.{}/s\n",
                i / 250,
                i % 250
            ));
        }
        let c = parse(&s, "c.yaml").unwrap();
        assert_eq!(c.streams.len(), 10_000);
    }
}
