//! Peers that speak no protocol at all: [`FakeSilentServer`] accepts and
//! never sends a byte (a wedged camera, a webhook receiver that hangs),
//! [`FakeGarbageServer`] answers with binary garbage.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::listener::{idle, FakeListener};

/// Fake: accepts TCP connections and never sends a byte (a wedged camera).
pub struct FakeSilentServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    _listener: FakeListener,
}

impl FakeSilentServer {
    pub fn start() -> FakeSilentServer {
        let listener = FakeListener::start("fake-silent", Arc::new(idle));
        FakeSilentServer {
            port: listener.port,
            _listener: listener,
        }
    }

    /// `<scheme>://127.0.0.1:<port><path>`
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}

/// Fake: answers every connection with ~10 KiB of binary garbage (not RTSP, not HTTP)
/// in 20 bursts 50 ms apart, then keeps the connection open without sending more.
pub struct FakeGarbageServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    _listener: FakeListener,
}

impl FakeGarbageServer {
    pub fn start() -> FakeGarbageServer {
        fn handle(mut stream: TcpStream, stop: &AtomicBool) {
            let mut rng = fastrand::Rng::with_seed(0x5EED);
            for _ in 0..20 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let mut chunk: Vec<u8> = (0..512).map(|_| rng.u8(..)).collect();
                // Not '$' (an RTSP interleaved frame) nor 'R'/'H' (a response line):
                // plainly garbage from the first byte on, with line breaks so that
                // line-based parsers see complete (bad) lines.
                chunk[0] = 0x00;
                chunk.extend_from_slice(b"\r\n\r\n");
                if stream.write_all(&chunk).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            idle(stream, stop);
        }
        let listener = FakeListener::start("fake-garbage", Arc::new(handle));
        FakeGarbageServer {
            port: listener.port,
            _listener: listener,
        }
    }

    /// `<scheme>://127.0.0.1:<port><path>`
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}
