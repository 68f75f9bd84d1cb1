//! Retention and hourly rollups, so the card never fills.
//!
//! Each pass (hourly, from the recorder thread, on its connection):
//! 1. re-aggregates the hours from the watermark up to the current hour into
//!    `rollups`, from the sums each heartbeat block carries (the last
//!    finished hour is redone next time, so blocks written late, up to a
//!    window after it ended, still count);
//! 2. deletes raw heartbeat blocks older than `heartbeat_days`, but never
//!    from hours not yet rolled up, one hour per transaction (so a nearly full disk can
//!    still delete: see [`prune_oldest_day`]);
//! 3. deletes rollups and events older than `rollup_days`.
//!
//! A clock that reads before 2020 (a Pi without RTC that booted in 1970) is
//! not trusted for deletion: the pass only rolls up.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::SANE_EPOCH_MS;

/// One hour in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in ms.
pub const DAY_MS: i64 = 24 * HOUR_MS;
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

/// Calendar time for retention that a forward jump of the wall clock cannot
/// drag ahead.
///
/// It follows the wall clock, but never runs ahead of the first plausible
/// (≥ 2020) reading plus the monotonic time elapsed since. So a wall clock
/// that jumps forward during a run (a wrong RTC, a bad NTP answer, a manual
/// `date`) never makes retention delete more; a backward jump only makes it
/// delete less. The price: after a legitimate forward correction (e.g. a
/// `fake-hwclock` boot at the last shutdown's time, then NTP) retention keeps
/// data longer than configured, by the size of the jump, until the next
/// restart. A Pi booting in 1970 anchors at its first plausible reading,
/// i.e. when NTP sets the clock.
#[derive(Debug, Default)]
pub struct SteadyClock {
    /// First plausible wall reading (ms) and the monotonic instant of it.
    anchor: Option<(i64, std::time::Instant)>,
}

impl SteadyClock {
    /// Retention's "now" for a wall reading `wall_ms` taken at `mono`.
    pub fn now_ms(&mut self, wall_ms: i64, mono: std::time::Instant) -> i64 {
        match self.anchor {
            Some((w0, m0)) => {
                let elapsed = i64::try_from(mono.saturating_duration_since(m0).as_millis())
                    .unwrap_or(i64::MAX);
                wall_ms.min(w0.saturating_add(elapsed))
            }
            None => {
                if wall_ms >= SANE_EPOCH_MS {
                    self.anchor = Some((wall_ms, mono));
                }
                wall_ms
            }
        }
    }
}

/// Emergency space recovery when the data partition is full and the policy
/// frees nothing: deletes up to one day of the oldest raw heartbeats, only
/// from hours already rolled up (their summary stays) and never from the
/// last day. Returns the rows deleted; never deletes with an unset clock.
///
/// Deletes in small steps ([`delete_heartbeats_in_steps`]): a delete writes
/// the pages it empties to the WAL first, so one day in one transaction
/// needs about that day's size in free space, which a full partition (with
/// only the recorder's released reserve) does not have.
pub fn prune_oldest_day(conn: &mut Connection, now_ms: i64) -> rusqlite::Result<u64> {
    if now_ms < SANE_EPOCH_MS {
        return Ok(0);
    }
    let oldest: Option<i64> =
        conn.query_row("SELECT min(window_ms) FROM heartbeat_blocks", [], |r| {
            r.get(0)
        })?;
    let watermark: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'rollup_watermark'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let (Some(oldest), Some(watermark)) = (oldest, watermark) else {
        return Ok(0);
    };
    let cutoff = oldest
        .saturating_add(DAY_MS)
        .min(watermark)
        .min(now_ms - DAY_MS);
    delete_heartbeats_in_steps(conn, cutoff)
}

/// Deletes the heartbeat blocks whose window ended by `cutoff_ms`, one hour
/// of windows per transaction from the oldest (the key starts with the
/// window, so each step is one range at the left edge of the tree). SQLite's
/// automatic checkpoint then keeps the WAL near its 1000-page mark. Returns
/// the heartbeats deleted; an error after some steps still returns what was
/// deleted: that space is free.
fn delete_heartbeats_in_steps(conn: &mut Connection, cutoff_ms: i64) -> rusqlite::Result<u64> {
    let below = cutoff_ms.saturating_sub(super::blocks::WINDOW_MS) + 1;
    let mut deleted = 0u64;
    loop {
        let step = (|| {
            let tx = conn.transaction()?;
            let oldest: Option<i64> =
                tx.query_row("SELECT min(window_ms) FROM heartbeat_blocks", [], |r| {
                    r.get(0)
                })?;
            let Some(oldest) = oldest.filter(|w| *w < below) else {
                return Ok(None);
            };
            let upto = (hour_start(oldest) + HOUR_MS).min(below);
            let n: i64 = tx.query_row(
                "SELECT coalesce(sum(probes), 0) FROM heartbeat_blocks WHERE window_ms < ?1",
                [upto],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM heartbeat_blocks WHERE window_ms < ?1", [upto])?;
            tx.commit()?;
            Ok(Some(n.max(0) as u64))
        })();
        match step {
            Ok(Some(n)) => deleted += n,
            Ok(None) => return Ok(deleted),
            Err(e) if deleted == 0 => return Err(e),
            Err(e) => {
                tracing::warn!("retention stopped after deleting {deleted} heartbeats: {e}");
                return Ok(deleted);
            }
        }
    }
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
        None => match tx.query_row("SELECT min(window_ms) FROM heartbeat_blocks", [], |r| {
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
             SELECT stream_id, (window_ms / ?3) * ?3, sum(probes), sum(ok),
                    sum(latency_sum_ms), max(latency_max_ms)
             FROM heartbeat_blocks WHERE window_ms >= ?1 AND window_ms < ?2
             GROUP BY stream_id, window_ms / ?3",
            params![from, current_hour, HOUR_MS],
        )?;
        // Redo the last finished hour next time: late commits land there.
        let next = (current_hour - HOUR_MS).max(from);
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_watermark', ?1)",
            [next],
        )?;
    }
    tx.commit()?;
    if now_ms >= SANE_EPOCH_MS {
        // Raw heartbeats in steps (days of them in one transaction would
        // need that much free space for the WAL), then the small tables.
        let rolled_up_to = current_hour - HOUR_MS;
        let hb_cutoff = (now_ms - i64::from(policy.heartbeat_days) * DAY_MS).min(rolled_up_to);
        report.heartbeats_deleted = delete_heartbeats_in_steps(conn, hb_cutoff)?;
        let long_cutoff = now_ms - i64::from(policy.rollup_days) * DAY_MS;
        let tx = conn.transaction()?;
        report.rollups_deleted =
            tx.execute("DELETE FROM rollups WHERE hour_ms < ?1", [long_cutoff])? as u64;
        report.events_deleted =
            tx.execute("DELETE FROM events WHERE ts_ms < ?1", [long_cutoff])? as u64;
        tx.commit()?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::blocks;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::init(&mut c, None).unwrap();
        c.execute("INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (1, 'a', 'rtsp', 'x', 0)", [])
            .unwrap();
        c
    }

    /// One heartbeat of stream `id`, stored as its own block.
    fn hb_of(c: &Connection, id: i64, ts: i64, ok: bool, lat: u32) {
        let b = blocks::Block::new(&blocks::Heartbeat {
            ts_ms: ts,
            ok,
            latency_ms: lat,
            reason: None,
            flags: 0,
        });
        blocks::insert(c, id, &b).unwrap();
    }

    fn hb(c: &Connection, ts: i64, ok: bool, lat: u32) {
        hb_of(c, 1, ts, ok, lat)
    }

    fn stored(c: &Connection) -> i64 {
        c.query_row(
            "SELECT coalesce(sum(probes), 0) FROM heartbeat_blocks",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn oldest(c: &Connection) -> i64 {
        c.query_row("SELECT min(first_ms) FROM heartbeat_blocks", [], |r| {
            r.get(0)
        })
        .unwrap()
    }

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS; // an hour boundary in 2027

    #[test]
    fn hours_roll_up_from_the_block_sums() {
        let mut c = db();
        // One block: 40 heartbeats 15 s apart, every fourth failing; and
        // a block of the next hour.
        let mk = |i: i64| blocks::Heartbeat {
            ts_ms: T0 + i * 15_000,
            ok: i % 4 != 0,
            latency_ms: 100 + i as u32,
            reason: None,
            flags: 0,
        };
        let mut b = blocks::Block::new(&mk(0));
        for i in 1..40 {
            assert!(b.try_push(&mk(i)));
        }
        blocks::insert(&c, 1, &b).unwrap();
        hb(&c, T0 + HOUR_MS + 5, false, 7);
        run(&mut c, T0 + 2 * HOUR_MS, &Policy::default()).unwrap();
        let r: Vec<(i64, i64, i64, i64, i64)> = c
            .prepare("SELECT hour_ms, probes, ok, latency_sum_ms, latency_max_ms FROM rollups ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let ok_lat: i64 = (0..40).filter(|i| i % 4 != 0).map(|i| 100 + i).sum();
        assert_eq!(r, [(T0, 40, 30, ok_lat, 139), (T0 + HOUR_MS, 1, 0, 0, 0)]);
    }

    #[test]
    fn rolls_up_hours_and_prunes_old_heartbeats() {
        let mut c = db();
        // 10 days of one heartbeat every 10 minutes, every third one failing.
        for i in 0..(10 * 24 * 6) {
            hb(&c, T0 + i * 600_000, i % 3 != 0, (100 + i % 7) as u32);
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
        assert!(
            oldest(&c) >= now - 7 * DAY_MS - blocks::WINDOW_MS,
            "heartbeats older than 7 days (and their window) were kept"
        );
        // Every window that ended before now - 7 d: three days of them (the
        // one 5 min before the cut is in a window that ends after it).
        assert_eq!(r.heartbeats_deleted, 3 * 24 * 6);
        // A second pass redoes only the last finished hour.
        let r2 = run(&mut c, now + 60_000, &Policy::default()).unwrap();
        assert_eq!(r2.hours_rolled, 1);
        assert_eq!(r2.heartbeats_deleted, 0);
    }

    #[test]
    fn steady_clock_ignores_forward_jumps_and_follows_backward_ones() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let mut c = SteadyClock::default();
        // A 1970 boot: passed through (retention never deletes with it), no anchor.
        assert_eq!(c.now_ms(60_000, t0), 60_000);
        // NTP sets the clock: the first plausible reading anchors.
        assert_eq!(c.now_ms(T0, t0 + Duration::from_secs(10)), T0);
        // Ten seconds later the wall clock jumps 30 days ahead: ignored.
        let t = t0 + Duration::from_secs(20);
        assert_eq!(c.now_ms(T0 + 30 * DAY_MS, t), T0 + 10_000);
        // A backward jump is followed (deleting less is always safe).
        assert_eq!(c.now_ms(T0 - 2 * HOUR_MS, t), T0 - 2 * HOUR_MS);
        // Time keeps moving with the monotonic clock.
        let t = t0 + Duration::from_secs(3610);
        assert_eq!(c.now_ms(T0 + 30 * DAY_MS, t), T0 + 3_600_000);
    }

    #[test]
    fn forward_jump_never_prunes_recent_history() {
        use std::time::{Duration, Instant};
        let mut c = db();
        for i in 0..(3 * 24) {
            hb(&c, T0 + i * HOUR_MS, true, 10);
        }
        let now = T0 + 3 * DAY_MS;
        let t0 = Instant::now();
        let mut clock = SteadyClock::default();
        assert_eq!(clock.now_ms(now, t0), now);
        let jumped = clock.now_ms(now + 365 * DAY_MS, t0 + Duration::from_secs(30));
        let r = run(&mut c, jumped, &Policy::default()).unwrap();
        assert_eq!(r.heartbeats_deleted, 0, "{r:?}");
    }

    #[test]
    fn emergency_prune_takes_one_rolled_up_day_and_never_the_last() {
        let mut c = db();
        // 5 days, one heartbeat an hour.
        for i in 0..(5 * 24) {
            hb(&c, T0 + i * HOUR_MS, true, 10);
        }
        let now = T0 + 5 * DAY_MS;
        // Nothing rolled up yet: nothing may go.
        assert_eq!(prune_oldest_day(&mut c, now).unwrap(), 0);
        // A generous policy: the pass only rolls up.
        let keep_all = Policy {
            heartbeat_days: 30,
            rollup_days: 730,
        };
        assert_eq!(run(&mut c, now, &keep_all).unwrap().heartbeats_deleted, 0);
        assert_eq!(prune_oldest_day(&mut c, now).unwrap(), 24);
        assert_eq!(stored(&c), 4 * 24);
        for _ in 0..10 {
            prune_oldest_day(&mut c, now).unwrap();
        }
        assert!(oldest(&c) >= now - DAY_MS, "the last day is never pruned");
        assert_eq!(prune_oldest_day(&mut c, 30_000).unwrap(), 0, "unset clock");
    }

    /// Deleting in steps covers every stream and a 1970
    /// heartbeat (a Pi without RTC) without walking the decades between.
    #[test]
    fn steps_cover_every_stream_and_skip_empty_spans() {
        let mut c = db();
        c.execute("INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (2, 'b', 'rtsp', 'x', 0)", [])
            .unwrap();
        for i in 0..(10 * 24) {
            hb(&c, T0 + i * HOUR_MS, true, 10);
            hb_of(&c, 2, T0 + i * HOUR_MS + 1, true, 5);
        }
        hb_of(&c, 2, 60_000, false, 5);
        let now = T0 + 10 * DAY_MS;
        let t = std::time::Instant::now();
        let r = run(&mut c, now, &Policy::default()).unwrap();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
        // Three days of each stream, plus the 1970 one.
        assert_eq!(r.heartbeats_deleted, 2 * 3 * 24 + 1);
        let left: Vec<(i64, i64)> = c
            .prepare("SELECT stream_id, min(first_ms) FROM heartbeat_blocks GROUP BY stream_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(left, [(1, now - 7 * DAY_MS), (2, now - 7 * DAY_MS + 1)]);
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
        assert_eq!(stored(&c), 1);
    }
}
