//! Raw heartbeats as packed per-stream blocks (schema 3), and the in-memory
//! tail of heartbeats not yet written.
//!
//! Why blocks: a row per heartbeat costs ~20 bytes in its B-tree plus the
//! pages every commit rewrites at the tree's edge, and the WAL writes each
//! page twice (WAL, then checkpoint): `make bench` measured ~340 bytes
//! written to the card per heartbeat with 5 s commits. Packed, a heartbeat
//! is 3–5 bytes (time delta-of-delta, status, latency as varints), and a stream's
//! heartbeats of one 10-minute [`WINDOW_MS`] become one row, written once
//! when the window ends: ~21 bytes written per heartbeat (make bench).
//!
//! The price is durability of raw heartbeats only: until its window ends
//! (or `monitor.heartbeat_flush_seconds`, if shorter) a heartbeat lives in
//! the [`Tail`], which readers merge in, so pages and the API see it at
//! once; a power cut loses the open window's raw heartbeats. State changes
//! (events), stream rows and media facts are still committed every
//! `commit_seconds`, so what went down and when survives.
//!
//! Rows are keyed (window, stream, first heartbeat): every window's rows go
//! to the right edge of the tree (one small append per flush, whatever the
//! number of streams), and one stream's history is one key lookup per
//! window ([`load`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::{params, Connection};

use crate::probe::Reason;

/// Length of a block's window; divides an hour (rollups sum whole windows).
pub const WINDOW_MS: i64 = 600_000;

/// Start of the window holding `ts_ms`.
pub fn window_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// One probe result as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub ts_ms: i64,
    pub ok: bool,
    pub latency_ms: u32,
    pub reason: Option<Reason>,
    /// `recorder::FLAG_*` bits (only bit 0, clock not synchronised, is kept).
    pub flags: u8,
}

/// Status byte: bit 0 ok, bit 1 clock unsynchronised, bits 2..8 reason code.
fn status_byte(hb: &Heartbeat) -> u8 {
    let reason = hb.reason.map_or(0, Reason::code).min(63);
    u8::from(hb.ok) | ((hb.flags & 1) << 1) | (reason << 2)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Heartbeats of one stream in one window, oldest first, packed, with the
/// sums the hourly rollups need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub window_ms: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub probes: u32,
    pub ok: u32,
    /// Over successful probes.
    pub latency_sum_ms: u64,
    /// Over successful probes; 0 if none succeeded.
    pub latency_max_ms: u32,
    /// Per heartbeat: zigzag varint of (ms since the previous heartbeat −
    /// the previous such gap; the first heartbeat's gap is 0, from
    /// `first_ms`), status byte, varint latency ms. Heartbeats come on a
    /// schedule, so the gap barely changes and most take 1 byte for time.
    pub data: Vec<u8>,
    /// The last gap (in memory only, for appending).
    last_gap_ms: i64,
}

impl Block {
    pub fn new(hb: &Heartbeat) -> Block {
        let mut b = Block {
            window_ms: window_of(hb.ts_ms),
            first_ms: hb.ts_ms,
            last_ms: hb.ts_ms,
            probes: 0,
            ok: 0,
            latency_sum_ms: 0,
            latency_max_ms: 0,
            data: Vec::with_capacity(16),
            last_gap_ms: 0,
        };
        b.append(hb);
        b
    }

    /// Appends `hb` if it belongs here (same window, not older than the last
    /// one: deltas are unsigned); false if it needs a new block.
    pub fn try_push(&mut self, hb: &Heartbeat) -> bool {
        if window_of(hb.ts_ms) != self.window_ms || hb.ts_ms < self.last_ms {
            return false;
        }
        self.append(hb);
        true
    }

    fn append(&mut self, hb: &Heartbeat) {
        let gap = hb.ts_ms - self.last_ms;
        put_varint(&mut self.data, zigzag(gap - self.last_gap_ms));
        self.last_gap_ms = gap;
        self.data.push(status_byte(hb));
        put_varint(&mut self.data, u64::from(hb.latency_ms));
        self.last_ms = hb.ts_ms;
        self.probes += 1;
        if hb.ok {
            self.ok += 1;
            self.latency_sum_ms += u64::from(hb.latency_ms);
            self.latency_max_ms = self.latency_max_ms.max(hb.latency_ms);
        }
    }

    /// The heartbeats, oldest first.
    pub fn heartbeats(&self) -> Result<Vec<Heartbeat>, DecodeError> {
        decode(self.first_ms, &self.data)
    }

    /// Memory held, for the tail's bound.
    fn cost(&self) -> usize {
        std::mem::size_of::<Block>() + self.data.capacity()
    }
}

/// A stored block that does not decode (a damaged card, a bug).
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub at: usize,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "damaged heartbeat block at byte {}", self.at)
    }
}

impl std::error::Error for DecodeError {}

/// Unpacks a block's `data`, whose first heartbeat is at `first_ms`.
pub fn decode(first_ms: i64, data: &[u8]) -> Result<Vec<Heartbeat>, DecodeError> {
    let mut out = Vec::with_capacity(data.len() / 4);
    let mut pos = 0;
    let mut ts = first_ms;
    let mut gap = 0i64;
    while pos < data.len() {
        let at = pos;
        let err = || DecodeError { at };
        let change = get_varint(data, &mut pos).ok_or_else(err)?;
        let status = *data.get(pos).ok_or_else(err)?;
        pos += 1;
        let latency = get_varint(data, &mut pos).ok_or_else(err)?;
        gap = gap.checked_add(unzigzag(change)).ok_or_else(err)?;
        ts = ts.checked_add(gap).ok_or_else(err)?;
        out.push(Heartbeat {
            ts_ms: ts,
            ok: status & 1 != 0,
            latency_ms: u32::try_from(latency).unwrap_or(u32::MAX),
            reason: Reason::from_code(i64::from(status >> 2)),
            flags: (status >> 1) & 1,
        });
    }
    Ok(out)
}

/// Writes `b` for `stream_id` (inside the caller's transaction).
pub fn insert(conn: &Connection, stream_id: i64, b: &Block) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO heartbeat_blocks
           (window_ms, stream_id, first_ms, probes, ok, latency_sum_ms, latency_max_ms, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        b.window_ms,
        stream_id,
        b.first_ms,
        b.probes,
        b.ok,
        i64::try_from(b.latency_sum_ms).unwrap_or(i64::MAX),
        b.latency_max_ms,
        b.data
    ])?;
    Ok(())
}

/// Stored heartbeats of `stream_id` with `since_ms <= ts_ms < until_ms`,
/// oldest first. One primary-key lookup per window of the range (clamped
/// to the windows that exist), so a stream's history costs the same
/// whatever the number of streams. A damaged block is skipped and logged.
pub fn load(
    conn: &Connection,
    stream_id: i64,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<Vec<Heartbeat>> {
    let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
        // Two subqueries: SQLite answers a lone min() or max() of the key
        // from the tree's edge, but both in one SELECT scan every row
        // (~30 ms per 300,000 blocks, on every history read).
        "SELECT (SELECT min(window_ms) FROM heartbeat_blocks),
                (SELECT max(window_ms) FROM heartbeat_blocks)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(Vec::new());
    };
    let first = window_of(since_ms).max(lo);
    let last = window_of(until_ms.saturating_sub(1)).min(hi);
    let mut stmt = conn.prepare_cached(
        "SELECT first_ms, data FROM heartbeat_blocks
         WHERE window_ms = ?1 AND stream_id = ?2 ORDER BY first_ms",
    )?;
    let mut out = Vec::new();
    let mut w = first;
    while w <= last {
        let mut rows = stmt.query(params![w, stream_id])?;
        while let Some(r) = rows.next()? {
            let first_ms: i64 = r.get(0)?;
            let data: Vec<u8> = r.get(1)?;
            match decode(first_ms, &data) {
                Ok(hbs) => out.extend(
                    hbs.into_iter()
                        .filter(|h| h.ts_ms >= since_ms && h.ts_ms < until_ms),
                ),
                Err(e) => tracing::error!("stream {stream_id}, window {w}: {e}; skipped"),
            }
        }
        w += WINDOW_MS;
    }
    // Two blocks of one window can interleave after a backward clock step.
    out.sort_by_key(|h| h.ts_ms);
    Ok(out)
}

/// Raw heartbeats not yet written, shared by the recorder (which appends
/// and flushes) and readers (which merge them with what is stored).
///
/// A flush moves the open blocks to `flushing`, where readers still see
/// them until the commit is done; a reader copies the tail *before* reading
/// the database, so a heartbeat is seen at least once, and [`merge`] drops
/// the copy seen twice.
#[derive(Debug, Default)]
pub struct Tail {
    inner: Mutex<TailInner>,
}

#[derive(Debug, Default)]
struct TailInner {
    open: HashMap<Arc<str>, Vec<Block>>,
    /// When the oldest open heartbeat arrived (monotonic), for flushing
    /// even when the wall clock was stepped back.
    oldest_open: Option<Instant>,
    flushing: Vec<(Arc<str>, Block)>,
    /// Memory held by `open` and `flushing`.
    bytes: usize,
    heartbeats: u64,
}

impl Tail {
    fn lock(&self) -> std::sync::MutexGuard<'_, TailInner> {
        self.inner.lock().expect("heartbeat tail lock")
    }

    /// Adds one heartbeat of `stream`.
    pub fn push(&self, stream: &Arc<str>, hb: &Heartbeat) {
        let mut t = self.lock();
        t.oldest_open.get_or_insert_with(Instant::now);
        t.heartbeats += 1;
        let blocks = t.open.entry(stream.clone()).or_default();
        let before: usize = blocks.last().map_or(0, Block::cost);
        let appended = blocks.last_mut().is_some_and(|b| b.try_push(hb));
        let grown = if appended {
            blocks.last().map_or(0, Block::cost) - before
        } else {
            let b = Block::new(hb);
            let c = b.cost();
            blocks.push(b);
            c
        };
        t.bytes += grown;
    }

    /// Memory held by unwritten heartbeats.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Heartbeats not yet committed.
    pub fn len(&self) -> u64 {
        self.lock().heartbeats
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long ago (monotonic) the oldest open heartbeat arrived.
    pub fn oldest_open_age(&self) -> Option<std::time::Duration> {
        self.lock().oldest_open.map(|i| i.elapsed())
    }

    /// `Some(edge)` if a block waits to be written: an open block whose
    /// window ended by `edge` (wall ms), or an earlier flush that failed.
    pub fn sealed_edge(&self, edge: i64) -> Option<i64> {
        let t = self.lock();
        let sealed = t
            .open
            .values()
            .flat_map(|v| v.first())
            .any(|b| b.window_ms + WINDOW_MS <= edge);
        (sealed || !t.flushing.is_empty()).then_some(edge)
    }

    /// Moves the open blocks whose window ended by `edge` (`i64::MAX`: all)
    /// to `flushing` and returns everything waiting there (earlier failed
    /// flushes too), for one commit.
    pub fn begin_flush(&self, edge: i64) -> Vec<(Arc<str>, Block)> {
        let mut t = self.lock();
        let t = &mut *t;
        for (name, blocks) in t.open.iter_mut() {
            let n = blocks
                .iter()
                .take_while(|b| edge == i64::MAX || b.window_ms + WINDOW_MS <= edge)
                .count();
            t.flushing
                .extend(blocks.drain(..n).map(|b| (name.clone(), b)));
        }
        t.open.retain(|_, v| !v.is_empty());
        // What stays open is measured from now: the next flush is the next
        // window's end, not this one's age.
        t.oldest_open = (!t.open.is_empty()).then(Instant::now);
        t.flushing.clone()
    }

    /// Heartbeats handed to a flush that has not committed yet.
    pub fn waiting(&self) -> u64 {
        self.lock()
            .flushing
            .iter()
            .map(|(_, b)| u64::from(b.probes))
            .sum()
    }

    /// The blocks from [`Tail::begin_flush`] are committed: forget them.
    /// Returns how many heartbeats they held.
    pub fn end_flush(&self) -> u64 {
        let mut t = self.lock();
        let flushed = std::mem::take(&mut t.flushing);
        let n: u64 = flushed.iter().map(|(_, b)| u64::from(b.probes)).sum();
        let freed: usize = flushed.iter().map(|(_, b)| b.cost()).sum();
        t.bytes = t.bytes.saturating_sub(freed);
        t.heartbeats = t.heartbeats.saturating_sub(n);
        n
    }

    /// Drops the oldest blocks waiting to be written until at most
    /// `max_bytes` are held (the card has been failing for a long time);
    /// returns the heartbeats dropped.
    pub fn bound(&self, max_bytes: usize) -> u64 {
        let mut t = self.lock();
        let mut dropped = 0u64;
        while t.bytes > max_bytes && !t.flushing.is_empty() {
            let (_, b) = t.flushing.remove(0);
            t.bytes = t.bytes.saturating_sub(b.cost());
            dropped += u64::from(b.probes);
        }
        t.heartbeats = t.heartbeats.saturating_sub(dropped);
        dropped
    }

    /// Unwritten heartbeats of `stream` with `since_ms <= ts_ms < until_ms`.
    pub fn heartbeats(&self, stream: &str, since_ms: i64, until_ms: i64) -> Vec<Heartbeat> {
        let t = self.lock();
        let blocks = t
            .flushing
            .iter()
            .filter(|(n, _)| &**n == stream)
            .map(|(_, b)| b)
            .chain(t.open.get(stream).into_iter().flatten());
        let mut out = Vec::new();
        for b in blocks {
            if b.last_ms < since_ms || b.first_ms >= until_ms {
                continue;
            }
            // Blocks built in memory always decode.
            if let Ok(hbs) = b.heartbeats() {
                out.extend(
                    hbs.into_iter()
                        .filter(|h| h.ts_ms >= since_ms && h.ts_ms < until_ms),
                );
            }
        }
        out
    }
}

impl Tail {
    /// The windows (starts) of the unwritten blocks with heartbeats in
    /// `[since_ms, until_ms)`, of `only` one stream or all; nothing is
    /// unpacked.
    pub fn windows_in(
        &self,
        only: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> std::collections::BTreeSet<i64> {
        let t = self.lock();
        t.flushing
            .iter()
            .map(|(n, b)| (n, b))
            .chain(
                t.open
                    .iter()
                    .flat_map(|(n, v)| v.iter().map(move |b| (n, b))),
            )
            .filter(|(n, b)| {
                only.is_none_or(|o| o == &***n) && b.last_ms >= since_ms && b.first_ms < until_ms
            })
            .map(|(_, b)| b.window_ms)
            .collect()
    }

    /// Every unwritten block with heartbeats in `[since_ms, until_ms)`:
    /// its stream, its first heartbeat (with the stream and window, a
    /// block's key: a block being flushed may also be stored already) and
    /// those heartbeats. For the availability figures of all streams.
    pub fn blocks_in(&self, since_ms: i64, until_ms: i64) -> Vec<(Arc<str>, i64, Vec<Heartbeat>)> {
        let t = self.lock();
        let all = t.flushing.iter().map(|(n, b)| (n, b)).chain(
            t.open
                .iter()
                .flat_map(|(n, v)| v.iter().map(move |b| (n, b))),
        );
        let mut out = Vec::new();
        for (name, b) in all {
            if b.last_ms < since_ms || b.first_ms >= until_ms {
                continue;
            }
            // Blocks built in memory always decode.
            if let Ok(hbs) = b.heartbeats() {
                let hbs: Vec<Heartbeat> = hbs
                    .into_iter()
                    .filter(|h| h.ts_ms >= since_ms && h.ts_ms < until_ms)
                    .collect();
                out.push((name.clone(), b.first_ms, hbs));
            }
        }
        out
    }
}

/// Stored heartbeats plus unwritten ones, oldest first, each once (a block
/// being flushed can be in both; one stream never has two heartbeats at the
/// same millisecond, the old schema's key).
pub fn merge(mut stored: Vec<Heartbeat>, tail: Vec<Heartbeat>) -> Vec<Heartbeat> {
    if tail.is_empty() {
        return stored;
    }
    stored.extend(tail);
    stored.sort_by_key(|h| h.ts_ms);
    stored.dedup_by_key(|h| h.ts_ms);
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % WINDOW_MS;

    fn hb(ts_ms: i64, ok: bool, latency_ms: u32) -> Heartbeat {
        Heartbeat {
            ts_ms,
            ok,
            latency_ms,
            reason: (!ok).then_some(Reason::Timeout),
            flags: 0,
        }
    }

    #[test]
    fn a_block_round_trips_in_about_five_bytes_a_heartbeat() {
        let hbs: Vec<Heartbeat> = (0..40)
            .map(|i| Heartbeat {
                flags: (i % 7 == 0) as u8,
                reason: if i % 5 == 0 {
                    Some(Reason::ALL[i as usize % Reason::ALL.len()])
                } else {
                    None
                },
                ..hb(
                    T0 + i * 15_000 + i % 3,
                    i % 5 != 0,
                    40 + (i as u32 * 37) % 900,
                )
            })
            .collect();
        let mut b = Block::new(&hbs[0]);
        for h in &hbs[1..] {
            assert!(b.try_push(h));
        }
        assert_eq!(b.heartbeats().unwrap(), hbs);
        assert_eq!((b.probes, b.ok), (40, 32));
        // 15 s ± 2 ms apart: time takes 1 byte but for the first gap.
        assert!(b.data.len() <= 40 * 4, "{} bytes", b.data.len());
        let ok: Vec<_> = hbs.iter().filter(|h| h.ok).collect();
        assert_eq!(
            b.latency_sum_ms,
            ok.iter().map(|h| u64::from(h.latency_ms)).sum::<u64>()
        );
        assert_eq!(
            b.latency_max_ms,
            ok.iter().map(|h| h.latency_ms).max().unwrap()
        );
    }

    #[test]
    fn blocks_end_at_the_window_and_never_go_backwards() {
        let mut b = Block::new(&hb(T0 + 1000, true, 5));
        assert!(!b.try_push(&hb(T0 + WINDOW_MS, true, 5)), "next window");
        assert!(!b.try_push(&hb(T0 + 999, true, 5)), "older than the last");
        assert!(b.try_push(&hb(T0 + 1000, true, 6)), "same ms is not older");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(T0, &[0x80]).is_err());
        assert!(decode(T0, &[0x01]).is_err());
        assert!(decode(T0, &[0xff; 12]).is_err());
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let len = (state % 40) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = decode(i64::MAX - 5, &data);
        }
    }

    #[test]
    fn stored_and_tail_heartbeats_merge_once() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::init(&mut c, None).unwrap();
        let tail = Tail::default();
        let cam: Arc<str> = "cam".into();
        for i in 0..100 {
            tail.push(&cam, &hb(T0 + i * 15_000, i % 4 != 0, 10 + i as u32));
        }
        assert_eq!(tail.len(), 100);
        let blocks = tail.begin_flush(i64::MAX);
        assert_eq!(blocks.len(), 3, "100 × 15 s spans three windows");
        for (_, b) in &blocks {
            insert(&c, 7, b).unwrap();
        }
        // Committed but not yet forgotten: seen in both, counted once.
        let both = merge(
            load(&c, 7, T0, T0 + 3 * WINDOW_MS).unwrap(),
            tail.heartbeats("cam", T0, T0 + 3 * WINDOW_MS),
        );
        assert_eq!(both.len(), 100);
        assert_eq!(tail.end_flush(), 100);
        assert!(tail.is_empty());
        let range = load(&c, 7, T0 + 15_000, T0 + 30 * 15_000).unwrap();
        assert_eq!(range.len(), 29);
        assert_eq!(range[0].ts_ms, T0 + 15_000);
        assert!(load(&c, 8, T0, T0 + WINDOW_MS).unwrap().is_empty());
        // A far-away range costs nothing (clamped to stored windows).
        assert!(load(&c, 7, 0, i64::MAX).unwrap().len() == 100);
        let _ = c.execute("DELETE FROM heartbeat_blocks", []);
        c.close().unwrap();
    }

    #[test]
    fn only_ended_windows_are_flushed_unless_all_are_asked_for() {
        let tail = Tail::default();
        assert_eq!(tail.sealed_edge(T0), None);
        assert_eq!(tail.oldest_open_age(), None);
        let a: Arc<str> = "a".into();
        tail.push(&a, &hb(T0 + 5_000, true, 1));
        tail.push(&a, &hb(T0 + WINDOW_MS + 5_000, true, 1));
        assert!(tail.oldest_open_age().is_some());
        assert_eq!(tail.sealed_edge(T0 + WINDOW_MS - 1), None);
        let edge = T0 + WINDOW_MS;
        assert_eq!(tail.sealed_edge(edge), Some(edge));
        let first = tail.begin_flush(edge);
        assert_eq!(first.len(), 1, "only the ended window");
        assert_eq!(first[0].1.window_ms, T0);
        assert_eq!(tail.waiting(), 1);
        assert_eq!(tail.sealed_edge(T0), Some(T0), "a failed flush retries");
        let again = tail.begin_flush(i64::MAX);
        assert_eq!(again.len(), 2, "the retry plus everything open");
        assert_eq!(tail.len(), 2);
        assert_eq!(tail.bound(0), 2, "bounded: the oldest waiting blocks go");
        assert!(tail.is_empty() && tail.bytes() == 0);
        assert_eq!(tail.oldest_open_age(), None);
    }
}
