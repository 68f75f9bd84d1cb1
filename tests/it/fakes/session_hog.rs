//! [`SessionHog`]: a raw RTSP client that takes the one session of a
//! [`super::RtspFault::OneSession`] camera and holds it, as another viewer
//! of a single-session camera would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A raw RTSP client that takes the one session of a
/// [`super::RtspFault::OneSession`] camera (DESCRIBE + SETUP) and holds it
/// until [`SessionHog::teardown`].
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
