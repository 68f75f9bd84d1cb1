//! What a probe reports: its verdict ([`Outcome`]: ok, or a [`Failure`] with a
//! stable [`Reason`] code), the time each stage took ([`Stages`]), what it
//! learnt about the media ([`MediaFacts`]) and, on request, the frame that
//! proved the stream alive ([`Frame`]).
//!
//! These types outlive the probe: the monitor stores them, the web, MQTT and
//! metrics show them. They live apart from the probing code in [`super`] so
//! that their stable names and codes are read in one place.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a probe failed. The snake_case names are stable: they are stored in
/// the database (as [`Reason::code`]) and sent in the API, MQTT and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The host name did not resolve.
    Dns,
    /// TCP connect refused or unreachable.
    Connect,
    /// The deadline passed (the stage says where).
    Timeout,
    /// 401/403: missing or wrong credentials.
    Auth,
    /// 404: wrong path.
    NotFound,
    /// The peer spoke something that is not valid RTSP/HTTP, or refused a request.
    Protocol,
    /// The stream has no video track we can depacketize.
    NoVideo,
    /// Connected and playing, but no complete frame arrived.
    NoFrame,
    /// A frame arrived but is not a decodable picture.
    BadFrame,
    /// The frame exceeded the byte cap.
    TooLarge,
    /// HTTP answered with another non-success status (5xx, ...).
    HttpStatus,
    /// Not the camera's failure: the box itself had no network (no carrier,
    /// no address) when a connect, DNS or timeout failure happened. Set by
    /// the monitor (`monitor::link`), never by a probe.
    BoxOffline,
    /// Frames arrive, but the picture has not changed over several checks
    /// (`crate::picture`; only when the stream's `picture.frozen` is `down`).
    Frozen,
    /// The picture is black (`picture.black: down`).
    Black,
    /// The picture is one flat colour (`picture.black: down`).
    Blank,
    /// The camera's clock is off (`picture.camera_clock: down`).
    CameraClock,
    /// The box's own camera: its capture command is missing, could not
    /// start, or exited (camera unplugged, busy, no camera); the message
    /// has the exit status and the command's last error lines.
    Capture,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 17] = [
        Reason::Dns,
        Reason::Connect,
        Reason::Timeout,
        Reason::Auth,
        Reason::NotFound,
        Reason::Protocol,
        Reason::NoVideo,
        Reason::NoFrame,
        Reason::BadFrame,
        Reason::TooLarge,
        Reason::HttpStatus,
        Reason::BoxOffline,
        Reason::Frozen,
        Reason::Black,
        Reason::Blank,
        Reason::CameraClock,
        Reason::Capture,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::Auth => "auth",
            Reason::NotFound => "not_found",
            Reason::Protocol => "protocol",
            Reason::NoVideo => "no_video",
            Reason::NoFrame => "no_frame",
            Reason::BadFrame => "bad_frame",
            Reason::TooLarge => "too_large",
            Reason::HttpStatus => "http_status",
            Reason::BoxOffline => "box_offline",
            Reason::Frozen => "frozen",
            Reason::Black => "black",
            Reason::Blank => "blank",
            Reason::CameraClock => "camera_clock",
            Reason::Capture => "capture",
        }
    }

    /// Small integer stored in `heartbeats.reason` (1-based; 0/NULL means none).
    /// Never renumber: append new reasons at the end.
    pub fn code(self) -> u8 {
        Reason::ALL
            .iter()
            .position(|r| *r == self)
            .expect("ALL lists every reason") as u8
            + 1
    }

    pub fn from_code(code: i64) -> Option<Reason> {
        usize::try_from(code - 1)
            .ok()
            .and_then(|i| Reason::ALL.get(i).copied())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A failed probe: a reason code plus a human message without credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

/// Milliseconds spent in each stage; `None` where a stage did not happen or
/// does not apply (HTTP has no SETUP).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stages {
    pub dns_ms: Option<u32>,
    pub connect_ms: Option<u32>,
    /// RTSP DESCRIBE (its own TCP connection included) / HTTP request until response headers.
    pub describe_ms: Option<u32>,
    pub setup_ms: Option<u32>,
    pub play_ms: Option<u32>,
    /// From PLAY (RTSP) or response headers (HTTP) until the first complete frame.
    pub first_frame_ms: Option<u32>,
}

impl Stages {
    /// The stage a failed probe stopped in: the first that did not complete
    /// (a camera over HTTP has no SETUP or PLAY; the box's own camera only
    /// a start of its capture command, in `connect_ms`, and a first frame),
    /// or `picture` when every stage did and the picture checks failed the
    /// heartbeat.
    pub fn failed_stage(&self, kind: super::Kind) -> &'static str {
        use super::Kind;
        let steps: &[(Option<u32>, &'static str)] = if kind == Kind::Local {
            &[
                (self.connect_ms, "capture start"),
                (self.first_frame_ms, "first frame"),
            ]
        } else if kind != Kind::Rtsp {
            &[
                (self.dns_ms, "dns"),
                (self.connect_ms, "connect"),
                (self.describe_ms, "response headers"),
                (self.first_frame_ms, "first frame"),
            ]
        } else {
            &[
                (self.dns_ms, "dns"),
                (self.connect_ms, "connect"),
                (self.describe_ms, "DESCRIBE"),
                (self.setup_ms, "SETUP"),
                (self.play_ms, "PLAY"),
                (self.first_frame_ms, "first frame"),
            ]
        };
        steps
            .iter()
            .find(|(ms, _)| ms.is_none())
            .map_or("picture", |(_, name)| name)
    }
}

/// What a probe learnt about the media.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MediaFacts {
    /// `h264`, `h265` or `jpeg`.
    pub codec: Option<String>,
    /// RFC 6381 codec string (`avc1.64001F`), RTSP H.26x only.
    pub rfc6381: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frames per second, as the stream declares it (SPS timing or SDP).
    pub fps: Option<f32>,
    /// RTSP transport used.
    pub transport: Option<String>,
    /// Size of the frame that proved the stream alive.
    pub frame_bytes: Option<u32>,
    /// RTSP H.26x: time between two key frames, measured now and then
    /// ([`super::Target::measure_keyframe_interval`]) or by a live session.
    /// A key-frame interval longer than the probe's timeout is the cause of
    /// many false `no_frame`s.
    pub keyframe_interval_ms: Option<u32>,
    /// True when the probe's deadline came before the second key frame:
    /// `keyframe_interval_ms` is then how long it waited, a lower bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keyframe_interval_over: bool,
    /// Video bitrate over that key-frame interval, kbit/s.
    pub bitrate_kbps: Option<u32>,
    /// RTSP: the camera's wall clock (its last RTCP sender report) minus
    /// the box's, read by the probes that measure the key-frame interval.
    pub camera_clock_offset_ms: Option<i64>,
}

impl MediaFacts {
    /// True if the facts the `streams` table keeps (codec, size, fps) are
    /// the same. `frame_bytes` differs on nearly every probe: comparing it
    /// too rewrote a stream's row on every heartbeat (`make bench`).
    pub fn same_stored_facts(&self, other: &MediaFacts) -> bool {
        self.codec == other.codec
            && self.width == other.width
            && self.height == other.height
            && self.fps == other.fps
    }

    /// Keeps `prev`'s key-frame interval and bitrate when this probe did not
    /// measure them (they are measured only now and then).
    pub fn keep_gop_facts_of(&mut self, prev: &MediaFacts) {
        if self.keyframe_interval_ms.is_none() && self.codec == prev.codec {
            self.keyframe_interval_ms = prev.keyframe_interval_ms;
            self.keyframe_interval_over = prev.keyframe_interval_over;
            self.bitrate_kbps = prev.bitrate_kbps;
        }
        if self.camera_clock_offset_ms.is_none() {
            self.camera_clock_offset_ms = prev.camera_clock_offset_ms;
        }
    }

    /// Short human summary: `h264 1920x1080 @ 25 fps`.
    pub fn summary(&self) -> String {
        let mut s = self.codec.clone().unwrap_or_else(|| "video".into());
        if let (Some(w), Some(h)) = (self.width, self.height) {
            s.push_str(&format!(" {w}x{h}"));
        }
        if let Some(f) = self.fps {
            s.push_str(&format!(" @ {} fps", (f * 100.0).round() / 100.0));
        }
        s
    }
}

/// The result of one probe.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub result: Result<(), Failure>,
    /// Wall time from probe start to the first complete frame (or to the failure).
    pub latency_ms: u32,
    pub stages: Stages,
    pub media: MediaFacts,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    pub fn reason(&self) -> Option<Reason> {
        self.result.as_ref().err().map(|f| f.reason)
    }

    /// Human message: the media summary when ok, the failure message otherwise.
    pub fn message(&self) -> String {
        match &self.result {
            Ok(()) => self.media.summary(),
            Err(f) => f.message.clone(),
        }
    }
}

/// The frame that proved a stream alive, kept only on request
/// ([`super::run_keeping_frame`]: the web preview); the monitor's probes drop it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// `h264`, `h265` or `jpeg`.
    pub codec: String,
    /// A complete JPEG, or an H.264/H.265 key frame in Annex B with its
    /// parameter sets (retina's `FrameFormat::SIMPLE`).
    pub data: Vec<u8>,
}

/// Progress of a running probe, filled in as stages complete.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stored_media_facts_count_as_a_change() {
        let a = MediaFacts {
            codec: Some("h264".into()),
            width: Some(320),
            height: Some(240),
            fps: Some(15.0),
            frame_bytes: Some(4000),
            ..MediaFacts::default()
        };
        let next_frame = MediaFacts {
            frame_bytes: Some(4100),
            transport: Some("tcp".into()),
            ..a.clone()
        };
        assert!(a.same_stored_facts(&next_frame));
        let resized = MediaFacts {
            width: Some(640),
            ..a.clone()
        };
        assert!(!a.same_stored_facts(&resized));
    }

    #[test]
    fn reason_codes_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code() as i64), Some(r));
        }
        assert_eq!(Reason::from_code(0), None);
        assert_eq!(Reason::from_code(99), None);
        assert_eq!(
            Reason::Dns.code(),
            1,
            "codes are stored in the DB: never renumber"
        );
    }
}
