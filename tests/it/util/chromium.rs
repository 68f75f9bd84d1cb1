//! The browser flows in `tests/e2e/` (`flow.mjs`, `live.mjs`): Debian's
//! headless Chromium driven by playwright-core, both installed by `make
//! deps`. The Rust test starts the daemon and its cameras, runs one script
//! with node under a hard timeout, and checks what it printed and the
//! screenshots it left in `test-output/`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use super::children::wait_or_kill;
use super::manifest_dir;

/// How long one flow may run before node is killed.
const FLOW_TIMEOUT: Duration = Duration::from_secs(240);

/// What one run of a flow script produced.
pub struct Flow {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// `tests/e2e`, after checking that playwright-core and Chromium are
/// installed (before the test starts any peer).
pub fn e2e_dir() -> PathBuf {
    let e2e = manifest_dir().join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `make deps` (npm ci in tests/e2e)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed: run `make deps`"
    );
    e2e
}

/// `test-output/<name>`, created: where a flow leaves its screenshots.
pub fn output_dir(name: &str) -> PathBuf {
    let out = manifest_dir().join("test-output").join(name);
    std::fs::create_dir_all(&out).unwrap();
    out
}

/// Runs `node <script>` in `e2e` with `env`; killed after [`FLOW_TIMEOUT`].
pub fn run(e2e: &Path, script: &str, env: &[(&str, String)]) -> Flow {
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(e2e)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node should start");
    let status = wait_or_kill(&mut child, FLOW_TIMEOUT);
    let output = child.wait_with_output().unwrap();
    Flow {
        status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Every screenshot in `shots` is in `out` and larger than `min_bytes`.
pub fn assert_screenshots(out: &Path, shots: &[&str], min_bytes: u64) {
    for shot in shots {
        let p = out.join(shot);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > min_bytes, "{} missing or empty", p.display());
    }
}
