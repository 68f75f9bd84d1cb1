//! What the recorder tells the rest of the box: counters and the error
//! state, shared with `/healthz`, the watchdog and `/metrics` through an
//! `Arc` (atomics, so the recorder never waits on a reader).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters shared with the web/watchdog side.
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Heartbeats written to the database since start.
    pub heartbeats_committed: AtomicU64,
    /// Heartbeats held in memory until their block is written.
    pub unwritten: AtomicU64,
    /// Records dropped because the channel was full.
    pub dropped: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Failed commits (disk full, I/O error).
    pub commit_errors: AtomicU64,
    /// The last commit error, cleared by the next successful commit (`/healthz`).
    pub last_error: std::sync::Mutex<Option<String>>,
    /// Milliseconds (monotonic, since recorder start) of the last loop pass;
    /// the watchdog uses it to prove the recorder is alive.
    pub last_progress_ms: AtomicI64,
    /// Records held in memory for the next commit (grows while commits fail).
    pub backlog: AtomicU64,
    /// Times the write connection was closed and reopened after errors.
    pub reopens: AtomicU64,
    /// Wall-clock ms of the first failure of the current run of failing
    /// commits; 0 while commits work.
    pub failing_since_ms: AtomicI64,
    /// Test hook: the next this many commits fail with an injected I/O error.
    #[cfg(test)]
    pub inject_io_errors: std::sync::atomic::AtomicU32,
}

impl RecorderStats {
    /// True while commits fail (the last one did).
    pub fn failing(&self) -> bool {
        self.failing_since_ms.load(Ordering::Relaxed) != 0
    }

    /// The `/healthz` `recorder` object: counters plus the error state
    /// (`ok`, `error`, `failing_since_ms`, `backlog`).
    pub fn json(&self) -> serde_json::Value {
        let since = self.failing_since_ms.load(Ordering::Relaxed);
        serde_json::json!({
            "ok": since == 0,
            "error": self.last_error.lock().expect("last_error lock").clone(),
            "failing_since_ms": (since != 0).then_some(since),
            "heartbeats_committed": self.heartbeats_committed.load(Ordering::Relaxed),
            "heartbeats_unwritten": self.unwritten.load(Ordering::Relaxed),
            "commits": self.commits.load(Ordering::Relaxed),
            "dropped": self.dropped.load(Ordering::Relaxed),
            "commit_errors": self.commit_errors.load(Ordering::Relaxed),
            "backlog": self.backlog.load(Ordering::Relaxed),
            "reopens": self.reopens.load(Ordering::Relaxed),
        })
    }
}
