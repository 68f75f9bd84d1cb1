//! The one accept loop every named fake runs on ([`FakeListener`]), and the
//! small connection chores fakes share: sleeping while watching the stop
//! flag, dribbling bytes, idling, reading a request head.
//!
//! A fake is a handler per connection: the listener accepts on a loopback
//! port the OS picked (or one the test names), runs each connection in its
//! own thread, and on drop sets the stop flag that handlers poll and joins
//! every thread, so nothing outlives the test.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A connection handler: the stream and the server's stop flag.
pub type ConnFn = Arc<dyn Fn(TcpStream, &AtomicBool) + Send + Sync>;

/// Accept loop running `handler` per connection in a thread.
/// Drop sets the stop flag (handlers poll it) and joins every thread.
pub struct FakeListener {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FakeListener {
    /// Listens on 127.0.0.1 on a port the OS picks.
    pub fn start(name: &str, handler: ConnFn) -> FakeListener {
        Self::start_on(("127.0.0.1", 0), name, handler)
    }

    /// Listens on `addr` (another loopback address, or a port taken from
    /// another fake to stand in for "the same port on another host").
    pub fn start_on(addr: (&str, u16), name: &str, handler: ConnFn) -> FakeListener {
        let listener = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("binding {}:{} should succeed: {e}", addr.0, addr.1));
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
pub fn nap(d: Duration, stop: &AtomicBool) -> bool {
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
pub fn dribble(stream: &mut TcpStream, data: &[u8], every: Duration, stop: &AtomicBool) {
    for b in data {
        if stream.write_all(&[*b]).is_err() || !nap(every, stop) {
            return;
        }
    }
}

/// Keeps the connection open (doing nothing) until the server stops.
pub fn idle(stream: TcpStream, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
    }
    drop(stream);
}

/// Reads an HTTP request head (up to the blank line, at most 64 KiB);
/// false on EOF, stop, or nothing complete within 5 s.
pub fn read_http_head(stream: &mut TcpStream, stop: &AtomicBool) -> bool {
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
