//! MJPEG-over-HTTP and snapshot probe (ureq): fetch until one complete JPEG
//! has arrived, then decode it to prove it is a picture.
//!
//! Both kinds share this code because cameras blur the line: MotionEye serves
//! `multipart/x-mixed-replace` on one port and `image/jpeg` on another, and
//! some "snapshot" URLs answer with a one-part multipart stream. The
//! content type decides how the body is read; [`super::jpeg::JpegFramer`]
//! decides where the picture ends.
//!
//! ureq is blocking, so the request runs on tokio's blocking pool with
//! ureq's own global timeout set to the probe's remaining budget: the thread
//! always comes back by itself, even if the async caller gave up first. The
//! connect and the response headers each get only [`Target::stage_deadline`]
//! (ureq's connect and recv-response timeouts): a camera that accepts and
//! never answers frees the thread and the monitor's permit after 3 s.
//! Auth: Basic and Digest, answered to the camera's challenge (credentials are
//! never sent before the camera asks for them) by `http_get::get`, the GET
//! the live view's relay uses too.

use std::io::Read;
use std::time::{Duration, Instant};

use super::http_get::{self, classify};
use super::jpeg::{self, JpegFramer};
use super::{Failure, MediaFacts, Progress, Reason, Stage, Target};

/// Read size while scanning a stream.
const CHUNK: usize = 16 * 1024;

/// Bytes we skip looking for a JPEG start before giving up (a camera sending
/// HTML or endless headers).
const MAX_BYTES_BEFORE_SOI: usize = 256 * 1024;

/// What the blocking half found out.
struct Found {
    result: Result<(), Failure>,
    describe_ms: Option<u32>,
    first_frame_ms: Option<u32>,
    media: MediaFacts,
    /// The JPEG, when the caller asked to keep it.
    frame: Option<Vec<u8>>,
}

/// Probes an MJPEG stream or snapshot URL; see the module docs.
pub async fn probe(target: &Target, progress: &mut Progress) -> Result<(), Failure> {
    super::resolve_target(target, 80, progress).await?;

    // No separate TCP pre-connect here: single-client MJPEG servers (ffmpeg
    // `-listen 1`, some cameras) would count it as their one viewer.
    progress.stage = Stage::Describe;
    let budget = target
        .timeout
        .saturating_sub(progress.start.elapsed())
        .max(Duration::from_millis(100));
    let t = target.clone();
    let keep = progress.keep_frame;
    let found = tokio::task::spawn_blocking(move || fetch_frame(&t, budget, keep))
        .await
        .map_err(|e| Failure::new(Reason::Protocol, format!("probe thread failed: {e}")))?;
    progress.stages.describe_ms = found.describe_ms;
    progress.stages.first_frame_ms = found.first_frame_ms;
    progress.media = found.media;
    progress.frame = found.frame.map(|data| super::Frame {
        codec: "jpeg".into(),
        data,
    });
    found.result
}

fn fetch_frame(t: &Target, budget: Duration, keep_frame: bool) -> Found {
    let mut found = Found {
        result: Ok(()),
        describe_ms: None,
        first_frame_ms: None,
        media: MediaFacts::default(),
        frame: None,
    };
    let start = Instant::now();
    found.result = fetch_frame_inner(t, budget, &mut found, start);
    if !keep_frame || found.result.is_err() {
        found.frame = None;
    }
    found
}

fn fetch_frame_inner(
    t: &Target,
    budget: Duration,
    found: &mut Found,
    start: Instant,
) -> Result<(), Failure> {
    let stage = t.stage_deadline();
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(budget))
        .timeout_connect(Some(stage))
        .timeout_recv_response(Some(stage))
        .http_status_as_error(false)
        .max_redirects(3)
        .max_response_header_size(64 * 1024)
        .user_agent(format!("StreamPulse/{}", crate::VERSION))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    // A stage timeout names its deadline; anything else as before.
    let call_failed = |e: ureq::Error| match e {
        ureq::Error::Timeout(ureq::Timeout::Connect) => super::stage_timeout(stage, Stage::Connect),
        ureq::Error::Timeout(ureq::Timeout::RecvResponse) => {
            super::stage_timeout(stage, Stage::Describe)
        }
        e => classify(e, Stage::Describe),
    };
    let resp = http_get::get(&agent, &t.url, t.creds.as_ref(), &mut None, call_failed)?;
    let status = resp.status().as_u16();
    match status {
        200..=299 => {}
        403 => return Err(Failure::new(Reason::Auth, "HTTP 403 Forbidden")),
        404 => {
            return Err(Failure::new(
                Reason::NotFound,
                "HTTP 404 Not Found: check the path",
            ))
        }
        s => return Err(Failure::new(Reason::HttpStatus, format!("HTTP {s}"))),
    }
    found.describe_ms = Some(Progress::ms(start));
    if let Some(content_type) = http_get::not_a_picture(&resp) {
        return Err(Failure::new(
            Reason::BadFrame,
            format!("expected a JPEG or MJPEG stream, got {content_type}"),
        ));
    }

    let t_frame = Instant::now();
    let mut reader = resp.into_body().into_reader();
    let frame = read_one_jpeg(&mut reader, t.max_frame_bytes)?;
    found.first_frame_ms = Some(Progress::ms(t_frame));
    found.media.codec = Some("jpeg".into());
    found.media.frame_bytes = u32::try_from(frame.len()).ok();
    drop(reader); // closes the connection: we only wanted one frame

    let decoded = jpeg::decode(&frame).map_err(|m| Failure::new(Reason::BadFrame, m))?;
    found.media.width = Some(decoded.width);
    found.media.height = Some(decoded.height);
    found.frame = Some(frame);
    Ok(())
}

/// Reads from `r` until one complete JPEG is in hand. Works for a multipart
/// stream (skipping boundaries and part headers) and for a bare JPEG body.
pub fn read_one_jpeg(r: &mut dyn Read, max_frame_bytes: usize) -> Result<Vec<u8>, Failure> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut soi: Option<usize> = None;
    let mut skipped = 0usize;
    let mut framer = JpegFramer::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => return Err(classify(ureq::Error::from(e), Stage::FirstFrame)),
        };
        if n == 0 {
            return Err(match soi {
                Some(_) => Failure::new(Reason::NoFrame, "stream ended in the middle of a JPEG"),
                None if skipped + buf.len() == 0 => Failure::new(Reason::NoFrame, "empty body"),
                // Bytes came, but none of them a JPEG: a picture that is not one.
                None => Failure::new(
                    Reason::BadFrame,
                    format!("{} bytes without a JPEG start marker", skipped + buf.len()),
                ),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if soi.is_none() {
            soi = jpeg::find_soi(&buf);
            if soi.is_none() {
                // Keep only the last two bytes: an SOI may straddle reads.
                let keep = buf.len().min(2);
                skipped += buf.len() - keep;
                buf.drain(..buf.len() - keep);
                if skipped > MAX_BYTES_BEFORE_SOI {
                    return Err(Failure::new(
                        Reason::BadFrame,
                        format!("no JPEG start in the first {skipped} bytes"),
                    ));
                }
                continue;
            }
        }
        let start = soi.expect("set above");
        match framer.advance(&buf[start..]) {
            Ok(Some(len)) => {
                buf.truncate(start + len);
                buf.drain(..start);
                return Ok(buf);
            }
            Ok(None) => {
                if buf.len() - start > max_frame_bytes {
                    return Err(Failure::new(
                        Reason::TooLarge,
                        format!(
                            "JPEG still incomplete after {} bytes (cap {max_frame_bytes})",
                            buf.len() - start
                        ),
                    ));
                }
            }
            Err(e) => {
                return Err(Failure::new(
                    Reason::BadFrame,
                    format!("corrupt JPEG: {}", e.0),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_jpeg() -> Vec<u8> {
        let img = image::RgbImage::from_fn(32, 16, |x, _| image::Rgb([x as u8 * 7, 40, 200]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn reads_first_part_of_multipart() {
        let j = sample_jpeg();
        let mut body = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
        body.extend_from_slice(&j);
        body.extend_from_slice(b"\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\n");
        body.extend_from_slice(&j[..100]);
        let got = read_one_jpeg(&mut &body[..], 1 << 20).unwrap();
        assert_eq!(got, j);
    }

    #[test]
    fn endless_jpeg_hits_the_cap() {
        let mut body = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        body.extend(std::iter::repeat_n(0x11u8, 200_000));
        let err = read_one_jpeg(&mut &body[..], 64 * 1024).unwrap_err();
        assert_eq!(err.reason, Reason::TooLarge);
    }

    #[test]
    fn html_body_is_bad_frame_and_truncation_is_no_frame() {
        let html = vec![b'x'; 300 * 1024];
        assert_eq!(
            read_one_jpeg(&mut &html[..], 1 << 20).unwrap_err().reason,
            Reason::BadFrame
        );
        let j = sample_jpeg();
        assert_eq!(
            read_one_jpeg(&mut &j[..j.len() - 3], 1 << 20)
                .unwrap_err()
                .reason,
            Reason::NoFrame
        );
    }
}
