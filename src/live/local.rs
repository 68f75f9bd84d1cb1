//! The local-camera upstream of a live channel: for `libcamera:` streams one
//! capture command (`probe::capture`) for all the viewers, its H.264 Annex
//! B split into pictures (`probe::annexb`) and wrapped into fragmented MP4
//! like an RTSP camera's ([`H264Publisher`]), on the daemon's tokio
//! runtime; `v4l2://` streams are read in `v4l2.rs`, same rules. The command starts
//! with the first viewer, is restarted (with backoff) if it dies while
//! viewers remain, and is killed [`super::LINGER`] after the last one left;
//! while it runs, the monitor's probes are answered from it
//! (`prober.rs`), so the camera device is never opened twice.
//!
//! A raw H.264 stream has no timestamps: pictures are timed by the
//! configured frame rate (`capture.framerate`), the rate the command was
//! asked for.

use std::sync::Arc;
use std::time::Instant;

use super::reconnect::Retry;
use super::slot::Item;
use super::{fmp4, v4l2, Channel, Hub, Output};
use crate::probe::annexb::Splitter;
use crate::probe::capture::Source;
use crate::probe::{self, capture, local, Capture};

/// The fMP4 timescale (the RTP video clock, as for RTSP cameras).
const TIMESCALE: u32 = 90_000;

/// What outlives one run of the command: the codec parameters (an
/// unchanged camera needs no new init segment) and the timeline (decode
/// times go on rising across a restart, as MSE wants).
#[derive(Default)]
pub(super) struct Timeline {
    params: Option<retina::codec::VideoParameters>,
    frames: u64,
    sequence: u32,
}

/// Runs the channel's upstream until it is idle or fails for good.
pub(super) async fn run(ch: Arc<Channel>, hub: Arc<Hub>) {
    let mut retry = Retry::new(&ch, &hub, "capture");
    let mut timeline = Timeline::default();
    while retry.start_session() {
        let result = match ch.target.capture.as_ref().map(|c| (c, &c.source)) {
            Some((cap, Source::Command(_))) => session(&ch, &hub, cap, &mut timeline).await,
            Some((cap, Source::V4l2(path))) => {
                v4l2::session(&ch, &hub, cap, path, &mut timeline).await
            }
            None => Err("no capture settings for this camera".into()),
        };
        for pause in retry.lost(result) {
            tokio::time::sleep(pause).await;
        }
    }
}

/// One run of the capture command: Ok when the channel went idle (the
/// command is killed), Err(message) when the command ended or went silent.
async fn session(
    ch: &Arc<Channel>,
    hub: &Arc<Hub>,
    cap: &Capture,
    tl: &mut Timeline,
) -> Result<(), String> {
    let mut running = capture::spawn(cap).map_err(|f| f.message)?;
    ch.update_facts(|m| {
        m.codec = Some("h264".into());
        m.fps = Some(cap.framerate as f32);
    });
    let mut h264 = H264Publisher::new(ch.target.max_frame_bytes, cap.framerate as f32);
    let mut buf = vec![0u8; 64 * 1024];
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_data = Instant::now();
    loop {
        let n = tokio::select! {
            r = running.read(&mut buf) => r,
            _ = tick.tick() => {
                match hub.tick_verdict(ch, last_data, "the capture command") {
                    Some(end) => return end,
                    None => continue,
                }
            }
        };
        let n = match n {
            Ok(0) | Err(_) => return Err(running.ended().await.message),
            Ok(n) => n,
        };
        last_data = Instant::now();
        h264.push(ch, hub, tl, &buf[..n])?;
    }
}

/// Turns a camera's H.264 Annex B bytes (a capture command's output or a
/// V4L2 camera's frames) into fMP4 fragments for the channel's viewers,
/// starting at a key frame, timed at `fps`.
pub(super) struct H264Publisher {
    splitter: Splitter,
    aus: Vec<crate::probe::annexb::AccessUnit>,
    /// Decode-time ticks of one picture.
    duration: u32,
    /// An init segment to send in front of the next key frame (the
    /// camera's parameters changed mid-stream).
    pending_init: Option<Arc<Vec<u8>>>,
    /// True once the first key frame went out (viewers start at one).
    started: bool,
}

impl H264Publisher {
    pub(super) fn new(max_frame_bytes: usize, fps: f32) -> H264Publisher {
        H264Publisher {
            splitter: Splitter::new(max_frame_bytes),
            aus: Vec::new(),
            duration: (TIMESCALE as f32 / fps.max(1.0)).round() as u32,
            pending_init: None,
            started: false,
        }
    }

    /// Splits `bytes` and publishes every complete picture.
    ///
    /// # Errors
    /// A picture over the byte cap, or parameters that do not parse.
    pub(super) fn push(
        &mut self,
        ch: &Arc<Channel>,
        hub: &Arc<Hub>,
        tl: &mut Timeline,
        bytes: &[u8],
    ) -> Result<(), String> {
        self.splitter.push(bytes, &mut self.aus)?;
        let duration = self.duration;
        for au in std::mem::take(&mut self.aus) {
            let key = au.is_idr();
            let (Some(sps), Some(pps)) = (self.splitter.sps.clone(), self.splitter.pps.clone())
            else {
                continue;
            };
            // Viewers start at a key frame.
            if !self.started && !key {
                continue;
            }
            self.started = true;
            if key {
                let now = local::h264_parameters(&sps, &pps)
                    .map_err(|m| format!("the camera's SPS/PPS: {m}"))?;
                if tl.params.as_ref() != Some(&now) {
                    ch.update_facts(|m| probe::rtsp_session::learn(m, &now));
                    let entry = now
                        .mp4_sample_entry()
                        .build()
                        .map_err(|e| format!("cannot describe the video for MP4: {e}"))?;
                    let (w, h) = now.pixel_dimensions();
                    let init = Arc::new(fmp4::init_segment(&entry, w, h, TIMESCALE));
                    // A change mid-stream goes out in front of this key frame.
                    self.pending_init = tl.params.is_some().then(|| init.clone());
                    ch.set_output(Output::Fmp4 {
                        init,
                        codec: now.rfc6381_codec().to_owned(),
                    });
                    tl.params = Some(now);
                }
            }
            let recv_ms = hub.clock.now_ms() as f64;
            let picture = (key && ch.picture_wanted(&hub.thumbs)).then(|| probe::Frame {
                codec: "h264".into(),
                data: au.to_annexb(&sps, &pps),
            });
            if let (Some(p), Some(v)) = (&picture, &tl.params) {
                hub.thumbs
                    .offer(&ch.name, p.clone(), Some(v.pixel_dimensions()));
            }
            let dts = tl.frames * u64::from(duration);
            tl.frames += 1;
            tl.sequence = tl.sequence.wrapping_add(1);
            let sample = au.to_mp4_sample();
            let mut data = Vec::with_capacity(sample.len() + 200);
            if key {
                if let Some(init) = self.pending_init.take() {
                    data.extend_from_slice(&init);
                }
            }
            fmp4::timing_box(&mut data, key, recv_ms, None, dts, TIMESCALE);
            fmp4::fragment(&mut data, tl.sequence, dts, duration, key, &sample);
            let stalled = ch.publish(Item {
                data,
                key,
                recv_ms,
                capture_ms: None,
                picture,
            });
            if !stalled.is_empty() {
                hub.release_stalled(ch, stalled);
            }
        }
        Ok(())
    }
}
