//! Retention and hourly rollups, so the card never fills.
//!
//! Each pass (hourly, from the recorder thread, on its connection):
//! 1. re-aggregates the hours from the watermark up to the current hour into
//!    `rollups` (the last finished hour is redone next time, so heartbeats
//!    committed late still count);
//! 2. deletes raw heartbeats older than `heartbeat_days`, but never from hours
//!    not yet rolled up;
//! 3. deletes rollups and events older than `rollup_days`.
//!
//! A clock that reads before 2020 (a Pi without RTC that booted in 1970) is
//! not trusted for deletion: the pass only rolls up.

use rusqlite::{params, Connection, OptionalExtension};

/// One hour in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in ms.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// 2020-01-01T00:00:00Z: anything earlier is an unset clock.
pub const SANE_EPOCH_MS: i64 = 1_577_836_800_000;

/// Retention settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub heartbeat_days: u32,
    pub rollup_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            heartbeat_days: 7,
            rollup_days: 730,
        }
    }
}

/// What a pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub hours_rolled: u64,
    pub heartbeats_deleted: u64,
    pub rollups_deleted: u64,
    pub events_deleted: u64,
}

/// Start of the UTC hour containing `ts_ms`.
pub fn hour_start(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Runs one retention pass at time `now_ms`.
pub fn run(conn: &mut Connection, now_ms: i64, policy: &Policy) -> rusqlite::Result<Report> {
    let mut report = Report::default();
    let tx = conn.transaction()?;
    let current_hour = hour_start(now_ms);
    let watermark: Option<i64> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'rollup_watermark'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let from = match watermark {
        Some(w) => w,
        None => match tx.query_row("SELECT min(ts_ms) FROM heartbeats", [], |r| {
            r.get::<_, Option<i64>>(0)
        })? {
            Some(min) => hour_start(min),
            None => current_hour,
        },
    };
    if from < current_hour {
        report.hours_rolled = ((current_hour - from) / HOUR_MS) as u64;
        tx.execute(
            "INSERT OR REPLACE INTO rollups (stream_id, hour_ms, probes, ok, latency_sum_ms, latency_max_ms)
             SELECT stream_id, (ts_ms / ?3) * ?3, count(*), sum(ok),
                    coalesce(sum(CASE WHEN ok THEN latency_ms END), 0),
                    coalesce(max(CASE WHEN ok THEN latency_ms END), 0)
             FROM heartbeats WHERE ts_ms >= ?1 AND ts_ms < ?2
             GROUP BY stream_id, ts_ms / ?3",
            params![from, current_hour, HOUR_MS],
        )?;
        // Redo the last finished hour next time: late commits land there.
        let next = (current_hour - HOUR_MS).max(from);
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_watermark', ?1)",
            [next],
        )?;
    }
    if now_ms >= SANE_EPOCH_MS {
        let rolled_up_to = current_hour - HOUR_MS;
        let hb_cutoff = (now_ms - i64::from(policy.heartbeat_days) * DAY_MS).min(rolled_up_to);
        report.heartbeats_deleted =
            tx.execute("DELETE FROM heartbeats WHERE ts_ms < ?1", [hb_cutoff])? as u64;
        let long_cutoff = now_ms - i64::from(policy.rollup_days) * DAY_MS;
        report.rollups_deleted =
            tx.execute("DELETE FROM rollups WHERE hour_ms < ?1", [long_cutoff])? as u64;
        report.events_deleted =
            tx.execute("DELETE FROM events WHERE ts_ms < ?1", [long_cutoff])? as u64;
    }
    tx.commit()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::init(&mut c, None).unwrap();
        c.execute("INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (1, 'a', 'rtsp', 'x', 0)", [])
            .unwrap();
        c
    }

    fn hb(c: &Connection, ts: i64, ok: bool, lat: i64) {
        c.execute(
            "INSERT INTO heartbeats (stream_id, ts_ms, ok, latency_ms) VALUES (1, ?1, ?2, ?3)",
            params![ts, ok as i64, lat],
        )
        .unwrap();
    }

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS; // an hour boundary in 2027

    #[test]
    fn rolls_up_hours_and_prunes_old_heartbeats() {
        let mut c = db();
        // 10 days of one heartbeat every 10 minutes, every third one failing.
        for i in 0..(10 * 24 * 6) {
            hb(&c, T0 + i * 600_000, i % 3 != 0, 100 + i % 7);
        }
        let now = T0 + 10 * DAY_MS + 5 * 60_000;
        let r = run(
            &mut c,
            now,
            &Policy {
                heartbeat_days: 7,
                rollup_days: 730,
            },
        )
        .unwrap();
        assert_eq!(r.hours_rolled, 240);
        let rollups: i64 = c
            .query_row("SELECT count(*) FROM rollups", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rollups, 240);
        let (probes, ok): (i64, i64) = c
            .query_row(
                "SELECT probes, ok FROM rollups WHERE hour_ms = ?1",
                [T0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((probes, ok), (6, 4));
        let oldest: i64 = c
            .query_row("SELECT min(ts_ms) FROM heartbeats", [], |r| r.get(0))
            .unwrap();
        assert!(
            oldest >= now - 7 * DAY_MS,
            "heartbeats older than 7 days were kept"
        );
        // Everything before now - 7 d: three days of rows plus the one 5 min before the cut.
        assert_eq!(r.heartbeats_deleted, 3 * 24 * 6 + 1);
        // A second pass redoes only the last finished hour.
        let r2 = run(&mut c, now + 60_000, &Policy::default()).unwrap();
        assert_eq!(r2.hours_rolled, 1);
        assert_eq!(r2.heartbeats_deleted, 0);
    }

    #[test]
    fn unset_clock_never_deletes() {
        let mut c = db();
        hb(&c, T0, true, 5);
        let r = run(
            &mut c,
            30_000,
            &Policy {
                heartbeat_days: 1,
                rollup_days: 1,
            },
        )
        .unwrap();
        assert_eq!(r.heartbeats_deleted, 0);
        let n: i64 = c
            .query_row("SELECT count(*) FROM heartbeats", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
