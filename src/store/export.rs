//! History for the CSV export, read a page at a time so the answer is never
//! built in memory: raw heartbeats one 10-minute window per page (every
//! stream's heartbeats of that window, ordered by time then stream), hourly
//! rollups a bounded number of rows per page (ordered by hour then stream).
//!
//! The pager owns its connection (it outlives the web worker's request
//! handling: the body is read while it is sent). The recorder's unwritten
//! [`Tail`] is read window by window, before that window's stored blocks,
//! as [`super::query::raw`] does (a heartbeat both stored and in the tail is
//! written once), so a tail the size of a failing card's backlog is never
//! unpacked at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::blocks::{self, Heartbeat, Tail};
use super::retention::{hour_start, HOUR_MS};

/// Rows of hourly rollups per page (all streams).
const HOUR_PAGE: i64 = 2000;
/// Hours looked up per page (one stream).
const HOURS_PER_PAGE: i64 = 168;

/// Raw heartbeats or hourly rollups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    Hour,
}

/// One hourly rollup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourRow {
    pub hour_ms: i64,
    pub probes: u64,
    pub ok: u64,
    pub latency_sum_ms: u64,
    pub latency_max_ms: u64,
}

/// One exported row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    Raw(Arc<str>, Heartbeat),
    Hour(Arc<str>, HourRow),
}

/// Pages through one export.
pub struct Pager {
    conn: Connection,
    res: Resolution,
    /// One stream only: its name and id (None: not stored yet).
    only: Option<(Arc<str>, Option<i64>)>,
    names: HashMap<i64, Arc<str>>,
    since: i64,
    until: i64,
    /// Raw: the next window to read. Hour: the next hour (and for all
    /// streams, the last stream id written in the hour before it).
    cursor: (i64, i64),
    /// Raw: the recorder's unwritten heartbeats, and the windows they were
    /// in when the export began (later ones are for a later export).
    tail: Arc<Tail>,
    tail_windows: BTreeSet<i64>,
    done: bool,
}

impl Pager {
    /// An export of `[since_ms, until_ms)`, every stream or `only` one;
    /// `None` if `only` names a stream neither stored nor in the tail.
    ///
    /// # Errors
    /// A database error.
    pub fn new(
        conn: Connection,
        tail: Arc<Tail>,
        res: Resolution,
        only: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> rusqlite::Result<Option<Pager>> {
        let tail_windows = match res {
            Resolution::Raw => tail.windows_in(only, since_ms, until_ms),
            Resolution::Hour => BTreeSet::new(),
        };
        let mut names = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT id, name FROM streams")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, name) = row?;
                names.insert(id, Arc::<str>::from(name));
            }
        }
        let only = match only {
            None => None,
            Some(o) => {
                let id = names.iter().find(|(_, n)| &***n == o).map(|(id, _)| *id);
                let in_tail = !tail.windows_in(Some(o), i64::MIN, i64::MAX).is_empty();
                if id.is_none() && !in_tail {
                    return Ok(None);
                }
                Some((Arc::<str>::from(o), id))
            }
        };
        let start = match res {
            Resolution::Raw => blocks::window_of(since_ms),
            Resolution::Hour => {
                let h = hour_start(since_ms);
                if h < since_ms {
                    h + HOUR_MS
                } else {
                    h
                }
            }
        };
        Ok(Some(Pager {
            conn,
            res,
            only,
            names,
            since: since_ms,
            until: until_ms,
            cursor: (start, -1),
            tail,
            tail_windows,
            done: false,
        }))
    }

    /// The next page of rows (never empty), or `None` at the end.
    ///
    /// # Errors
    /// A database error; the export should stop.
    pub fn next_page(&mut self) -> rusqlite::Result<Option<Vec<Row>>> {
        while !self.done {
            let rows = match self.res {
                Resolution::Raw => self.raw_page()?,
                Resolution::Hour => self.hour_page()?,
            };
            if !rows.is_empty() {
                return Ok(Some(rows));
            }
        }
        Ok(None)
    }

    fn only_id(&self) -> Option<i64> {
        self.only.as_ref().and_then(|(_, id)| *id)
    }

    /// The window at the cursor, then the cursor moves to the next window
    /// holding anything (stored or in the tail).
    fn raw_page(&mut self) -> rusqlite::Result<Vec<Row>> {
        let w = self.cursor.0;
        if w >= self.until {
            self.done = true;
            return Ok(Vec::new());
        }
        // The tail first, then the database (see the module docs).
        let mut rows: Vec<(Arc<str>, Heartbeat)> = Vec::new();
        let end = (w + blocks::WINDOW_MS).min(self.until);
        for (name, _, hbs) in self.tail.blocks_in(w.max(self.since), end) {
            if self.only.as_ref().is_none_or(|(o, _)| *o == name) {
                rows.extend(hbs.into_iter().map(|h| (name.clone(), h)));
            }
        }
        let only_id = self.only_id();
        if self.only.is_none() || only_id.is_some() {
            let mut stmt = self.conn.prepare_cached(
                "SELECT stream_id, first_ms, data FROM heartbeat_blocks
                 WHERE window_ms = ?1 AND (?2 IS NULL OR stream_id = ?2)",
            )?;
            let mut q = stmt.query(params![w, only_id])?;
            while let Some(r) = q.next()? {
                let (id, first_ms): (i64, i64) = (r.get(0)?, r.get(1)?);
                let Some(name) = self.names.get(&id) else {
                    continue;
                };
                match blocks::decode(first_ms, r.get_ref(2)?.as_blob()?) {
                    Ok(hbs) => rows.extend(
                        hbs.into_iter()
                            .filter(|h| h.ts_ms >= self.since && h.ts_ms < self.until)
                            .map(|h| (name.clone(), h)),
                    ),
                    Err(e) => tracing::error!("export: stream {id}, window {w}: {e}; skipped"),
                }
            }
        }
        rows.sort_by(|a, b| (a.1.ts_ms, &a.0).cmp(&(b.1.ts_ms, &b.0)));
        rows.dedup_by(|a, b| a.1.ts_ms == b.1.ts_ms && a.0 == b.0);
        // Next window with anything in it.
        let stored: Option<i64> = if self.only.is_some() && only_id.is_none() {
            None
        } else {
            self.conn
                .prepare_cached(
                    "SELECT min(window_ms) FROM heartbeat_blocks
                     WHERE window_ms > ?1 AND (?2 IS NULL OR stream_id = ?2)",
                )?
                .query_row(params![w, only_id], |r| r.get(0))?
        };
        let in_tail = self.tail_windows.range(w + 1..).next().copied();
        self.cursor.0 = match (stored, in_tail) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => i64::MAX,
        };
        Ok(rows.into_iter().map(|(n, h)| Row::Raw(n, h)).collect())
    }

    fn hour_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HourRow> {
        let n = |v: i64| v.max(0) as u64;
        Ok(HourRow {
            hour_ms: r.get(0)?,
            probes: n(r.get(2)?),
            ok: n(r.get(3)?),
            latency_sum_ms: n(r.get(4)?),
            latency_max_ms: n(r.get(5)?),
        })
    }

    fn hour_page(&mut self) -> rusqlite::Result<Vec<Row>> {
        let (hour, after_id) = self.cursor;
        if hour >= self.until {
            self.done = true;
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        match self.only.clone() {
            Some((_, None)) => self.done = true,
            Some((name, Some(id))) => {
                // Key lookups hour by hour: the key is (hour, stream).
                let end = (hour + HOURS_PER_PAGE * HOUR_MS).min(self.until);
                let mut stmt = self.conn.prepare_cached(
                    "SELECT hour_ms, stream_id, probes, ok, latency_sum_ms, latency_max_ms
                     FROM rollups WHERE hour_ms = ?1 AND stream_id = ?2",
                )?;
                let mut h = hour;
                while h < end {
                    if let Some(row) = stmt.query_row(params![h, id], Self::hour_row).optional()? {
                        out.push(Row::Hour(name.clone(), row));
                    }
                    h += HOUR_MS;
                }
                // Skip to the stream's next stored hour (none: done).
                let next: Option<i64> = self
                    .conn
                    .prepare_cached("SELECT min(hour_ms) FROM rollups WHERE hour_ms >= ?1")?
                    .query_row([end], |r| r.get(0))?;
                self.cursor = (next.unwrap_or(i64::MAX), -1);
            }
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT hour_ms, stream_id, probes, ok, latency_sum_ms, latency_max_ms
                     FROM rollups WHERE (hour_ms, stream_id) > (?1, ?2) AND hour_ms < ?3
                     ORDER BY hour_ms, stream_id LIMIT ?4",
                )?;
                let mut q = stmt.query(params![hour, after_id, self.until, HOUR_PAGE])?;
                let mut n = 0;
                while let Some(r) = q.next()? {
                    n += 1;
                    let row = Self::hour_row(r)?;
                    let id: i64 = r.get(1)?;
                    self.cursor = (row.hour_ms, id);
                    if let Some(name) = self.names.get(&id) {
                        out.push(Row::Hour(name.clone(), row));
                    }
                }
                if n < HOUR_PAGE {
                    self.done = true;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::blocks::WINDOW_MS;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;

    fn hb(ts_ms: i64, ok: bool) -> Heartbeat {
        Heartbeat {
            ts_ms,
            ok,
            latency_ms: 7,
            reason: None,
            flags: 0,
        }
    }

    fn db(path: &std::path::Path) -> Connection {
        let mut c = Connection::open(path).unwrap();
        crate::store::init(&mut c, None).unwrap();
        for (id, name) in [(1, "b"), (2, "a")] {
            c.execute(
                "INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (?1, ?2, 'rtsp', 'x', 0)",
                params![id, name],
            )
            .unwrap();
        }
        c
    }

    fn all(mut p: Pager) -> Vec<Row> {
        let mut out = Vec::new();
        while let Some(page) = p.next_page().unwrap() {
            assert!(!page.is_empty());
            out.extend(page);
        }
        out
    }

    /// Raw: stored and tail heartbeats once each, in time then name order,
    /// windows far apart skipped, the range half open; one stream alone;
    /// hourly rows paged for all streams and looked up for one.
    #[test]
    fn pages_cover_the_range_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let c = db(&dir.path().join("x.db"));
        let tail = Arc::new(Tail::default());
        // Stream 1 ("b") every 5 min for 2 h, stored; stream 2 ("a") at the
        // same times, the last hour only in the tail (one window flushed and
        // stored too).
        for i in 0..24 {
            let ts = T0 + i * 300_000;
            let mut b = blocks::Block::new(&hb(ts, i % 3 != 0));
            blocks::insert(&c, 1, &b).unwrap();
            if i < 12 {
                b = blocks::Block::new(&hb(ts, true));
                blocks::insert(&c, 2, &b).unwrap();
            } else {
                tail.push(&"a".into(), &hb(ts, true));
            }
        }
        for (_, b) in tail.begin_flush(T0 + HOUR_MS + WINDOW_MS) {
            blocks::insert(&c, 2, &b).unwrap();
        }
        // A heartbeat 30 days before: far, and outside the range.
        blocks::insert(&c, 1, &blocks::Block::new(&hb(T0 - 30 * 86_400_000, true))).unwrap();
        let open = || Connection::open(dir.path().join("x.db")).unwrap();
        let p = Pager::new(
            open(),
            tail.clone(),
            Resolution::Raw,
            None,
            T0 - 86_400_000,
            T0 + 2 * HOUR_MS,
        )
        .unwrap()
        .unwrap();
        let rows = all(p);
        assert_eq!(rows.len(), 48);
        let keys: Vec<(i64, String)> = rows
            .iter()
            .map(|r| match r {
                Row::Raw(n, h) => (h.ts_ms, n.to_string()),
                Row::Hour(..) => unreachable!(),
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys[0], (T0, "a".into()));
        // Half open: [T0 + 5 min, T0 + 15 min) of "b" only.
        let p = Pager::new(
            open(),
            tail.clone(),
            Resolution::Raw,
            Some("b"),
            T0 + 300_000,
            T0 + 900_000,
        )
        .unwrap()
        .unwrap();
        let rows = all(p);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(Pager::new(
            open(),
            tail.clone(),
            Resolution::Raw,
            Some("nope"),
            T0,
            T0 + 1
        )
        .unwrap()
        .is_none());
        // Hourly: 3 × 2 streams, paged, in (hour, id) order; one stream by lookups.
        for h in 0..3 {
            for id in [1, 2] {
                c.execute(
                    "INSERT INTO rollups VALUES (?1, ?2, 12, 8, 80, 9)",
                    params![id, T0 + h * HOUR_MS],
                )
                .unwrap();
            }
        }
        let p = Pager::new(
            open(),
            tail.clone(),
            Resolution::Hour,
            None,
            T0 + 1,
            T0 + 3 * HOUR_MS,
        )
        .unwrap();
        let rows = all(p.unwrap());
        assert_eq!(
            rows.len(),
            4,
            "T0 + 1 ms starts at the next whole hour: {rows:?}"
        );
        assert!(matches!(&rows[0], Row::Hour(n, r) if &**n == "b" && r.hour_ms == T0 + HOUR_MS));
        let p = Pager::new(
            open(),
            tail.clone(),
            Resolution::Hour,
            Some("a"),
            T0,
            T0 + 3 * HOUR_MS,
        )
        .unwrap();
        let rows = all(p.unwrap());
        assert_eq!(rows.len(), 3);
        assert!(
            matches!(&rows[2], Row::Hour(n, r) if &**n == "a" && r.ok == 8 && r.latency_max_ms == 9)
        );
    }
}
