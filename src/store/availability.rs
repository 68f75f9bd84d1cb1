//! Availability figures: the share of a stream's monitored time in which a
//! real frame arrived, over a window, plus the current streak and the last OK.
//!
//! # How heartbeats become time
//!
//! Every stored heartbeat stands for one probe interval of the stream: the
//! monitor probes on a schedule, so with a steady interval the share of
//! heartbeats is the share of time. A heartbeat that got a frame (`ok`) is
//! up time; any other stored heartbeat is down time (a failed probe, whatever
//! the debounced state said). Time without stored heartbeats is *not
//! monitored* and counts neither way: the daemon stopped, the stream disabled
//! or not yet configured, and the box itself offline (a `box_offline` result
//! is never recorded, see `monitor::schedule`). So
//! `availability = ok / probes` over the heartbeats in `[since, until)`, and
//! `None` when there are none. Callers turn counts into seconds with the
//! stream's interval (an estimate; the interval may have changed).
//!
//! # Where the counts come from
//!
//! Whole UTC hours before the rollup watermark (hours retention has rolled
//! up for good) come from `rollups`, one row per stream and hour; the rest
//! (the window's leading partial hour, and the hours since the watermark
//! including the current one) from the raw heartbeats: stored blocks, whose
//! sums are used where a block lies wholly inside, and the recorder's
//! unwritten [`Tail`]. A leading partial hour whose raw heartbeats were
//! already pruned (older than `retention.heartbeat_days`) counts nothing:
//! the window then effectively starts at the next whole hour.
//!
//! [`all`] does this for every stream at once with one scan of `rollups` and
//! one of the recent blocks (a 30-day figure for 1000 streams: see
//! `streampulse bench-availability`); [`one`] for one stream with per-hour key
//! lookups, so a single stream never scans the other streams' rows.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::blocks::{self, Tail, WINDOW_MS};
use super::retention::{hour_start, DAY_MS, HOUR_MS};

/// Heartbeats in a window: all stored ones, and those that got a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub probes: u64,
    pub ok: u64,
}

impl Counts {
    /// Stored heartbeats without a frame (down time).
    pub fn failed(&self) -> u64 {
        self.probes.saturating_sub(self.ok)
    }

    /// `ok / probes`, `None` when nothing was monitored.
    pub fn ratio(&self) -> Option<f64> {
        (self.probes > 0).then(|| self.ok as f64 / self.probes as f64)
    }

    fn add(&mut self, probes: u64, ok: u64) {
        self.probes += probes;
        self.ok += ok;
    }
}

/// The standard windows, label and length: the API, the stream page and
/// `/metrics` use these.
pub const WINDOWS: [(&str, i64); 3] = [("24h", DAY_MS), ("7d", 7 * DAY_MS), ("30d", 30 * DAY_MS)];

/// One stream's figures: one [`Counts`] per asked window, and the time of
/// the last OK heartbeat seen in the longest window (None: none in it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub windows: Vec<Counts>,
    pub last_ok_ms: Option<i64>,
}

/// The rollup sums of [`all`]'s last call, per stream id and window, and
/// the last hour with an OK per stream. Rollups before the watermark are
/// final, so the sums only change when a window's whole final hours do
/// (the clock passes an hour, retention moves the watermark): the scan of
/// 30 days of rollups then runs once an hour, not at every request.
#[derive(Debug, Default)]
pub struct RollupCache {
    inner: Mutex<Option<CachedSums>>,
}

#[derive(Clone, Debug)]
struct CachedSums {
    /// The windows' rolled-up ranges the sums are for.
    key: Vec<(i64, i64)>,
    sums: HashMap<i64, Vec<Counts>>,
    last_ok_hour: HashMap<i64, i64>,
}

/// Hours before this are rolled up for good (retention redoes the hour at
/// the watermark, so that one is not final yet); `i64::MIN` before the
/// first retention pass.
fn rolled_until(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'rollup_watermark'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(i64::MIN))
}

fn ceil_hour(ms: i64) -> i64 {
    let h = hour_start(ms);
    if h == ms {
        h
    } else {
        h.saturating_add(HOUR_MS)
    }
}

/// How `[since, until)` splits: whole final hours from rollups, the rest raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Split {
    /// `[rolled.0, rolled.1)` from rollups (empty if `.0 >= .1`).
    rolled: (i64, i64),
    /// Raw ranges before and after the rolled-up hours.
    raw: [(i64, i64); 2],
}

fn split(since: i64, until: i64, rolled_until: i64) -> Split {
    let start = ceil_hour(since);
    let end = rolled_until.min(hour_start(until));
    if start < end {
        Split {
            rolled: (start, end),
            raw: [(since, start), (end, until)],
        }
    } else {
        Split {
            rolled: (0, 0),
            raw: [(since, until), (0, 0)],
        }
    }
}

/// One stream's heartbeats in `[since_ms, until_ms)` (and the last OK in
/// it); `None` if the stream is unknown.
pub fn one(
    conn: &Connection,
    tail: &Tail,
    stream: &str,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<Option<(Counts, Option<i64>)>> {
    let id: Option<i64> = conn
        .query_row("SELECT id FROM streams WHERE name = ?1", [stream], |r| {
            r.get(0)
        })
        .optional()?;
    let s = split(since_ms, until_ms, rolled_until(conn)?);
    let mut counts = Counts::default();
    let mut last_ok: Option<i64> = None;
    let mut known = id.is_some();
    for (a, b) in s.raw {
        if a >= b {
            continue;
        }
        let Some(raw) = super::query::raw(conn, tail, stream, a, b)? else {
            continue;
        };
        known = true;
        let ok = raw.iter().filter(|h| h.ok).count() as u64;
        counts.add(raw.len() as u64, ok);
        if let Some(h) = raw.iter().rev().find(|h| h.ok) {
            last_ok = last_ok.max(Some(h.ts_ms));
        }
    }
    if !known {
        return Ok(None);
    }
    if let (Some(id), (a, b)) = (id, s.rolled) {
        // One key lookup per hour: the key is (hour, stream), so a range
        // with a stream filter would read every stream's rows.
        let mut stmt = conn.prepare_cached(
            "SELECT probes, ok FROM rollups WHERE hour_ms = ?1 AND stream_id = ?2",
        )?;
        let mut last_ok_hour = None;
        let mut h = a;
        while h < b {
            if let Some((p, ok)) = stmt
                .query_row(params![h, id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?
            {
                counts.add(p.max(0) as u64, ok.max(0) as u64);
                if ok > 0 {
                    last_ok_hour = Some(h);
                }
            }
            h += HOUR_MS;
        }
        if let Some(h) = last_ok_hour.filter(|h| last_ok.is_none_or(|t| t < *h)) {
            last_ok = Some(last_ok_in_hour(conn, id, h)?);
        }
    }
    Ok(Some((counts, last_ok)))
}

/// The last OK heartbeat of an hour whose rollup says it had one: exact
/// while its raw heartbeats are kept, else the hour's start (the rollup
/// knows no better).
fn last_ok_in_hour(conn: &Connection, id: i64, hour: i64) -> rusqlite::Result<i64> {
    let raw = blocks::load(conn, id, hour, hour + HOUR_MS)?;
    Ok(raw.iter().rev().find(|h| h.ok).map_or(hour, |h| h.ts_ms))
}

/// Every stream's heartbeats in each window `[since, until_ms)` of
/// `sinces`, keyed by stream name (streams with no heartbeat at all in any
/// window are absent), with the last OK in the longest window.
///
/// Costs one range scan of `rollups` over the longest window's final hours,
/// and one of the blocks since the watermark (plus each window's leading
/// partial hour); the tail's blocks are counted once (a block being flushed
/// can be both stored and in the tail: same stream, window and first
/// heartbeat).
pub fn all(
    conn: &Connection,
    tail: &Tail,
    sinces: &[i64],
    until_ms: i64,
    cache: Option<&RollupCache>,
) -> rusqlite::Result<HashMap<String, Figures>> {
    let rolled = rolled_until(conn)?;
    let mut names: HashMap<i64, String> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached("SELECT id, name FROM streams")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            let (id, name) = row?;
            names.insert(id, name);
        }
    }
    let splits: Vec<Split> = sinces.iter().map(|s| split(*s, until_ms, rolled)).collect();
    let mut out: HashMap<String, Figures> = HashMap::new();
    let n = sinces.len();
    // Rollups: one scan over the union of the windows' final hours (or
    // the cached sums of the same hours).
    let key: Vec<(i64, i64)> = splits.iter().map(|s| s.rolled).collect();
    let cached = cache.and_then(|c| {
        c.inner
            .lock()
            .expect("rollup cache lock")
            .as_ref()
            .filter(|c| c.key == key)
            .cloned()
    });
    let cached = match cached {
        Some(c) => c,
        None => {
            // The hours moved on: move the cached sums with them, or scan.
            let before = cache.and_then(|c| c.inner.lock().expect("rollup cache lock").take());
            let moved = match before {
                Some(b) => moved_sums(conn, b, &key)?,
                None => None,
            };
            let c = match moved {
                Some(c) => c,
                None => rollup_sums(conn, &splits, key)?,
            };
            if let Some(cache) = cache {
                *cache.inner.lock().expect("rollup cache lock") = Some(c.clone());
            }
            c
        }
    };
    for (id, sums) in &cached.sums {
        let Some(name) = names.get(id) else { continue };
        let f = entry(&mut out, name, n);
        for (w, c) in f.windows.iter_mut().zip(sums) {
            w.add(c.probes, c.ok);
        }
    }
    let last_ok_hour = cached.last_ok_hour;
    // Raw ranges: each distinct one counted once, added to every window
    // that has it (the ranges after the rolled hours are usually the same).
    let mut ranges: Vec<(i64, i64)> = splits
        .iter()
        .flat_map(|s| s.raw)
        .filter(|(a, b)| a < b)
        .collect();
    // Latest first: once a stream's last OK is found, older ranges need
    // not unpack a block for it.
    ranges.sort_unstable_by(|x, y| y.cmp(x));
    ranges.dedup();
    let ids: HashMap<&str, i64> = names.iter().map(|(id, n)| (n.as_str(), *id)).collect();
    for (a, b) in ranges {
        let found = |name: &str| out.get(name).is_some_and(|f| f.last_ok_ms.is_some());
        for (name, c, last_ok) in raw_counts(conn, tail, &names, &ids, a, b, &found)? {
            let f = entry(&mut out, &name, n);
            for (i, s) in splits.iter().enumerate() {
                if s.raw.contains(&(a, b)) {
                    f.windows[i].add(c.probes, c.ok);
                }
            }
            f.last_ok_ms = f.last_ok_ms.max(last_ok);
        }
    }
    // Last OK from a rollup hour later than any the raw ranges had.
    for (id, hour) in last_ok_hour {
        let Some(name) = names.get(&id) else { continue };
        let f = entry(&mut out, name, n);
        if f.last_ok_ms.is_none_or(|t| t < hour) {
            f.last_ok_ms = Some(last_ok_in_hour(conn, id, hour)?);
        }
    }
    Ok(out)
}

/// Sums of the rolled-up hours of each split, per stream id, in one range
/// scan over their union.
fn rollup_sums(
    conn: &Connection,
    splits: &[Split],
    key: Vec<(i64, i64)>,
) -> rusqlite::Result<CachedSums> {
    let mut sums: HashMap<i64, Vec<Counts>> = HashMap::new();
    let mut last_ok_hour = HashMap::new();
    let lo = splits
        .iter()
        .filter(|s| s.rolled.0 < s.rolled.1)
        .map(|s| s.rolled.0)
        .min();
    let hi = splits.iter().map(|s| s.rolled.1).max().unwrap_or(0);
    if let Some(lo) = lo {
        let mut stmt = conn.prepare_cached(
            "SELECT hour_ms, stream_id, probes, ok FROM rollups
             WHERE hour_ms >= ?1 AND hour_ms < ?2",
        )?;
        let mut rows = stmt.query(params![lo, hi])?;
        while let Some(r) = rows.next()? {
            let (hour, id, p, ok): (i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let s = sums
                .entry(id)
                .or_insert_with(|| vec![Counts::default(); splits.len()]);
            for (i, sp) in splits.iter().enumerate() {
                if hour >= sp.rolled.0 && hour < sp.rolled.1 {
                    s[i].add(p.max(0) as u64, ok.max(0) as u64);
                }
            }
            if ok > 0 {
                last_ok_hour.insert(id, hour);
            }
        }
    }
    Ok(CachedSums {
        key,
        sums,
        last_ok_hour,
    })
}

/// The cached sums moved to the windows' new rolled-up ranges `key`, by
/// reading only the hours that left or entered each window (the clock
/// passed an hour, retention moved the watermark: a few hours, not 30
/// days). `None` when that does not apply and a full scan is needed: a
/// range moved back or jumped, more than two days changed, or retention
/// may have deleted rollups inside the cached ranges (the oldest rollup is
/// newer than the oldest cached hour: also the case while the history is
/// younger than the longest window, when a scan is cheap anyway).
fn moved_sums(
    conn: &Connection,
    mut c: CachedSums,
    key: &[(i64, i64)],
) -> rusqlite::Result<Option<CachedSums>> {
    if c.key.len() != key.len() {
        return Ok(None);
    }
    // (window, start, end, add) of every changed range.
    let mut changes = Vec::new();
    for (i, (&(ol, oh), &(nl, nh))) in c.key.iter().zip(key).enumerate() {
        if ol >= oh || nl >= nh || nl < ol || nh < oh || nl >= oh {
            return Ok(None);
        }
        if nl > ol {
            changes.push((i, ol, nl, false));
        }
        if nh > oh {
            changes.push((i, oh, nh, true));
        }
    }
    let hours: i64 = changes.iter().map(|(_, a, b, _)| (b - a) / HOUR_MS).sum();
    if hours > 48 {
        return Ok(None);
    }
    let oldest: Option<i64> =
        conn.query_row("SELECT min(hour_ms) FROM rollups", [], |r| r.get(0))?;
    let cached_from = c.key.iter().map(|k| k.0).min().unwrap_or(i64::MAX);
    if oldest.is_none_or(|o| o > cached_from) {
        return Ok(None);
    }
    let n = key.len();
    let mut stmt = conn.prepare_cached(
        "SELECT hour_ms, stream_id, probes, ok FROM rollups WHERE hour_ms >= ?1 AND hour_ms < ?2",
    )?;
    for (i, a, b, add) in changes {
        let mut rows = stmt.query(params![a, b])?;
        while let Some(r) = rows.next()? {
            let (hour, id, p, ok): (i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let (p, ok) = (p.max(0) as u64, ok.max(0) as u64);
            let s = c
                .sums
                .entry(id)
                .or_insert_with(|| vec![Counts::default(); n]);
            if add {
                s[i].add(p, ok);
                if ok > 0 {
                    let h = c.last_ok_hour.entry(id).or_insert(hour);
                    *h = (*h).max(hour);
                }
            } else {
                s[i].probes = s[i].probes.saturating_sub(p);
                s[i].ok = s[i].ok.saturating_sub(ok);
            }
        }
    }
    let from = key.iter().map(|k| k.0).min().unwrap_or(i64::MAX);
    c.last_ok_hour.retain(|_, h| *h >= from);
    c.sums.retain(|_, s| s.iter().any(|w| w.probes > 0));
    c.key = key.to_vec();
    Ok(Some(c))
}

/// `out[name]`, made with `n` empty windows if missing.
fn entry<'a>(out: &'a mut HashMap<String, Figures>, name: &str, n: usize) -> &'a mut Figures {
    if !out.contains_key(name) {
        out.insert(
            name.to_owned(),
            Figures {
                windows: vec![Counts::default(); n],
                last_ok_ms: None,
            },
        );
    }
    out.get_mut(name).expect("inserted above")
}

/// Per stream: heartbeats in `[a, b)` from stored blocks and the tail, and
/// the last OK one. A block wholly inside is counted by its sums; one
/// crossing an edge is unpacked; for the time of the last OK only the
/// stream's latest block with one is unpacked (read again by its key), and
/// not for a stream whose last OK was `found` in a later range.
fn raw_counts(
    conn: &Connection,
    tail: &Tail,
    names: &HashMap<i64, String>,
    ids: &HashMap<&str, i64>,
    a: i64,
    b: i64,
    found: &dyn Fn(&str) -> bool,
) -> rusqlite::Result<Vec<(String, Counts, Option<i64>)>> {
    #[derive(Default)]
    struct Acc {
        counts: Counts,
        last_ok: Option<i64>,
        /// The latest whole block with an OK: (first_ms, window, stream id).
        ok_block: Option<(i64, i64, i64)>,
    }
    let mut acc: HashMap<String, Acc> = HashMap::new();
    let mut seen: HashSet<(i64, i64)> = HashSet::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT stream_id, window_ms, first_ms, probes, ok, data FROM heartbeat_blocks
             WHERE window_ms >= ?1 AND window_ms < ?2",
        )?;
        let mut rows = stmt.query(params![blocks::window_of(a), b])?;
        while let Some(r) = rows.next()? {
            let (id, window, first_ms, p, ok): (i64, i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            seen.insert((id, first_ms));
            let Some(name) = names.get(&id) else { continue };
            let e = acc.entry(name.clone()).or_default();
            if window >= a && window + WINDOW_MS <= b {
                e.counts.add(p.max(0) as u64, ok.max(0) as u64);
                if ok > 0 {
                    e.ok_block = e.ok_block.max(Some((first_ms, window, id)));
                }
                continue;
            }
            let data = r.get_ref(5)?.as_blob()?;
            match blocks::decode(first_ms, data) {
                Ok(hbs) => {
                    for h in hbs.iter().filter(|h| h.ts_ms >= a && h.ts_ms < b) {
                        e.counts.add(1, u64::from(h.ok));
                        if h.ok {
                            e.last_ok = e.last_ok.max(Some(h.ts_ms));
                        }
                    }
                }
                Err(err) => tracing::error!("stream {id}, window {window}: {err}; skipped"),
            }
        }
    }
    let mut data_of = conn.prepare_cached(
        "SELECT data FROM heartbeat_blocks WHERE window_ms = ?1 AND stream_id = ?2 AND first_ms = ?3",
    )?;
    for (name, e) in acc.iter_mut() {
        let Some((first_ms, window, id)) = e.ok_block else {
            continue;
        };
        if e.last_ok.is_some_and(|t| t >= first_ms) || found(name) {
            continue;
        }
        let data: Vec<u8> = data_of.query_row(params![window, id, first_ms], |r| r.get(0))?;
        if let Ok(hbs) = blocks::decode(first_ms, &data) {
            e.last_ok = e
                .last_ok
                .max(hbs.iter().rev().find(|h| h.ok).map(|h| h.ts_ms));
        }
    }
    for (name, first_ms, hbs) in tail.blocks_in(a, b) {
        if ids
            .get(&*name)
            .is_some_and(|id| seen.contains(&(*id, first_ms)))
        {
            continue;
        }
        let e = acc.entry(name.to_string()).or_default();
        for h in hbs {
            e.counts.add(1, u64::from(h.ok));
            if h.ok {
                e.last_ok = e.last_ok.max(Some(h.ts_ms));
            }
        }
    }
    Ok(acc
        .into_iter()
        .map(|(n, e)| (n, e.counts, e.last_ok))
        .collect())
}

/// The debounced health a stream is in, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streak {
    /// `up`, `down` or `unknown`.
    pub state: &'static str,
    pub since_ms: Option<i64>,
}

/// How long `stream` has been in its current health `state` (`up` or
/// `down`; the board's), reaching back over restarts: a restart's first
/// verdict is an `unknown → state` event, so the streak starts at the
/// oldest of the newest run of events that all went to `state`. Time the
/// daemon was stopped inside the run counts as the same state (nothing says
/// otherwise). `board_since_ms` is the board's own start of the state (an
/// event not committed yet). `unknown` is the board's, never stored.
pub fn streak(
    conn: &Connection,
    stream: &str,
    state: &'static str,
    board_since_ms: Option<i64>,
) -> rusqlite::Result<Streak> {
    if state != "up" && state != "down" {
        return Ok(Streak {
            state,
            since_ms: board_since_ms,
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT e.ts_ms, e.to_state FROM events e
         WHERE e.stream_id = (SELECT id FROM streams WHERE name = ?1)
         ORDER BY e.ts_ms DESC LIMIT 200",
    )?;
    let mut rows = stmt.query([stream])?;
    let mut since = board_since_ms;
    while let Some(r) = rows.next()? {
        let (ts, to): (i64, String) = (r.get(0)?, r.get(1)?);
        if to != state {
            break;
        }
        since = Some(since.map_or(ts, |s| s.min(ts)));
    }
    Ok(Streak {
        state,
        since_ms: since,
    })
}

#[cfg(test)]
mod tests;
