//! HTTP and MJPEG cameras that misbehave in one way each, as no real server
//! can be made to on demand: [`FakeHttpCamera`] with an [`HttpFault`]
//! (redirect and 401 loops, a multipart stream without boundaries, a 100 MB
//! part, 1 byte per second), [`FakeEndlessJpegServer`] (a JPEG that never
//! ends) and [`FakeStallMidFrameServer`] (half a frame, then silence).

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::listener::{dribble, idle, nap, read_http_head, ConnFn, FakeListener};
use crate::util::{filler, jpeg_header, sample_jpeg};

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
            let chunk = filler(64 * 1024);
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

/// Fake MJPEG camera: `200`, `multipart/x-mixed-replace; boundary=frame`, one part
/// header (no Content-Length) and a JPEG that starts well (a real header through SOS,
/// [`jpeg_header`]) but never ends: entropy-like filler (no 0xFF, so no EOI) at
/// ~640 KiB/s until the client goes away. Only the probe's byte cap or deadline ends it.
pub struct FakeEndlessJpegServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    _listener: FakeListener,
}

impl FakeEndlessJpegServer {
    pub fn start() -> FakeEndlessJpegServer {
        fn handle(mut stream: TcpStream, stop: &AtomicBool) {
            // Answered whatever the request (or none within 5 s).
            read_http_head(&mut stream, stop);
            let head = b"HTTP/1.1 200 OK\r\n\
                Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\
                Cache-Control: no-cache\r\nConnection: close\r\n\r\n\
                --frame\r\nContent-Type: image/jpeg\r\n\r\n";
            // Headers and the start of the part in one write (one segment), as cameras do.
            let mut first = head.to_vec();
            first.extend_from_slice(jpeg_header());
            if stream.write_all(&first).is_err() {
                return;
            }
            let chunk = filler(16 * 1024);
            while !stop.load(Ordering::Relaxed) {
                if stream.write_all(&chunk).is_err() {
                    return; // the client gave up: that is the point
                }
                thread::sleep(Duration::from_millis(25));
            }
        }
        sample_jpeg(); // made before the first client, not while it waits
        let listener = FakeListener::start("fake-endless-jpeg", Arc::new(handle));
        FakeEndlessJpegServer {
            port: listener.port,
            _listener: listener,
        }
    }

    /// `http://127.0.0.1:<port>/stream.mjpg`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mjpg", self.port)
    }
}

/// Fake MJPEG camera that stalls mid-frame: `200` multipart, a part header announcing
/// the full `Content-Length` of [`sample_jpeg`], the first half of it (well into the
/// entropy-coded data), then silence with the connection held open.
pub struct FakeStallMidFrameServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    _listener: FakeListener,
}

impl FakeStallMidFrameServer {
    pub fn start() -> FakeStallMidFrameServer {
        fn handle(mut stream: TcpStream, stop: &AtomicBool) {
            // Answered whatever the request (or none within 5 s).
            read_http_head(&mut stream, stop);
            let jpeg = sample_jpeg();
            let head = format!(
                "HTTP/1.1 200 OK\r\n\
                 Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\
                 Cache-Control: no-cache\r\nConnection: close\r\n\r\n\
                 --frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpeg.len()
            );
            let half = &jpeg[..jpeg.len() / 2];
            debug_assert!(
                half.len() > jpeg_header().len(),
                "the cut is inside the picture data"
            );
            // Headers and half the frame in one write (one segment), as cameras do.
            let mut first = head.into_bytes();
            first.extend_from_slice(half);
            if stream.write_all(&first).is_err() {
                return;
            }
            idle(stream, stop);
        }
        sample_jpeg(); // made before the first client, not while it waits
        let listener = FakeListener::start("fake-stall-mid-frame", Arc::new(handle));
        FakeStallMidFrameServer {
            port: listener.port,
            _listener: listener,
        }
    }

    /// `http://127.0.0.1:<port>/stream.mjpg`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mjpg", self.port)
    }
}
