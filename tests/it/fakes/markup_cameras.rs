//! Cameras that put markup in what they tell us, for the escaping tests
//! (`security::escaping`): no real server does so on demand.
//! [`FakeMarkupHttpCamera`] answers with an HTML content type and body,
//! [`FakeMarkupRtspCamera`] with a DESCRIBE whose status reason, session
//! name and encoding name carry markup. The probe reports both in its
//! message, which the pages must then show as text.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::listener::{read_http_head, ConnFn, FakeListener};

/// A camera that answers every HTTP request with `200 OK`, a `Content-Type`
/// and a body full of markup (a named fake: no real camera does this on
/// demand). The probe reports the content type in its message.
pub struct FakeMarkupHttpCamera {
    pub port: u16,
    _listener: FakeListener,
}

impl FakeMarkupHttpCamera {
    pub const CONTENT_TYPE: &'static str = "text/html; <script>alert(81)</script>";

    pub fn start() -> Self {
        let handler: ConnFn = Arc::new(|mut c, stop| {
            if !read_http_head(&mut c, stop) {
                return;
            }
            let body = "<script>alert(82)</script><img src=x onerror=alert(83)>";
            let _ = write!(
                c,
                "HTTP/1.1 200 <b>OK</b>\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                Self::CONTENT_TYPE,
                body.len()
            );
        });
        let listener = FakeListener::start("fake-markup-http", handler);
        FakeMarkupHttpCamera {
            port: listener.port,
            _listener: listener,
        }
    }
}

/// An RTSP camera whose DESCRIBE answer (status reason, session name and
/// the video track's encoding name) carries markup; the probe reports the
/// encoding name it could not use (a named fake).
pub struct FakeMarkupRtspCamera {
    pub port: u16,
    _listener: FakeListener,
}

/// A connection that sends nothing for this long is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(5);

impl FakeMarkupRtspCamera {
    pub const ENCODING: &'static str = "<img src=x onerror=alert(91)>";

    pub fn start() -> Self {
        let handler: ConnFn = Arc::new(Self::serve);
        let listener = FakeListener::start("fake-markup-rtsp", handler);
        FakeMarkupRtspCamera {
            port: listener.port,
            _listener: listener,
        }
    }

    fn serve(mut c: TcpStream, stop: &AtomicBool) {
        // The connection's own end is the camera's port (for Content-Base).
        let port = c.local_addr().map_or(0, |a| a.port());
        let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut last_read = Instant::now();
        loop {
            while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                buf.drain(..i + 4);
                let cseq = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("cseq").then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default();
                let answer = if head.starts_with("DESCRIBE") {
                    let sdp = format!(
                        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=<script>alert(92)</script>\r\n\
                         c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
                         a=rtpmap:96 {}/90000\r\na=control:track1\r\n",
                        Self::ENCODING
                    );
                    format!(
                        "RTSP/1.0 200 <b>OK</b>\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n\
                         Content-Base: rtsp://127.0.0.1:{port}/x/\r\nContent-Length: {}\r\n\r\n{sdp}",
                        sdp.len()
                    )
                } else {
                    format!(
                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n"
                    )
                };
                if c.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
            match c.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    last_read = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stop.load(Ordering::Relaxed) || last_read.elapsed() > IDLE_LIMIT {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}
