//! Probe of the box's own camera (`libcamera:` streams): start the capture
//! command (`capture.rs`), read its H.264 Annex B (`annexb.rs`) until a
//! complete key frame (SPS + PPS + IDR), learn the codec facts from the SPS
//! the way the RTSP probe does (retina's depacketizer parses it), stop the
//! command.
//!
//! One process per probe while nobody watches: a camera device has one
//! reader, so while the live view plays the stream the monitor's probe is
//! answered from the live capture instead (`live::prober`), and this runs
//! only when it is closed. `v4l2://` URLs validate but are answered with a
//! clear `capture` failure: the V4L2 capture path is not written yet.

use std::time::{Duration, Instant};

use base64::Engine;
use retina::codec::{Depacketizer, ParametersRef, VideoParameters};

use super::annexb::{AccessUnit, Splitter};
use super::capture::{self, Running};
use super::rtsp_session::learn;
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
            format!(
                "{}: V4L2 capture is not supported yet (only libcamera: streams are)",
                target.url
            ),
        ));
    };
    progress.stage = Stage::Connect;
    let t = Instant::now();
    let mut running = capture::spawn(cap)?;
    progress.stages.connect_ms = Some(Progress::ms(t));
    progress.media.codec = Some("h264".into());
    progress.media.fps = Some(cap.framerate as f32);

    progress.stage = Stage::FirstFrame;
    let t = Instant::now();
    let until = (progress.start + target.timeout)
        .checked_sub(VERDICT_MARGIN)
        .unwrap_or(progress.start);
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
                    cap.argv[0],
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
