//! The real RTSP peer: GStreamer's gst-rtsp-server, driven by
//! `tests/servers/rtsp_server.py` (see `/work/shared/TESTING.md`). One
//! server per test, so near-simultaneous DESCRIBEs of a shared media (which
//! gst-rtsp-server answers with 503) never happen between tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use super::children::terminate;
use super::{manifest_dir, temp_dir, PYTHON, START_TIMEOUT};

/// The GStreamer RTSP test server (`tests/servers/rtsp_server.py`) on its own port.
///
/// Mounts: `/h264 /h265 /mjpeg /basic /digest /tcponly /udponly /ends /longgop /solid /still
/// /mjpegbars /scene /audioonly /h264opus`, see the script's docstring ([`RtspServer::set_scene`] switches
/// `/scene`). `/basic` and `/digest` want [`super::USER`] and
/// [`super::PASSWORD`]. Media are not shared: each client gets its own pipeline.
/// Stopped on drop; it also exits by itself if this process dies (its stdin closes).
pub struct RtspServer {
    /// Port on 127.0.0.1, picked by the OS.
    pub port: u16,
    child: Child,
    /// Commands (`scene …`); the server exits when it closes.
    stdin: ChildStdin,
    /// The server's stdout lines after `PORT` (acknowledgements).
    lines: mpsc::Receiver<String>,
    _log_dir: tempfile::TempDir,
}

impl RtspServer {
    /// Starts the server and waits (up to 20 s) for its `PORT <n>` line.
    pub fn start() -> RtspServer {
        RtspServer::start_with_clock(None)
    }

    /// Like [`RtspServer::start`], with the server's wall clock shifted by
    /// `shift` (libfaketime's `faketime -f`, e.g. `"+2h"`): a camera whose
    /// clock is off, in its RTCP sender reports. Its monotonic clock is
    /// left alone (GStreamer's pipelines stall when it jumps).
    pub fn start_with_clock(shift: Option<&str>) -> RtspServer {
        let log_dir = temp_dir("rtsp-server");
        let log_path = log_dir.path().join("stderr.log");
        let log = std::fs::File::create(&log_path).expect("creating the server log should succeed");
        let script = manifest_dir().join("tests/servers/rtsp_server.py");
        let mut cmd = match shift {
            Some(shift) => {
                let mut c = Command::new("faketime");
                c.args(["-f", shift, PYTHON])
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                c
            }
            None => Command::new(PYTHON),
        };
        let mut child = cmd
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
        let (lines_tx, lines) = mpsc::channel();
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
                    } else {
                        let _ = lines_tx.send(line);
                    }
                }
            })
            .expect("spawning a thread should succeed");

        match port_rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => RtspServer {
                port,
                child,
                stdin,
                lines,
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

    /// Switches what `/scene` shows to sessions that start from now on:
    /// `moving`, `still` (a frozen camera) or `black`; waits for the
    /// server's acknowledgement.
    pub fn set_scene(&mut self, scene: &str) {
        use std::io::Write;
        writeln!(self.stdin, "scene {scene}").expect("writing to the server's stdin");
        self.stdin.flush().expect("flushing the server's stdin");
        let want = format!("SCENE {scene}");
        loop {
            match self.lines.recv_timeout(START_TIMEOUT) {
                Ok(l) if l == want => return,
                Ok(_) => continue,
                Err(e) => panic!("rtsp_server.py did not acknowledge `scene {scene}`: {e}"),
            }
        }
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
