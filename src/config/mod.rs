//! `config.yaml`: parse, validate, and watch for changes.
//!
//! Two stages, as ripgrep splits its arguments: [`RawConfig`] mirrors the file
//! (serde, `deny_unknown_fields`, no I/O), then [`Config::from_raw`] validates it
//! and builds the derived values the monitor uses ([`StreamConfig`] with a
//! credential-free [`Target`]). Every error names the file, line and column.
//!
//! The seed format (`heartbeat_seconds`, `timezone`, `streams: [{name, url}]`,
//! and StreamPulse v2.2's `mqtt:` block) is accepted unchanged.
//!
//! [`Reloader`] notices edits by polling the content hash every few seconds
//! (a config is a few KB; works on vfat and through editors' rename dances); a
//! broken edit is reported and the last good config keeps running.

pub mod edit;
mod secrets;

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::probe::{Kind, Target, Transport, DEFAULT_MAX_FRAME_BYTES};
use crate::redact::{self, Credentials};

/// Default seconds between heartbeats of a stream (the seed's default).
pub const DEFAULT_HEARTBEAT_SECS: u32 = 20;
/// Shortest allowed interval: cameras allow few sessions, and SD cards wear.
pub const MIN_INTERVAL_SECS: u32 = 5;
/// Longest allowed interval (one day).
pub const MAX_INTERVAL_SECS: u32 = 86_400;
/// Default probe deadline, capped by the interval.
pub const DEFAULT_TIMEOUT_SECS: u32 = 10;
/// Longest allowed probe deadline.
pub const MAX_TIMEOUT_SECS: u32 = 120;
/// Default listen address of the appliance's web server.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8000";
/// Default idle lifetime of a web login, in hours.
pub const DEFAULT_SESSION_HOURS: u32 = 24;

/// The file as written, before validation. Field docs give defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Seconds between heartbeats for streams without their own `interval`. Default 20.
    pub heartbeat_seconds: Option<Spanned<u32>>,
    /// IANA time zone used to display times (storage is always UTC). Default `UTC`.
    pub timezone: Option<Spanned<String>>,
    /// A name for this box (dashboard title, MQTT device). Default `streampulse`.
    pub device_name: Option<String>,
    /// The cameras.
    #[serde(default)]
    pub streams: Vec<Spanned<RawStream>>,
    #[serde(default)]
    pub web: Option<Spanned<RawWeb>>,
    #[serde(default)]
    pub retention: Option<Spanned<RawRetention>>,
    #[serde(default)]
    pub monitor: Option<Spanned<RawMonitor>>,
    /// MQTT publishing; StreamPulse v2.2's block is accepted unchanged (see
    /// [`crate::mqtt::settings`] for the keys and their v2.2 aliases).
    #[serde(default)]
    pub mqtt: Option<Spanned<crate::mqtt::RawMqtt>>,
    /// Webhook URLs that get a JSON POST on every state change (see [`crate::webhooks`]).
    #[serde(default)]
    pub notify: Option<Vec<Spanned<String>>>,
    /// Clock checks (NTP servers whose offset is measured and shown).
    #[serde(default)]
    pub time: Option<Spanned<RawTime>>,
    /// The live view's limits (see [`crate::live`]).
    #[serde(default)]
    pub live: Option<Spanned<RawLive>>,
    /// The box's hostname, Wi-Fi and addresses (see [`crate::network::settings`]);
    /// applied by `streampulse network apply`, not by the daemon.
    #[serde(default)]
    pub network: Option<Spanned<crate::network::RawNetwork>>,
    /// Argon2 hash (PHC string, `$argon2id$…`) of the admin password, e.g. in a
    /// `config.yaml` dropped on the boot partition. Carried for the web GUI's
    /// login; never a plain password.
    pub admin_password_hash: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTime {
    /// `host` or `host:port` of NTP servers to measure the clock's offset
    /// against (SNTP, one query every 10 minutes). Default none. Setting the
    /// clock is systemd-timesyncd's job; this only measures.
    pub ntp_servers: Option<Vec<String>>,
}

/// One stream as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    /// Unique display name.
    pub name: String,
    /// `rtsp://[user:pass@]host[:port]/path` or `http(s)://...`.
    pub url: String,
    /// `rtsp`, `mjpeg` or `snapshot`; inferred from the URL when absent.
    pub kind: Option<Kind>,
    /// Seconds between probes. Default: `heartbeat_seconds`.
    pub interval: Option<u32>,
    /// Probe deadline in seconds. Default: min(10, interval).
    pub timeout: Option<u32>,
    /// Default true. A disabled stream is listed but never probed.
    pub enabled: Option<bool>,
    /// Consecutive failures before the stream is `down`. Default 2.
    pub fail_threshold: Option<u32>,
    /// Consecutive successes before the stream is `up` again. Default 1.
    pub ok_threshold: Option<u32>,
    /// Credentials; alternatively in the URL. Not both.
    pub username: Option<String>,
    pub password: Option<String>,
    /// RTSP only: `tcp` (default, interleaved) or `udp`.
    pub transport: Option<Transport>,
}

/// `web.listen`: one address or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Listen {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// `host:port` to listen on, or a list of them (the appliance: port 80
    /// and 8000). Default `0.0.0.0:8000`.
    /// (Lines point at the value: serde's untagged enums drop item spans.)
    pub listen: Option<Spanned<Listen>>,
    /// Worker threads. Default 4.
    pub workers: Option<usize>,
    /// Serve `/api/status` and `/metrics` without a login or API token (for
    /// scripts and Prometheus on a trusted LAN). Default false.
    pub public_status: Option<bool>,
    /// Hours a login stays valid without use (every request renews it).
    /// Default 24, 1..=8760.
    pub session_hours: Option<u32>,
    /// Extra host names the box answers to (besides its IP addresses,
    /// `localhost`, its hostname and `<hostname>.local`). Default none.
    pub allowed_hosts: Option<Vec<Spanned<String>>>,
}

/// `live:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLive {
    /// Browser connections watching live at once, all streams together.
    /// Default 4, 0..=32; 0 turns the live view off.
    pub max_viewers: Option<u32>,
    /// Browser connections watching one stream at once. Default 2, 1..=32.
    /// Every stream has at most one camera session for all its viewers.
    pub max_viewers_per_stream: Option<u32>,
    /// Grid thumbnails are refreshed at most this often, in seconds.
    /// Default 60, 5..=3600.
    pub thumbnail_seconds: Option<u32>,
}

/// Validated `live:` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// 0 means the live view is off.
    pub max_viewers: u32,
    pub max_viewers_per_stream: u32,
    pub thumbnail_seconds: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_viewers: 4,
            max_viewers_per_stream: 2,
            thumbnail_seconds: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Days raw heartbeats are kept. Default 7.
    pub heartbeat_days: Option<u32>,
    /// Days hourly rollups and state-change events are kept. Default 730.
    pub rollup_days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    /// Probes allowed to run at once. Default 16.
    pub max_concurrent_probes: Option<usize>,
    /// Seconds between SQLite commits of state changes and stream rows. Default 5.
    pub commit_seconds: Option<u32>,
    /// Raw heartbeats are written when their 10-minute window ends, or
    /// this often if shorter (more durable, more flash writes). Default 600.
    pub heartbeat_flush_seconds: Option<u32>,
}

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
    pub mqtt: Option<crate::mqtt::MqttConfig>,
    /// Webhooks of `notify:`, in file order.
    pub notify: Vec<crate::webhooks::Webhook>,
    /// NTP servers the clock's offset is measured against (`time.ntp_servers`).
    pub ntp_servers: Vec<String>,
    /// The live view's limits (`live:`).
    pub live: LiveConfig,
    /// Admin password hash from the file, if any (see [`RawConfig`]).
    pub admin_password_hash: Option<String>,
    /// `network:`; default when absent.
    pub network: crate::network::NetworkConfig,
}

/// One validated stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamConfig {
    pub name: String,
    /// URL as shown to users: password replaced by `***`.
    pub url_redacted: String,
    pub target: Target,
    pub interval: Duration,
    pub enabled: bool,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
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
                check_interval(s.value)
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

        let (web_public_status, web_session_hours) = match &raw.web {
            None => (false, DEFAULT_SESSION_HOURS),
            Some(w) => {
                let hours = w.value.session_hours.unwrap_or(DEFAULT_SESSION_HOURS);
                if !(1..=8760).contains(&hours) {
                    return Err(at.err(
                        &w.referenced,
                        "web.session_hours: must be between 1 and 8760",
                    ));
                }
                (w.value.public_status.unwrap_or(false), hours)
            }
        };
        let (web_listen, web_workers) = match &raw.web {
            None => (vec![DEFAULT_LISTEN.to_owned()], 4),
            Some(w) => {
                let mut addrs = Vec::new();
                if let Some(l) = &w.value.listen {
                    let list = match &l.value {
                        Listen::One(a) => std::slice::from_ref(a),
                        Listen::Many(list) => list.as_slice(),
                    };
                    if list.is_empty() {
                        return Err(at.err(&l.referenced, "web.listen: give at least one address"));
                    }
                    for (i, a) in list.iter().enumerate() {
                        let addr = a.parse::<std::net::SocketAddr>().map_err(|_| {
                            at.err(
                                &l.referenced,
                                format!(
                                    "web.listen[{i}]: {a:?} is not an address:port such as 0.0.0.0:8000"
                                ),
                            )
                        })?;
                        if addrs.iter().any(|b: &String| b.parse().ok() == Some(addr)) {
                            return Err(at.err(
                                &l.referenced,
                                format!("web.listen[{i}]: {a} is listed twice"),
                            ));
                        }
                        addrs.push(a.clone());
                    }
                }
                if addrs.is_empty() {
                    addrs.push(DEFAULT_LISTEN.to_owned());
                }
                let workers = w.value.workers.unwrap_or(4);
                if !(1..=64).contains(&workers) {
                    return Err(at.err(&w.referenced, "web.workers: must be between 1 and 64"));
                }
                (addrs, workers)
            }
        };
        let mut web_allowed_hosts = Vec::new();
        let hosts = raw
            .web
            .as_ref()
            .and_then(|w| w.value.allowed_hosts.as_ref());
        for (i, h) in hosts.into_iter().flatten().enumerate() {
            let name = check_host_name(&h.value)
                .map_err(|m| at.err(&h.referenced, format!("web.allowed_hosts[{i}]: {m}")))?;
            if i >= MAX_ALLOWED_HOSTS {
                return Err(at.err(
                    &h.referenced,
                    format!("web.allowed_hosts: at most {MAX_ALLOWED_HOSTS} names"),
                ));
            }
            if !web_allowed_hosts.contains(&name) {
                web_allowed_hosts.push(name);
            }
        }
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

        let mqtt = match &raw.mqtt {
            None => None,
            Some(m) => Some(
                crate::mqtt::MqttConfig::from_raw(
                    m,
                    raw.device_name.as_deref().unwrap_or("streampulse"),
                )
                .map_err(|e| at.err(&e.at, e.message))?,
            ),
        };
        let network = match &raw.network {
            None => crate::network::NetworkConfig::default(),
            Some(n) => {
                crate::network::NetworkConfig::from_raw(n).map_err(|e| at.err(&e.at, e.message))?
            }
        };
        let mut notify: Vec<crate::webhooks::Webhook> = Vec::new();
        for (i, n) in raw.notify.iter().flatten().enumerate() {
            let w = crate::webhooks::Webhook::parse(&n.value)
                .map_err(|m| at.err(&n.referenced, format!("notify[{i}]: {m}")))?;
            if notify.iter().any(|o| o.url == w.url) {
                return Err(at.err(
                    &n.referenced,
                    format!("notify[{i}]: {} is listed twice", w.url_redacted),
                ));
            }
            notify.push(w);
        }

        let live = match &raw.live {
            None => LiveConfig::default(),
            Some(l) => {
                let d = LiveConfig::default();
                let c = LiveConfig {
                    max_viewers: l.value.max_viewers.unwrap_or(d.max_viewers),
                    max_viewers_per_stream: l
                        .value
                        .max_viewers_per_stream
                        .unwrap_or(d.max_viewers_per_stream),
                    thumbnail_seconds: l.value.thumbnail_seconds.unwrap_or(d.thumbnail_seconds),
                };
                if c.max_viewers > 32 {
                    return Err(at.err(
                        &l.referenced,
                        "live.max_viewers: must be between 0 (off) and 32",
                    ));
                }
                if !(1..=32).contains(&c.max_viewers_per_stream) {
                    return Err(at.err(
                        &l.referenced,
                        "live.max_viewers_per_stream: must be between 1 and 32",
                    ));
                }
                if !(5..=3600).contains(&c.thumbnail_seconds) {
                    return Err(at.err(
                        &l.referenced,
                        "live.thumbnail_seconds: must be between 5 and 3600",
                    ));
                }
                c
            }
        };

        let mut names = HashSet::new();
        let mut streams = Vec::with_capacity(raw.streams.len());
        for (i, s) in raw.streams.iter().enumerate() {
            let sc = stream_from_raw(&s.value, heartbeat_secs).map_err(|m| {
                at.err(
                    &s.referenced,
                    format!("streams[{i}] ({:?}): {m}", s.value.name),
                )
            })?;
            if !names.insert(sc.name.to_lowercase()) {
                return Err(at.err(&s.referenced, format!("streams[{i}]: duplicate stream name {:?} (names are compared ignoring case)", sc.name)));
            }
            streams.push(sc);
        }

        Ok(Config {
            device_name: raw.device_name.unwrap_or_else(|| "streampulse".into()),
            timezone,
            heartbeat: Duration::from_secs(heartbeat_secs.into()),
            streams,
            web_listen,
            web_workers,
            web_public_status,
            web_session_hours,
            web_allowed_hosts,
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

/// Names `web.allowed_hosts` may list at most.
const MAX_ALLOWED_HOSTS: usize = 16;

/// A `web.allowed_hosts` entry as compared with `Host` (lowercase, no
/// trailing dot), or why it is not a DNS name.
fn check_host_name(name: &str) -> Result<String, String> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if n.contains("://") || n.contains('/') {
        return Err(format!(
            "{name:?} is not a host name: write the name only, without http:// or a path"
        ));
    }
    if n.contains(':') || n.contains('[') {
        return Err(format!(
            "{name:?} is not a host name: leave out the port (any port is accepted), and IP \
             addresses need no entry"
        ));
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if n.is_empty() || n.len() > 253 || !n.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a host name (letters, digits, '-' and dots, such as camera-monitor.example.lan)"
        ));
    }
    Ok(n)
}

fn check_interval(secs: u32) -> Result<(), String> {
    if secs < MIN_INTERVAL_SECS {
        return Err(format!(
            "must be at least {MIN_INTERVAL_SECS} seconds (got {secs})"
        ));
    }
    if secs > MAX_INTERVAL_SECS {
        return Err(format!(
            "must be at most {MAX_INTERVAL_SECS} seconds (got {secs})"
        ));
    }
    Ok(())
}

pub(crate) fn stream_from_raw(s: &RawStream, heartbeat_secs: u32) -> Result<StreamConfig, String> {
    let name = s.name.trim();
    if name.is_empty() {
        return Err("name: must not be empty".into());
    }
    if name.chars().count() > 64 {
        return Err("name: at most 64 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("name: must not contain control characters".into());
    }
    let parsed =
        url::Url::parse(s.url.trim()).map_err(|e| format!("url: not a valid URL ({e})"))?;
    let kind = match s.kind {
        Some(k) => k,
        None => Kind::infer(&parsed).ok_or_else(|| {
            format!(
                "url: unsupported scheme {:?} (expected rtsp, http or https)",
                parsed.scheme()
            )
        })?,
    };
    let scheme_ok = match kind {
        Kind::Rtsp => parsed.scheme() == "rtsp",
        Kind::Mjpeg | Kind::Snapshot => matches!(parsed.scheme(), "http" | "https"),
    };
    if !scheme_ok {
        return Err(format!(
            "url: scheme {:?} does not fit kind {kind}",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("url: has no host".into());
    }
    let (bare, url_creds) = redact::split_credentials(&parsed);
    let field_creds = match (&s.username, &s.password) {
        (None, None) => None,
        (Some(u), p) => Some(Credentials {
            username: u.clone(),
            password: p.clone().unwrap_or_default(),
        }),
        (None, Some(_)) => return Err("password: given without a username".into()),
    };
    let creds = match (url_creds, field_creds) {
        (Some(_), Some(_)) => {
            return Err(
                "credentials are given both in the URL and in username/password; keep one".into(),
            )
        }
        (a, b) => a.or(b),
    };
    let interval_secs = s.interval.unwrap_or(heartbeat_secs);
    check_interval(interval_secs).map_err(|m| format!("interval: {m}"))?;
    let timeout_secs = s.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS.min(interval_secs));
    if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "timeout: must be between 1 and {MAX_TIMEOUT_SECS} seconds (got {timeout_secs})"
        ));
    }
    if timeout_secs > interval_secs {
        return Err(format!(
            "timeout: {timeout_secs} s is longer than the interval ({interval_secs} s)"
        ));
    }
    let fail_threshold = s.fail_threshold.unwrap_or(2);
    let ok_threshold = s.ok_threshold.unwrap_or(1);
    if !(1..=100).contains(&fail_threshold) {
        return Err("fail_threshold: must be between 1 and 100".into());
    }
    if !(1..=100).contains(&ok_threshold) {
        return Err("ok_threshold: must be between 1 and 100".into());
    }
    if s.transport.is_some() && kind != Kind::Rtsp {
        return Err("transport: only applies to rtsp streams".into());
    }
    let url_redacted = redact::redact_url(&bare, creds.as_ref());
    Ok(StreamConfig {
        name: name.to_owned(),
        url_redacted,
        target: Target {
            url: bare,
            kind,
            creds,
            timeout: Duration::from_secs(timeout_secs.into()),
            transport: s.transport.unwrap_or_default(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        },
        interval: Duration::from_secs(interval_secs.into()),
        enabled: s.enabled.unwrap_or(true),
        fail_threshold,
        ok_threshold,
    })
}

/// Notices changes to the config file; see the module docs.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    /// Hash of the content last reported (or present at start).
    seen_hash: Option<u64>,
}

impl Reloader {
    /// Starts watching `path`, treating its current content as already applied.
    pub fn new(path: &Path) -> Self {
        let seen_hash = std::fs::read(path).ok().map(|b| content_hash(&b));
        Reloader {
            path: path.to_owned(),
            seen_hash,
        }
    }

    /// Returns the new config (or its error) if the content changed since the
    /// last call. A missing file (mid-rename by an editor) is not a change.
    pub fn poll(&mut self) -> Option<Result<Config, Error>> {
        let bytes = std::fs::read(&self.path).ok()?;
        let h = content_hash(&bytes);
        if self.seen_hash == Some(h) {
            return None;
        }
        self.seen_hash = Some(h);
        Some(parse_bytes(&bytes, &self.path.display().to_string()))
    }
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn listen_takes_one_address_or_a_list() {
        let one = |t: &str| parse(t, "c").unwrap().web_listen;
        assert_eq!(one("streams: []\n"), [DEFAULT_LISTEN]);
        assert_eq!(one("web:\n  workers: 2\n"), [DEFAULT_LISTEN]);
        assert_eq!(one("web:\n  listen: 127.0.0.1:81\n"), ["127.0.0.1:81"]);
        assert_eq!(
            one("web:\n  listen:\n  - 0.0.0.0:80\n  - '[::]:8000'\n"),
            ["0.0.0.0:80", "[::]:8000"]
        );
    }

    #[test]
    fn allowed_hosts() {
        let c = parse("streams: []\n", "c").unwrap();
        assert!(c.web_allowed_hosts.is_empty());
        let c = parse(
            "web:\n  allowed_hosts: [Camera-Monitor.example.lan., cams, cams]\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.web_allowed_hosts, ["camera-monitor.example.lan", "cams"]);
        for (text, want, line) in [
            (
                "web:\n  listen: 0.0.0.0:8000\n  allowed_hosts:\n  - ok.lan\n  - http://cams.lan/\n",
                "web.allowed_hosts[1]: \"http://cams.lan/\" is not a host name: write the name only",
                5,
            ),
            (
                "web:\n  allowed_hosts:\n  - cams.lan:8000\n",
                "leave out the port",
                3,
            ),
            ("web:\n  allowed_hosts: ['bad name']\n", "is not a host name", 2),
            ("web:\n  allowed_hosts: ['']\n", "is not a host name", 2),
            ("web:\n  allowed_hosts: [-x.lan]\n", "is not a host name", 2),
            ("web:\n  allowed_hosts: cams.lan\n", "sequence", 2),
        ] {
            let e = err(text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.line, Some(line), "{text}: {e}");
        }
        let many: String = (0..17).map(|i| format!("  - h{i}.lan\n")).collect();
        let e = err(&format!("web:\n  allowed_hosts:\n{many}"));
        assert!(e.message.contains("at most 16"), "{e}");
        assert_eq!(e.line, Some(19), "{e}");
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
    fn live_settings() {
        let c = parse("streams: []\n", "c").unwrap();
        assert_eq!(c.live, LiveConfig::default());
        let c = parse(
            "live:\n  max_viewers: 0\n  max_viewers_per_stream: 3\n  thumbnail_seconds: 30\n",
            "c",
        )
        .unwrap();
        assert_eq!(
            (
                c.live.max_viewers,
                c.live.max_viewers_per_stream,
                c.live.thumbnail_seconds
            ),
            (0, 3, 30)
        );
        for (text, want, line) in [
            (
                "heartbeat_seconds: 20\nlive:\n  max_viewers: 33\n",
                "live.max_viewers",
                3,
            ),
            (
                "live:\n  max_viewers_per_stream: 0\n",
                "live.max_viewers_per_stream",
                2,
            ),
            (
                "live:\n  thumbnail_seconds: 1\n",
                "live.thumbnail_seconds",
                2,
            ),
            ("live:\n  max_viewer: 3\n", "max_viewer", 2),
        ] {
            let e = err(text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.line, Some(line), "{text}: {e}");
        }
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
    fn reloader_reports_changes_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, "heartbeat_seconds: 20\n").unwrap();
        let mut r = Reloader::new(&p);
        assert!(r.poll().is_none());
        std::fs::write(&p, "heartbeat_seconds: 30\n").unwrap();
        assert_eq!(
            r.poll().unwrap().unwrap().heartbeat,
            Duration::from_secs(30)
        );
        assert!(r.poll().is_none());
        std::fs::write(&p, "heartbeat_seconds: [\n").unwrap();
        assert!(r.poll().unwrap().is_err());
        assert!(r.poll().is_none(), "a broken file is reported once");
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
