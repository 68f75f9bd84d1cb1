//! Failing commits: the backoff between retries, when to reopen the
//! connection, and log lines that do not repeat every pass. The state of a
//! failing run is also what `/healthz` reports (through [`RecorderStats`]).

use std::time::{Duration, Instant};

use rusqlite::Connection;
use std::sync::atomic::Ordering;

use super::queue::QUEUE;
use super::RecorderStats;
use crate::clock::Clock as _;

/// First wait after a failed commit (never shorter than the commit interval).
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between retries of a failing commit.
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Reopen the connection after this many failed commits in a row, whatever
/// the error (an I/O error reopens at once).
pub const REOPEN_EVERY: u32 = 5;
/// A repeated, unchanged commit error is logged at most this often.
const LOG_REPEAT_EVERY: Duration = Duration::from_secs(60);

/// The state of a run of failing commits: count, backoff, log throttling.
#[derive(Default)]
pub(super) struct Failing {
    /// Failed commits in a row (0 while commits work).
    pub(super) count: u32,
    since: Option<Instant>,
    retry_at: Option<Instant>,
    last_logged: Option<(String, Instant)>,
}

impl Failing {
    pub(super) fn retry_due(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// While failing, drain the queue into the (bounded) backlog rather
    /// than leave it in the channel.
    pub(super) fn backlog_room(&self) -> usize {
        if self.count > 0 {
            QUEUE
        } else {
            0
        }
    }

    pub(super) fn failed(
        &mut self,
        e: &rusqlite::Error,
        stats: &RecorderStats,
        held: usize,
        interval: Duration,
    ) {
        self.count += 1;
        let now = Instant::now();
        self.since.get_or_insert(now);
        let backoff = (RETRY_MIN * 2u32.saturating_pow(self.count - 1).min(64))
            .clamp(interval.max(RETRY_MIN), RETRY_MAX.max(interval));
        self.retry_at = Some(now + backoff);
        stats.commit_errors.fetch_add(1, Ordering::Relaxed);
        if stats.failing_since_ms.load(Ordering::Relaxed) == 0 {
            stats
                .failing_since_ms
                .store(crate::clock::RealClock.now_ms().max(1), Ordering::Relaxed);
        }
        let msg = format!("committing heartbeats failed: {e}");
        *stats.last_error.lock().expect("last_error lock") = Some(msg.clone());
        let repeat = self
            .last_logged
            .as_ref()
            .is_some_and(|(m, at)| *m == msg && at.elapsed() < LOG_REPEAT_EVERY);
        if repeat {
            tracing::debug!("{msg} ({} in a row, {held} records held)", self.count);
        } else {
            tracing::error!(
                "{msg}: {held} records held in memory, retrying in {backoff:?} ({} failures in a row)",
                self.count
            );
            self.last_logged = Some((msg, now));
        }
    }

    pub(super) fn recovered(&mut self, stats: &RecorderStats, committed: usize) {
        if let Some(since) = self.since {
            tracing::warn!(
                "recorder: commits work again after {} failures in {:.0?}; {committed} held records committed",
                self.count,
                since.elapsed()
            );
        }
        *self = Failing::default();
        stats.failing_since_ms.store(0, Ordering::Relaxed);
        *stats.last_error.lock().expect("last_error lock") = None;
    }
}

/// True if `e` is SQLite's "database or disk is full".
pub(super) fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// Reopens the write connection after an error; counts the attempt.
pub(super) fn reopen(
    path: Option<&std::path::Path>,
    stats: &RecorderStats,
) -> rusqlite::Result<Connection> {
    let Some(path) = path else {
        // An in-memory database cannot be reopened (its rows would be gone).
        return Err(rusqlite::Error::InvalidPath("in-memory database".into()));
    };
    stats.reopens.fetch_add(1, Ordering::Relaxed);
    crate::store::open(path).map_err(|e| {
        // Keep SQLite's code (disk full, I/O error) when there is one.
        match e.downcast::<rusqlite::Error>() {
            Ok(e) => e,
            Err(e) => rusqlite::Error::ToSqlConversionFailure(e.into()),
        }
    })
}
