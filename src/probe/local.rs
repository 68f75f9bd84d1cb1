//! Probe of the box's own camera. `libcamera:` streams: start the capture
//! command (`capture.rs`), read its H.264 Annex B (`annexb.rs`) until a
//! complete key frame (SPS + PPS + IDR), learn the codec facts from the SPS
//! the way the RTSP probe does (retina's depacketizer parses it), stop the
//! command. `v4l2:///dev/videoN` streams: open the device (`v4l2.rs`), and
//! wait for the first complete frame in the format chosen from what it
//! offers: a JPEG that decodes (MJPEG passed through, or YUYV encoded on
//! the box) or an H.264 key frame with its SPS and PPS; close the device.
//!
//! One capture per probe while nobody watches: a camera device has one
//! reader, so while the live view plays the stream the monitor's probe is
//! answered from the live capture instead (`live::prober`), and this runs
//! only when it is closed.

use std::time::{Duration, Instant};

use base64::Engine;
use retina::codec::{Depacketizer, ParametersRef, VideoParameters};

use super::annexb::{AccessUnit, Splitter};
use super::capture::{self, Capture, Running, Source};
use super::rtsp_session::learn;
use super::v4l2::{Capturing, Encoding, Event};
use super::{Failure, Frame, Progress, Reason, Stage, Target};

/// The verdict must come back a little before the probe's hard deadline,
/// so the message can name the command and what it said.
const VERDICT_MARGIN: Duration = Duration::from_millis(150);

/// The codec parameters (dimensions, RFC 6381 string, `avc1` sample entry)
/// of an H.264 stream with this SPS and PPS, parsed by retina as if an RTSP
/// camera had announced them in its SDP: one SPS parser for both paths.
///
/// # Errors
/// The SPS or PPS does not parse (the message says why).
pub fn h264_parameters(sps: &[u8], pps: &[u8]) -> Result<VideoParameters, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let fmtp = format!(
        "packetization-mode=1;sprop-parameter-sets={},{}",
        b64.encode(sps),
        b64.encode(pps)
    );
    let d = Depacketizer::new("video", "h264", 90_000, None, Some(&fmtp))?;
    match d.parameters() {
        Some(ParametersRef::Video(v)) => Ok(v.clone()),
        _ => Err("no video parameters in the SPS/PPS".into()),
    }
}

/// Probes a local camera; see the module docs.
pub async fn probe(target: &Target, progress: &mut Progress) -> Result<(), Failure> {
    let Some(cap) = &target.capture else {
        return Err(Failure::new(
            Reason::Capture,
            format!("{}: no capture settings for this camera", target.url),
        ));
    };
    match &cap.source {
        Source::Command(argv) => probe_command(target, cap, &argv[0], progress).await,
        Source::V4l2(path) => probe_v4l2(target, cap, path, progress).await,
    }
}

/// When the verdict is due: a little before the probe's hard deadline.
fn verdict_due(target: &Target, progress: &Progress) -> Instant {
    (progress.start + target.timeout)
        .checked_sub(VERDICT_MARGIN)
        .unwrap_or(progress.start)
}

/// A `libcamera:` stream: the capture command's first key frame.
async fn probe_command(
    target: &Target,
    cap: &Capture,
    program: &str,
    progress: &mut Progress,
) -> Result<(), Failure> {
    progress.stage = Stage::Connect;
    let t = Instant::now();
    let mut running = capture::spawn(cap)?;
    progress.stages.connect_ms = Some(Progress::ms(t));
    progress.media.codec = Some("h264".into());
    progress.media.fps = Some(cap.framerate as f32);

    progress.stage = Stage::FirstFrame;
    let t = Instant::now();
    let until = verdict_due(target, progress);
    let found = tokio::time::timeout_at(
        until.into(),
        first_key_frame(&mut running, target.max_frame_bytes),
    )
    .await;
    let (au, sps, pps) = match found {
        Ok(r) => r?,
        Err(_) => {
            let tail = running.stderr_tail();
            return Err(Failure::new(
                Reason::NoFrame,
                format!(
                    "no complete key frame from {:?} within {:.1} s{}",
                    program,
                    target.timeout.as_secs_f32(),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!("; it said: {tail}")
                    }
                ),
            ));
        }
    };
    progress.stages.first_frame_ms = Some(Progress::ms(t));
    let params = h264_parameters(&sps, &pps)
        .map_err(|m| Failure::new(Reason::BadFrame, format!("the camera's SPS/PPS: {m}")))?;
    learn(&mut progress.media, &params);
    progress.media.fps = progress.media.fps.or(Some(cap.framerate as f32));
    let data = au.to_annexb(&sps, &pps);
    progress.media.frame_bytes = u32::try_from(data.len()).ok();
    if progress.keep_frame {
        progress.frame = Some(Frame {
            codec: "h264".into(),
            data,
        });
    }
    // `running` drops here: the command is killed.
    Ok(())
}

/// A `v4l2://` stream: the device's first complete frame.
async fn probe_v4l2(
    target: &Target,
    cap: &Capture,
    path: &str,
    progress: &mut Progress,
) -> Result<(), Failure> {
    progress.stage = Stage::Connect;
    let t = Instant::now();
    let until = verdict_due(target, progress);
    let mut capturing = Capturing::start(path, cap)?;
    let started = match tokio::time::timeout_at(until.into(), capturing.next()).await {
        Ok(Ok(Event::Started(s))) => s,
        // The capture thread says Started first; anything else is a bug
        // worth a clear verdict rather than a panic in the daemon.
        Ok(Ok(_)) => {
            return Err(Failure::new(
                Reason::Capture,
                format!("{path}: the capture sent frames before saying its format"),
            ))
        }
        Ok(Err(f)) => return Err(f),
        Err(_) => {
            return Err(Failure::new(
                Reason::NoFrame,
                format!(
                    "{path} did not start streaming within {:.1} s",
                    target.timeout.as_secs_f32()
                ),
            ))
        }
    };
    progress.stages.connect_ms = Some(Progress::ms(t));
    tracing::debug!(
        "{path} ({}): {} {}x{} at {} fps; it offers {}",
        started.card,
        started.fourcc,
        started.width,
        started.height,
        started.fps,
        started.offered
    );
    let media = &mut progress.media;
    media.codec = Some(started.encoding.codec().into());
    media.width = Some(started.width);
    media.height = Some(started.height);
    media.fps = Some(started.fps);

    progress.stage = Stage::FirstFrame;
    let t = Instant::now();
    let proof = tokio::time::timeout_at(
        until.into(),
        first_v4l2_frame(&mut capturing, started.encoding, target, progress),
    )
    .await;
    let frame = match proof {
        Ok(r) => r?,
        Err(_) => {
            let skipped = match &progress.skipped.last_error {
                Some(last) => format!(
                    "; skipped {} damaged frames, the last: {last}",
                    progress.skipped.count
                ),
                None => String::new(),
            };
            return Err(Failure::new(
                Reason::NoFrame,
                format!(
                    "no complete frame from {path} ({} {}) within {:.1} s{skipped}",
                    started.card,
                    started.fourcc,
                    target.timeout.as_secs_f32()
                ),
            ));
        }
    };
    progress.stages.first_frame_ms = Some(Progress::ms(t));
    progress.media.frame_bytes = u32::try_from(frame.data.len()).ok();
    if progress.keep_frame {
        progress.frame = Some(frame);
    }
    // `capturing` drops here: the thread stops and closes the device.
    Ok(())
}

/// Waits for the V4L2 frame that proves the camera: a JPEG that decodes
/// (its size goes into the media facts) or an H.264 key frame with SPS and
/// PPS (the facts from its SPS). Damaged frames are counted and skipped.
async fn first_v4l2_frame(
    capturing: &mut Capturing,
    encoding: Encoding,
    target: &Target,
    progress: &mut Progress,
) -> Result<Frame, Failure> {
    let mut splitter = Splitter::new(target.max_frame_bytes);
    let mut aus = Vec::new();
    let skip = |progress: &mut Progress, why: String| {
        progress.skipped.count += 1;
        progress.skipped.last_error = Some(why);
    };
    loop {
        match capturing.next().await? {
            Event::Started(_) => {}
            Event::Damaged(why) => skip(progress, why),
            Event::Jpeg(jpeg) => {
                if jpeg.len() > target.max_frame_bytes {
                    return Err(Failure::new(
                        Reason::TooLarge,
                        format!("a {}-byte JPEG from the camera", jpeg.len()),
                    ));
                }
                let (jpeg, decoded) = tokio::task::spawn_blocking(move || {
                    let d = super::jpeg::decode(&jpeg);
                    (jpeg, d)
                })
                .await
                .map_err(|e| Failure::new(Reason::BadFrame, format!("decoding: {e}")))?;
                match decoded {
                    Ok(d) => {
                        progress.media.width = Some(d.width);
                        progress.media.height = Some(d.height);
                        return Ok(Frame {
                            codec: "jpeg".into(),
                            data: jpeg,
                        });
                    }
                    Err(m) => skip(progress, m),
                }
            }
            Event::H264(bytes) => {
                debug_assert_eq!(encoding, Encoding::H264);
                splitter
                    .push(&bytes, &mut aus)
                    .map_err(|m| Failure::new(Reason::TooLarge, m))?;
                for au in aus.drain(..) {
                    if let (true, Some(sps), Some(pps)) =
                        (au.is_idr(), &splitter.sps, &splitter.pps)
                    {
                        let params = h264_parameters(sps, pps).map_err(|m| {
                            Failure::new(Reason::BadFrame, format!("the camera's SPS/PPS: {m}"))
                        })?;
                        learn(&mut progress.media, &params);
                        return Ok(Frame {
                            codec: "h264".into(),
                            data: au.to_annexb(sps, pps),
                        });
                    }
                }
            }
        }
    }
}

/// Reads until the first IDR picture with parameter sets seen before or in
/// it; returns it with the SPS and PPS.
async fn first_key_frame(
    running: &mut Running,
    max_bytes: usize,
) -> Result<(AccessUnit, Vec<u8>, Vec<u8>), Failure> {
    let mut splitter = Splitter::new(max_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    let mut aus = Vec::new();
    let mut total = 0usize;
    loop {
        let n = match running.read(&mut buf).await {
            Ok(0) => return Err(running.ended().await),
            Ok(n) => n,
            Err(e) => {
                let mut f = running.ended().await;
                f.message = format!("{} (reading its output: {e})", f.message);
                return Err(f);
            }
        };
        total += n;
        splitter
            .push(&buf[..n], &mut aus)
            .map_err(|m| Failure::new(Reason::TooLarge, m))?;
        for au in aus.drain(..) {
            if let (true, Some(sps), Some(pps)) = (au.is_idr(), &splitter.sps, &splitter.pps) {
                return Ok((au, sps.clone(), pps.clone()));
            }
        }
        if total > 4 * max_bytes {
            return Err(Failure::new(
                Reason::NoFrame,
                format!("{total} bytes without a complete key frame with its SPS and PPS"),
            ));
        }
    }
}
