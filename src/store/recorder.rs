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
//! memory, at most [`QUEUE`] of them (the oldest heartbeats go first and are
//! counted as dropped; stream rows and events are kept), and
//! [`RecorderStats`] tells `/healthz` the error, since when, and the backlog.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::blocks::{self, Tail};
use super::retention::{self, Policy};
use crate::clock::SharedClock;
use crate::probe::{Kind, MediaFacts, Reason};
use crate::state::Transition;

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
}

/// Heartbeat flag bit: the clock was not synchronised.
pub const FLAG_CLOCK_UNSYNCED: u8 = 1;

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

/// Cloneable, non-blocking sending side.
#[derive(Clone)]
pub struct RecorderTx {
    tx: Sender<Record>,
    /// Records sent and not yet received: the queue's bound ([`QUEUE`]).
    queued: Arc<AtomicUsize>,
    stats: Arc<RecorderStats>,
}

impl RecorderTx {
    /// Queues `r`; never blocks. Returns false (and counts it) if the queue is full.
    pub fn send(&self, r: Record) -> bool {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!("recorder queue full: {n} records dropped so far (slow storage?)");
            }
            return false;
        }
        if self.tx.send(r).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// The receiving end: an unbounded channel plus the shared count that bounds
/// it, so the bound costs no memory up front. (`sync_channel(QUEUE)`
/// allocated and touched every slot at start: 16384 × 136-byte [`Record`]s,
/// 2.2 MB resident for an empty queue, measured by `make bench`.)
struct QueueRx {
    rx: mpsc::Receiver<Record>,
    queued: Arc<AtomicUsize>,
}

impl QueueRx {
    fn recv_timeout(&self, wait: Duration) -> Result<Record, RecvTimeoutError> {
        let r = self.rx.recv_timeout(wait);
        if r.is_ok() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        r
    }

    fn try_recv(&self) -> Result<Record, TryRecvError> {
        let r = self.rx.try_recv();
        if r.is_ok() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        r
    }
}

/// Owner handle: the sender plus the thread.
pub struct RecorderHandle {
    tx: Option<RecorderTx>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
    pub stats: Arc<RecorderStats>,
    /// Heartbeats not yet written, for readers to merge in.
    pub tail: Arc<Tail>,
}

impl RecorderHandle {
    /// A new sender for producers.
    pub fn sender(&self) -> RecorderTx {
        self.tx.clone().expect("sender exists until stop()")
    }

    /// Commits what is queued and joins the thread (senders still alive
    /// elsewhere just find the queue closed).
    pub fn stop(mut self) {
        self.tx = None;
        self.stop.store(true, Ordering::SeqCst);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Queue depth: a few minutes of heartbeats for 1000 streams at 20 s.
const QUEUE: usize = 16_384;
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
/// Space held back on the data partition for a disk-full day: enough for
/// SQLite to checkpoint and commit the deletes that make room.
pub const RESERVE_BYTES: u64 = 4 << 20;
/// File name of the reserve, next to the database.
pub const RESERVE_FILE: &str = "streampulse.reserve";
/// After a disk-full recovery attempt, the next one waits this long.
const RECOVER_EVERY: Duration = Duration::from_secs(30);
/// How often a released reserve is re-created (if there is room).
const RESERVE_CHECK_EVERY: Duration = Duration::from_secs(60);
/// First wait after a failed commit (never shorter than the commit interval).
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between retries of a failing commit.
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Reopen the connection after this many failed commits in a row, whatever
/// the error (an I/O error reopens at once).
pub const REOPEN_EVERY: u32 = 5;
/// A repeated, unchanged commit error is logged at most this often.
const LOG_REPEAT_EVERY: Duration = Duration::from_secs(60);

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
                Ok(r) => {
                    accept(r, &mut pending, &tail);
                    // Drain whatever else is queued without waiting.
                    let mut drained = 0;
                    while drained < MAX_BATCH.max(failing.backlog_room()) {
                        drained += 1;
                        match rx.try_recv() {
                            Ok(Record::Retention(p)) => policy = p,
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
                if !matches!(r, Record::Retention(_)) {
                    accept(r, &mut pending, &tail);
                }
            }
        }
        // Blocks to write with this commit: all at stop, on age or size,
        // else those whose window ended (so a window is one row per stream).
        let flush_edge = if disconnected
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

/// One commit attempt; with the test hook, an injected I/O error instead.
fn try_commit(
    conn: &mut Connection,
    ids: &mut HashMap<String, i64>,
    records: &[Record],
    blocks: &[(Arc<str>, blocks::Block)],
    stats: &RecorderStats,
) -> rusqlite::Result<()> {
    #[cfg(test)]
    if stats
        .inject_io_errors
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_WRITE),
            Some("injected disk I/O error".into()),
        ));
    }
    let _ = stats;
    commit(conn, ids, records, blocks)
}

/// Reopens the write connection after an error; counts the attempt.
fn reopen(path: Option<&std::path::Path>, stats: &RecorderStats) -> rusqlite::Result<Connection> {
    let Some(path) = path else {
        // An in-memory database cannot be reopened (its rows would be gone).
        return Err(rusqlite::Error::InvalidPath("in-memory database".into()));
    };
    stats.reopens.fetch_add(1, Ordering::Relaxed);
    super::open(path).map_err(|e| {
        // Keep SQLite's code (disk full, I/O error) when there is one.
        match e.downcast::<rusqlite::Error>() {
            Ok(e) => e,
            Err(e) => rusqlite::Error::ToSqlConversionFailure(e.into()),
        }
    })
}

/// True if the filesystem holding `db` has (almost) no space left: an I/O
/// error there is really a full disk (SQLite reports a failed grow of its
/// WAL index as "disk I/O error", not "disk full").
fn partition_full(db: &std::path::Path) -> bool {
    db.parent()
        .and_then(|d| crate::store::disk::usage(d).ok())
        .is_some_and(|u| u.free_bytes < 64 * 1024)
}

/// Keeps at most [`QUEUE`] records waiting for a commit: drops the oldest
/// heartbeats and media facts first (counted in `dropped`); stream rows,
/// removals and events are few and keep history consistent, so they stay.
fn bound_backlog(pending: &mut Vec<Record>, stats: &RecorderStats) {
    if pending.len() <= QUEUE {
        return;
    }
    let mut excess = pending.len() - QUEUE;
    let before = pending.len();
    pending.retain(|r| {
        if excess > 0 && matches!(r, Record::Heartbeat { .. } | Record::Media { .. }) {
            excess -= 1;
            false
        } else {
            true
        }
    });
    let n = (before - pending.len()) as u64;
    let total = stats.dropped.fetch_add(n, Ordering::Relaxed) + n;
    tracing::warn!("recorder backlog full: dropped the {n} oldest heartbeats ({total} so far)");
}

/// The state of a run of failing commits: count, backoff, log throttling.
#[derive(Default)]
struct Failing {
    /// Failed commits in a row (0 while commits work).
    count: u32,
    since: Option<Instant>,
    retry_at: Option<Instant>,
    last_logged: Option<(String, Instant)>,
}

impl Failing {
    fn retry_due(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// While failing, drain the queue into the (bounded) backlog rather
    /// than leave it in the channel.
    fn backlog_room(&self) -> usize {
        if self.count > 0 {
            QUEUE
        } else {
            0
        }
    }

    fn failed(
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

    fn recovered(&mut self, stats: &RecorderStats, committed: usize) {
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
fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// The data partition is full: release the reserve so SQLite can write
/// again, apply retention now and, if it frees nothing, prune the oldest
/// rolled-up day of raw heartbeats. See the module docs.
fn make_room(conn: &mut Connection, reserve: &mut Reserve, now_ms: i64, policy: &Policy) {
    if reserve.release() {
        tracing::warn!(
            "data partition full: released the {} MiB space reserve to make room",
            RESERVE_BYTES >> 20
        );
    } else {
        tracing::warn!("data partition full (no space reserve left)");
    }
    // A failed pass still leaves the prune below: it deletes only hours an
    // earlier pass rolled up, in small steps that fit a nearly full disk.
    let deleted = match retention::run(conn, now_ms, policy) {
        Ok(r) => r.heartbeats_deleted,
        Err(e) => {
            tracing::error!("retention to make room failed: {e:#}");
            0
        }
    };
    if deleted > 0 {
        tracing::warn!("data partition full: retention pruned {deleted} heartbeats");
        // Freed pages are inside the database file; commits go to the WAL
        // first, which may have no room to grow: start it over.
        restart_wal(conn);
        return;
    }
    let pruned = retention::prune_oldest_day(conn, now_ms);
    restart_wal(conn);
    match pruned {
        Ok(0) => tracing::error!(
            "data partition full and nothing left to prune: heartbeats are kept in memory \
             (bounded) until space is freed"
        ),
        Ok(n) => tracing::warn!(
            "data partition full: pruned the {n} oldest raw heartbeats (their hourly rollups stay)"
        ),
        Err(e) => tracing::error!("pruning to make room failed: {e:#}"),
    }
}

/// Checkpoints and makes the next commit write the WAL from its start
/// (`RESTART`: the file keeps its size, unlike `TRUNCATE`), so a full
/// partition never needs the WAL to grow. Waits at most the busy timeout
/// for readers; failing only means the WAL may have to grow.
fn restart_wal(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
        tracing::debug!("WAL restart checkpoint: {e}");
    }
}

/// Creates `path` with `len` bytes of allocated blocks: `fallocate` where the
/// filesystem has it (ext4, tmpfs: no data written, so no flash wear), else
/// real zeros (a sparse file would reserve nothing).
fn allocate(path: &std::path::Path, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::create(path)?;
    let len_off = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a valid open fd; fallocate only allocates blocks of that file.
    if unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len_off) } == 0 {
        return Ok(());
    }
    let mut f = f;
    std::io::Write::write_all(&mut f, &vec![0u8; len as usize])?;
    f.sync_all()
}

/// The space reserve next to the database (see the module docs).
struct Reserve {
    /// `None` for an in-memory database.
    path: Option<std::path::PathBuf>,
}

impl Reserve {
    fn new(db_path: Option<&str>) -> Reserve {
        let path = db_path
            .filter(|p| !p.is_empty())
            .map(|p| std::path::Path::new(p).with_file_name(RESERVE_FILE));
        Reserve { path }
    }

    /// Creates the reserve if it is missing and the partition has room for
    /// it and then some (four times its size); a no-op otherwise.
    fn ensure(&mut self) {
        let Some(path) = &self.path else { return };
        if std::fs::metadata(path).is_ok_and(|m| m.len() == RESERVE_BYTES) {
            return;
        }
        let Some(dir) = path.parent() else { return };
        match crate::store::disk::usage(dir) {
            Ok(u) if u.free_bytes >= 4 * RESERVE_BYTES => {}
            _ => return,
        }
        match allocate(path, RESERVE_BYTES) {
            Ok(()) => tracing::debug!("space reserve {} in place", path.display()),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                tracing::warn!("cannot create the space reserve {}: {e}", path.display());
            }
        }
    }

    /// Deletes the reserve; true if there was one.
    fn release(&mut self) -> bool {
        self.path
            .as_ref()
            .is_some_and(|p| std::fs::remove_file(p).is_ok())
    }
}

fn stream_id(
    conn: &Connection,
    ids: &mut HashMap<String, i64>,
    name: &str,
) -> rusqlite::Result<Option<i64>> {
    if let Some(id) = ids.get(name) {
        return Ok(Some(*id));
    }
    let id = conn
        .query_row("SELECT id FROM streams WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(id) = id {
        ids.insert(name.to_owned(), id);
    }
    Ok(id)
}

/// Writes `records`, then `blocks` (whose streams they may create), in one
/// transaction.
fn commit(
    conn: &mut Connection,
    ids: &mut HashMap<String, i64>,
    records: &[Record],
    blocks: &[(Arc<str>, blocks::Block)],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        for r in records {
            match r {
                Record::Stream {
                    name,
                    kind,
                    url_redacted,
                } => {
                    tx.execute(
                        "INSERT INTO streams (name, kind, url_redacted, created_ms) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, url_redacted = excluded.url_redacted, removed_ms = NULL",
                        params![name, kind.as_str(), url_redacted, now_ms()],
                    )?;
                }
                Record::StreamRemoved { name, ts_ms } => {
                    tx.execute(
                        "UPDATE streams SET removed_ms = ?2 WHERE name = ?1",
                        params![name, ts_ms],
                    )?;
                }
                // Heartbeats go to the tail (`accept`), never here.
                Record::Heartbeat { .. } => {}
                Record::Media {
                    stream,
                    ts_ms,
                    media,
                } => {
                    let Some(id) = stream_id(&tx, ids, stream)? else {
                        continue;
                    };
                    tx.execute(
                        "UPDATE streams SET codec = ?2, width = ?3, height = ?4, fps = ?5, media_ms = ?6 WHERE id = ?1",
                        params![id, media.codec, media.width, media.height, media.fps, ts_ms],
                    )?;
                }
                Record::Event(t) => {
                    let Some(id) = stream_id(&tx, ids, &t.stream)? else {
                        continue;
                    };
                    tx.execute(
                        "INSERT INTO events (stream_id, ts_ms, from_state, to_state, reason, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![id, t.ts_ms, t.from.as_str(), t.to.as_str(), t.reason.map(|r| r.as_str()), t.message],
                    )?;
                }
                Record::Retention(_) => {}
            }
        }
        for (name, b) in blocks {
            // A stream never committed (removed at once) has nowhere to go.
            if let Some(id) = stream_id(&tx, ids, name)? {
                blocks::insert(&tx, id, b)?;
            }
        }
    }
    tx.commit()
}

/// Creation time for new stream rows; informational only.
fn now_ms() -> i64 {
    crate::clock::RealClock.now_ms()
}

use crate::clock::Clock as _;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;

    #[test]
    fn batches_and_flushes_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = crate::store::open(&path).unwrap();
        let clock: SharedClock = Arc::new(SimulatedClock::new(1_800_000_000_000));
        // Long intervals: only stop() can have written these.
        let rec = start(
            conn,
            clock,
            Duration::from_secs(3600),
            Duration::from_secs(600),
            Policy::default(),
        );
        let tx = rec.sender();
        tx.send(Record::Stream {
            name: "a".into(),
            kind: Kind::Rtsp,
            url_redacted: "rtsp://h/x".into(),
        });
        for i in 0..10 {
            tx.send(Record::Heartbeat {
                stream: "a".into(),
                ts_ms: 1_800_000_000_000 + i * 1000,
                ok: i % 2 == 0,
                latency_ms: 100,
                reason: (i % 2 == 1).then_some(Reason::Timeout),
                flags: 0,
            });
        }
        drop(tx);
        rec.stop();
        let c = crate::store::open(&path).unwrap();
        let hbs = blocks::load(&c, 1, 0, i64::MAX).unwrap();
        assert_eq!(hbs.len(), 10);
        assert_eq!(hbs.iter().filter(|h| h.reason.is_some()).count(), 5);
    }

    fn stream(name: &str) -> Record {
        Record::Stream {
            name: name.into(),
            kind: Kind::Snapshot,
            url_redacted: "http://h/x".into(),
        }
    }

    fn heartbeat(i: i64) -> Record {
        Record::Heartbeat {
            stream: "a".into(),
            ts_ms: 1_800_000_000_000 + i * 1000,
            ok: true,
            latency_ms: 10,
            reason: None,
            flags: 0,
        }
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Failing commits (an I/O error, as a card that hiccups gives) are
    /// retried with backoff on a reopened connection; the error shows in the
    /// stats meanwhile, and once commits work every held heartbeat is stored.
    #[test]
    fn io_errors_are_retried_on_a_reopened_connection_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = crate::store::open(&path).unwrap();
        let clock: SharedClock = Arc::new(SimulatedClock::new(1_800_000_000_000));
        let rec = start(
            conn,
            clock,
            Duration::from_millis(50),
            Duration::from_millis(50),
            Policy::default(),
        );
        rec.stats.inject_io_errors.store(2, Ordering::SeqCst);
        let tx = rec.sender();
        tx.send(stream("a"));
        for i in 0..10 {
            tx.send(heartbeat(i));
        }
        let st = rec.stats.clone();
        wait_until("the first failed commit", || {
            st.commit_errors.load(Ordering::SeqCst) >= 1
        });
        assert!(st.failing(), "the error state shows");
        let j = st.json();
        assert_eq!(j["ok"], false, "{j}");
        assert!(j["error"].as_str().unwrap().contains("I/O error"), "{j}");
        assert_eq!(st.heartbeats_committed.load(Ordering::SeqCst), 0);
        // Retries wait for their backoff: 1 s, then 2 s (not every 50 ms).
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(st.commit_errors.load(Ordering::SeqCst), 1, "backoff");
        assert_eq!(st.backlog.load(Ordering::SeqCst), 11, "held in memory");
        for i in 10..20 {
            tx.send(heartbeat(i));
        }
        wait_until("commits working again", || {
            st.heartbeats_committed.load(Ordering::SeqCst) == 20
        });
        assert_eq!(st.commit_errors.load(Ordering::SeqCst), 2);
        assert!(
            st.reopens.load(Ordering::SeqCst) >= 1,
            "reopened after an I/O error"
        );
        assert!(!st.failing());
        assert_eq!(st.json()["error"], serde_json::Value::Null);
        assert_eq!(st.dropped.load(Ordering::SeqCst), 0);
        drop(tx);
        rec.stop();
        let c = crate::store::open(&path).unwrap();
        assert_eq!(blocks::load(&c, 1, 0, i64::MAX).unwrap().len(), 20);
    }

    /// With the default flush, a heartbeat is readable at once through the
    /// tail, but written only when its window has ended (plus the slack);
    /// state changes are committed every commit interval meanwhile.
    #[test]
    fn heartbeats_wait_for_their_window_and_events_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = crate::store::open(&path).unwrap();
        let t0 = 1_800_000_000_000 - 1_800_000_000_000 % blocks::WINDOW_MS;
        let sim = Arc::new(SimulatedClock::new(t0 + 1000));
        let clock: SharedClock = sim.clone();
        let rec = start(
            conn,
            clock,
            Duration::from_millis(50),
            Duration::from_secs(600),
            Policy::default(),
        );
        let tx = rec.sender();
        tx.send(stream("a"));
        let at = |i: i64| Record::Heartbeat {
            stream: "a".into(),
            ts_ms: t0 + i * 15_000,
            ok: true,
            latency_ms: 10,
            reason: None,
            flags: 0,
        };
        for i in 0..45 {
            tx.send(at(i)); // 40 in the first window, 5 in the next
        }
        tx.send(Record::Event(crate::state::Transition {
            stream: "a".into(),
            ts_ms: t0 + 2000,
            from: crate::state::Health::Unknown,
            to: crate::state::Health::Up,
            reason: None,
            message: "first frame".into(),
        }));
        let tail = rec.tail.clone();
        wait_until("the tail to hold them", || tail.len() == 45);
        let reader = crate::store::open_read_only(&path).unwrap();
        let events = || -> i64 {
            reader
                .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                .unwrap()
        };
        let stored = || blocks::load(&reader, 1, 0, i64::MAX).unwrap().len();
        wait_until("the event committed", || events() == 1);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(stored(), 0, "the window has not ended");
        assert_eq!(
            tail.heartbeats("a", t0, t0 + 2 * blocks::WINDOW_MS).len(),
            45
        );
        // The window ends; 20 s later its block is written, the next stays.
        sim.advance(blocks::WINDOW_MS - 1000 + FLUSH_SLACK_MS);
        wait_until("the ended window written", || stored() == 40);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(stored(), 40);
        assert_eq!(tail.len(), 5);
        assert_eq!(rec.stats.heartbeats_committed.load(Ordering::SeqCst), 40);
        let rows: i64 = reader
            .query_row("SELECT count(*) FROM heartbeat_blocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "one row for the window");
        drop(tx);
        rec.stop();
        assert_eq!(stored(), 45, "stop writes the rest");
    }

    /// The backlog held while commits fail is bounded: the oldest
    /// heartbeats go (counted), stream rows stay so later heartbeats still
    /// find their stream.
    #[test]
    fn backlog_drops_oldest_heartbeats_and_keeps_stream_rows() {
        let stats = RecorderStats::default();
        let mut pending = vec![stream("a")];
        pending.extend((0..QUEUE as i64 + 10).map(heartbeat));
        pending.push(stream("b"));
        bound_backlog(&mut pending, &stats);
        assert_eq!(pending.len(), QUEUE);
        assert_eq!(stats.dropped.load(Ordering::SeqCst), 12);
        assert!(matches!(&pending[0], Record::Stream { name, .. } if name == "a"));
        assert!(
            matches!(&pending[1], Record::Heartbeat { ts_ms, .. } if *ts_ms == 1_800_000_012_000)
        );
        assert!(matches!(pending.last(), Some(Record::Stream { name, .. }) if name == "b"));
        // Nothing to trim: untouched.
        bound_backlog(&mut pending, &stats);
        assert_eq!(pending.len(), QUEUE);
    }

    /// Retention's clock is anchored when the recorder starts: a wall clock
    /// stepped forward two days before the first pass does not drag it along.
    #[test]
    fn retention_clock_is_anchored_at_start() {
        let t0 = 1_800_000_000_000;
        let clock = SimulatedClock::new(t0);
        let mut steady = anchored_steady_clock(&clock);
        clock.advance(2 * retention::DAY_MS);
        let now = steady.now_ms(crate::clock::Clock::now_ms(&clock), Instant::now());
        assert!((t0..t0 + 60_000).contains(&now), "{now}");
    }
}
