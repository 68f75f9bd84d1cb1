//! The recorder thread: owns the only write connection and commits what the
//! monitor produces in batched transactions.
//!
//! Why one thread and batches: an SD card pays for every fsync, and SQLite
//! in WAL mode wants one writer. The monitor never blocks on the recorder:
//! [`RecorderTx::send`] never waits on its bounded queue and counts what
//! it had to drop when the card is too slow (visible in stats and logs).
//! Dropping every sender (or calling [`RecorderHandle::stop`]) commits the last
//! batch and ends the thread.
//!
//! Raw heartbeats are not part of those batches: they are packed into the
//! shared [`Tail`] (readers merge it in) and written as blocks when their
//! 10-minute window ends, or every `heartbeat_flush` if that is shorter
//! (see [`super::blocks`] for why). Stream rows, media facts and state
//! changes are committed every `commit_interval` as before.
//!
//! A full data partition: SQLite in WAL mode cannot even delete when the disk
//! is full (the delete needs WAL space, the checkpoint needs the file to
//! grow), so the recorder holds a small [`RESERVE_BYTES`] file next to the
//! database. When a commit fails with "disk full" it releases the reserve,
//! runs retention at once and, if that frees nothing, prunes the oldest
//! rolled-up day of raw heartbeats ([`retention::prune_oldest_day`]); freed
//! pages are reused, so the file stops growing. Failed batches stay queued
//! (bounded) and commit once space is back; the reserve is re-created when
//! there is room again. Retention reads its time through a
//! [`retention::SteadyClock`], anchored when the recorder starts, so a
//! forward clock jump never deletes history.
//!
//! Any failing commit (disk full, I/O error, a card that went away) is
//! retried with backoff ([`RETRY_MIN`] … [`RETRY_MAX`]) instead of every
//! pass; after an error other than "disk full", or every [`REOPEN_EVERY`]
//! failures in a row, the write connection is closed and reopened, so state
//! SQLite keeps after an I/O error (pager, WAL index mapping, an open
//! transaction) cannot wedge the recorder for good. Meanwhile records wait in
//! memory, at most [`queue::QUEUE`] of them (the oldest heartbeats go first and are
//! counted as dropped; stream rows and events are kept), and
//! [`RecorderStats`] tells `/healthz` the error, since when, and the backlog.

mod commit;
mod queue;
mod reserve;
mod retry;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::blocks::{self, Tail};
use super::retention::{self, Policy};
use crate::clock::SharedClock;
use crate::probe::{Kind, MediaFacts, Reason};
use crate::state::Transition;
use commit::try_commit;
use queue::{bound_backlog, QueueRx};
pub use queue::{RecorderHandle, RecorderTx};
use reserve::{
    make_room, partition_full, restart_wal, Reserve, RECOVER_EVERY, RESERVE_CHECK_EVERY,
};
pub use reserve::{RESERVE_BYTES, RESERVE_FILE};
use retry::{is_disk_full, reopen, Failing};
pub use retry::{REOPEN_EVERY, RETRY_MAX, RETRY_MIN};
pub use stats::RecorderStats;

/// Messages for the recorder.
#[derive(Debug)]
pub enum Record {
    /// A configured stream (created or revived; URL/kind refreshed).
    Stream {
        name: String,
        kind: Kind,
        url_redacted: String,
    },
    /// A stream left the config; its history stays.
    StreamRemoved { name: String, ts_ms: i64 },
    /// One probe result.
    Heartbeat {
        stream: Arc<str>,
        ts_ms: i64,
        ok: bool,
        latency_ms: u32,
        reason: Option<Reason>,
        flags: u8,
    },
    /// Media facts learnt by a successful probe, when they changed.
    Media {
        stream: Arc<str>,
        ts_ms: i64,
        media: MediaFacts,
    },
    /// A debounced state change.
    Event(Transition),
    /// New retention settings after a config reload.
    Retention(Policy),
    /// Write everything now, unwritten heartbeats of open windows too (a
    /// backup is about to be made); answered once it is on the card.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Heartbeat flag bit: the clock was not synchronised.
pub const FLAG_CLOCK_UNSYNCED: u8 = 1;

/// Commit early when this many rows are pending.
const MAX_BATCH: usize = 2_000;
/// A block is written this long after its window ended, so probes that
/// started in the window and finished after it still land in it.
const FLUSH_SLACK_MS: i64 = 20_000;
/// Unwritten heartbeats are written early past this much memory (1000
/// streams every 5 s fill ~700 KB in a window).
const TAIL_FLUSH_BYTES: usize = 2 << 20;
/// While commits fail, unwritten heartbeats are dropped (oldest first)
/// past this much memory: ~1.5 million heartbeats.
const TAIL_MAX_BYTES: usize = 8 << 20;
/// Retention runs this often (and once shortly after start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Starts the recorder thread on `conn`.
pub fn start(
    conn: Connection,
    clock: SharedClock,
    commit_interval: Duration,
    heartbeat_flush: Duration,
    policy: Policy,
) -> RecorderHandle {
    let (tx, rx) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let rx = QueueRx {
        rx,
        queued: queued.clone(),
    };
    let stats = Arc::new(RecorderStats::default());
    let st = stats.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_rx = stop.clone();
    let tail = Arc::new(Tail::default());
    let timing = Timing {
        commit_interval,
        heartbeat_flush,
    };
    let t = tail.clone();
    let join = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || run(conn, rx, t, clock, timing, policy, st, &stop_rx))
        .expect("spawning the recorder thread should succeed");
    RecorderHandle {
        tx: Some(RecorderTx {
            tx,
            queued,
            stats: stats.clone(),
        }),
        stop,
        join: Some(join),
        stats,
        tail,
    }
}

/// When the recorder writes.
#[derive(Clone, Copy)]
struct Timing {
    commit_interval: Duration,
    heartbeat_flush: Duration,
}

impl Timing {
    /// Unwritten heartbeats older than this (monotonic) are all written:
    /// every `heartbeat_flush` when that is shorter than a window; else a
    /// safety net for a wall clock stepped back (windows then never end).
    fn max_tail_age(&self) -> Duration {
        let window = Duration::from_millis(blocks::WINDOW_MS as u64);
        if self.heartbeat_flush < window {
            self.heartbeat_flush
        } else {
            2 * window
        }
    }
}

/// A received record: heartbeats go to the tail, the rest to `pending`.
fn accept(r: Record, pending: &mut Vec<Record>, tail: &Tail) {
    match r {
        Record::Heartbeat {
            stream,
            ts_ms,
            ok,
            latency_ms,
            reason,
            flags,
        } => tail.push(
            &stream,
            &blocks::Heartbeat {
                ts_ms,
                ok,
                latency_ms,
                reason,
                flags,
            },
        ),
        r => pending.push(r),
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    conn: Connection,
    rx: QueueRx,
    tail: Arc<Tail>,
    clock: SharedClock,
    timing: Timing,
    mut policy: Policy,
    stats: Arc<RecorderStats>,
    stop: &AtomicBool,
) {
    let commit_interval = timing.commit_interval;
    let started = Instant::now();
    let db_path = conn
        .path()
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    let mut reserve = Reserve::new(conn.path());
    reserve.ensure();
    // `None` after an error closed it, until a reopen works.
    let mut conn = Some(conn);
    let mut next_reserve_check = Instant::now() + RESERVE_CHECK_EVERY;
    let mut next_recovery = Instant::now();
    let mut steady = anchored_steady_clock(&*clock);
    let mut ids: HashMap<String, i64> = HashMap::new();
    let mut pending: Vec<Record> = Vec::new();
    let mut next_commit = Instant::now() + commit_interval;
    let mut next_retention = Instant::now() + Duration::from_secs(30);
    let mut failing = Failing::default();
    // Flush requests waiting for everything to be written.
    let mut flushes: Vec<std::sync::mpsc::Sender<()>> = Vec::new();
    loop {
        stats
            .last_progress_ms
            .store(started.elapsed().as_millis() as i64, Ordering::Relaxed);
        // Short waits so a stop request is seen quickly even while senders live.
        let wait = next_commit
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        let disconnected = stop.load(Ordering::SeqCst)
            || match rx.recv_timeout(wait) {
                Ok(Record::Retention(p)) => {
                    policy = p;
                    false
                }
                Ok(Record::Flush(ack)) => {
                    flushes.push(ack);
                    false
                }
                Ok(r) => {
                    accept(r, &mut pending, &tail);
                    // Drain whatever else is queued without waiting.
                    let mut drained = 0;
                    while drained < MAX_BATCH.max(failing.backlog_room()) {
                        drained += 1;
                        match rx.try_recv() {
                            Ok(Record::Retention(p)) => policy = p,
                            Ok(Record::Flush(ack)) => flushes.push(ack),
                            Ok(r) => accept(r, &mut pending, &tail),
                            Err(_) => break,
                        }
                    }
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
        if disconnected {
            // Take what is still queued before the final commit.
            while let Ok(r) = rx.try_recv() {
                if !matches!(r, Record::Retention(_) | Record::Flush(_)) {
                    accept(r, &mut pending, &tail);
                }
            }
        }
        // Blocks to write with this commit: all at stop, on age or size,
        // else those whose window ended (so a window is one row per stream).
        let flush_edge = if disconnected
            || !flushes.is_empty()
            || tail.bytes() >= TAIL_FLUSH_BYTES
            || tail.oldest_open_age() >= Some(timing.max_tail_age())
        {
            Some(i64::MAX)
        } else {
            tail.sealed_edge(clock.now_ms() - FLUSH_SLACK_MS)
        };
        let due =
            Instant::now() >= next_commit || pending.len() >= MAX_BATCH || flush_edge.is_some();
        // While commits fail, retries wait for their backoff (the last
        // attempt at stop does not).
        if disconnected || (due && failing.retry_due()) {
            let blocks = match flush_edge {
                Some(edge) => tail.begin_flush(edge),
                None => Vec::new(),
            };
            if !pending.is_empty() || !blocks.is_empty() {
                let t = Instant::now();
                let result = match &mut conn {
                    Some(c) => try_commit(c, &mut ids, &pending, &blocks, &stats),
                    None => reopen(db_path.as_deref(), &stats).and_then(|mut c| {
                        let r = try_commit(&mut c, &mut ids, &pending, &blocks, &stats);
                        conn = Some(c);
                        r
                    }),
                };
                match result {
                    Ok(_) => {
                        let n = tail.end_flush();
                        stats.heartbeats_committed.fetch_add(n, Ordering::Relaxed);
                        stats.commits.fetch_add(1, Ordering::Relaxed);
                        if failing.count > 0 {
                            // Space may be back: restore the reserve now, not
                            // in up to a minute.
                            next_reserve_check = Instant::now();
                        }
                        failing.recovered(&stats, pending.len());
                        // On a full partition the WAL cannot grow: restart
                        // it after each commit so the next one reuses the
                        // file from its start.
                        if db_path.as_deref().is_some_and(partition_full) {
                            if let Some(c) = &conn {
                                restart_wal(c);
                            }
                        }
                        pending.clear();
                    }
                    Err(e) => {
                        let disk_full =
                            is_disk_full(&e) || db_path.as_deref().is_some_and(partition_full);
                        failing.failed(&e, &stats, pending.len(), commit_interval);
                        // Ids cached inside the rolled-back transaction may not exist.
                        ids.clear();
                        if let Some(c) = &mut conn {
                            if disk_full && Instant::now() >= next_recovery {
                                next_recovery = Instant::now() + RECOVER_EVERY;
                                let now_ms = steady.now_ms(clock.now_ms(), Instant::now());
                                make_room(c, &mut reserve, now_ms, &policy);
                            }
                        }
                        // Whatever SQLite keeps after an I/O error (or a
                        // transaction left open) goes with the connection.
                        let stuck = conn.as_ref().is_some_and(|c| !c.is_autocommit());
                        if conn.is_some()
                            && (!is_disk_full(&e)
                                || stuck
                                || failing.count.is_multiple_of(REOPEN_EVERY))
                        {
                            tracing::warn!(
                                "recorder: closing the database connection to reopen it"
                            );
                            conn = None;
                        }
                        bound_backlog(&mut pending, &stats);
                        let lost = tail.bound(TAIL_MAX_BYTES);
                        if lost > 0 {
                            let total = stats.dropped.fetch_add(lost, Ordering::Relaxed) + lost;
                            tracing::warn!(
                                "recorder: dropped the {lost} oldest unwritten heartbeats ({total} so far)"
                            );
                        }
                    }
                }
                if t.elapsed() > Duration::from_secs(1) {
                    tracing::warn!("slow commit: {:?} (SD card wearing out?)", t.elapsed());
                }
            }
            next_commit = Instant::now() + commit_interval;
        }
        stats
            .backlog
            .store(pending.len() as u64 + tail.waiting(), Ordering::Relaxed);
        stats.unwritten.store(tail.len(), Ordering::Relaxed);
        if !flushes.is_empty() && pending.is_empty() && tail.is_empty() {
            for ack in flushes.drain(..) {
                let _ = ack.send(());
            }
        }
        if disconnected {
            if pending.is_empty() && tail.is_empty() {
                tracing::debug!("recorder: all senders gone, last batch committed");
            } else {
                tracing::error!(
                    "recorder: stopping with {} records and {} heartbeats not committed: {}",
                    pending.len(),
                    tail.len(),
                    stats
                        .last_error
                        .lock()
                        .expect("last_error lock")
                        .clone()
                        .unwrap_or_default()
                );
            }
            return;
        }
        if Instant::now() >= next_reserve_check {
            next_reserve_check = Instant::now() + RESERVE_CHECK_EVERY;
            reserve.ensure();
        }
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + RETENTION_EVERY;
            let now_ms = steady.now_ms(clock.now_ms(), Instant::now());
            // Skipped while the connection is closed: the next pass catches up.
            if let Some(c) = &mut conn {
                match retention::run(c, now_ms, &policy) {
                    Ok(r) => {
                        tracing::info!(
                    "retention: rolled up {} hours, pruned {} heartbeats, {} rollups, {} events",
                    r.hours_rolled, r.heartbeats_deleted, r.rollups_deleted, r.events_deleted
                )
                    }
                    Err(e) => tracing::error!("retention failed: {e:#}"),
                }
            }
        }
    }
}

/// Retention's clock, anchored when the recorder starts rather than at the
/// first retention pass (30 s later): a clock stepped forward before that
/// pass (an NTP step soon after boot) must not make it delete history.
fn anchored_steady_clock(clock: &dyn crate::clock::Clock) -> retention::SteadyClock {
    let mut steady = retention::SteadyClock::default();
    steady.now_ms(clock.now_ms(), Instant::now());
    steady
}
