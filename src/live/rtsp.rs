//! The RTSP upstream of a live channel: one retina session (DESCRIBE, SETUP
//! of the video track only, PLAY) whose frames are remuxed into fragmented
//! MP4 (H.264/H.265) or relayed as JPEGs (MJPEG over RTSP), on the daemon's
//! tokio runtime. Reconnects (with backoff) while viewers remain; ends, and
//! TEARDOWN goes out, [`super::LINGER`] after the last viewer left.
//!
//! retina has no timeouts of its own: every request runs under the stream's
//! probe deadline, and a session silent for [`super::UPSTREAM_SILENCE`] is
//! dropped and reopened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::SessionGroup;
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};

use super::reconnect::Retry;
use super::slot::Item;
use super::{fmp4, Channel, Hub, Output};
use crate::probe;
use crate::probe::rtsp_session::{self, Handshake};

/// How long the TEARDOWN after a session may take.
const TEARDOWN_BOUND: Duration = Duration::from_secs(5);
/// RTP clock of H.26x and JPEG video (RFC 6184, RFC 2435).
const VIDEO_CLOCK: u32 = 90_000;

/// Runs the channel's upstream until it is idle or fails for good.
pub(super) async fn run(ch: Arc<Channel>, hub: Arc<Hub>) {
    let mut retry = Retry::new(&ch, &hub, "session");
    while retry.start_session() {
        let group = Arc::new(SessionGroup::default());
        let result = session(&ch, &hub, group.clone()).await;
        // The session was dropped inside `session`, which queued TEARDOWN.
        if let Ok(Err(e)) = tokio::time::timeout(TEARDOWN_BOUND, group.await_teardown()).await {
            tracing::debug!(stream = %ch.name, "live teardown failed: {e}");
        }
        for pause in retry.lost(result) {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Unix ms of RTP time 0 of the stream, from the last RTCP sender report.
#[derive(Clone, Copy)]
struct SrMap {
    rtp: i64,
    unix_ms: f64,
}

/// One session: Ok when the channel went idle, Err(message) when lost.
async fn session(
    ch: &Arc<Channel>,
    hub: &Arc<Hub>,
    group: Arc<SessionGroup>,
) -> Result<(), String> {
    let t = &ch.target;
    let msg = |f: probe::Failure| crate::redact::scrub(&f.message, t.creds.as_ref());
    let options = rtsp_session::session_options(
        t.creds.as_ref(),
        group,
        format!("StreamPulse/{} (live)", crate::VERSION),
    );
    let handshake = Handshake {
        deadline: t.timeout,
        late: |deadline, stage| {
            probe::Failure::new(
                probe::Reason::Timeout,
                format!(
                    "no answer to {} within {:.1} s",
                    rtsp_session::request_name(stage),
                    deadline.as_secs_f32()
                ),
            )
        },
    };
    let mut session = handshake.describe(&t.url, options).await.map_err(msg)?;
    let (video_i, sdp_fps) = rtsp_session::pick_video_stream(session.streams()).map_err(msg)?;
    let encoding = rtsp_session::codec_name(session.streams()[video_i].encoding_name());
    ch.update_facts(|m| {
        m.codec = Some(encoding.to_owned());
        m.fps = sdp_fps;
    });
    let used = handshake
        .setup(&mut session, video_i, &t.url, t.transport, FrameFormat::MP4)
        .await
        .map_err(msg)?;
    ch.update_facts(|m| m.transport = Some(used.as_str().to_owned()));
    let playing = handshake.play(session).await.map_err(msg)?;
    let mut demuxed = playing
        .demuxed()
        .map_err(|e| msg(rtsp_session::classify(&e, "PLAY")))?;

    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_data = Instant::now();
    let mut remux = Remux::default();
    let mut gop = Gop::default();
    let mut sr: Option<SrMap> = None;
    loop {
        let item = tokio::select! {
            item = demuxed.next() => item,
            _ = tick.tick() => {
                match hub.tick_verdict(ch, last_data, "the camera") {
                    Some(end) => return end,
                    None => continue,
                }
            }
        };
        let item = match item {
            None => return Err("the camera ended the stream".into()),
            // One damaged packet (UDP loss, a fragment without its start):
            // retina goes on with the next; so do the viewers.
            Some(Err(e)) if rtsp_session::is_packet_error(&e) => {
                tracing::debug!(
                    "live: skipped a damaged packet: {}",
                    rtsp_session::first_line(&e.to_string())
                );
                continue;
            }
            Some(Err(e)) => return Err(msg(rtsp_session::classify(&e, "PLAY"))),
            Some(Ok(i)) => i,
        };
        last_data = Instant::now();
        match item {
            CodecItem::Rtcp(pkt) if pkt.stream_id() == video_i => {
                let Some(ts) = pkt.rtp_timestamp() else {
                    continue;
                };
                for p in pkt.pkts() {
                    if let Ok(Some(report)) = p.as_sender_report() {
                        sr = Some(SrMap {
                            rtp: ts.timestamp(),
                            unix_ms: super::ntp_to_unix_ms(report.ntp_timestamp().0),
                        });
                    }
                }
            }
            CodecItem::VideoFrame(frame) => {
                if frame.stream_id() != video_i {
                    continue;
                }
                if frame.data().len() > t.max_frame_bytes {
                    return Err(format!(
                        "a {} byte frame exceeds the {} byte cap",
                        frame.data().len(),
                        t.max_frame_bytes
                    ));
                }
                let recv_ms = hub.clock.now_ms() as f64;
                let rtp = frame.timestamp();
                let capture_ms = sr.map(|s| {
                    s.unix_ms + (rtp.timestamp() - s.rtp) as f64 * 1000.0 / f64::from(VIDEO_CLOCK)
                });
                if let Some(c) = capture_ms {
                    ch.set_camera_to_box(Some(recv_ms - c));
                }
                let params = match demuxed.streams()[video_i].parameters() {
                    Some(ParametersRef::Video(v)) => Some(v.clone()),
                    _ => None,
                };
                let Some(params) = params else {
                    continue;
                };
                if remux.params.as_ref() != Some(&params) {
                    ch.update_facts(|m| rtsp_session::learn(m, &params));
                    let output = if encoding == "jpeg" {
                        Output::Jpeg
                    } else {
                        let entry = params
                            .mp4_sample_entry()
                            .build()
                            .map_err(|e| format!("cannot describe the video for MP4: {e}"))?;
                        let (w, h) = params.pixel_dimensions();
                        Output::Fmp4 {
                            init: Arc::new(fmp4::init_segment(&entry, w, h, VIDEO_CLOCK)),
                            codec: params.rfc6381_codec().to_owned(),
                        }
                    };
                    // A change mid-stream: the new init segment goes out in
                    // front of the next key frame, so current viewers get it too.
                    remux.pending_init = match (&remux.params, &output) {
                        (Some(_), Output::Fmp4 { init, .. }) => Some(init.clone()),
                        _ => None,
                    };
                    remux.params = Some(params.clone());
                    ch.set_output(output);
                }
                let key = frame.is_random_access_point();
                if encoding != "jpeg" {
                    gop.frame(
                        key,
                        frame.timestamp().elapsed_secs(),
                        frame.data().len(),
                        ch,
                    );
                }
                let picture = if key && ch.picture_wanted(&hub.thumbs) {
                    match params.codec_params() {
                        VideoParametersCodec::H264 { sps, pps } => {
                            fmp4::avcc_to_annexb(sps, pps, frame.data()).map(|data| probe::Frame {
                                codec: "h264".into(),
                                data,
                            })
                        }
                        VideoParametersCodec::Jpeg => Some(probe::Frame {
                            codec: "jpeg".into(),
                            data: frame.data().to_vec(),
                        }),
                        // No H.265 decoder on the box: the thumbnail says so.
                        _ => Some(probe::Frame {
                            codec: "h265".into(),
                            data: Vec::new(),
                        }),
                    }
                } else {
                    None
                };
                if let Some(p) = &picture {
                    let dims = params.pixel_dimensions();
                    hub.thumbs.offer(&ch.name, p.clone(), Some(dims));
                }
                let data = if encoding == "jpeg" {
                    frame.into_data()
                } else {
                    remux.fragment(&frame, key, recv_ms, capture_ms)
                };
                let stalled = ch.publish(Item {
                    data,
                    key,
                    recv_ms,
                    capture_ms,
                    picture,
                });
                if !stalled.is_empty() {
                    hub.release_stalled(ch, stalled);
                }
            }
            _ => {}
        }
    }
}

/// Fragment numbering and timing of one session.
#[derive(Default)]
struct Remux {
    params: Option<retina::codec::VideoParameters>,
    /// Init segment to send in front of the next key frame (parameters changed).
    pending_init: Option<Arc<Vec<u8>>>,
    sequence: u32,
    last_dts: Option<u64>,
    /// Last frame interval, the estimate for the current frame's duration.
    duration: u32,
}

impl Remux {
    fn fragment(
        &mut self,
        frame: &retina::codec::VideoFrame,
        key: bool,
        recv_ms: f64,
        capture_ms: Option<f64>,
    ) -> Vec<u8> {
        let dts = frame.timestamp().elapsed().max(0) as u64;
        if let Some(prev) = self.last_dts {
            let d = dts.saturating_sub(prev);
            if (1..=u64::from(VIDEO_CLOCK) * 2).contains(&d) {
                self.duration = d as u32;
            }
        }
        if self.duration == 0 {
            // No interval yet: the declared frame rate, else 25 fps.
            self.duration = self
                .params
                .as_ref()
                .and_then(|p| p.frame_rate())
                .filter(|(num, den)| *num > 0 && *den > 0)
                .map(|(num, den)| (u64::from(VIDEO_CLOCK) * u64::from(num) / u64::from(den)) as u32)
                .filter(|d| *d > 0)
                .unwrap_or(VIDEO_CLOCK / 25);
        }
        self.last_dts = Some(dts);
        self.sequence = self.sequence.wrapping_add(1);
        let mut out = Vec::with_capacity(frame.data().len() + 200);
        if key {
            if let Some(init) = self.pending_init.take() {
                out.extend_from_slice(&init);
            }
        }
        fmp4::timing_box(&mut out, key, recv_ms, capture_ms, dts, VIDEO_CLOCK);
        fmp4::fragment(
            &mut out,
            self.sequence,
            dts,
            self.duration,
            key,
            frame.data(),
        );
        out
    }
}

/// The key-frame interval and bitrate of a live session, measured on every
/// GOP (the probe measures them only now and then).
#[derive(Default)]
struct Gop {
    /// The last key frame's time (s) and the bytes since it, itself included.
    open: Option<(f64, usize)>,
}

impl Gop {
    fn frame(&mut self, key: bool, secs: f64, len: usize, ch: &Channel) {
        match (&mut self.open, key) {
            (Some((start, bytes)), true) => {
                let dt = secs - *start;
                if dt > 0.0 {
                    let (ms, kbps) = (
                        (dt * 1000.0).round() as u32,
                        (*bytes as f64 * 8.0 / dt / 1000.0).round() as u32,
                    );
                    ch.update_facts(|m| {
                        m.keyframe_interval_ms = Some(ms);
                        m.keyframe_interval_over = false;
                        m.bitrate_kbps = Some(kbps);
                    });
                }
                self.open = Some((secs, len));
            }
            (Some((_, bytes)), false) => *bytes += len,
            (None, true) => self.open = Some((secs, len)),
            (None, false) => {}
        }
    }
}
