//! The HTTP upstream of a live channel, on its own blocking thread (ureq):
//! an MJPEG camera's multipart stream cut into JPEGs by [`JpegSplitter`], or
//! a snapshot URL fetched again and again ([`SNAPSHOT_EVERY`]). Basic and
//! Digest auth answer the camera's challenge with the probe's own GET
//! ([`http_get::get`]).
//!
//! Every read has a timeout ([`super::UPSTREAM_SILENCE`]), so a camera that
//! goes silent is reconnected and an idle channel is noticed even then.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::reconnect::Retry;
use super::slot::Item;
use super::{Channel, Hub, Output};
use crate::probe::http_get::{self, Response};
use crate::probe::jpeg::{self, JpegFramer};
use crate::probe::{self, Kind, Stage, Target};

/// Snapshot URLs are fetched at most this often.
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(500);
/// Bytes skipped between JPEGs before the stream is called garbage.
const MAX_SKIP: usize = 256 * 1024;
/// Read size.
const CHUNK: usize = 32 * 1024;

/// Runs the channel's upstream until it is idle or fails for good.
pub(super) fn run(ch: Arc<Channel>, hub: Arc<Hub>) {
    let mut retry = Retry::new(&ch, &hub, "stream");
    while retry.start_session() {
        let result = match ch.target.kind {
            Kind::Snapshot => snapshots(&ch, &hub),
            _ => relay(&ch, &hub),
        };
        let result = result.map_err(|m| crate::redact::scrub(&m, ch.target.creds.as_ref()));
        for pause in retry.lost(result) {
            std::thread::sleep(pause);
        }
    }
}

fn agent(t: &Target) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(t.timeout))
            .timeout_recv_response(Some(t.timeout))
            .timeout_per_read(Some(super::UPSTREAM_SILENCE))
            .http_status_as_error(false)
            .max_redirects(3)
            .max_response_header_size(64 * 1024)
            .user_agent(format!("StreamPulse/{} (live)", crate::VERSION))
            .build(),
    )
}

/// GET with the camera's auth challenge answered ([`http_get::get`]); a 2xx
/// response or why not.
fn open(agent: &ureq::Agent, t: &Target, auth: &mut Option<String>) -> Result<Response, String> {
    let resp = http_get::get(agent, &t.url, t.creds.as_ref(), auth, |e| {
        http_get::classify(e, Stage::Describe)
    })
    .map_err(|f| f.message)?;
    match resp.status().as_u16() {
        200..=299 => Ok(resp),
        s => Err(format!("HTTP {s}")),
    }
}

/// Offers one JPEG to the channel's viewers (and the thumbnail).
pub(super) fn publish(ch: &Arc<Channel>, hub: &Arc<Hub>, jpeg: Vec<u8>) {
    let recv_ms = hub.clock.now_ms() as f64;
    let picture = ch.picture_wanted(&hub.thumbs).then(|| probe::Frame {
        codec: "jpeg".into(),
        data: jpeg.clone(),
    });
    if let Some(p) = &picture {
        hub.thumbs.offer(&ch.name, p.clone(), None);
    }
    let stalled = ch.publish(Item {
        data: jpeg,
        key: true,
        recv_ms,
        capture_ms: None,
        picture,
    });
    if !stalled.is_empty() {
        hub.release_stalled(ch, stalled);
    }
}

/// Relays an MJPEG stream: Ok when the channel went idle.
fn relay(ch: &Arc<Channel>, hub: &Arc<Hub>) -> Result<(), String> {
    let t = &ch.target;
    let resp = open(&agent(t), t, &mut None)?;
    if let Some(ctype) = http_get::not_a_picture(&resp) {
        return Err(format!("expected an MJPEG stream, got {ctype}"));
    }
    ch.set_output(Output::Jpeg);
    ch.update_facts(|m| m.codec = Some("jpeg".into()));
    let mut body = resp.into_body().into_reader();
    let mut split = JpegSplitter::new(t.max_frame_bytes);
    let mut buf = vec![0u8; CHUNK];
    let mut frames = Vec::new();
    let mut checked = Instant::now();
    loop {
        if checked.elapsed() >= Duration::from_millis(250) {
            checked = Instant::now();
            if hub.idle(ch) {
                return Ok(());
            }
        }
        let n = body
            .read(&mut buf)
            .map_err(|e| format!("the camera's stream broke: {e}"))?;
        if n == 0 {
            return Err("the camera ended the stream".into());
        }
        split.push(&buf[..n], &mut frames)?;
        for f in frames.drain(..) {
            publish(ch, hub, f);
        }
    }
}

/// Fetches a snapshot URL over and over: Ok when the channel went idle.
fn snapshots(ch: &Arc<Channel>, hub: &Arc<Hub>) -> Result<(), String> {
    let t = &ch.target;
    let agent = agent(t);
    let mut auth = None;
    ch.set_output(Output::Jpeg);
    ch.update_facts(|m| m.codec = Some("jpeg".into()));
    loop {
        let started = Instant::now();
        let resp = open(&agent, t, &mut auth)?;
        let mut body = resp.into_body().into_reader();
        let jpeg =
            probe::http::read_one_jpeg(&mut body, t.max_frame_bytes).map_err(|f| f.message)?;
        drop(body);
        publish(ch, hub, jpeg);
        loop {
            if hub.idle(ch) {
                return Ok(());
            }
            let left = SNAPSHOT_EVERY.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(250)));
        }
    }
}

/// Cuts a byte stream (multipart or back-to-back JPEGs) into complete JPEGs,
/// whatever the boundaries and part headers say: the end of a JPEG is found
/// by walking its markers ([`JpegFramer`]). Keeps the bytes after a JPEG for
/// the next one (unlike the probe's `read_one_jpeg`, which needs only one).
pub struct JpegSplitter {
    buf: Vec<u8>,
    /// True once `buf` starts at an SOI.
    in_jpeg: bool,
    framer: JpegFramer,
    skipped: usize,
    max_frame: usize,
}

impl JpegSplitter {
    pub fn new(max_frame: usize) -> JpegSplitter {
        JpegSplitter {
            buf: Vec::with_capacity(CHUNK * 4),
            in_jpeg: false,
            framer: JpegFramer::new(),
            skipped: 0,
            max_frame,
        }
    }

    /// Adds `data`; appends every JPEG it completes to `out`.
    ///
    /// # Errors
    /// Too many bytes without a JPEG, or a JPEG over the byte cap.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        loop {
            if !self.in_jpeg {
                match jpeg::find_soi(&self.buf) {
                    Some(at) => {
                        self.buf.drain(..at);
                        self.skipped = 0;
                        self.in_jpeg = true;
                        self.framer = JpegFramer::new();
                    }
                    None => {
                        // An SOI may straddle pushes: keep its first bytes.
                        let keep = self.buf.len().min(2);
                        self.skipped += self.buf.len() - keep;
                        self.buf.drain(..self.buf.len() - keep);
                        if self.skipped > MAX_SKIP {
                            return Err(format!("{} bytes without a JPEG", self.skipped));
                        }
                        return Ok(());
                    }
                }
            }
            match self.framer.advance(&self.buf) {
                Ok(Some(len)) => {
                    out.push(self.buf[..len].to_vec());
                    self.buf.drain(..len);
                    self.in_jpeg = false;
                }
                Ok(None) => {
                    if self.buf.len() > self.max_frame {
                        return Err(format!(
                            "a JPEG is still incomplete after {} bytes",
                            self.buf.len()
                        ));
                    }
                    return Ok(());
                }
                Err(_) => {
                    // Not a JPEG after all: look for the next start.
                    self.buf.drain(..2);
                    self.in_jpeg = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(color: u8) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(32, 16, image::Rgb([color, 10, 200]));
        crate::preview::encode_jpeg(&img).unwrap()
    }

    fn multipart(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut v = Vec::new();
        for f in frames {
            v.extend_from_slice(
                format!(
                    "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    f.len()
                )
                .as_bytes(),
            );
            v.extend_from_slice(f);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn splits_multipart_at_any_read_size() {
        let frames = vec![jpeg(1), jpeg(100), jpeg(250)];
        let stream = multipart(&frames);
        for step in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut s = JpegSplitter::new(1 << 20);
            let mut out = Vec::new();
            for c in stream.chunks(step) {
                s.push(c, &mut out).unwrap();
            }
            assert_eq!(out, frames, "read size {step}");
        }
    }

    #[test]
    fn resyncs_after_garbage_and_caps_sizes() {
        let good = jpeg(7);
        let mut stream = b"HTTP junk \xFF\xD8\xFF\xE0\x00\x01 not a jpeg\r\n".to_vec();
        stream.extend_from_slice(&good);
        let mut s = JpegSplitter::new(1 << 20);
        let mut out = Vec::new();
        s.push(&stream, &mut out).unwrap();
        assert_eq!(out, vec![good.clone()]);

        let mut s = JpegSplitter::new(good.len() / 2);
        assert!(s.push(&good[..good.len() - 1], &mut Vec::new()).is_err());

        let mut s = JpegSplitter::new(1 << 20);
        let junk = vec![b'x'; MAX_SKIP + 10];
        assert!(s.push(&junk, &mut Vec::new()).is_err());
    }
}
