//! The real snapshot peer: Python's `http.server` over a temp dir of JPEGs
//! (a real one, an undecodable one, and text posing as one).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::children::{terminate, wait_listening};
use super::jpeg::{corrupt_jpeg, sample_jpeg};
use super::{free_port, temp_dir, PYTHON};

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
