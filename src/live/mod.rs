//! Live view: cameras relayed to browsers, never transcoded on the box.
//!
//! * **MJPEG** cameras (and snapshot URLs, polled, and MJPEG over RTSP):
//!   JPEGs are relayed as they come, as `multipart/x-mixed-replace` (the
//!   page draws them on a canvas; the URL also plays in an `<img>`).
//! * **RTSP H.264** (and H.265): retina depacketizes, [`fmp4`] wraps every
//!   frame in its own `moof` + `mdat`, and the page feeds them to Media
//!   Source Extensions. MSE exists on plain-http LAN origins; WebCodecs does
//!   not (secure contexts only). Nothing is decoded for the viewers: H.265
//!   plays where the browser's MSE has HEVC, and the page says so honestly
//!   where it has not (Debian's Chromium); the box has no H.265 decoder to
//!   fall back on.
//! * **The box's own camera** (`libcamera:`): a capture command's H.264
//!   (`local.rs`), split into pictures and wrapped into fMP4 the same way.
//!   A USB webcam (`v4l2://`, `v4l2.rs`): its H.264 the same way, its MJPEG
//!   (or its YUYV, JPEG-encoded on the box) relayed like an MJPEG camera's.
//!
//! # One camera session per stream
//!
//! A [`Channel`] (`channel.rs`) holds the one upstream connection of a
//! stream, shared by all its viewers: a camera that allows 2 sessions sees
//! the monitor's short probe plus at most this one. While a channel plays,
//! the monitor's probe of that stream is answered from it (`prober.rs`: the
//! [`Hub`] is the monitor's [`crate::monitor::Prober`]; the next key frame,
//! or JPEG that decodes, within the probe deadline), so a single-client
//! MJPEG camera stays "up" while someone watches it. The last viewer leaving
//! closes the upstream after [`LINGER`] (a reload does not reconnect to the
//! camera). The [`Hub`] (`hub.rs`) is the registry of channels and enforces
//! the caps.
//!
//! # Threads: why viewers never hold a web worker
//!
//! tiny_http's workers are few (`web.workers`, default 4) and a streaming
//! response would hold one for as long as someone watches. So the web
//! handler only decides (login, caps) and hands the socket over (as a
//! [`Sink`] that frames the HTTP answer) to a **dedicated viewer thread**
//! (`viewer.rs`); the worker is free at once. Viewer threads block on their socket, never
//! on each other or on the camera: an upstream offers each frame to every
//! viewer's one-frame [`slot::Slot`] and moves on, so a slow viewer gets
//! fewer frames (MJPEG) or skips to the next key frame (H.26x) and holds at
//! most one frame in memory. The number of viewer threads is bounded by
//! `live.max_viewers` (plus detached ones still closing, also bounded).
//! The web server sets a send timeout on its sockets, so a viewer whose
//! network vanished is gone within seconds; one that stops reading is
//! detached after [`slot::STALL`]. Upstreams: RTSP on the daemon's tokio
//! runtime (retina is async), MJPEG/snapshots on one blocking thread each
//! (ureq, with a per-read timeout).
//!
//! # Latency
//!
//! Every frame carries the box's receive time and, where the camera's RTCP
//! sender reports map RTP time to wall time, its capture time; the page
//! shows camera→box, box→screen and glass-to-glass per tile (see
//! [`fmp4::timing_box`] and the `X-Recv-Ms`/`X-Capture-Ms` part headers).
//!
//! # What is not here
//!
//! HTTP. The grid page, `/api/live`, thumbnails and the framing of a
//! viewer's answer are the web GUI's (`web::live_page`); this module
//! produces frames, bodies and reasons ([`Refused`]), and never imports the
//! web layer.

mod channel;
pub mod fmp4;
mod http;
mod hub;
mod local;
mod prober;
mod reconnect;
mod rtsp;
pub mod slot;
pub mod thumbs;
mod v4l2;
mod viewer;

use std::time::Duration;

pub use channel::{Channel, Output, UpState};
pub use hub::{Hub, LiveStatus, Refused};
pub use viewer::{Head, Sink, Ticket};
// For the upstreams (`http.rs`, `rtsp.rs`).

/// An upstream stays open this long after its last viewer left.
pub const LINGER: Duration = Duration::from_secs(2);
/// A viewer with nothing to send writes a keep-alive this often (so a
/// closed browser is noticed even while the camera is silent).
pub const KEEPALIVE: Duration = Duration::from_secs(2);
/// An upstream with no data for this long reconnects.
pub const UPSTREAM_SILENCE: Duration = Duration::from_secs(5);
/// Attempts to start an upstream before waiting viewers are told it failed.
const START_ATTEMPTS: u32 = 3;
/// Multipart boundary of the MJPEG relay.
pub const BOUNDARY: &str = "spframe";

/// Unix ms of an NTP timestamp (RTCP sender reports).
fn ntp_to_unix_ms(ntp: u64) -> f64 {
    const NTP_UNIX_OFFSET_SECS: f64 = 2_208_988_800.0;
    let secs = (ntp >> 32) as f64 - NTP_UNIX_OFFSET_SECS;
    let frac = (ntp & 0xFFFF_FFFF) as f64 / 4_294_967_296.0;
    (secs + frac) * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_conversion() {
        // 2024-01-01T00:00:00.5Z
        let unix = 1_704_067_200u64;
        let ntp = ((unix + 2_208_988_800) << 32) | (1u64 << 31);
        assert_eq!(ntp_to_unix_ms(ntp), 1_704_067_200_500.0);
    }
}
