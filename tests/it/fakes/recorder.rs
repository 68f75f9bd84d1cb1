//! [`FakeRecorder`]: a loopback peer that keeps what each connection sent
//! and answers a fixed reply. The security tests use it as a webhook
//! receiver whose requests are searched for secrets, and as the "other
//! host" of an edited camera or broker address, standing where an
//! attacker's host would, to see whether a kept password follows the edit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::listener::{ConnFn, FakeListener};

/// Everything each connection sent, one entry per connection.
type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// Most bytes kept from one connection.
const MAX_KEPT: usize = 64 * 1024;

/// Keeps what each connection sent, up to a complete HTTP request (head and
/// `Content-Length` body), 64 KiB, or 1 s of silence (a binary protocol
/// such as an MQTT CONNECT), then answers `reply` (for HTTP: `200`, or a
/// Basic challenge so a client with credentials sends them on its next try;
/// for MQTT: nothing, so no CONNACK).
pub struct FakeRecorder {
    pub port: u16,
    seen: Seen,
    _listener: FakeListener,
}

impl FakeRecorder {
    /// An HTTP `200` with no body, then the connection closes.
    pub const OK: &'static [u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    /// Listens on 127.0.0.1 on a port the OS picks.
    pub fn start(reply: &'static [u8]) -> FakeRecorder {
        Self::start_on("127.0.0.1", 0, reply)
    }

    /// Listens on `ip`:`port` (another loopback address stands for another host).
    pub fn start_on(ip: &str, port: u16, reply: &'static [u8]) -> FakeRecorder {
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let handler: ConnFn = Arc::new(move |stream, _stop| record(stream, reply, &s));
        let listener = FakeListener::start_on((ip, port), "fake-recorder", handler);
        FakeRecorder {
            port: listener.port,
            seen,
            _listener: listener,
        }
    }

    /// What each connection so far sent (empty for one that sent nothing).
    pub fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }

    /// The complete HTTP requests so far, as (head, body).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.seen().iter().filter_map(|b| http_request(b)).collect()
    }

    /// Waits until `n` connections sent something; panics after `limit`.
    pub fn wait_for(&self, n: usize, limit: Duration, what: &str) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + limit;
        loop {
            let seen: Vec<Vec<u8>> = self.seen().into_iter().filter(|b| !b.is_empty()).collect();
            if seen.len() >= n {
                return seen;
            }
            assert!(Instant::now() < deadline, "{what}: nothing arrived");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Reads one connection (see [`FakeRecorder`]), keeps it, answers `reply`.
fn record(mut s: TcpStream, reply: &[u8], seen: &Mutex<Vec<Vec<u8>>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while http_request(&buf).is_none() && buf.len() <= MAX_KEPT {
        match s.read(&mut chunk) {
            Ok(n @ 1..) => buf.extend_from_slice(&chunk[..n]),
            _ => break, // closed, or silent for 1 s
        }
    }
    seen.lock().unwrap().push(buf);
    let _ = s.write_all(reply);
}

/// `bytes` as a complete HTTP request: its head and (`Content-Length`) body.
fn http_request(bytes: &[u8]) -> Option<(String, String)> {
    let i = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..i]).into_owned();
    let len = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(str::to_owned))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (bytes.len() >= i + 4 + len)
        .then(|| (head, String::from_utf8_lossy(&bytes[i + 4..]).into_owned()))
}
