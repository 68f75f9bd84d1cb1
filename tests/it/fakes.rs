//! Named fake cameras for the hostile-camera suite (`hostile.rs`): each one
//! misbehaves in exactly one way that no real server in TESTING.md can be made
//! to (garbage or 10 MB RTSP headers, a wrong CSeq, redirect and 401 loops,
//! P-frames without a key frame, a 100 MB MJPEG part, 1 byte per second, a
//! camera that allows one session).
//!
//! The RTSP fakes speak enough RTSP/1.0 for retina (OPTIONS, DESCRIBE, SETUP
//! with TCP interleaving, PLAY, GET_PARAMETER, TEARDOWN) and stream real
//! H.264: an ffmpeg/x264 clip of `testsrc` ([`h264_clip`]) cut into NAL units
//! and packetised per RFC 6184 (single NAL units and FU-A), so the good
//! camera ([`RtspFault::OneSession`]) really proves a key frame and the
//! P-frames-only one really sends decodable-looking video without one.
//!
//! Every fake listens on 127.0.0.1 on a port the OS picked, handles each
//! connection in its own thread, and stops (joining every thread) on drop.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::util::{jpeg_header, sample_jpeg};

/// A connection handler: the stream and the server's stop flag.
type ConnFn = Arc<dyn Fn(TcpStream, &AtomicBool) + Send + Sync>;

/// Accept loop on 127.0.0.1:0 running `handler` per connection in a thread.
/// Drop sets the stop flag (handlers poll it) and joins every thread.
struct FakeListener {
    port: u16,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FakeListener {
    fn start(name: &str, handler: ConnFn) -> FakeListener {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 should succeed");
        let port = listener
            .local_addr()
            .expect("a bound socket has an address")
            .port();
        listener
            .set_nonblocking(true)
            .expect("set_nonblocking should succeed");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let name = name.to_owned();
        let accept_thread = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || {
                let mut conns: Vec<JoinHandle<()>> = Vec::new();
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_nodelay(true);
                            let stop3 = stop2.clone();
                            let h = handler.clone();
                            conns.retain(|c| !c.is_finished());
                            conns.push(
                                thread::Builder::new()
                                    .name(format!("{name}-conn"))
                                    .spawn(move || h(stream, &stop3))
                                    .expect("spawning a thread should succeed"),
                            );
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            })
            .expect("spawning a thread should succeed");
        FakeListener {
            port,
            stop,
            accept_thread: Some(accept_thread),
        }
    }
}

impl Drop for FakeListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

/// Sleeps `d` in short steps; returns false if the server is stopping.
fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

/// Writes `data` one byte per `every` (slowloris); stops when the peer goes away.
fn dribble(stream: &mut TcpStream, data: &[u8], every: Duration, stop: &AtomicBool) {
    for b in data {
        if stream.write_all(&[*b]).is_err() || !nap(every, stop) {
            return;
        }
    }
}

// ---------------------------------------------------------------- H.264 material

/// One short H.264 clip of ffmpeg's `testsrc` (320x240, 15 fps, baseline, one
/// GOP), as NAL units without start codes.
pub struct H264Clip {
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
    /// The key frame (NAL type 5).
    pub idr: Vec<u8>,
    /// The non-IDR slices (NAL type 1) that follow it.
    pub p_frames: Vec<Vec<u8>>,
}

/// The clip, made once per test run with ffmpeg's libx264.
pub fn h264_clip() -> &'static H264Clip {
    static CLIP: OnceLock<H264Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-f", "lavfi"])
            .args(["-i", "testsrc=size=320x240:rate=15", "-frames:v", "15"])
            .args([
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-g", "15", "-bf", "0", "-f", "h264", "-"])
            .stdin(Stdio::null())
            .output()
            .expect("spawning ffmpeg should succeed (apt-get install ffmpeg)");
        assert!(out.status.success(), "ffmpeg made no H.264: {out:?}");
        let nals = split_annex_b(&out.stdout);
        let of = |t: u8| nals.iter().filter(move |n| n[0] & 0x1F == t).cloned();
        let clip = H264Clip {
            sps: of(7).next().expect("x264 writes an SPS"),
            pps: of(8).next().expect("x264 writes a PPS"),
            idr: of(5).next().expect("x264 starts with an IDR slice"),
            p_frames: of(1).collect(),
        };
        assert!(clip.p_frames.len() >= 10, "expected a GOP of P-frames");
        clip
    })
}

/// Splits an Annex B byte stream at its 3- and 4-byte start codes.
fn split_annex_b(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        let mut nal = &data[s..end];
        // A 4-byte start code leaves its leading zero on the previous NAL.
        while nal.last() == Some(&0) {
            nal = &nal[..nal.len() - 1];
        }
        if !nal.is_empty() {
            nals.push(nal.to_vec());
        }
    }
    nals
}

/// Standard base64 (RFC 4648, with padding) for `sprop-parameter-sets`.
fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RTP state of one outgoing H.264 stream on interleaved channel 0.
struct RtpOut {
    seq: u16,
    ts: u32,
}

/// Largest RTP payload we send (FU-A above it).
const MAX_RTP_PAYLOAD: usize = 1400;

impl RtpOut {
    /// One interleaved RTP packet (`$`, channel 0, length, RTP header, payload).
    fn packet(&mut self, payload: &[u8], marker: bool) -> Vec<u8> {
        let mut rtp = Vec::with_capacity(12 + payload.len());
        rtp.push(0x80);
        rtp.push(96 | if marker { 0x80 } else { 0 });
        rtp.extend_from_slice(&self.seq.to_be_bytes());
        rtp.extend_from_slice(&self.ts.to_be_bytes());
        rtp.extend_from_slice(&0x5EED_CAFEu32.to_be_bytes());
        rtp.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        let mut out = vec![b'$', 0];
        out.extend_from_slice(&(rtp.len() as u16).to_be_bytes());
        out.extend_from_slice(&rtp);
        out
    }

    /// One access unit (all NALs share a timestamp; the last packet carries the marker).
    fn access_unit(&mut self, nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, nal) in nals.iter().enumerate() {
            let last_nal = i + 1 == nals.len();
            if nal.len() <= MAX_RTP_PAYLOAD {
                out.extend(self.packet(nal, last_nal));
                continue;
            }
            // FU-A: indicator keeps F/NRI with type 28; header has S/E and the type.
            let chunks: Vec<&[u8]> = nal[1..].chunks(MAX_RTP_PAYLOAD - 2).collect();
            for (k, chunk) in chunks.iter().enumerate() {
                let start = k == 0;
                let end = k + 1 == chunks.len();
                let mut p = vec![
                    (nal[0] & 0xE0) | 28,
                    (u8::from(start) << 7) | (u8::from(end) << 6) | (nal[0] & 0x1F),
                ];
                p.extend_from_slice(chunk);
                out.extend(self.packet(&p, last_nal && end));
            }
        }
        self.ts = self.ts.wrapping_add(90_000 / 15);
        out
    }
}

// ---------------------------------------------------------------- RTSP

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
    /// Proper DESCRIBE/SETUP/PLAY, then endless RTP packets of random bytes
    /// behind a non-IDR slice NAL header (so never a key frame).
    RandomPayload,
    /// A proper DESCRIBE answer, sent one byte per second.
    Slowloris,
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

fn sdp() -> String {
    let clip = h264_clip();
    let profile = format!("{:02X}{:02X}{:02X}", clip.sps[1], clip.sps[2], clip.sps[3]);
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=StreamPulse fake camera\r\nc=IN IP4 0.0.0.0\r\n\
         t=0 0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={},{}\r\n\
         a=control:track1\r\n",
        base64(&clip.sps),
        base64(&clip.pps)
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
                    &sdp(),
                );
                dribble(
                    &mut writer.lock().unwrap(),
                    &r,
                    Duration::from_secs(1),
                    stop,
                );
                false
            }
            RtspFault::OneSession | RtspFault::PFramesOnly | RtspFault::RandomPayload => {
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
                        &sdp(),
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
            RtspFault::OneSession => {
                // A GOP at 15 fps: the key frame (with SPS/PPS), then P-frames.
                let k = i % (clip.p_frames.len() + 1);
                let au = if k == 0 {
                    rtp.access_unit(&[&clip.sps, &clip.pps, &clip.idr])
                } else {
                    rtp.access_unit(&[&clip.p_frames[k - 1]])
                };
                (au, Duration::from_millis(66))
            }
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

/// A raw RTSP client that takes the one session of a [`RtspFault::OneSession`]
/// camera (DESCRIBE + SETUP) and holds it until [`SessionHog::teardown`].
pub struct SessionHog {
    stream: TcpStream,
    url: String,
    session: String,
}

impl SessionHog {
    pub fn take(url: &str) -> SessionHog {
        let addr = url
            .trim_start_matches("rtsp://")
            .split('/')
            .next()
            .expect("url has an authority")
            .to_owned();
        let mut stream = TcpStream::connect(&addr).expect("the fake camera listens");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let describe = exchange(
            &mut stream,
            &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"),
        );
        assert!(describe.starts_with("RTSP/1.0 200"), "{describe}");
        let setup = exchange(
            &mut stream,
            &format!(
                "SETUP {url}/track1 RTSP/1.0\r\nCSeq: 2\r\n\
                 Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
            ),
        );
        assert!(setup.starts_with("RTSP/1.0 200"), "{setup}");
        let session = setup
            .lines()
            .find_map(|l| l.strip_prefix("Session: "))
            .and_then(|v| v.split(';').next())
            .expect("SETUP answer has a Session header")
            .to_owned();
        SessionHog {
            stream,
            url: url.to_owned(),
            session,
        }
    }

    /// Ends the session with TEARDOWN, as a well-behaved client does.
    pub fn teardown(mut self) {
        let r = exchange(
            &mut self.stream,
            &format!(
                "TEARDOWN {} RTSP/1.0\r\nCSeq: 3\r\nSession: {}\r\n\r\n",
                self.url, self.session
            ),
        );
        assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    }
}

/// Sends one request and reads one response (head and body) from a fake.
fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let body: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + body {
                return String::from_utf8_lossy(&buf[..end + 4 + body]).into_owned();
            }
        }
        let n = stream.read(&mut chunk).expect("the fake camera answers");
        assert!(n > 0, "the fake camera closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

// ---------------------------------------------------------------- HTTP

/// How a [`FakeHttpCamera`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFault {
    /// Every request is redirected (`302`) to the same path.
    RedirectLoop,
    /// `401` with a fresh Digest nonce, whatever credentials come.
    AuthLoop,
    /// `multipart/x-mixed-replace` without a boundary parameter, and a body of
    /// bare JPEGs back to back with no boundary lines or part headers, at 10 fps.
    NoBoundary,
    /// A multipart part announcing `Content-Length: 100000000`: a JPEG header
    /// then entropy-like filler, as fast as the client reads, up to 100 MB.
    HugePart,
    /// A valid snapshot response (headers and JPEG), one byte per second.
    Slowloris,
}

/// Fake HTTP camera with one [`HttpFault`].
pub struct FakeHttpCamera {
    pub port: u16,
    /// HTTP requests seen.
    pub requests: Arc<AtomicUsize>,
    _listener: FakeListener,
}

impl FakeHttpCamera {
    pub fn start(fault: HttpFault) -> FakeHttpCamera {
        sample_jpeg(); // made before the first client, not while it waits
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        let handler: ConnFn = Arc::new(move |mut stream, stop| {
            if !read_http_head(&mut stream, stop) {
                return;
            }
            count.fetch_add(1, Ordering::Relaxed);
            http_conn(stream, stop, fault);
        });
        let listener = FakeListener::start(&format!("fake-http-{fault:?}"), handler);
        FakeHttpCamera {
            port: listener.port,
            requests,
            _listener: listener,
        }
    }

    /// `http://127.0.0.1:<port>/stream.mjpg`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mjpg", self.port)
    }
}

/// Reads an HTTP request head (up to the blank line); false on EOF/stop/5 s.
fn read_http_head(stream: &mut TcpStream, stop: &AtomicBool) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline || head.len() > 64 * 1024 {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
    true
}

fn http_conn(mut stream: TcpStream, stop: &AtomicBool, fault: HttpFault) {
    match fault {
        HttpFault::RedirectLoop => {
            let _ = stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: /stream.mjpg\r\nContent-Length: 0\r\n\
                  Connection: close\r\n\r\n",
            );
        }
        HttpFault::AuthLoop => {
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"cam\", \
                     qop=\"auth\", algorithm=MD5, nonce=\"{:016x}\"\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n",
                    fastrand::u64(..)
                )
                .as_bytes(),
            );
        }
        HttpFault::NoBoundary => {
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace\r\n\
                         Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
            if stream.write_all(head).is_err() {
                return;
            }
            while stream.write_all(sample_jpeg()).is_ok() && nap(Duration::from_millis(100), stop) {
            }
        }
        HttpFault::HugePart => {
            let mut first = b"HTTP/1.1 200 OK\r\n\
                Content-Type: multipart/x-mixed-replace; boundary=frame\r\nConnection: close\r\n\r\n\
                --frame\r\nContent-Type: image/jpeg\r\nContent-Length: 100000000\r\n\r\n"
                .to_vec();
            first.extend_from_slice(jpeg_header());
            if stream.write_all(&first).is_err() {
                return;
            }
            // Entropy-like filler without 0xFF: no marker, so never an EOI.
            let chunk: Vec<u8> = (0..64 * 1024).map(|i| 0x20 + (i % 0x50) as u8).collect();
            let mut sent = first.len();
            while sent < 100_000_000 && !stop.load(Ordering::Relaxed) {
                if stream.write_all(&chunk).is_err() {
                    return; // the client gave up: that is the point
                }
                sent += chunk.len();
            }
        }
        HttpFault::Slowloris => {
            let jpeg = sample_jpeg();
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpeg.len()
            )
            .into_bytes();
            r.extend_from_slice(jpeg);
            dribble(&mut stream, &r, Duration::from_secs(1), stop);
        }
    }
}
