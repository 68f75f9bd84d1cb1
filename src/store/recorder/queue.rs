//! The way in: a bounded, never-blocking queue from the monitor to the
//! recorder thread, and the handle that stops the thread. A producer that
//! finds the queue full drops the record and counts it; the monitor must
//! never wait on a slow card.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::super::blocks::Tail;
use super::{Record, RecorderStats};

/// Queue depth: a few minutes of heartbeats for 1000 streams at 20 s.
pub(super) const QUEUE: usize = 16_384;

/// Cloneable, non-blocking sending side.
#[derive(Clone)]
pub struct RecorderTx {
    pub(super) tx: Sender<Record>,
    /// Records sent and not yet received: the queue's bound ([`QUEUE`]).
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) stats: Arc<RecorderStats>,
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

    /// Asks the recorder to write everything it holds now (heartbeats of
    /// open windows too) and waits up to `timeout` for it: true once it is
    /// on the card, false when it could not be done in time (a failing
    /// card, a full queue).
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = mpsc::channel();
        self.send(Record::Flush(ack)) && done.recv_timeout(timeout).is_ok()
    }
}

/// The receiving end: an unbounded channel plus the shared count that bounds
/// it, so the bound costs no memory up front. (`sync_channel(QUEUE)`
/// allocated and touched every slot at start: 16384 × 136-byte [`Record`]s,
/// 2.2 MB resident for an empty queue, measured by `make bench`.)
pub(super) struct QueueRx {
    pub(super) rx: mpsc::Receiver<Record>,
    pub(super) queued: Arc<AtomicUsize>,
}

impl QueueRx {
    pub(super) fn recv_timeout(&self, wait: Duration) -> Result<Record, RecvTimeoutError> {
        let r = self.rx.recv_timeout(wait);
        if r.is_ok() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        r
    }

    pub(super) fn try_recv(&self) -> Result<Record, TryRecvError> {
        let r = self.rx.try_recv();
        if r.is_ok() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        r
    }
}

/// Owner handle: the sender plus the thread.
pub struct RecorderHandle {
    pub(super) tx: Option<RecorderTx>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) join: Option<JoinHandle<()>>,
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

/// Keeps at most [`QUEUE`] records waiting for a commit: drops the oldest
/// heartbeats and media facts first (counted in `dropped`); stream rows,
/// removals and events are few and keep history consistent, so they stay.
pub(super) fn bound_backlog(pending: &mut Vec<Record>, stats: &RecorderStats) {
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
