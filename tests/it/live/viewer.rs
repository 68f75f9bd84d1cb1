//! [`Viewer`]: a live viewer over a raw socket, so a test controls when it
//! reads (a stalled browser) and sees every byte: the MP4 boxes of an fMP4
//! stream or the parts of a multipart JPEG stream, frame counts, decode
//! times and latencies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::app::{App, TEST_TOKEN};
use crate::util::wait_until;

/// What a [`Viewer`] has received so far.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) status: u16,
    pub(super) content_type: String,
    /// The JSON error of a refused viewer.
    pub(super) error: String,
    /// Top-level MP4 box types in order (first 16).
    pub(super) boxes: Vec<String>,
    /// Complete frames: JPEG parts that decode, or moof+mdat pairs.
    pub(super) frames: usize,
    /// The first fragment was a key frame (fMP4).
    pub(super) first_key: Option<bool>,
    /// `tfdt` of each fragment.
    pub(super) decode_times: Vec<u64>,
    /// Box receive minus camera capture time, per frame that had both (ms).
    pub(super) camera_to_box: Vec<f64>,
    /// Client receive time minus the box's receive time (same clock on loopback).
    pub(super) box_to_client: Vec<f64>,
    /// JPEG sizes (width, height) decoded.
    pub(super) jpeg_dims: Option<(u32, u32)>,
    pub(super) ended: bool,
}

impl Seen {
    /// An H.264 fMP4 stream that starts as a player needs it: the MIME type
    /// with the codec, `ftyp`, `moov`, our `uuid` (capture times), then a
    /// fragment that is a key frame.
    pub(super) fn assert_h264_fmp4_start(&self) {
        assert!(
            self.content_type.starts_with("video/mp4; codecs=\"avc1."),
            "{}",
            self.content_type
        );
        assert_eq!(
            &self.boxes[..4],
            ["ftyp", "moov", "uuid", "moof"],
            "{:?}",
            self.boxes
        );
        assert_eq!(self.first_key, Some(true), "viewers start at a key frame");
    }
}

/// A live viewer over a raw socket (so a test controls reading).
pub(super) struct Viewer {
    seen: Arc<Mutex<Seen>>,
    sock: TcpStream,
    /// When set, the reader thread stops reading (a stalled browser).
    pub(super) pause: Arc<AtomicBool>,
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

impl Viewer {
    pub(super) fn open(app: &App, stream: &str) -> Viewer {
        Self::open_with(app, stream, None)
    }

    /// `rcvbuf`: a small receive buffer, for viewers meant to stall.
    pub(super) fn open_with(app: &App, stream: &str, rcvbuf: Option<i32>) -> Viewer {
        let sock = TcpStream::connect(&app.addr).unwrap();
        if let Some(n) = rcvbuf {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid socket and an int option.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&n as *const i32).cast(),
                    4,
                )
            };
        }
        let path = streampulse::web::routes::live_path(stream, "/stream");
        write!(
            &sock,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TEST_TOKEN}\r\n\r\n",
            app.addr
        )
        .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let pause = Arc::new(AtomicBool::new(false));
        let (s, p, r) = (seen.clone(), pause.clone(), sock.try_clone().unwrap());
        thread::spawn(move || {
            let _ = read_stream(r, &s, &p);
            s.lock().unwrap().ended = true;
        });
        Viewer { seen, sock, pause }
    }

    pub(super) fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    pub(super) fn frames(&self) -> usize {
        self.seen(|s| s.frames)
    }

    pub(super) fn wait_frames(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.frames() < n {
            assert!(
                Instant::now() < deadline,
                "viewer got {} of {n} frames: {:?}",
                self.frames(),
                self.seen(|s| format!("{} {} {}", s.status, s.content_type, s.error))
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn wait_status(&self) -> u16 {
        wait_until(Duration::from_secs(20), "response headers", || {
            self.seen(|s| s.status != 0 || s.ended)
        });
        self.seen(|s| s.status)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Reads one chunk of a chunked body (None at the end).
fn chunk(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let n = usize::from_str_radix(line.trim(), 16)
        .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
    let mut data = vec![0; n + 2];
    r.read_exact(&mut data)?;
    data.truncate(n);
    Ok((n > 0).then_some(data))
}

fn read_stream(sock: TcpStream, seen: &Mutex<Seen>, pause: &AtomicBool) -> std::io::Result<()> {
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let h = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    {
        let mut s = seen.lock().unwrap();
        s.status = status;
        s.content_type = h("content-type");
    }
    if status != 200 {
        let n: usize = h("content-length").parse().unwrap_or(0);
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        seen.lock().unwrap().error = v["error"].as_str().unwrap_or("").to_owned();
        return Ok(());
    }
    assert_eq!(h("transfer-encoding"), "chunked");
    let mp4 = h("content-type").starts_with("video/mp4");
    let mut buf: Vec<u8> = Vec::new();
    let mut timing: Option<(f64, f64)> = None;
    loop {
        while pause.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50));
        }
        let Some(data) = chunk(&mut r)? else {
            return Ok(());
        };
        let got_ms = now_ms();
        buf.extend_from_slice(&data);
        let mut s = seen.lock().unwrap();
        if mp4 {
            let mut at = 0;
            while buf.len() - at >= 8 {
                let size = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                assert!(size >= 8, "bad box size");
                if buf.len() - at < size {
                    break;
                }
                let typ = String::from_utf8_lossy(&buf[at + 4..at + 8]).into_owned();
                let b = &buf[at..at + size];
                match typ.as_str() {
                    "uuid" => {
                        let f = |i: usize| f64::from_be_bytes(b[i..i + 8].try_into().unwrap());
                        timing = Some((f(28), f(36)));
                    }
                    "moof" => {
                        if let Some(p) = b.windows(4).position(|w| w == b"tfdt") {
                            let t = u64::from_be_bytes(b[p + 8..p + 16].try_into().unwrap());
                            s.decode_times.push(t);
                        }
                        if s.first_key.is_none() {
                            let p = b.windows(4).position(|w| w == b"trun").unwrap();
                            let flags = u32::from_be_bytes(b[p + 24..p + 28].try_into().unwrap());
                            s.first_key = Some(flags == 0x0200_0000);
                        }
                    }
                    "mdat" => {
                        s.frames += 1;
                        if let Some((recv, cap)) = timing.take() {
                            s.box_to_client.push(got_ms - recv);
                            if !cap.is_nan() {
                                s.camera_to_box.push(recv - cap);
                            }
                        }
                    }
                    _ => {}
                }
                if s.boxes.len() < 16 {
                    s.boxes.push(typ);
                }
                at += size;
            }
            buf.drain(..at);
        } else {
            // Our multipart: part headers with Content-Length, then the JPEG.
            while let Some(he) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..he]).into_owned();
                let field = |k: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_owned()))
                        .unwrap_or_default()
                };
                let n: usize = field("Content-Length:").parse().expect("Content-Length");
                if buf.len() < he + 4 + n {
                    break;
                }
                let jpeg = &buf[he + 4..he + 4 + n];
                let d = streampulse::probe::jpeg::decode(jpeg).expect("relayed JPEGs decode");
                s.jpeg_dims = Some((d.width, d.height));
                s.frames += 1;
                if let Ok(recv) = field("X-Recv-Ms:").parse::<f64>() {
                    s.box_to_client.push(got_ms - recv);
                    if let Ok(cap) = field("X-Capture-Ms:").parse::<f64>() {
                        s.camera_to_box.push(recv - cap);
                    }
                }
                buf.drain(..he + 4 + n);
            }
        }
    }
}
