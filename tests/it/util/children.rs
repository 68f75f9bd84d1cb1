//! Child processes of the tests (real peers, node, the daemon): waiting for
//! one to listen, stopping one politely, and bounding how long one may run.

use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use super::procfs::is_listening;
use super::START_TIMEOUT;

/// Waits until `child` listens on `port`. Returns `false` if it exited first (e.g. the
/// port was taken in between) or `START_TIMEOUT` passed.
pub fn wait_listening(child: &mut Child, port: u16) -> bool {
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
pub fn terminate(child: &mut Child) {
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
