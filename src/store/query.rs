//! Read queries used by the web API, on read-only connections.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::blocks::{self, Heartbeat, Tail};

/// One stored heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeartbeatRow {
    pub ts_ms: i64,
    pub ok: bool,
    pub latency_ms: u32,
    pub reason: Option<&'static str>,
    pub clock_unsynced: bool,
}

/// Raw heartbeats of `stream` in `[since_ms, until_ms)`, stored and not
/// yet written, oldest first; `None` if the stream is unknown. The tail is
/// copied before the database is read (see [`Tail`]).
pub fn raw(
    conn: &Connection,
    tail: &Tail,
    stream: &str,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<Option<Vec<Heartbeat>>> {
    let unwritten = tail.heartbeats(stream, since_ms, until_ms);
    let id: Option<i64> = conn
        .query_row("SELECT id FROM streams WHERE name = ?1", [stream], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(id) = id else {
        // A stream configured moments ago has heartbeats before the first
        // commit writes its row: known by them, not "no such stream".
        return Ok((!unwritten.is_empty()).then_some(unwritten));
    };
    let stored = blocks::load(conn, id, since_ms, until_ms)?;
    Ok(Some(blocks::merge(stored, unwritten)))
}

/// Heartbeats of `stream` with `since_ms <= ts_ms < until_ms`, oldest first, at most `limit`.
/// Returns `None` if the stream is unknown.
pub fn history(
    conn: &Connection,
    tail: &Tail,
    stream: &str,
    since_ms: i64,
    until_ms: i64,
    limit: u32,
) -> rusqlite::Result<Option<Vec<HeartbeatRow>>> {
    let Some(rows) = raw(conn, tail, stream, since_ms, until_ms)? else {
        return Ok(None);
    };
    Ok(Some(
        rows.into_iter()
            .take(limit as usize)
            .map(|h| HeartbeatRow {
                ts_ms: h.ts_ms,
                ok: h.ok,
                latency_ms: h.latency_ms,
                reason: h.reason.map(|r| r.as_str()),
                clock_unsynced: h.flags & super::recorder::FLAG_CLOCK_UNSYNCED != 0,
            })
            .collect(),
    ))
}

/// One state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub ts_ms: i64,
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// State changes of `stream` since `since_ms`, newest first.
pub fn events(
    conn: &Connection,
    stream: &str,
    since_ms: i64,
    limit: u32,
) -> rusqlite::Result<Vec<EventRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.ts_ms, e.from_state, e.to_state, e.reason, e.message FROM events e
         JOIN streams s ON s.id = e.stream_id
         WHERE s.name = ?1 AND e.ts_ms >= ?2 ORDER BY e.ts_ms DESC LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![stream, since_ms, limit], |r| {
            Ok(EventRow {
                ts_ms: r.get(0)?,
                from: r.get(1)?,
                to: r.get(2)?,
                reason: r.get(3)?,
                message: r.get(4)?,
            })
        })?
        .collect();
    rows
}

/// Heartbeats of one time bucket (for the history chart).
#[derive(Clone, Debug, PartialEq)]
pub struct BucketRow {
    /// Start of the bucket, ms since the epoch.
    pub start_ms: i64,
    pub probes: u32,
    pub ok: u32,
    /// Mean latency of the successful probes (None if none succeeded).
    pub latency_avg_ms: Option<f64>,
    /// Highest latency of the successful probes.
    pub latency_max_ms: Option<u32>,
}

/// Heartbeats of `stream` in `[since_ms, until_ms)` grouped into buckets of
/// `bucket_ms` starting at `since_ms`; buckets without heartbeats are
/// absent. Hours whose raw heartbeats were already pruned come from the
/// hourly rollups (so a long range still shows up/down). Oldest first.
pub fn buckets(
    conn: &Connection,
    tail: &Tail,
    stream: &str,
    since_ms: i64,
    until_ms: i64,
    bucket_ms: i64,
) -> rusqlite::Result<Vec<BucketRow>> {
    let bucket_ms = bucket_ms.max(1);
    let raw = raw(conn, tail, stream, since_ms, until_ms)?.unwrap_or_default();
    let mut out: Vec<BucketRow> = Vec::new();
    // (bucket index, latency sum) of the bucket being filled.
    let mut sum = 0u64;
    for h in &raw {
        let start_ms = since_ms + (h.ts_ms - since_ms).div_euclid(bucket_ms) * bucket_ms;
        if out.last().is_none_or(|b| b.start_ms != start_ms) {
            finish_bucket(out.last_mut(), sum);
            sum = 0;
            out.push(BucketRow {
                start_ms,
                probes: 0,
                ok: 0,
                latency_avg_ms: None,
                latency_max_ms: None,
            });
        }
        let b = out.last_mut().expect("pushed above");
        b.probes += 1;
        if h.ok {
            b.ok += 1;
            sum += u64::from(h.latency_ms);
            b.latency_max_ms = Some(b.latency_max_ms.unwrap_or(0).max(h.latency_ms));
        }
    }
    finish_bucket(out.last_mut(), sum);
    // Older hours from rollups, where no raw heartbeat is left.
    let first_raw = out.first().map(|b| b.start_ms).unwrap_or(until_ms);
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<BucketRow> {
        let idx: i64 = r.get(0)?;
        Ok(BucketRow {
            start_ms: since_ms + idx * bucket_ms,
            probes: r.get::<_, i64>(1)?.clamp(0, u32::MAX as i64) as u32,
            ok: r.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
            latency_avg_ms: r.get(3)?,
            latency_max_ms: r
                .get::<_, Option<i64>>(4)?
                .map(|v| v.clamp(0, u32::MAX as i64) as u32),
        })
    };
    let mut stmt = conn.prepare_cached(
        "SELECT (r.hour_ms - ?2) / ?4, sum(r.probes), sum(r.ok),
                sum(r.latency_sum_ms) * 1.0 / nullif(sum(r.ok), 0), max(r.latency_max_ms)
         FROM rollups r
         WHERE r.stream_id = (SELECT id FROM streams WHERE name = ?1)
           AND r.hour_ms >= ?2 AND r.hour_ms < ?3
         GROUP BY 1 ORDER BY 1",
    )?;
    let older = stmt
        .query_map(params![stream, since_ms, first_raw, bucket_ms], map)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !older.is_empty() {
        let mut merged: Vec<BucketRow> = older
            .into_iter()
            .filter(|b| b.start_ms + bucket_ms <= first_raw)
            .collect();
        merged.extend(out);
        out = merged;
    }
    Ok(out)
}

/// Sets the mean latency of a filled bucket from its sum.
fn finish_bucket(b: Option<&mut BucketRow>, latency_sum: u64) {
    if let Some(b) = b {
        if b.ok > 0 {
            b.latency_avg_ms = Some(latency_sum as f64 / f64::from(b.ok));
        }
    }
}

/// Probes and successful probes of `stream` in `[since_ms, until_ms)`:
/// raw heartbeats where they are kept, hourly rollups before that.
pub fn uptime(
    conn: &Connection,
    tail: &Tail,
    stream: &str,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<(u64, u64)> {
    let raw = raw(conn, tail, stream, since_ms, until_ms)?.unwrap_or_default();
    uptime_of(conn, stream, &raw, since_ms, until_ms)
}

/// [`uptime`] over raw heartbeats already read: `raw` must be what [`raw`]
/// returns for `[since_ms, until_ms)` (a caller that has a longer range
/// slices it instead of reading the blocks again).
pub fn uptime_of(
    conn: &Connection,
    stream: &str,
    raw: &[Heartbeat],
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<(u64, u64)> {
    let probes = raw.len() as u64;
    let ok = raw.iter().filter(|h| h.ok).count() as u64;
    let first_raw_hour = super::retention::hour_start(raw.first().map_or(until_ms, |h| h.ts_ms));
    let (rp, rok): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT sum(r.probes), sum(r.ok)
         FROM rollups r
         WHERE r.stream_id = (SELECT id FROM streams WHERE name = ?1)
           AND r.hour_ms >= ?2 AND r.hour_ms < ?3",
        params![stream, since_ms, first_raw_hour],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let n = |v: i64| v.max(0) as u64;
    Ok((probes + n(rp.unwrap_or(0)), ok + n(rok.unwrap_or(0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::init(&mut c, None).unwrap();
        c.execute(
            "INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (1, 'cam', 'rtsp', 'x', 0)",
            [],
        )
        .unwrap();
        c
    }

    const H: i64 = 3_600_000;
    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % H;

    #[test]
    fn buckets_and_uptime_combine_rollups_and_heartbeats() {
        let c = db();
        // Hours 0-1 only as rollups (raw pruned): 10 probes, 5 ok each.
        for h in 0..2 {
            c.execute(
                "INSERT INTO rollups VALUES (1, ?1, 10, 5, 500, 150)",
                [T0 + h * H],
            )
            .unwrap();
        }
        // Hours 2-3 raw: one probe every 10 min, the first of each hour
        // failing; the last two not written yet (in the tail).
        let tail = Tail::default();
        for i in 0..12 {
            let hb = Heartbeat {
                ts_ms: T0 + 2 * H + i * 600_000,
                ok: i % 6 != 0,
                latency_ms: 100 + i as u32,
                reason: None,
                flags: 0,
            };
            if i < 10 {
                blocks::insert(&c, 1, &blocks::Block::new(&hb)).unwrap();
            } else {
                tail.push(&"cam".into(), &hb);
            }
        }
        // A rollup for hour 2 also exists: it must not be counted twice.
        c.execute(
            "INSERT INTO rollups VALUES (1, ?1, 6, 5, 500, 105)",
            [T0 + 2 * H],
        )
        .unwrap();
        let (p, ok) = uptime(&c, &tail, "cam", T0, T0 + 4 * H).unwrap();
        assert_eq!((p, ok), (20 + 12, 10 + 10));
        let b = buckets(&c, &tail, "cam", T0, T0 + 4 * H, H).unwrap();
        assert_eq!(b.len(), 4, "{b:?}");
        assert_eq!((b[0].start_ms, b[0].probes, b[0].ok), (T0, 10, 5));
        assert_eq!(b[0].latency_avg_ms, Some(100.0));
        assert_eq!((b[2].start_ms, b[2].probes, b[2].ok), (T0 + 2 * H, 6, 5));
        assert_eq!(b[3].latency_max_ms, Some(111));
        assert_eq!(
            b[3].latency_avg_ms,
            Some((107 + 108 + 109 + 110 + 111) as f64 / 5.0)
        );
        assert!(buckets(&c, &tail, "nope", T0, T0 + 4 * H, H)
            .unwrap()
            .is_empty());
        assert_eq!(uptime(&c, &tail, "nope", T0, T0 + H).unwrap(), (0, 0));
        let h = history(&c, &tail, "cam", T0, T0 + 4 * H, 100)
            .unwrap()
            .unwrap();
        assert_eq!(h.len(), 12);
        assert_eq!(h[11].latency_ms, 111);
        assert_eq!(
            history(&c, &tail, "cam", T0, T0 + 4 * H, 3)
                .unwrap()
                .unwrap()
                .len(),
            3
        );
        assert!(history(&c, &tail, "nope", T0, T0 + H, 3).unwrap().is_none());
    }
}
