//! The status report's shape: one entry per stream, keyed by stream name,
//! as `/api/status` sends it and MQTT publishes it (the aggregate is the
//! whole report, a stream's state topic is its entry). Typed and borrowed
//! from the board, so a request or a publish writes straight into its body
//! instead of building a `serde_json::Value` tree first.
//!
//! Byte compatibility: this replaced a `json!` tree, whose objects sort their
//! keys. Home Assistant templates and scripts read these payloads, so every
//! struct here lists its fields in that same (alphabetical) order, and the
//! tests pin the exact bytes (`testdata/`, captured from the old code; since
//! then only `transport`, `bitrate_kbps`, `keyframe_interval_ms`, `picture`,
//! `picture_detail`, `camera_clock`, `camera_clock_offset_ms` and `evidence` were added).
//! The seed's fields (`status` "ok"/"fail", `latency`, `message`, `ts`) are
//! kept for old consumers; the rest are the richer additions.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::time::Iso;
use crate::probe::{Kind, Reason, Stages};
use crate::state::{Health, LastResult, StreamState};

/// The whole report: every stream on the board, in the board's (name) order.
pub struct StatusReport<'a> {
    board: &'a BTreeMap<String, StreamState>,
    tz: &'a jiff::tz::TimeZone,
}

impl<'a> StatusReport<'a> {
    /// `tz` is the configured time zone (`Config::tz`) the times are shown in.
    pub fn new(board: &'a BTreeMap<String, StreamState>, tz: &'a jiff::tz::TimeZone) -> Self {
        StatusReport { board, tz }
    }
}

impl Serialize for StatusReport<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.board.len()))?;
        for (name, st) in self.board {
            m.serialize_entry(name, &StreamReport::new(st, self.tz))?;
        }
        m.end()
    }
}

/// One stream's entry. Field order is the wire order (alphabetical, see the
/// module doc); do not reorder.
#[derive(serde::Serialize)]
pub struct StreamReport<'a> {
    /// RTSP H.26x: video bitrate over a key-frame interval, kbit/s.
    bitrate_kbps: Option<u32>,
    /// RTSP: the camera's clock against the box's (`ok`, `off`, `unknown`).
    camera_clock: &'static str,
    /// The camera's clock minus the box's, from its last RTCP sender report.
    camera_clock_offset_ms: Option<i64>,
    /// Whether the box's clock was synced when the last probe ran.
    clock_synced: Option<bool>,
    codec: Option<&'a str>,
    consecutive_failures: u32,
    enabled: bool,
    /// While down: the stream page's evidence section (the last good
    /// picture before it went down, and the failure), a path on the box.
    evidence: Option<String>,
    failures_total: u64,
    /// The probe's f32 widened to f64, as the `Value` tree did (29.97 is
    /// sent as 29.969999313354492); kept for byte compatibility.
    fps: Option<f64>,
    height: Option<u32>,
    /// RTSP H.26x: ms between key frames (measured now and then; a lower
    /// bound when `keyframe_interval_over`).
    keyframe_interval_ms: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    keyframe_interval_over: bool,
    kind: Kind,
    last_failure: Option<FailureReport<'a>>,
    last_ok: Option<Iso<'a>>,
    /// Seed field: ms of the last probe.
    latency: Option<u32>,
    /// Seed field: the last probe's message, or why there is none.
    message: &'a str,
    /// The picture checks' verdict: `ok`, `frozen`, `black`, `blank`, `unknown`.
    picture: &'static str,
    /// Why the picture is not `ok`, in words.
    picture_detail: Option<&'a str>,
    probes_total: u64,
    reason: Option<Reason>,
    /// `WxH`, when both are known.
    resolution: Option<String>,
    /// When `state` last changed.
    since: Option<Iso<'a>>,
    stages: Option<StagesReport>,
    state: Health,
    /// Seed field: "ok", "fail", or "" before the first probe.
    status: &'static str,
    /// RTSP: the transport the last session got (`tcp`, `udp`).
    transport: Option<&'a str>,
    /// Seed field: when the last probe ran, "" (not null) before the first.
    #[serde(serialize_with = "empty_if_none")]
    ts: Option<Iso<'a>>,
    ts_ms: Option<i64>,
    /// Never carries a password (redacted when the config was read).
    url: &'a str,
    width: Option<u32>,
}

impl<'a> StreamReport<'a> {
    pub fn new(s: &'a StreamState, tz: &'a jiff::tz::TimeZone) -> Self {
        let last = s.last.as_ref();
        let m = &s.media;
        StreamReport {
            bitrate_kbps: m.bitrate_kbps,
            camera_clock: s.picture.camera_clock.as_str(),
            camera_clock_offset_ms: s.picture.camera_clock_offset_ms,
            clock_synced: last.map(|l| !l.clock_unsynced),
            codec: m.codec.as_deref(),
            consecutive_failures: s.consecutive_fail,
            enabled: s.enabled,
            evidence: (s.health == Health::Down).then(|| super::evidence_link(&s.name)),
            failures_total: s.failures_total,
            fps: m.fps.map(f64::from),
            height: m.height,
            keyframe_interval_ms: m.keyframe_interval_ms,
            keyframe_interval_over: m.keyframe_interval_over,
            kind: s.kind,
            last_failure: s.last_failure.as_ref().map(|f| FailureReport::new(f, tz)),
            last_ok: s.last_ok_ms.map(|t| Iso::new(t, tz)),
            latency: last.map(|l| l.latency_ms),
            message: match last {
                Some(l) => &l.message,
                None if s.enabled => "no data yet",
                None => "disabled",
            },
            picture: s.picture.verdict.as_str(),
            picture_detail: Some(s.picture.detail.as_str()).filter(|d| !d.is_empty()),
            probes_total: s.probes_total,
            reason: last.and_then(|l| l.reason),
            resolution: match (m.width, m.height) {
                (Some(w), Some(h)) => Some(format!("{w}x{h}")),
                _ => None,
            },
            since: s.health_since_ms.map(|t| Iso::new(t, tz)),
            stages: last.map(|l| StagesReport::new(&l.stages)),
            state: s.health,
            status: match last {
                Some(l) if l.ok => "ok",
                Some(_) => "fail",
                None => "",
            },
            transport: m.transport.as_deref(),
            ts: last.map(|l| Iso::new(l.ts_ms, tz)),
            ts_ms: last.map(|l| l.ts_ms),
            url: &s.url_redacted,
            width: m.width,
        }
    }
}

/// The seed's `ts` is a string even before the first probe: "".
fn empty_if_none<S: Serializer>(t: &Option<Iso<'_>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => t.serialize(s),
        None => s.serialize_str(""),
    }
}

/// `last_failure`: when, why and what the last failed probe said.
#[derive(serde::Serialize)]
struct FailureReport<'a> {
    message: &'a str,
    reason: Option<Reason>,
    ts: Iso<'a>,
}

impl<'a> FailureReport<'a> {
    fn new(f: &'a LastResult, tz: &'a jiff::tz::TimeZone) -> Self {
        FailureReport {
            message: &f.message,
            reason: f.reason,
            ts: Iso::new(f.ts_ms, tz),
        }
    }
}

/// `stages`: [`Stages`] with its fields in wire (alphabetical) order, which
/// is not its declaration (probe) order.
#[derive(serde::Serialize)]
struct StagesReport {
    connect_ms: Option<u32>,
    describe_ms: Option<u32>,
    dns_ms: Option<u32>,
    first_frame_ms: Option<u32>,
    play_ms: Option<u32>,
    setup_ms: Option<u32>,
}

impl StagesReport {
    fn new(s: &Stages) -> Self {
        // Destructured so a new stage cannot be forgotten here.
        let Stages {
            dns_ms,
            connect_ms,
            describe_ms,
            setup_ms,
            play_ms,
            first_frame_ms,
        } = *s;
        StagesReport {
            connect_ms,
            describe_ms,
            dns_ms,
            first_frame_ms,
            play_ms,
            setup_ms,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::report::fixture::board as fixture_board;

    /// `assert_eq!` with the first difference shown in context (the bodies
    /// are kilobytes long).
    pub(crate) fn assert_same(got: &str, want: &str) {
        if got == want {
            return;
        }
        let (g, w): (Vec<char>, Vec<char>) = (got.chars().collect(), want.chars().collect());
        let at = g.iter().zip(&w).take_while(|(a, b)| a == b).count();
        let ctx = |v: &[char]| -> String {
            v[at.saturating_sub(120)..(at + 60).min(v.len())]
                .iter()
                .collect()
        };
        panic!(
            "JSON differs at char {at} (got {} chars, want {}):\n--- got:\n{}\n--- want:\n{}",
            g.len(),
            w.len(),
            ctx(&g),
            ctx(&w)
        );
    }

    fn kolkata() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Asia/Kolkata").unwrap()
    }

    /// The exact `/api/status` body (pretty, as the web sends it) for a fixed
    /// board, captured from the `serde_json::Value` code this replaced.
    #[test]
    fn status_pretty_is_byte_for_byte_the_old_api_body() {
        let (board, tz) = (fixture_board(), kolkata());
        let got = serde_json::to_string_pretty(&StatusReport::new(&board, &tz)).unwrap();
        assert_same(&got, include_str!("testdata/status_pretty.json"));
    }

    /// The exact MQTT aggregate (compact) for the same board.
    #[test]
    fn status_compact_is_byte_for_byte_the_old_aggregate() {
        let (board, tz) = (fixture_board(), kolkata());
        let got = serde_json::to_string(&StatusReport::new(&board, &tz)).unwrap();
        assert_same(&got, include_str!("testdata/status_compact.json"));
    }

    /// The exact MQTT state payload of one stream.
    #[test]
    fn one_stream_is_byte_for_byte_the_old_state_payload() {
        let (board, tz) = (fixture_board(), kolkata());
        let got = serde_json::to_string(&StreamReport::new(&board["Lobby Cam"], &tz)).unwrap();
        assert_same(&got, include_str!("testdata/stream_lobby_cam.json"));
    }

    #[test]
    fn empty_board_is_an_empty_object() {
        let (board, tz) = (BTreeMap::new(), kolkata());
        let r = StatusReport::new(&board, &tz);
        assert_eq!(serde_json::to_string_pretty(&r).unwrap(), "{}");
        assert_eq!(serde_json::to_string(&r).unwrap(), "{}");
    }
}
