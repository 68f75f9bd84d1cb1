//! Shared helpers for the integration tests: real peers, the binary, temp dirs.
//!
//! * Real peers (see `/work/shared/TESTING.md`): [`RtspServer`] (GStreamer's
//!   gst-rtsp-server via `tests/servers/rtsp_server.py`), [`MjpegServer`] and
//!   [`SingleClientMjpeg`] (ffmpeg's `mpjpeg` muxer in HTTP listen mode),
//!   [`LighttpdServer`] (Basic/Digest auth) and [`SnapshotServer`] (Python's
//!   `http.server` over a temp dir holding a real JPEG and a fake one).
//! * Fake peers, only for faults no real server produces on demand, live in
//!   `tests/it/fakes/`, not here.
//! * [`streampulse`], [`run_with_timeout`] and [`probe_json`] run the built binary under a hard
//!   timeout, so a hanging probe fails its test instead of wedging the suite.
//! * [`chromium`] runs the browser flows of `tests/e2e/`; [`procfs`] reads
//!   sockets and process figures from `/proc`.
//!
//! Everything listens on 127.0.0.1 on a port the OS picked; every peer is stopped on
//! `Drop` (including when the test panics). Nothing here is shared between tests: each
//! test starts its own peers, so tests run in parallel without stepping on each other
//! (gst-rtsp-server answers 503 to near-simultaneous DESCRIBEs of one shared media).

#![allow(dead_code)] // not every test uses every helper

mod binary; // the built binary under a hard timeout: probe runs, JSON output
mod children; // waiting for a child to listen, stopping it, bounding its run time
pub mod chromium; // tests/e2e flows in headless Chromium: run one, check its screenshots
mod heartbeats; // the stored history, decoded with the crate's own decoder
mod jpeg; // JPEG material made once with ffmpeg: real, header only, undecodable, filler
mod lighttpd; // lighttpd: a JPEG and an MJPEG proxy behind Basic and Digest auth
mod mjpeg_servers; // ffmpeg's MJPEG server: one client, or restarted per client
pub mod procfs; // /proc: listening and established sockets, RSS, threads, CPU time
mod rtsp_server; // GStreamer's RTSP server (tests/servers/rtsp_server.py)
mod snapshot_server; // Python's http.server over a directory of JPEGs

use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

pub use binary::{
    output_ok, probe_json, probe_json_run, run_with_timeout, streampulse, Run, COMMAND_TIMEOUT,
};
pub use heartbeats::stored_heartbeats;
pub use jpeg::{filler, jpeg_header, sample_jpeg};
pub use lighttpd::{LighttpdServer, HTTP_PASSWORD};
pub use mjpeg_servers::{MjpegServer, SingleClientMjpeg};
pub use rtsp_server::RtspServer;
pub use snapshot_server::SnapshotServer;

/// User name the auth mounts of [`RtspServer`] accept.
pub const USER: &str = "admin";
/// Password the auth mounts of [`RtspServer`] accept; tests check it is never printed.
pub const PASSWORD: &str = "s3cret-Pa55";

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
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 should succeed");
    listener
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// The text after the first `start` in `text`, up to the next `end` (or
/// the end of `text`); None if `start` does not occur.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = text.split_once(start)?.1;
    Some(rest.split_once(end).map_or(rest, |(inside, _)| inside))
}

/// Polls `pred` every 100 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}
