//! Running a system tool (journalctl, rauc) from a web request or the
//! daemon: its standard output, with a deadline, so a hung tool cannot hold
//! a worker.

use std::io::Read;
use std::process::{Command, Stdio};

/// Runs `cmd` for its standard output (at most 1 MiB), killing it after
/// `timeout`. Errors: it could not start, ran out of time, or failed (its
/// exit status and standard error).
pub fn output_within(cmd: &mut Command, timeout: std::time::Duration) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    // Read on a thread so a full pipe cannot block the child past the wait.
    let reader = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        if let Some(s) = out.as_mut() {
            let _ = s.take(1 << 20).read_to_string(&mut o);
        }
        if let Some(s) = err.as_mut() {
            let _ = s.take(8 << 10).read_to_string(&mut e);
        }
        (o, e)
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let (o, e) = reader.join().unwrap_or_default();
    match status {
        None => Err(format!("no answer within {timeout:?}")),
        Some(st) if !st.success() => Err(format!("{st}: {}", e.trim())),
        Some(_) => Ok(o),
    }
}
