//! The real MJPEG peers: ffmpeg's `mpjpeg` muxer in HTTP listen mode, as a
//! camera that serves one client ([`MjpegServer`]) and as one restarted
//! after every client, so each camera session it serves is counted
//! ([`SingleClientMjpeg`]). Both run the same ffmpeg command
//! ([`ffmpeg_mjpeg`]).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::children::{terminate, wait_listening};
use super::procfs::is_listening;
use super::{free_port, wait_until};

/// ffmpeg serving a live 320x240, 10 fps MJPEG stream
/// (`multipart/x-mixed-replace; boundary=frame`) at
/// `http://127.0.0.1:<port>/stream.mjpg` to one client (`-listen 1`), then
/// exiting.
fn ffmpeg_mjpeg(port: u16) -> Child {
    Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", "testsrc=size=320x240:rate=10"])
        .args(["-f", "mpjpeg", "-boundary_tag", "frame"])
        .args(["-content_type", "multipart/x-mixed-replace; boundary=frame"])
        .args(["-listen", "1"])
        .arg(format!("http://127.0.0.1:{port}/stream.mjpg"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning ffmpeg should succeed (apt-get install ffmpeg)")
}

/// ffmpeg serving a live 320x240, 10 fps MJPEG stream (`multipart/x-mixed-replace;
/// boundary=frame`) at `/stream.mjpg`.
///
/// ffmpeg's `-listen 1` serves exactly one client and then exits, so use one
/// `MjpegServer` per probe. Readiness is checked in `/proc/net/tcp`, not by connecting.
pub struct MjpegServer {
    /// Port on 127.0.0.1 (picked by the OS, then handed to ffmpeg).
    pub port: u16,
    child: Child,
}

impl MjpegServer {
    /// Starts ffmpeg and waits until it listens; retries with a new port if the one the
    /// OS gave us was taken before ffmpeg could bind it.
    pub fn start() -> MjpegServer {
        for _ in 0..5 {
            let port = free_port();
            let mut child = ffmpeg_mjpeg(port);
            if wait_listening(&mut child, port) {
                return MjpegServer { port, child };
            }
            terminate(&mut child);
        }
        panic!("ffmpeg did not start listening after 5 attempts");
    }

    /// `http://127.0.0.1:<port>/stream.mjpg`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mjpg", self.port)
    }
}

impl Drop for MjpegServer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// ffmpeg's MJPEG server (`-listen 1`: one client, then it exits), started
/// again each time it exits, so it behaves like a camera that allows a single
/// session. `runs` counts the ffmpeg processes started: every client costs one.
pub struct SingleClientMjpeg {
    pub port: u16,
    runs: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SingleClientMjpeg {
    pub fn start() -> SingleClientMjpeg {
        let port = free_port();
        let (runs, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let child: Arc<Mutex<Option<Child>>> = Arc::new(Mutex::new(None));
        let (r, s, c) = (runs.clone(), stop.clone(), child.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let ch = ffmpeg_mjpeg(port);
                r.fetch_add(1, Ordering::SeqCst);
                *c.lock().unwrap() = Some(ch);
                loop {
                    thread::sleep(Duration::from_millis(20));
                    let mut g = c.lock().unwrap();
                    let done = g.as_mut().map(|ch| !matches!(ch.try_wait(), Ok(None)));
                    if done != Some(false) || s.load(Ordering::SeqCst) {
                        break;
                    }
                }
            }
        });
        let me = SingleClientMjpeg {
            port,
            runs,
            stop,
            child,
            thread: Some(thread),
        };
        wait_until(Duration::from_secs(20), "ffmpeg to listen", || {
            is_listening(port)
        });
        me
    }

    /// `http://127.0.0.1:<port>/stream.mjpg`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mjpg", self.port)
    }

    /// ffmpeg processes started so far (one per client served).
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Drop for SingleClientMjpeg {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(mut ch) = self.child.lock().unwrap().take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(mut ch) = self.child.lock().unwrap().take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
    }
}
