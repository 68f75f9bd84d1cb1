//! The upstream of a live channel for a `v4l2:///dev/videoN` camera: one
//! capture of the device (`probe::v4l2`, on its own thread) for all the
//! viewers, with the sharing rules of the `libcamera:` capture
//! (`local.rs`): started by the first viewer, restarted with backoff if it
//! fails while viewers remain, stopped [`super::LINGER`] after the last one
//! left; the monitor's probes are answered from it meanwhile (`prober.rs`).
//!
//! A camera's H.264 goes out as fMP4 ([`H264Publisher`]); its JPEGs
//! (MJPEG passed through, or YUYV encoded on the box) are relayed like an
//! MJPEG camera's (`http::publish`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::local::{H264Publisher, Timeline};
use super::{http, Channel, Hub, Output};
use crate::probe::v4l2::{Capturing, Encoding, Event};
use crate::probe::Capture;

/// One capture of the device: Ok when the channel went idle (the device
/// is closed), Err(message) when it failed or went silent.
pub(super) async fn session(
    ch: &Arc<Channel>,
    hub: &Arc<Hub>,
    cap: &Capture,
    path: &str,
    tl: &mut Timeline,
) -> Result<(), String> {
    let mut capturing = Capturing::start(path, cap).map_err(|f| f.message)?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_data = Instant::now();
    let mut h264: Option<H264Publisher> = None;
    loop {
        let event = tokio::select! {
            e = capturing.next() => e.map_err(|f| f.message)?,
            _ = tick.tick() => {
                match hub.tick_verdict(ch, last_data, path) {
                    Some(end) => return end,
                    None => continue,
                }
            }
        };
        last_data = Instant::now();
        match event {
            Event::Started(s) => {
                tracing::info!(
                    "live capture of {path} ({}): {} {}x{} at {} fps",
                    s.card,
                    s.fourcc,
                    s.width,
                    s.height,
                    s.fps
                );
                ch.update_facts(|m| {
                    m.codec = Some(s.encoding.codec().into());
                    m.width = Some(s.width);
                    m.height = Some(s.height);
                    m.fps = Some(s.fps);
                });
                match s.encoding {
                    Encoding::H264 => {
                        h264 = Some(H264Publisher::new(ch.target.max_frame_bytes, s.fps));
                    }
                    Encoding::Jpeg | Encoding::Yuyv => ch.set_output(Output::Jpeg),
                }
            }
            Event::Damaged(why) => tracing::debug!("{path}: frame skipped: {why}"),
            Event::Jpeg(jpeg) => http::publish(ch, hub, jpeg),
            Event::H264(bytes) => match h264.as_mut() {
                Some(p) => p.push(ch, hub, tl, &bytes)?,
                None => return Err("H.264 from the camera before its format was set".into()),
            },
        }
    }
}
