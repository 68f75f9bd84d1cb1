//! One probe of one stream: connect, get one complete frame, judge it.
//!
//! A probe proves that video arrives: for RTSP the first complete key frame
//! after DESCRIBE/SETUP/PLAY ([`rtsp`]); for MJPEG-over-HTTP and snapshot URLs a
//! complete JPEG that decodes ([`http`]); for the box's own camera the first
//! complete key frame its capture command writes ([`local`]). Every probe
//! runs under a hard deadline ([`Target::timeout`]) and a byte cap
//! ([`Target::max_frame_bytes`]), so a camera that stalls, floods or lies
//! can only fail its own probe.
//!
//! Inside that deadline, each stage that waits for a first answer (DNS, TCP
//! connect, each RTSP request, the HTTP response headers) has its own, shorter
//! one ([`Target::stage_deadline`]): a camera that accepts and goes silent,
//! or a dead DNS server, fails with `timeout` after a few seconds instead of
//! holding a permit of the monitor for the whole `timeout`. Only the wait for
//! the first frame (a camera's key-frame interval) gets the rest of `timeout`.
//!
//! Failures carry a stable [`Reason`] code (stored in SQLite, sent in the API)
//! and a human message that never contains the camera password.
//!
//! Here: what a probe is given ([`Target`]) and how it runs ([`run`]). The
//! verdict's types are in `outcome.rs`; DNS and TCP connect in `net.rs`. The
//! camera requests that the live view makes too are shared from
//! `http_get.rs` (the authenticated GET) and `rtsp_session.rs` (DESCRIBE,
//! SETUP, PLAY), so both speak to cameras the same way.

pub mod annexb;
pub mod capture;
pub mod http;
pub(crate) mod http_get;
pub mod jpeg;
pub mod local;
mod net;
mod outcome;
pub mod rtsp;
pub(crate) mod rtsp_session;
mod transport;
pub mod v4l2;
mod v4l2_device;

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::redact::Credentials;

pub use capture::Capture;
pub use net::{resolve, resolve_target, tcp_connect};
pub use outcome::{Failure, Frame, MediaFacts, Outcome, Reason, Stages};
pub use transport::Transport;

/// What kind of endpoint a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// RTSP (H.264, H.265 or MJPEG over RTP).
    Rtsp,
    /// `multipart/x-mixed-replace` JPEG stream over HTTP (MotionEye, many IP cameras).
    Mjpeg,
    /// A URL answering one JPEG per request.
    Snapshot,
    /// The box's own camera: `libcamera:[index]` (the Pi camera, through a
    /// capture command such as `rpicam-vid` writing H.264 to its standard
    /// output, [`Target::capture`]) or `v4l2:///dev/videoN` (a USB webcam,
    /// read directly: its H.264 or MJPEG, or its YUYV encoded as JPEG on the
    /// box). One kind for both: what differs is how the bytes are got; the
    /// picture checks and the live view take H.264 or JPEG as for cameras.
    Local,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rtsp => "rtsp",
            Kind::Mjpeg => "mjpeg",
            Kind::Snapshot => "snapshot",
            Kind::Local => "local",
        }
    }

    /// Guesses the kind from a URL when the config does not say.
    pub fn infer(url: &url::Url) -> Option<Kind> {
        match url.scheme() {
            "rtsp" => Some(Kind::Rtsp),
            "libcamera" | "v4l2" => Some(Kind::Local),
            "http" | "https" => {
                let p = url.path().to_ascii_lowercase();
                let q = url.query().unwrap_or("").to_ascii_lowercase();
                let still = p.ends_with(".jpg")
                    || p.ends_with(".jpeg")
                    || [
                        "snapshot",
                        "/current",
                        "still",
                        "snap.cgi",
                        "action=snapshot",
                    ]
                    .iter()
                    .any(|w| p.contains(w) || q.contains(w));
                Some(if still { Kind::Snapshot } else { Kind::Mjpeg })
            }
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Everything needed to probe one stream. The URL carries no credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub url: url::Url,
    pub kind: Kind,
    pub creds: Option<Credentials>,
    /// Hard deadline for the whole probe (DNS to first frame); each
    /// first-answer stage also has [`Target::stage_deadline`].
    pub timeout: Duration,
    pub transport: Transport,
    /// Byte cap: a frame (or the bytes read while looking for one) beyond this fails.
    pub max_frame_bytes: usize,
    /// RTSP: after the first key frame, wait (within the deadline) for the
    /// next one, to measure the key-frame interval and bitrate. The monitor
    /// asks for it now and then; the verdict does not depend on it.
    pub measure_keyframe_interval: bool,
    /// [`Kind::Local`] streams: the capture command or V4L2 device and the
    /// picture asked of it. None for every other stream.
    pub capture: Option<Capture>,
}

impl Target {
    /// The same camera stream, asked the same way: everything but what one
    /// probe is asked to measure besides the verdict. A live session of the
    /// stream answers the monitor's probe when this holds, the measuring
    /// ones included (the live session measures key frames all the time), so
    /// a camera that allows one session is never opened twice.
    pub fn same_stream(&self, other: &Target) -> bool {
        let Target {
            url,
            kind,
            creds,
            timeout,
            transport,
            max_frame_bytes,
            measure_keyframe_interval: _,
            capture,
        } = self;
        *url == other.url
            && *kind == other.kind
            && *creds == other.creds
            && *timeout == other.timeout
            && *transport == other.transport
            && *max_frame_bytes == other.max_frame_bytes
            && *capture == other.capture
    }
}

/// Default byte cap: a 4K JPEG or H.264 key frame is well under this.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 << 20;

/// Longest wait for the first answer of a stage: DNS, TCP connect, each RTSP
/// request (DESCRIBE, SETUP, PLAY), the HTTP response headers. A camera on a
/// LAN answers these in milliseconds. Without this, a camera that accepts and
/// never answers (or a dead DNS server) held its probe, and one permit of
/// `monitor.max_concurrent_probes`, for the whole `timeout` (10 s by
/// default): 150 of them among 1000 streams needed more permits than there
/// were, and healthy probes queued behind them (docs/PERFORMANCE.md).
pub const FIRST_ANSWER_DEADLINE: Duration = Duration::from_secs(3);

impl Target {
    /// Deadline of each first-answer stage: `min(timeout, 3 s)`. The wait for
    /// the first frame gets whatever is left of `timeout`.
    pub fn stage_deadline(&self) -> Duration {
        self.timeout.min(FIRST_ANSWER_DEADLINE)
    }
}

/// The failure of a first-answer stage that got no answer within `deadline`.
pub(crate) fn stage_timeout(deadline: Duration, stage: Stage) -> Failure {
    Failure::new(
        Reason::Timeout,
        format!(
            "no answer within {:.1} s while {}",
            deadline.as_secs_f32(),
            stage.as_str()
        ),
    )
}

/// Runs one first-answer stage under `deadline` ([`Target::stage_deadline`]).
pub(crate) async fn within_stage<T>(
    deadline: Duration,
    stage: Stage,
    fut: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(deadline, fut)
        .await
        .unwrap_or_else(|_| Err(stage_timeout(deadline, stage)))
}

/// Where a probe is; kept outside the probe future so that a timeout can
/// report the stage that hung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Dns,
    Connect,
    Describe,
    Setup,
    Play,
    FirstFrame,
    Decode,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "resolving the host name",
            Stage::Connect => "connecting",
            Stage::Describe => "waiting for the DESCRIBE/response headers",
            Stage::Setup => "waiting for SETUP",
            Stage::Play => "waiting for PLAY",
            Stage::FirstFrame => "waiting for the first complete frame",
            Stage::Decode => "decoding the frame",
        }
    }
}

#[derive(Debug)]
pub struct Progress {
    pub start: Instant,
    pub stage: Stage,
    pub stages: Stages,
    pub media: MediaFacts,
    /// Set by the caller: keep the proving frame in [`Progress::frame`].
    pub keep_frame: bool,
    /// The proving frame, when `keep_frame` was set and the probe succeeded.
    pub frame: Option<Frame>,
    /// Damaged packets skipped while waiting for a clean key frame (a
    /// stream joined mid-frame, loss over UDP), and the last one's error:
    /// named in the verdict if no clean key frame comes in time.
    pub skipped: Skipped,
    /// Whole frames received while waiting for the first key frame (RTSP):
    /// a deadline that passes after some is `no_frame`, not `timeout` (the
    /// camera answers; its key frames are too far apart or never come).
    pub frames_without_key: usize,
    /// Milliseconds to the frame that proved the stream, when the probe
    /// went on after it (measuring the key-frame interval): the latency.
    pub proved_ms: Option<u32>,
}

/// See [`Progress::skipped`].
#[derive(Debug, Default)]
pub struct Skipped {
    pub count: u32,
    pub last_error: Option<String>,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            start: Instant::now(),
            stage: Stage::Dns,
            stages: Stages::default(),
            media: MediaFacts::default(),
            keep_frame: false,
            frame: None,
            skipped: Skipped::default(),
            frames_without_key: 0,
            proved_ms: None,
        }
    }

    /// Milliseconds since `since`, saturated into a u32.
    pub fn ms(since: Instant) -> u32 {
        u32::try_from(since.elapsed().as_millis()).unwrap_or(u32::MAX)
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// Extra time the outer deadline grants HTTP probes: their blocking half
/// enforces `target.timeout` itself (ureq's global timeout) and knows which
/// stage it was in, so the outer timeout is only a safety net.
const HTTP_GRACE: Duration = Duration::from_secs(1);

/// Probes `target` once, never taking (much) longer than `target.timeout`.
pub async fn run(target: &Target) -> Outcome {
    run_inner(target, false).await.0
}

/// Like [`run`], and also returns the frame that proved the stream alive
/// (for the web's on-demand preview; at most `target.max_frame_bytes`).
pub async fn run_keeping_frame(target: &Target) -> (Outcome, Option<Frame>) {
    run_inner(target, true).await
}

async fn run_inner(target: &Target, keep_frame: bool) -> (Outcome, Option<Frame>) {
    let mut progress = Progress::new();
    progress.keep_frame = keep_frame;
    let deadline = match target.kind {
        Kind::Rtsp | Kind::Local => target.timeout,
        Kind::Mjpeg | Kind::Snapshot => target.timeout + HTTP_GRACE,
    };
    let result = match tokio::time::timeout(deadline, probe_inner(target, &mut progress)).await {
        Ok(r) => r,
        // Frames came, damaged: the camera answers, but no clean picture.
        Err(_) if progress.skipped.last_error.is_some() => Err(Failure::new(
            Reason::NoFrame,
            format!(
                "no complete key frame within {:.1} s; skipped {} damaged packets, the last: {}",
                target.timeout.as_secs_f32(),
                progress.skipped.count,
                progress.skipped.last_error.as_deref().unwrap_or_default()
            ),
        )),
        Err(_) if progress.frames_without_key > 0 => Err(Failure::new(
            Reason::NoFrame,
            format!(
                "{} frames but no key frame within {:.1} s (are the camera's key frames \
                 further apart than the timeout?)",
                progress.frames_without_key,
                target.timeout.as_secs_f32(),
            ),
        )),
        Err(_) => Err(Failure::new(
            Reason::Timeout,
            format!(
                "no answer within {:.1} s while {}",
                target.timeout.as_secs_f32(),
                progress.stage.as_str()
            ),
        )),
    };
    let result = result.map_err(|f| Failure {
        reason: f.reason,
        message: crate::redact::scrub(&f.message, target.creds.as_ref()),
    });
    let frame = if result.is_ok() { progress.frame } else { None };
    let outcome = Outcome {
        result,
        latency_ms: progress
            .proved_ms
            .unwrap_or_else(|| Progress::ms(progress.start)),
        stages: progress.stages,
        media: progress.media,
    };
    (outcome, frame)
}

async fn probe_inner(target: &Target, progress: &mut Progress) -> Result<(), Failure> {
    match target.kind {
        Kind::Rtsp => rtsp::probe(target, progress).await,
        Kind::Mjpeg | Kind::Snapshot => http::probe(target, progress).await,
        Kind::Local => local::probe(target, progress).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_deadline_is_the_shorter_of_timeout_and_3_s() {
        let mut t = target("rtsp://127.0.0.1:1/x", Kind::Rtsp, 10);
        assert_eq!(t.stage_deadline(), FIRST_ANSWER_DEADLINE);
        t.timeout = Duration::from_secs(1);
        assert_eq!(t.stage_deadline(), Duration::from_secs(1));
    }

    fn target(url: &str, kind: Kind, timeout_s: u64) -> Target {
        Target {
            url: url::Url::parse(url).unwrap(),
            kind,
            creds: None,
            timeout: Duration::from_secs(timeout_s),
            transport: Transport::Auto,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            measure_keyframe_interval: false,
            capture: None,
        }
    }

    /// A real TCP server on loopback that runs `serve` on each connection
    /// (in its own thread) until dropped.
    struct Peer {
        port: u16,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl Peer {
        fn start(serve: fn(std::net::TcpStream)) -> Peer {
            use std::sync::atomic::Ordering;
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            l.set_nonblocking(true).unwrap();
            let port = l.local_addr().unwrap().port();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((c, _)) => {
                            c.set_nonblocking(false).unwrap();
                            std::thread::spawn(move || serve(c));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
            Peer { port, stop }
        }
    }

    impl Drop for Peer {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Accepts, reads whatever comes, never answers (a hung camera).
    fn silent(mut c: std::net::TcpStream) {
        use std::io::Read;
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 4096];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Asserts a `timeout` naming `stage_words`, decided at the 3 s stage
    /// deadline although the probe's timeout is 10 s.
    #[track_caller]
    fn assert_stage_timeout(o: &Outcome, took: Duration, stage_words: &str) {
        let f = o.result.as_ref().expect_err("a silent camera fails");
        assert_eq!(f.reason, Reason::Timeout, "{f:?}");
        assert!(
            f.message.contains("3.0 s") && f.message.contains(stage_words),
            "the message names the stage and its deadline: {f:?}"
        );
        assert!(
            // Well before the 10 s timeout (generous: a loaded CI box).
            took >= Duration::from_millis(2900) && took < Duration::from_millis(8000),
            "verdict after {took:?}, not at the 3 s stage deadline: {f:?}"
        );
    }

    #[tokio::test]
    async fn silent_rtsp_camera_fails_at_the_stage_deadline() {
        let peer = Peer::start(silent);
        let t = target(
            &format!("rtsp://127.0.0.1:{}/live", peer.port),
            Kind::Rtsp,
            10,
        );
        let start = Instant::now();
        let o = run(&t).await;
        assert_stage_timeout(&o, start.elapsed(), "DESCRIBE");
        assert!(o.stages.connect_ms.is_some(), "it connected: {o:?}");
    }

    #[tokio::test]
    async fn silent_http_camera_fails_at_the_stage_deadline() {
        let peer = Peer::start(silent);
        let t = target(
            &format!("http://127.0.0.1:{}/stream.mjpg", peer.port),
            Kind::Mjpeg,
            10,
        );
        let start = Instant::now();
        let o = run(&t).await;
        assert_stage_timeout(&o, start.elapsed(), "response headers");
    }

    /// Answers at once, then takes 4 s for the picture: a slow first frame
    /// still gets the probe's whole timeout, not the stage deadline.
    fn slow_picture(mut c: std::net::TcpStream) {
        use std::io::{Read, Write};
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let img = image::RgbImage::from_pixel(16, 16, image::Rgb([10, 200, 30]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&img)
            .unwrap();
        let _ = c
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n");
        std::thread::sleep(Duration::from_secs(4));
        let _ = c.write_all(&jpeg);
    }

    #[tokio::test]
    async fn slow_first_frame_gets_the_whole_timeout() {
        let peer = Peer::start(slow_picture);
        let t = target(
            &format!("http://127.0.0.1:{}/snap.jpg", peer.port),
            Kind::Snapshot,
            8,
        );
        let o = run(&t).await;
        assert!(o.is_ok(), "{o:?}");
        assert!(o.latency_ms >= 3900, "the picture came after 4 s: {o:?}");
    }

    #[test]
    fn kind_inference() {
        let k = |s: &str| Kind::infer(&url::Url::parse(s).unwrap());
        assert_eq!(k("rtsp://cam/stream1"), Some(Kind::Rtsp));
        assert_eq!(k("http://pi:8081/"), Some(Kind::Mjpeg));
        assert_eq!(k("http://pi:8765/picture/1/current/"), Some(Kind::Snapshot));
        assert_eq!(k("http://cam/snapshot.jpg"), Some(Kind::Snapshot));
        assert_eq!(k("http://cam/mjpg/video.mjpg"), Some(Kind::Mjpeg));
        assert_eq!(k("ftp://cam/x"), None);
        assert_eq!(k("libcamera:"), Some(Kind::Local));
        assert_eq!(k("libcamera:1"), Some(Kind::Local));
        assert_eq!(k("v4l2:///dev/video0"), Some(Kind::Local));
    }
}
