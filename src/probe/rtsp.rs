//! RTSP probe (retina): DESCRIBE → SETUP one video track → PLAY → first
//! complete key frame → TEARDOWN.
//!
//! Notes from measuring retina 0.4 against real servers (`docs/TESTING.md`):
//! * retina has no timeouts of its own; the caller ([`super::run`]) bounds the
//!   whole probe, and each request (DESCRIBE, SETUP, PLAY) is bounded here by
//!   [`Target::stage_deadline`], so a silent camera fails fast.
//! * credentials go in [`retina::client::SessionOptions::creds`], never in the URL.
//! * only the chosen video track is SETUP: audio (e.g. Opus) that retina cannot
//!   depacketize would otherwise fail the whole session.
//! * TEARDOWN is sent when the session drops; we then await the session group
//!   (bounded) in a background task, so a camera with a 2–4 session limit is
//!   not exhausted by stale sessions, and the probe's latency excludes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::{
    InitialSequenceNumberPolicy, PlayOptions, SessionGroup, SessionOptions, SetupOptions,
    TcpTransportOptions, TeardownPolicy, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParameters};

use super::{Failure, MediaFacts, Progress, Reason, Stage, Target, Transport};

/// Frames we accept before the first key frame; a camera sending an endless
/// run of P-frames (or garbage) fails with `no_frame` instead of spinning
/// until the deadline.
const MAX_FRAMES_BEFORE_KEYFRAME: usize = 600;

/// How long the background TEARDOWN may take.
const TEARDOWN_BOUND: Duration = Duration::from_secs(5);

/// Probes an RTSP stream; see the module docs.
pub async fn probe(target: &Target, progress: &mut Progress) -> Result<(), Failure> {
    let host = target
        .url
        .host_str()
        .ok_or_else(|| Failure::new(Reason::Protocol, "URL has no host"))?
        .to_owned();
    let port = target.url.port().unwrap_or(554);
    let stage = target.stage_deadline();
    let addrs =
        super::within_stage(stage, Stage::Dns, super::resolve(&host, port, progress)).await?;
    super::within_stage(stage, Stage::Connect, super::tcp_connect(&addrs, progress)).await?;

    let group = Arc::new(SessionGroup::default());
    let result = play_to_keyframe(target, progress, group.clone()).await;
    // The session was dropped inside `play_to_keyframe`, which queued TEARDOWN on
    // this runtime; wait for it off the probe's clock.
    PENDING_TEARDOWNS.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        if let Ok(Err(e)) = tokio::time::timeout(TEARDOWN_BOUND, group.await_teardown()).await {
            tracing::debug!("teardown failed: {}", first_line(&e.to_string()));
        }
        PENDING_TEARDOWNS.fetch_sub(1, Ordering::SeqCst);
    });
    result
}

/// TEARDOWNs still in flight (a short-lived process waits for them before
/// exiting, so cameras are not left with stale sessions).
static PENDING_TEARDOWNS: AtomicUsize = AtomicUsize::new(0);

/// Waits (up to `bound`) until queued TEARDOWNs have completed.
pub async fn wait_for_teardowns(bound: Duration) {
    let deadline = tokio::time::Instant::now() + bound;
    while PENDING_TEARDOWNS.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn play_to_keyframe(
    target: &Target,
    progress: &mut Progress,
    group: Arc<SessionGroup>,
) -> Result<(), Failure> {
    let creds = target.creds.as_ref().map(|c| retina::client::Credentials {
        username: c.username.clone(),
        password: c.password.clone(),
    });
    let options = SessionOptions::default()
        .creds(creds)
        .session_group(group)
        .user_agent(format!("StreamPulse/{}", crate::VERSION))
        .teardown(TeardownPolicy::Always);

    // Each request below must be answered within the stage deadline; only
    // the first key frame may take the rest of the probe's timeout.
    let stage = target.stage_deadline();
    progress.stage = Stage::Describe;
    let t = Instant::now();
    let mut session = super::within_stage(stage, Stage::Describe, async {
        retina::client::Session::describe(target.url.clone(), options)
            .await
            .map_err(|e| classify(&e, "DESCRIBE"))
    })
    .await?;
    progress.stages.describe_ms = Some(Progress::ms(t));

    let (video_i, sdp_fps) = pick_video_stream(session.streams())?;
    {
        let stream = &session.streams()[video_i];
        progress.media.codec = Some(codec_name(stream.encoding_name()).to_owned());
        progress.media.fps = sdp_fps;
        if let Some(ParametersRef::Video(v)) = stream.parameters() {
            learn(&mut progress.media, v);
        }
    }

    progress.stage = Stage::Setup;
    let t = Instant::now();
    let transport = match target.transport {
        Transport::Tcp => retina::client::Transport::Tcp(TcpTransportOptions::default()),
        Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
    };
    progress.media.transport = Some(target.transport.as_str().to_owned());
    super::within_stage(stage, Stage::Setup, async {
        session
            .setup(
                video_i,
                SetupOptions::default()
                    .transport(transport)
                    .frame_format(FrameFormat::SIMPLE),
            )
            .await
            .map_err(|e| classify(&e, "SETUP"))
    })
    .await?;
    progress.stages.setup_ms = Some(Progress::ms(t));

    progress.stage = Stage::Play;
    let t = Instant::now();
    // Servers shared by several clients (GStreamer's shared media) may start
    // mid-sequence; the probe only needs one good key frame.
    let playing = super::within_stage(stage, Stage::Play, async {
        session
            .play(PlayOptions::default().initial_seq(InitialSequenceNumberPolicy::Ignore))
            .await
            .map_err(|e| classify(&e, "PLAY"))
    })
    .await?;
    progress.stages.play_ms = Some(Progress::ms(t));
    let mut demuxed = playing.demuxed().map_err(|e| classify(&e, "PLAY"))?;

    progress.stage = Stage::FirstFrame;
    let t = Instant::now();
    let mut frames_seen = 0usize;
    let mut bytes_seen = 0usize;
    loop {
        let item = match demuxed.next().await {
            None => {
                return Err(Failure::new(
                    Reason::NoFrame,
                    format!("stream ended after {frames_seen} frames without a key frame"),
                ))
            }
            Some(Err(e)) => {
                let f = classify(&e, "PLAY");
                return Err(Failure::new(
                    if f.reason == Reason::Protocol {
                        Reason::NoFrame
                    } else {
                        f.reason
                    },
                    format!("while waiting for the first frame: {}", f.message),
                ));
            }
            Some(Ok(item)) => item,
        };
        let CodecItem::VideoFrame(frame) = item else {
            continue;
        };
        frames_seen += 1;
        bytes_seen += frame.data().len();
        if frame.data().len() > target.max_frame_bytes {
            return Err(Failure::new(
                Reason::TooLarge,
                format!(
                    "{} byte frame exceeds the {} byte cap",
                    frame.data().len(),
                    target.max_frame_bytes
                ),
            ));
        }
        if frame.is_random_access_point() && frame.loss() == 0 {
            progress.stages.first_frame_ms = Some(Progress::ms(t));
            progress.media.frame_bytes = u32::try_from(frame.data().len()).ok();
            if progress.keep_frame {
                progress.frame = Some(super::Frame {
                    codec: progress.media.codec.clone().unwrap_or_default(),
                    data: frame.into_data(),
                });
            }
            // JPEG dimensions (and changed H.26x parameters) are known only now.
            if let Some(ParametersRef::Video(v)) = demuxed.streams()[video_i].parameters() {
                learn(&mut progress.media, v);
            }
            return Ok(());
        }
        if frames_seen >= MAX_FRAMES_BEFORE_KEYFRAME || bytes_seen > 4 * target.max_frame_bytes {
            return Err(Failure::new(
                Reason::NoFrame,
                format!("{frames_seen} frames ({bytes_seen} bytes) without a complete key frame"),
            ));
        }
    }
}

/// Picks the first video track retina can depacketize; returns its index and
/// the SDP frame rate.
pub(crate) fn pick_video_stream(
    streams: &[retina::client::Stream],
) -> Result<(usize, Option<f32>), Failure> {
    let mut seen = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        let enc = s.encoding_name();
        if matches!(s.media(), "video" | "image") && matches!(enc, "h264" | "h265" | "jpeg") {
            return Ok((i, s.framerate()));
        }
        seen.push(format!("{}/{}", s.media(), enc));
    }
    let msg = if seen.is_empty() {
        "the stream description lists no tracks".to_owned()
    } else {
        format!(
            "no H.264, H.265 or JPEG video track (found: {})",
            seen.join(", ")
        )
    };
    Err(Failure::new(Reason::NoVideo, msg))
}

pub(crate) fn codec_name(encoding: &str) -> &'static str {
    match encoding {
        "h264" => "h264",
        "h265" => "h265",
        "jpeg" => "jpeg",
        _ => "unknown",
    }
}

pub(crate) fn learn(media: &mut MediaFacts, v: &VideoParameters) {
    let (w, h) = v.pixel_dimensions();
    if w > 0 && h > 0 {
        media.width = Some(w);
        media.height = Some(h);
    }
    if media.codec.as_deref() != Some("jpeg") {
        media.rfc6381 = Some(v.rfc6381_codec().to_owned());
    }
    // retina gives seconds per frame as a fraction (e.g. (1, 15) or (6000, 90000)).
    if let Some((num, den)) = v.frame_rate() {
        if num > 0 {
            media.fps = Some(den as f32 / num as f32);
        }
    }
}

/// Maps a retina error to a reason. `retina::Error` is opaque: only the RTSP
/// status is exposed, so transport errors are told apart by their text.
pub(crate) fn classify(e: &retina::Error, during: &str) -> Failure {
    let text = first_line(&e.to_string());
    // A 2xx "error" is retina rejecting what came with a success (e.g. no
    // usable SDP after a 10 MB header): its own text says what.
    if let Some(status) = e.status_code().filter(|s| !(200..300).contains(s)) {
        let reason = match status {
            401 | 403 => Reason::Auth,
            404 => Reason::NotFound,
            _ => Reason::Protocol,
        };
        let hint = match status {
            401 => " (wrong or missing username/password)",
            301 | 302 | 303 | 307 | 308 => {
                " (redirect; not followed: configure the URL it points to)"
            }
            453 | 503 => " (the camera refuses another session: session limit reached?)",
            461 => " (transport not offered: try `transport: udp` or `tcp`)",
            _ => "",
        };
        return Failure::new(reason, format!("{during}: RTSP {status}{hint}"));
    }
    let lower = text.to_ascii_lowercase();
    let reason = if lower.contains("unable to connect") {
        Reason::Connect
    } else if lower.contains("failed to lookup") || lower.contains("name or service") {
        Reason::Dns
    } else {
        Reason::Protocol
    };
    Failure::new(reason, format!("{during}: {text}"))
}

pub(crate) fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    // Camera-supplied text can be long; keep messages short.
    line.chars().take(300).collect()
}
