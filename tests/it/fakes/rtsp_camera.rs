//! [`FakeRtspCamera`]: an RTSP camera with one [`RtspFault`] that no real
//! server can be made to show on demand (garbage or 10 MB headers, a wrong
//! CSeq, redirect and 401 loops, P-frames without a key frame, random
//! payloads, a stream joined mid-frame, 1 byte per second, one session at a
//! time).
//!
//! It speaks enough RTSP/1.0 for retina (OPTIONS, DESCRIBE, SETUP with TCP
//! interleaving, PLAY, GET_PARAMETER, TEARDOWN) and streams the real H.264
//! of [`h264_clip`], so the good camera ([`RtspFault::OneSession`]) really
//! proves a key frame.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::h264::{h264_clip, RtpOut};
use super::listener::{dribble, ConnFn, FakeListener};

/// How a [`FakeRtspCamera`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtspFault {
    /// A good H.264 camera that allows one session at a time: while a session
    /// exists, DESCRIBE and SETUP get `453 Not Enough Bandwidth`. A session
    /// ends only by TEARDOWN or after 60 s (its timeout), not when the TCP
    /// connection closes, as on many cameras.
    OneSession,
    /// `RTSP/1.0 200 OK`, then header lines of binary garbage without colons.
    GarbageHeaders,
    /// `200 OK` whose one header line is 10 MiB long, then nothing useful.
    HugeHeader,
    /// Every answer carries a CSeq other than the request's.
    WrongCseq,
    /// Every request is redirected (`302`) to its own URL.
    RedirectLoop,
    /// `401` with a fresh Digest nonce, whatever credentials come.
    AuthLoop,
    /// Proper DESCRIBE/SETUP/PLAY, then an endless run of P-frames (never an IDR).
    PFramesOnly,
    /// The same at 15 fps: a camera joined just after a key frame whose next
    /// one is further away than the probe's timeout (GStreamer's shared
    /// media cannot stand in: it forces a key frame for a joining client).
    PFramesAt15Fps,
    /// Proper DESCRIBE/SETUP/PLAY, then endless RTP packets of random bytes
    /// behind a non-IDR slice NAL header (so never a key frame).
    RandomPayload,
    /// A proper DESCRIBE answer, sent one byte per second.
    Slowloris,
    /// A good camera joined mid-frame: after PLAY the first packets are the
    /// tail of a fragmented key frame (FU-A without its start), then good
    /// GOPs. (Over UDP with large key frames real servers do this by chance;
    /// here on purpose, every time.)
    JoinedMidFrame,
    /// After PLAY, only key-frame fragments without their start, forever:
    /// every packet is a depacketization error.
    FragmentsWithoutStart,
    /// A good camera whose SDP fmtp line ends with a `;`, a harmless quirk
    /// of real cameras that retina warns about at every session.
    TrailingSemicolonFmtp,
}

/// What a [`FakeRtspCamera`] saw.
#[derive(Debug, Default)]
pub struct RtspStats {
    pub describes: AtomicUsize,
    pub setups: AtomicUsize,
    pub plays: AtomicUsize,
    pub teardowns: AtomicUsize,
    /// Requests refused with 453 because a session existed.
    pub refused: AtomicUsize,
}

/// The session slot of a [`RtspFault::OneSession`] camera: id and expiry.
type SessionSlot = Arc<Mutex<Option<(String, Instant)>>>;

/// Fake RTSP camera with one [`RtspFault`]; see the module docs.
pub struct FakeRtspCamera {
    pub port: u16,
    pub stats: Arc<RtspStats>,
    _listener: FakeListener,
}

/// Session timeout the fake announces and enforces.
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

impl FakeRtspCamera {
    pub fn start(fault: RtspFault) -> FakeRtspCamera {
        h264_clip(); // made before the first client, not while it waits
        let stats = Arc::new(RtspStats::default());
        let slot: SessionSlot = Arc::new(Mutex::new(None));
        let st = stats.clone();
        let handler: ConnFn = Arc::new(move |stream, stop| {
            rtsp_conn(stream, stop, fault, &st, &slot);
        });
        let listener = FakeListener::start(&format!("fake-rtsp-{fault:?}"), handler);
        FakeRtspCamera {
            port: listener.port,
            stats,
            _listener: listener,
        }
    }

    /// `rtsp://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{path}", self.port)
    }
}

/// One parsed RTSP request head.
struct Request {
    method: String,
    url: String,
    cseq: u32,
    session: Option<String>,
}

/// Reads RTSP requests from a connection, skipping interleaved `$` frames
/// (retina's RTCP) and request bodies.
struct RtspReader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RtspReader {
    /// The next request; None on EOF, error or stop.
    fn next(&mut self, stop: &AtomicBool) -> Option<Request> {
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(50)));
        let mut chunk = [0u8; 4096];
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            // Interleaved data from the client.
            if self.buf.first() == Some(&b'$') {
                if self.buf.len() < 4 {
                    // need more
                } else {
                    let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                    if self.buf.len() >= 4 + len {
                        self.buf.drain(..4 + len);
                        continue;
                    }
                }
            } else if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut lines = head.lines();
                let first = lines.next().unwrap_or("");
                let mut parts = first.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let url = parts.next().unwrap_or("").to_owned();
                let (mut cseq, mut session, mut body) = (0, None, 0usize);
                for l in lines {
                    let Some((k, v)) = l.split_once(':') else {
                        continue;
                    };
                    let v = v.trim();
                    match k.trim().to_ascii_lowercase().as_str() {
                        "cseq" => cseq = v.parse().unwrap_or(0),
                        "session" => session = Some(v.split(';').next().unwrap_or("").to_owned()),
                        "content-length" => body = v.parse().unwrap_or(0),
                        _ => {}
                    }
                }
                if self.buf.len() < end + 4 + body {
                    // wait for the body
                } else {
                    self.buf.drain(..end + 4 + body);
                    return Some(Request {
                        method,
                        url,
                        cseq,
                        session,
                    });
                }
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }
}

fn sdp(fault: RtspFault) -> String {
    let clip = h264_clip();
    let profile = format!("{:02X}{:02X}{:02X}", clip.sps[1], clip.sps[2], clip.sps[3]);
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=StreamPulse fake camera\r\nc=IN IP4 0.0.0.0\r\n\
         t=0 0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={},{}{}\r\n\
         a=control:track1\r\n",
        base64::engine::general_purpose::STANDARD.encode(&clip.sps),
        base64::engine::general_purpose::STANDARD.encode(&clip.pps),
        if fault == RtspFault::TrailingSemicolonFmtp {
            ";"
        } else {
            ""
        }
    )
}

/// A response with the given status line, CSeq, extra headers and body.
fn response(status: &str, cseq: u32, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: FakeCam/1.0\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn rtsp_conn(
    stream: TcpStream,
    stop: &AtomicBool,
    fault: RtspFault,
    stats: &RtspStats,
    slot: &SessionSlot,
) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let writer = Arc::new(Mutex::new(stream));
    let mut reader = RtspReader {
        stream: read_half,
        buf: Vec::new(),
    };
    // The RTP sender of this connection's session, and its stop flag.
    let mut sender: Option<(Arc<AtomicBool>, JoinHandle<()>)> = None;
    let my_session = format!("{:08X}", fastrand::u32(..));
    let send = |bytes: &[u8]| writer.lock().unwrap().write_all(bytes).is_ok();

    while let Some(req) = reader.next(stop) {
        let cseq = req.cseq;
        match req.method.as_str() {
            "DESCRIBE" => stats.describes.fetch_add(1, Ordering::Relaxed),
            "SETUP" => stats.setups.fetch_add(1, Ordering::Relaxed),
            "PLAY" => stats.plays.fetch_add(1, Ordering::Relaxed),
            "TEARDOWN" => stats.teardowns.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let ok = match fault {
            RtspFault::GarbageHeaders => {
                let mut r = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n").into_bytes();
                r.extend_from_slice(b"\x01\x02\x7f\xfe no colon here \x00\x00\r\n");
                r.extend_from_slice(b"\xff\xfe\xfd\r\n:\r\nContent-Length: banana\r\n\r\n");
                send(&r)
            }
            RtspFault::HugeHeader => {
                let mut ok = send(format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nX-Pad: ").as_bytes());
                let pad = vec![b'A'; 64 * 1024];
                for _ in 0..160 {
                    // 160 × 64 KiB = 10 MiB in one header line
                    ok = ok && send(&pad);
                }
                ok && send(b"\r\nContent-Length: 0\r\n\r\n")
            }
            RtspFault::WrongCseq => send(&response(
                "200 OK",
                cseq.wrapping_add(7),
                "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n",
                "",
            )),
            RtspFault::RedirectLoop => send(&response(
                "302 Moved Temporarily",
                cseq,
                &format!("Location: {}\r\n", req.url),
                "",
            )),
            RtspFault::AuthLoop => send(&response(
                "401 Unauthorized",
                cseq,
                &format!(
                    "WWW-Authenticate: Digest realm=\"cam\", nonce=\"{:016x}\"\r\n",
                    fastrand::u64(..)
                ),
                "",
            )),
            RtspFault::Slowloris => {
                let r = response(
                    "200 OK",
                    cseq,
                    &format!(
                        "Content-Base: {}/\r\nContent-Type: application/sdp\r\n",
                        req.url
                    ),
                    &sdp(fault),
                );
                dribble(
                    &mut writer.lock().unwrap(),
                    &r,
                    Duration::from_secs(1),
                    stop,
                );
                false
            }
            RtspFault::OneSession
            | RtspFault::PFramesOnly
            | RtspFault::PFramesAt15Fps
            | RtspFault::RandomPayload
            | RtspFault::JoinedMidFrame
            | RtspFault::FragmentsWithoutStart
            | RtspFault::TrailingSemicolonFmtp => {
                let busy = {
                    let mut s = slot.lock().unwrap();
                    if s.as_ref().is_some_and(|(_, exp)| *exp < Instant::now()) {
                        *s = None; // expired
                    }
                    fault == RtspFault::OneSession
                        && s.as_ref().is_some_and(|(id, _)| *id != my_session)
                };
                match req.method.as_str() {
                    "OPTIONS" => send(&response(
                        "200 OK",
                        cseq,
                        "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n",
                        "",
                    )),
                    "DESCRIBE" | "SETUP" if busy => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        send(&response("453 Not Enough Bandwidth", cseq, "", ""))
                    }
                    "DESCRIBE" => send(&response(
                        "200 OK",
                        cseq,
                        &format!(
                            "Content-Base: {}/\r\nContent-Type: application/sdp\r\n",
                            req.url.trim_end_matches('/')
                        ),
                        &sdp(fault),
                    )),
                    "SETUP" => {
                        *slot.lock().unwrap() =
                            Some((my_session.clone(), Instant::now() + SESSION_TIMEOUT));
                        send(&response(
                            "200 OK",
                            cseq,
                            &format!(
                                "Session: {my_session};timeout=60\r\n\
                                 Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
                            ),
                            "",
                        ))
                    }
                    "PLAY" => {
                        let ok = send(&response(
                            "200 OK",
                            cseq,
                            &format!("Session: {my_session}\r\nRange: npt=0.000-\r\n"),
                            "",
                        ));
                        if ok && sender.is_none() {
                            let halt = Arc::new(AtomicBool::new(false));
                            let (w, h) = (writer.clone(), halt.clone());
                            let join = thread::Builder::new()
                                .name("fake-rtsp-rtp".into())
                                .spawn(move || stream_rtp(&w, fault, &h))
                                .expect("spawning a thread should succeed");
                            sender = Some((halt, join));
                        }
                        ok
                    }
                    "TEARDOWN" => {
                        let mut s = slot.lock().unwrap();
                        if s.as_ref()
                            .is_some_and(|(id, _)| Some(id) == req.session.as_ref())
                        {
                            *s = None;
                        }
                        drop(s);
                        if let Some((halt, join)) = sender.take() {
                            halt.store(true, Ordering::Relaxed);
                            let _ = join.join();
                        }
                        send(&response("200 OK", cseq, "", ""))
                    }
                    _ => send(&response("200 OK", cseq, "", "")),
                }
            }
        };
        if !ok {
            break;
        }
    }
    if let Some((halt, join)) = sender.take() {
        halt.store(true, Ordering::Relaxed);
        let _ = join.join();
    }
}

/// Streams interleaved RTP for `fault` until `halt` or the peer goes away.
fn stream_rtp(writer: &Mutex<TcpStream>, fault: RtspFault, halt: &AtomicBool) {
    let clip = h264_clip();
    let mut rtp = RtpOut {
        seq: fastrand::u16(..),
        ts: fastrand::u32(..),
    };
    let mut rng = fastrand::Rng::with_seed(0xBAD_F00D);
    let mut i = 0usize;
    while !halt.load(Ordering::Relaxed) {
        let (bytes, pause) = match fault {
            RtspFault::OneSession | RtspFault::TrailingSemicolonFmtp => {
                // A GOP at 15 fps: the key frame (with SPS/PPS), then P-frames.
                let k = i % (clip.p_frames.len() + 1);
                let au = if k == 0 {
                    rtp.access_unit(&[&clip.sps, &clip.pps, &clip.idr])
                } else {
                    rtp.access_unit(&[&clip.p_frames[k - 1]])
                };
                (au, Duration::from_millis(66))
            }
            // The tail of the key frame, two P-frames, then good GOPs.
            RtspFault::JoinedMidFrame if i == 0 => {
                (rtp.fu_a_without_start(&clip.idr), Duration::from_millis(66))
            }
            RtspFault::JoinedMidFrame => {
                let k = (i + clip.p_frames.len() - 2) % (clip.p_frames.len() + 1);
                let au = if k == 0 {
                    rtp.access_unit(&[&clip.sps, &clip.pps, &clip.idr])
                } else {
                    rtp.access_unit(&[&clip.p_frames[k - 1]])
                };
                (au, Duration::from_millis(66))
            }
            RtspFault::FragmentsWithoutStart => {
                (rtp.fu_a_without_start(&clip.idr), Duration::from_millis(20))
            }
            RtspFault::PFramesAt15Fps => (
                rtp.access_unit(&[&clip.p_frames[i % clip.p_frames.len()]]),
                Duration::from_millis(66),
            ),
            RtspFault::PFramesOnly => (
                rtp.access_unit(&[&clip.p_frames[i % clip.p_frames.len()]]),
                Duration::from_millis(1),
            ),
            _ => {
                // A non-IDR slice header (nal_ref_idc 2, type 1), then noise.
                let len = rng.usize(16..1400);
                let mut payload: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
                payload[0] = 0x41;
                let marker = rng.bool();
                let p = rtp.packet(&payload, marker);
                if marker {
                    rtp.ts = rtp.ts.wrapping_add(6000);
                }
                (p, Duration::from_millis(1))
            }
        };
        if writer.lock().unwrap().write_all(&bytes).is_err() {
            return;
        }
        i += 1;
        thread::sleep(pause);
    }
}
