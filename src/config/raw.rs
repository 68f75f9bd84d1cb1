//! The file as written: serde shapes of `config.yaml`, the first of the two
//! stages (see the module docs of [`super`]). Only what serde checks happens
//! here (types, `deny_unknown_fields`, spans for line numbers); every rule
//! about values is in the validation that turns these into a
//! [`super::Config`]. Field docs give defaults. The `mqtt:` block's shape is
//! [`super::mqtt`]'s, `network:`'s is [`crate::network`]'s.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::mqtt::RawMqtt;
use crate::probe::{Kind, Transport};

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
    /// [`super::mqtt`] for the keys and their v2.2 aliases).
    #[serde(default)]
    pub mqtt: Option<Spanned<RawMqtt>>,
    /// Webhook URLs that get a JSON POST on every state change (see
    /// [`super::webhooks`]; sent by [`crate::webhooks`]).
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
    /// `rtsp`, `mjpeg`, `snapshot` or `local`; inferred from the URL when absent.
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
    /// What the picture checks do (see [`super::picture`]).
    pub picture: Option<super::picture::RawPicture>,
    /// `libcamera:` streams: the picture and the capture command (see
    /// [`super::capture`]).
    pub capture: Option<super::capture::RawCapture>,
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
