//! RTSP probe (retina): DESCRIBE → SETUP one video track → PLAY → first
//! complete key frame → TEARDOWN.
//!
//! Notes from measuring retina 0.4 against real servers (`docs/TESTING.md`):
//! * retina has no timeouts of its own; the caller ([`super::run`]) bounds the
//!   whole probe, and each request (DESCRIBE, SETUP, PLAY) is bounded here by
//!   [`Target::stage_deadline`], so a silent camera fails fast.
//! * the requests themselves (credentials, the one video track, transport)
//!   are `rtsp_session`'s, shared with the live view.
//! * TEARDOWN is sent when the session drops; we then await the session group
//!   (bounded) in a background task, so a camera with a 2–4 session limit is
//!   not exhausted by stale sessions, and the probe's latency excludes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::SessionGroup;
use retina::codec::{CodecItem, FrameFormat, ParametersRef};

use super::rtsp_session::Handshake;
use super::rtsp_session::{
    self, classify, codec_name, first_line, is_packet_error, learn, pick_video_stream,
    sender_report_offset_ms,
};
use super::{Failure, Progress, Reason, Stage, Target};

/// Frames we accept before the first key frame; a camera sending an endless
/// run of P-frames (or garbage) fails with `no_frame` instead of spinning
/// until the deadline.
const MAX_FRAMES_BEFORE_KEYFRAME: usize = 600;

/// Damaged packets skipped before giving up on a clean key frame (the
/// deadline usually ends the wait first).
const MAX_SKIPPED_PACKETS: u32 = 1000;

/// How long the background TEARDOWN may take.
const TEARDOWN_BOUND: Duration = Duration::from_secs(5);

/// Probes an RTSP stream; see the module docs.
pub async fn probe(target: &Target, progress: &mut Progress) -> Result<(), Failure> {
    let addrs = super::resolve_target(target, 554, progress).await?;
    let stage = target.stage_deadline();
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

/// How long before the probe's deadline the key-frame measurement gives up
/// (the verdict, already proven, must come back before the deadline).
const MEASURE_MARGIN: Duration = Duration::from_millis(300);

/// After the first key frame (`first`: its time in seconds and its size),
/// reads on to the next key frame within the probe's deadline: the
/// key-frame interval and the bitrate over it go into `progress.media`. A
/// deadline first gives the time waited as a lower bound; a broken stream
/// just ends the measurement (the probe is already ok). Until the camera's
/// first RTCP sender report (its clock: `camera_clock_offset_ms`) has come,
/// it reads on for that too, within the same deadline (cameras send one
/// every few seconds; one that sends none costs this probe its deadline).
async fn measure_keyframe_interval(
    target: &Target,
    progress: &mut Progress,
    demuxed: &mut retina::client::Demuxed,
    video_i: usize,
    first: (f64, usize),
) {
    let Some(until) = (progress.start + target.timeout).checked_sub(MEASURE_MARGIN) else {
        return;
    };
    let started = Instant::now();
    let mut bytes = first.1;
    let mut interval: Option<f64> = None;
    let media = &mut progress.media;
    let ended = tokio::time::timeout_at(until.into(), async {
        while let Some(item) = demuxed.next().await {
            let frame = match item {
                Ok(CodecItem::VideoFrame(f)) if f.stream_id() == video_i => f,
                Ok(CodecItem::Rtcp(r)) => {
                    if let Some(off) = sender_report_offset_ms(&r) {
                        media.camera_clock_offset_ms = Some(off);
                    }
                    if interval.is_some() && media.camera_clock_offset_ms.is_some() {
                        return;
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) if is_packet_error(&e) => continue,
                Err(_) => return,
            };
            if interval.is_none() {
                if frame.is_random_access_point() {
                    interval = Some(frame.timestamp().elapsed_secs() - first.0);
                    if media.camera_clock_offset_ms.is_some() {
                        return;
                    }
                } else {
                    bytes += frame.data().len();
                }
            }
        }
    })
    .await;
    match interval {
        Some(secs) if secs > 0.0 => {
            media.keyframe_interval_ms = Some((secs * 1000.0).round() as u32);
            media.bitrate_kbps = Some((bytes as f64 * 8.0 / secs / 1000.0).round() as u32);
        }
        Some(_) => {}
        None if ended.is_err() => {
            media.keyframe_interval_ms = Some(Progress::ms(started));
            media.keyframe_interval_over = true;
        }
        None => {}
    }
}

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
    let options = rtsp_session::session_options(
        target.creds.as_ref(),
        group,
        format!("StreamPulse/{}", crate::VERSION),
    );
    // Each request below must be answered within the stage deadline; only
    // the first key frame may take the rest of the probe's timeout.
    let handshake = Handshake {
        deadline: target.stage_deadline(),
        late: super::stage_timeout,
    };
    progress.stage = Stage::Describe;
    let t = Instant::now();
    let mut session = handshake.describe(&target.url, options).await?;
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
    let used = handshake
        .setup(
            &mut session,
            video_i,
            &target.url,
            target.transport,
            FrameFormat::SIMPLE,
        )
        .await?;
    progress.media.transport = Some(used.as_str().to_owned());
    progress.stages.setup_ms = Some(Progress::ms(t));

    progress.stage = Stage::Play;
    let t = Instant::now();
    let playing = handshake.play(session).await?;
    progress.stages.play_ms = Some(Progress::ms(t));
    let mut demuxed = playing.demuxed().map_err(|e| classify(&e, "PLAY"))?;

    progress.stage = Stage::FirstFrame;
    let t = Instant::now();
    let mut bytes_seen = 0usize;
    loop {
        let item = match demuxed.next().await {
            None => {
                return Err(Failure::new(
                    Reason::NoFrame,
                    format!(
                        "stream ended after {} frames without a key frame",
                        progress.frames_without_key
                    ),
                ))
            }
            // A damaged packet (the first ones after PLAY can be the middle
            // of a fragmented key frame; UDP loses packets): retina resets
            // its depacketizer, so wait on for a clean key frame.
            Some(Err(e)) if is_packet_error(&e) => {
                progress.skipped.count += 1;
                progress.skipped.last_error = Some(first_line(&e.to_string()));
                if progress.skipped.count > MAX_SKIPPED_PACKETS {
                    return Err(Failure::new(
                        Reason::NoFrame,
                        format!(
                            "{} damaged packets without a complete key frame, the last: {}",
                            progress.skipped.count,
                            progress.skipped.last_error.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                continue;
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
        let frame = match item {
            CodecItem::VideoFrame(f) => f,
            CodecItem::Rtcp(r) => {
                if let Some(off) = sender_report_offset_ms(&r) {
                    progress.media.camera_clock_offset_ms = Some(off);
                }
                continue;
            }
            _ => continue,
        };
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
            let (frame_ts, frame_len) = (frame.timestamp().elapsed_secs(), frame.data().len());
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
            if target.measure_keyframe_interval && progress.media.codec.as_deref() != Some("jpeg") {
                progress.proved_ms = Some(Progress::ms(progress.start));
                let first_key = (frame_ts, frame_len);
                measure_keyframe_interval(target, progress, &mut demuxed, video_i, first_key).await;
            }
            return Ok(());
        }
        progress.frames_without_key += 1;
        if progress.frames_without_key >= MAX_FRAMES_BEFORE_KEYFRAME
            || bytes_seen > 4 * target.max_frame_bytes
        {
            return Err(Failure::new(
                Reason::NoFrame,
                format!(
                    "{} frames ({bytes_seen} bytes) without a complete key frame",
                    progress.frames_without_key
                ),
            ));
        }
    }
}
