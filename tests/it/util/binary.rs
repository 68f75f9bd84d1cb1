//! The built `streampulse` binary, run under a hard timeout so that a
//! hanging probe fails its test instead of wedging the suite.

use std::io::Read;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Hard limit for one run of the binary; a probe's own deadline is far below it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Runs `cmd` to completion and asserts that it succeeded (showing its
/// stderr if not); its output.
pub fn output_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
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
