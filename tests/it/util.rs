//! Shared helpers for the integration tests: real peers, fake peers and the binary.
//!
//! * Real peers (see `/work/shared/TESTING.md`): [`RtspServer`] (GStreamer's
//!   gst-rtsp-server via `tests/servers/rtsp_server.py`), [`MjpegServer`] (ffmpeg's
//!   `mpjpeg` muxer in HTTP listen mode) and [`SnapshotServer`] (Python's
//!   `http.server` over a temp dir holding a real JPEG and a fake one).
//! * Fake peers, only for faults no real server produces on demand: [`FakeSilentServer`],
//!   [`FakeGarbageServer`], [`FakeEndlessJpegServer`], [`FakeStallMidFrameServer`].
//! * [`streampulse`], [`run_probe`] and [`probe_json`] run the built binary under a hard
//!   timeout, so a hanging probe fails its test instead of wedging the suite.
//!
//! Everything listens on 127.0.0.1 on a port the OS picked; every peer is stopped on
//! `Drop` (including when the test panics). Nothing here is shared between tests: each
//! test starts its own peers, so tests run in parallel without stepping on each other
//! (gst-rtsp-server answers 503 to near-simultaneous DESCRIBEs of one shared media).

#![allow(dead_code)] // not every test uses every helper

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// User name the auth mounts of [`RtspServer`] accept.
pub const USER: &str = "admin";
/// Password the auth mounts of [`RtspServer`] accept; tests check it is never printed.
pub const PASSWORD: &str = "s3cret-Pa55";

/// Hard limit for one run of the binary; a probe's own deadline is far below it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a real peer may take to start listening before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Debian's Python: the GStreamer gi bindings are not in pyenv's interpreter.
const PYTHON: &str = "/usr/bin/python3";

/// The package root (where `Cargo.toml` lives).
pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh temp dir for one test, removed when the returned guard drops.
pub fn temp_dir(test_name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("streampulse-it-{test_name}-"))
        .tempdir()
        .expect("creating a temp dir should succeed")
}

/// A loopback port that nothing listens on (bound by the OS, then released).
///
/// Another process could grab it in between; on a test machine that is rare enough.
pub fn closed_port() -> u16 {
    free_port()
}

/// A port the OS just handed out on 127.0.0.1, released again for a child to bind.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 should succeed");
    listener
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// True if something LISTENs on 127.0.0.1:`port`, read from `/proc/net/tcp` so that
/// no connection is made: ffmpeg's `-listen 1` would spend its only client on it.
pub fn is_listening(port: u16) -> bool {
    let needle = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| {
            table.lines().skip(1).any(|line| {
                let mut cols = line.split_whitespace().skip(1);
                cols.next() == Some(needle.as_str()) && cols.nth(1) == Some("0A")
            })
        })
        .unwrap_or(false)
}

/// Waits until `child` listens on `port`. Returns `false` if it exited first (e.g. the
/// port was taken in between) or `START_TIMEOUT` passed.
fn wait_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if is_listening(port) {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Stops a child: SIGTERM, up to 3 s to exit, then SIGKILL. Always reaps it.
fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own, not yet reaped child; no memory is involved.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The GStreamer RTSP test server (`tests/servers/rtsp_server.py`) on its own port.
///
/// Mounts: `/h264 /h265 /mjpeg /basic /digest /tcponly /udponly /ends /solid /audioonly
/// /h264opus`, see the script's docstring. `/basic` and `/digest` want [`USER`] and
/// [`PASSWORD`]. Media are not shared: each client gets its own pipeline.
/// Stopped on drop; it also exits by itself if this process dies (its stdin closes).
pub struct RtspServer {
    /// Port on 127.0.0.1, picked by the OS.
    pub port: u16,
    child: Child,
    /// Held open only so the server sees EOF when we go away.
    _stdin: ChildStdin,
    _log_dir: tempfile::TempDir,
}

impl RtspServer {
    /// Starts the server and waits (up to 20 s) for its `PORT <n>` line.
    pub fn start() -> RtspServer {
        let log_dir = temp_dir("rtsp-server");
        let log_path = log_dir.path().join("stderr.log");
        let log = std::fs::File::create(&log_path).expect("creating the server log should succeed");
        let script = manifest_dir().join("tests/servers/rtsp_server.py");
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {PYTHON} {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("stdin was piped");
        let stdout = child.stdout.take().expect("stdout was piped");

        // Read the PORT line in a thread (no read timeout on pipes), then keep draining
        // stdout so the server can never block on a full pipe.
        let (port_tx, port_rx) = mpsc::channel();
        thread::Builder::new()
            .name("rtsp-server-stdout".into())
            .spawn(move || {
                let mut port_tx = Some(port_tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(port) = line
                        .strip_prefix("PORT ")
                        .and_then(|p| p.trim().parse::<u16>().ok())
                    {
                        if let Some(tx) = port_tx.take() {
                            let _ = tx.send(port);
                        }
                    }
                }
            })
            .expect("spawning a thread should succeed");

        match port_rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => RtspServer {
                port,
                child,
                _stdin: stdin,
                _log_dir: log_dir,
            },
            Err(_) => {
                terminate(&mut child);
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "rtsp_server.py printed no PORT line within {START_TIMEOUT:?}; stderr:\n{log}"
                );
            }
        }
    }

    /// `rtsp://127.0.0.1:<port><path>`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{path}", self.port)
    }

    /// Like [`RtspServer::url`] with `user:password@` in the authority.
    pub fn url_with_credentials(&self, path: &str, user: &str, password: &str) -> String {
        format!("rtsp://{user}:{password}@127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
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
            let mut child = Command::new("ffmpeg")
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
                .expect("spawning ffmpeg should succeed (apt-get install ffmpeg)");
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

/// lighttpd (a real web server with Basic and Digest auth, as cameras use)
/// serving `snap.jpg` under `/basic/` (Basic) and `/digest/` (Digest), and
/// proxying `/digest-stream/stream.mjpg` to an ffmpeg MJPEG server behind
/// Digest auth. Credentials: `admin` / [`HTTP_PASSWORD`].
pub struct LighttpdServer {
    pub port: u16,
    child: Child,
    _mjpeg: MjpegServer,
    _dir: tempfile::TempDir,
}

/// Password of the lighttpd test server.
pub const HTTP_PASSWORD: &str = "s3cret-Pa55";

impl LighttpdServer {
    pub fn start() -> LighttpdServer {
        let mjpeg = MjpegServer::start();
        let dir = temp_dir("lighttpd");
        let www = dir.path().join("www");
        for sub in ["basic", "digest"] {
            std::fs::create_dir_all(www.join(sub)).unwrap();
            std::fs::write(www.join(sub).join("snap.jpg"), sample_jpeg()).unwrap();
        }
        // htdigest: user:realm:md5(user:realm:password); serves Basic and Digest.
        let ha1 = md5_hex(format!("admin:cam:{HTTP_PASSWORD}").as_bytes());
        std::fs::write(dir.path().join("htdigest"), format!("admin:cam:{ha1}\n")).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let conf = format!(
                r#"server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {port}
server.modules = ("mod_auth", "mod_authn_file", "mod_proxy")
server.errorlog = "{dir}/error.log"
server.pid-file = "{dir}/lighttpd.pid"
server.stream-response-body = 2
mimetype.assign = (".jpg" => "image/jpeg")
auth.backend = "htdigest"
auth.backend.htdigest.userfile = "{dir}/htdigest"
auth.require = (
  "/basic/" => ("method" => "basic", "realm" => "cam", "require" => "valid-user"),
  "/digest/" => ("method" => "digest", "realm" => "cam", "require" => "valid-user"),
  "/digest-stream/" => ("method" => "digest", "realm" => "cam", "require" => "valid-user"),
)
$HTTP["url"] =~ "^/digest-stream/" {{
  proxy.server = ("" => (("host" => "127.0.0.1", "port" => {mjpeg_port})))
}}
"#,
                www = www.display(),
                dir = dir.path().display(),
                mjpeg_port = mjpeg.port,
            );
            let conf_path = dir.path().join("lighttpd.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let mut child = Command::new("lighttpd")
                .arg("-D")
                .arg("-f")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning lighttpd should succeed (apt-get install lighttpd)");
            if wait_listening(&mut child, port) {
                return LighttpdServer {
                    port,
                    child,
                    _mjpeg: mjpeg,
                    _dir: dir,
                };
            }
            terminate(&mut child);
        }
        panic!("lighttpd did not start listening after 5 attempts");
    }

    /// `http://127.0.0.1:<port><path>` without credentials.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for LighttpdServer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// MD5 as lowercase hex, via coreutils' `md5sum` (tests only; no crate needed).
fn md5_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Python's `http.server` over a temp dir holding `snap.jpg` ([`sample_jpeg`], 320x240),
/// `corrupt.jpg` ([`corrupt_jpeg`]: complete, well-formed markers, undecodable) and
/// `not-a-jpeg.jpg` (text, served as `image/jpeg`). Any other path is 404.
pub struct SnapshotServer {
    /// Port on 127.0.0.1 (picked by the OS, then handed to Python).
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl SnapshotServer {
    /// Writes the files and starts the server; waits until it listens.
    pub fn start() -> SnapshotServer {
        let dir = temp_dir("snapshot");
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes)
                .unwrap_or_else(|e| panic!("writing {name}: {e}"))
        };
        write("snap.jpg", sample_jpeg());
        write("corrupt.jpg", &corrupt_jpeg());
        write(
            "not-a-jpeg.jpg",
            "this is not a JPEG, just text pretending to be one\n"
                .repeat(20)
                .as_bytes(),
        );

        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(PYTHON)
                .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(dir.path())
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning python3 -m http.server should succeed");
            if wait_listening(&mut child, port) {
                return SnapshotServer { port, child, dir };
            }
            terminate(&mut child);
        }
        panic!("python3 -m http.server did not start listening after 5 attempts");
    }

    /// `http://127.0.0.1:<port>/<file>`
    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }

    /// The served directory (to add files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SnapshotServer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// A TCP server on 127.0.0.1:0 that runs `handler` for every connection in its own
/// thread. Drop sets the stop flag (handlers poll it) and joins every thread.
struct FakeServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

type Handler = fn(TcpStream, &AtomicBool);

impl FakeServer {
    fn start(name: &str, handler: Handler) -> FakeServer {
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
                let mut conns = Vec::new();
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let stop3 = stop2.clone();
                            conns.push(
                                thread::Builder::new()
                                    .name(format!("{name}-conn"))
                                    .spawn(move || handler(stream, &stop3))
                                    .expect("spawning a thread should succeed"),
                            );
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            })
            .expect("spawning a thread should succeed");
        FakeServer {
            port,
            stop,
            accept_thread: Some(accept_thread),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

/// Keeps the connection open (doing nothing) until the server stops.
fn idle(stream: TcpStream, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
    }
    drop(stream);
}

/// Reads (and discards) an HTTP request head: up to the blank line, 64 KiB or 2 s.
fn read_request_head(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline
        && head.len() < 64 * 1024
        && !head.windows(4).any(|w| w == b"\r\n\r\n")
    {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(_) => continue, // read timeout: check the deadline again
        }
    }
}

/// A real baseline JPEG of ffmpeg's 320x240 `testsrc` (about 9 KB), made once per run.
pub fn sample_jpeg() -> &'static [u8] {
    static JPEG: OnceLock<Vec<u8>> = OnceLock::new();
    JPEG.get_or_init(|| {
        let out = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240",
            ])
            .args(["-frames:v", "1", "-f", "mjpeg", "-"])
            .stdin(Stdio::null())
            .output()
            .expect("spawning ffmpeg should succeed (apt-get install ffmpeg)");
        assert!(
            out.status.success() && out.stdout.starts_with(&[0xFF, 0xD8]),
            "ffmpeg made no JPEG: {out:?}"
        );
        out.stdout
    })
}

/// Offsets of the JPEG segments of `jpeg` up to and including SOS: `(marker, start, end)`
/// where `start` is the 0xFF of the marker and `end` is one past the segment.
fn jpeg_segments(jpeg: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut segments = Vec::new();
    let mut pos = 2; // after SOI
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF {
        let marker = jpeg[pos + 1];
        let end = pos + 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        segments.push((marker, pos, end));
        if marker == 0xDA {
            break; // entropy-coded data follows
        }
        pos = end;
    }
    assert_eq!(
        segments.last().map(|s| s.0),
        Some(0xDA),
        "sample JPEG has no SOS segment"
    );
    segments
}

/// [`sample_jpeg`] up to and including its SOS header: what a camera sends before the
/// entropy-coded picture data.
pub fn jpeg_header() -> &'static [u8] {
    let jpeg = sample_jpeg();
    let (_, _, sos_end) = *jpeg_segments(jpeg)
        .last()
        .expect("checked in jpeg_segments");
    &jpeg[..sos_end]
}

/// [`sample_jpeg`] with width and height in its SOF set to 0: every marker is in place
/// (SOI ... EOI), but no decoder can make a picture of it.
pub fn corrupt_jpeg() -> Vec<u8> {
    let mut jpeg = sample_jpeg().to_vec();
    let (_, start, _) = *jpeg_segments(&jpeg)
        .iter()
        .find(|(m, _, _)| (0xC0..=0xC2).contains(m))
        .expect("sample JPEG has a SOF0..SOF2 segment");
    // FF Cx, length (2), precision (1), height (2), width (2)
    jpeg[start + 5..start + 9].fill(0);
    jpeg
}

/// Entropy-coded-looking filler that never contains 0xFF: no marker (so no EOI), no boundary.
fn filler(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0x20 + (i % 0x50) as u8).collect()
}

/// Fake: accepts TCP connections and never sends a byte (a wedged camera).
pub struct FakeSilentServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    _server: FakeServer,
}

impl FakeSilentServer {
    pub fn start() -> FakeSilentServer {
        let server = FakeServer::start("fake-silent", idle);
        FakeSilentServer {
            port: server.port,
            _server: server,
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
    _server: FakeServer,
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
        let server = FakeServer::start("fake-garbage", handle);
        FakeGarbageServer {
            port: server.port,
            _server: server,
        }
    }

    /// `<scheme>://127.0.0.1:<port><path>`
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}

/// Fake MJPEG camera: `200`, `multipart/x-mixed-replace; boundary=frame`, one part
/// header (no Content-Length) and a JPEG that starts well (a real header through SOS,
/// [`jpeg_header`]) but never ends: entropy-like filler (no 0xFF, so no EOI) at
/// ~640 KiB/s until the client goes away. Only the probe's byte cap or deadline ends it.
pub struct FakeEndlessJpegServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    _server: FakeServer,
}

impl FakeEndlessJpegServer {
    pub fn start() -> FakeEndlessJpegServer {
        fn handle(mut stream: TcpStream, stop: &AtomicBool) {
            read_request_head(&mut stream);
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
        let server = FakeServer::start("fake-endless-jpeg", handle);
        FakeEndlessJpegServer {
            port: server.port,
            _server: server,
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
    _server: FakeServer,
}

impl FakeStallMidFrameServer {
    pub fn start() -> FakeStallMidFrameServer {
        fn handle(mut stream: TcpStream, stop: &AtomicBool) {
            read_request_head(&mut stream);
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
        let server = FakeServer::start("fake-stall-mid-frame", handle);
        FakeStallMidFrameServer {
            port: server.port,
            _server: server,
        }
    }

    /// `http://127.0.0.1:<port>/stream.mjpg`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mjpg", self.port)
    }
}

/// A `Command` for the built `streampulse` binary.
pub fn streampulse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streampulse"))
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (the run panics instead if the process was killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// Runs `cmd` with stdin closed, collecting stdout and stderr; kills it and panics if it
/// is still running after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout was piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr was piped")));
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().expect("try_wait should succeed") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!("{cmd:?} still running after {timeout:?}; killed. stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stdout = out.join().expect("stdout reader should not panic");
    let stderr = err.join().expect("stderr reader should not panic");
    let code = status
        .code()
        .unwrap_or_else(|| panic!("{cmd:?} died by a signal ({status}). stderr:\n{stderr}"));
    Run {
        code,
        stdout,
        stderr,
        elapsed,
    }
}

/// Runs `streampulse probe <args...>` under [`COMMAND_TIMEOUT`].
pub fn run_probe(args: &[&str]) -> Run {
    let mut cmd = streampulse();
    cmd.arg("probe").args(args);
    run_with_timeout(cmd, COMMAND_TIMEOUT)
}

/// Runs `streampulse probe --json <args...>` and parses its stdout as one JSON object.
/// Returns the exit code and the object; panics (showing stdout and stderr) if stdout is
/// not JSON.
pub fn probe_json(args: &[&str]) -> (i32, serde_json::Value) {
    let (run, json) = probe_json_run(args);
    (run.code, json)
}

/// Like [`probe_json`], also returning the [`Run`] (for `elapsed` and stderr).
pub fn probe_json_run(args: &[&str]) -> (Run, serde_json::Value) {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let run = run_probe(&full);
    let json = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "probe {args:?}: stdout is not one JSON object ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
            run.code, run.stdout, run.stderr
        )
    });
    (run, json)
}

/// Waits for `child` to exit, killing it after `limit`; its exit status.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait on a child should work") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child
                .wait()
                .expect("waiting for a killed child should work");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every stored heartbeat in the database `db`, as (stream name, heartbeat),
/// oldest first per stream: reads and unpacks the `heartbeat_blocks` rows
/// (schema 3) with the crate's own decoder.
pub fn stored_heartbeats(
    db: &rusqlite::Connection,
) -> Vec<(String, streampulse::store::blocks::Heartbeat)> {
    let mut q = db
        .prepare(
            "SELECT s.name, b.first_ms, b.data FROM heartbeat_blocks b
             JOIN streams s ON s.id = b.stream_id ORDER BY s.name, b.window_ms, b.first_ms",
        )
        .expect("preparing the heartbeat query");
    let rows: Vec<(String, i64, Vec<u8>)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("reading heartbeat blocks")
        .map(|r| r.expect("reading a heartbeat block"))
        .collect();
    let mut out = Vec::new();
    for (name, first_ms, data) in rows {
        let hbs = streampulse::store::blocks::decode(first_ms, &data)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.extend(hbs.into_iter().map(|h| (name.clone(), h)));
    }
    out
}
