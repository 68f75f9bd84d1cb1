//! The figures from a known history: rollups, stored blocks and the tail,
//! window edges, a block both stored and in the tail, streaks, last OK.

use std::sync::Arc;

use rusqlite::Connection;

use super::*;
use crate::store::blocks::{Block, Heartbeat};

const H: i64 = HOUR_MS;
const M: i64 = 60_000;
const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % H;
/// Now: 48 h 30 min after T0; rollups are final before hour 46.
const NOW: i64 = T0 + 48 * H + 30 * M;

fn hb(ts_ms: i64, ok: bool) -> Heartbeat {
    Heartbeat {
        ts_ms,
        ok,
        latency_ms: 10,
        reason: (!ok).then_some(crate::probe::Reason::Timeout),
        flags: 0,
    }
}

fn db() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crate::store::init(&mut c, None).unwrap();
    for (id, name) in [(1, "cam"), (2, "old"), (3, "mid")] {
        c.execute(
            "INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (?1, ?2, 'rtsp', 'x', 0)",
            params![id, name],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('rollup_watermark', ?1)",
        [T0 + 46 * H],
    )
    .unwrap();
    c
}

fn store(c: &Connection, id: i64, hbs: &[Heartbeat]) {
    let mut cur: Option<Block> = None;
    for h in hbs {
        if let Some(b) = cur.as_mut() {
            if b.try_push(h) {
                continue;
            }
            blocks::insert(c, id, b).unwrap();
        }
        cur = Some(Block::new(h));
    }
    if let Some(b) = cur {
        blocks::insert(c, id, &b).unwrap();
    }
}

/// The minute-by-minute history of `cam`: hour 40 all failed, from hour
/// 46 every tenth minute failed, the rest OK.
fn cam_ok(h: i64, m: i64) -> bool {
    h != 40 && !(h >= 46 && m % 10 == 0)
}

/// `cam`: rollups for hours 0-45 (60 probes; hour 10 half OK, hour 40
/// none), raw heartbeats every minute (5 s past) from hour 23 to now: up
/// to hour 47 minute 49 stored, minutes 50-59 of hour 47 stored *and*
/// still in the tail (a flush not yet forgotten), hour 48 only in the
/// tail. `old`: one rollup hour (5) with OKs, no raw heartbeats. `mid`: a
/// rollup for hour 30 and its raw heartbeats, the last OK at 30:15.
fn history() -> (Connection, Tail) {
    let c = db();
    for h in 0..46 {
        let ok = match h {
            10 => 30,
            40 => 0,
            _ => 60,
        };
        c.execute(
            "INSERT INTO rollups VALUES (1, ?1, 60, ?2, 0, 0)",
            params![T0 + h * H, ok],
        )
        .unwrap();
    }
    let minutes = |from: i64, to: i64| (from..to).map(|i| (i / 60, i % 60));
    let raw: Vec<Heartbeat> = minutes(23 * 60, 47 * 60 + 50)
        .map(|(h, m)| hb(T0 + h * H + m * M + 5_000, cam_ok(h, m)))
        .collect();
    store(&c, 1, &raw);
    let tail = Tail::default();
    let cam: Arc<str> = "cam".into();
    for (h, m) in minutes(47 * 60 + 50, 48 * 60 + 30) {
        tail.push(&cam, &hb(T0 + h * H + m * M + 5_000, cam_ok(h, m)));
    }
    for (_, b) in tail.begin_flush(T0 + 48 * H) {
        blocks::insert(&c, 1, &b).unwrap();
    }
    c.execute(
        "INSERT INTO rollups VALUES (2, ?1, 60, 3, 0, 0)",
        [T0 + 5 * H],
    )
    .unwrap();
    c.execute(
        "INSERT INTO rollups VALUES (3, ?1, 4, 2, 0, 0)",
        [T0 + 30 * H],
    )
    .unwrap();
    store(
        &c,
        3,
        &[
            hb(T0 + 30 * H + 5 * M, true),
            hb(T0 + 30 * H + 15 * M, true),
            hb(T0 + 30 * H + 25 * M, false),
            hb(T0 + 30 * H + 35 * M, false),
        ],
    );
    (c, tail)
}

#[test]
fn split_takes_whole_final_hours_from_rollups() {
    let w = T0 + 46 * H;
    // Mid-hour start: its partial hour raw, whole hours up to the watermark
    // from rollups, the rest raw.
    assert_eq!(
        split(T0 + 24 * H + 30 * M, NOW, w),
        Split {
            rolled: (T0 + 25 * H, w),
            raw: [(T0 + 24 * H + 30 * M, T0 + 25 * H), (w, NOW)],
        }
    );
    // Aligned start: no leading raw part.
    assert_eq!(split(T0, NOW, w).raw[0], (T0, T0));
    // A window ending before the watermark: rollups up to its last whole hour.
    assert_eq!(
        split(T0, T0 + 10 * H + M, w),
        Split {
            rolled: (T0, T0 + 10 * H),
            raw: [(T0, T0), (T0 + 10 * H, T0 + 10 * H + M)]
        }
    );
    // Inside one hour, or no retention pass yet: all raw.
    let all_raw = |s: i64, u: i64, w: i64| split(s, u, w).raw[0] == (s, u);
    assert!(all_raw(T0 + M, T0 + 2 * M, w));
    assert!(all_raw(T0, NOW, i64::MIN));
}

#[test]
fn figures_from_rollups_blocks_and_tail() {
    let (c, tail) = history();
    let since24 = NOW - DAY_MS;
    // 24 h: hour 24 minutes 30-59 raw (30 OK), hours 25-45 from rollups
    // (1260, hour 40 failed), hours 46-47 and 48:00-48:29 raw (150, every
    // tenth minute failed: 15).
    let want24 = Counts {
        probes: 30 + 1260 + 150,
        ok: 30 + 1200 + 135,
    };
    // 30 d: every rollup hour 0-45 (2760, 30 + 60 failed) plus the same raw.
    let want30 = Counts {
        probes: 2760 + 150,
        ok: 2670 + 135,
    };
    let (got24, last) = one(&c, &tail, "cam", since24, NOW).unwrap().unwrap();
    assert_eq!(got24, want24);
    let last_ok = T0 + 48 * H + 29 * M + 5_000;
    assert_eq!(last, Some(last_ok));
    assert_eq!(
        one(&c, &tail, "cam", NOW - 30 * DAY_MS, NOW)
            .unwrap()
            .unwrap()
            .0,
        want30
    );
    let all = all(&c, &tail, &[since24, NOW - 30 * DAY_MS], NOW, None).unwrap();
    assert_eq!(all["cam"].windows, vec![want24, want30]);
    assert_eq!(all["cam"].last_ok_ms, Some(last_ok));
    // `old` has only a rollup hour: its last OK is that hour's start.
    assert_eq!(all["old"].windows[1], Counts { probes: 60, ok: 3 });
    assert_eq!(all["old"].windows[0], Counts::default());
    assert_eq!(all["old"].last_ok_ms, Some(T0 + 5 * H));
    // `mid`'s hour is rolled up, its raw heartbeats kept: exact last OK.
    assert_eq!(all["mid"].last_ok_ms, Some(T0 + 30 * H + 15 * M));
    assert_eq!(
        one(&c, &tail, "mid", NOW - 30 * DAY_MS, NOW)
            .unwrap()
            .unwrap(),
        (Counts { probes: 4, ok: 2 }, Some(T0 + 30 * H + 15 * M))
    );
    assert_eq!(all["cam"].windows[0].ratio(), Some(1365.0 / 1440.0));
    assert_eq!(one(&c, &tail, "nope", since24, NOW).unwrap(), None);
}

#[test]
fn window_edges_are_half_open_and_to_the_minute() {
    let (c, tail) = history();
    // [47:10:05, 47:20:05): the heartbeat at the start counts, the one at
    // the end does not; 47:10 failed.
    let a = T0 + 47 * H + 10 * M + 5_000;
    let (n, _) = one(&c, &tail, "cam", a, a + 10 * M).unwrap().unwrap();
    assert_eq!(n, Counts { probes: 10, ok: 9 });
    let all = all(&c, &tail, &[a], a + 10 * M, None).unwrap();
    assert_eq!(all["cam"].windows[0], n);
    // One ms later, the failed one is out.
    let (n, _) = one(&c, &tail, "cam", a + 1, a + 10 * M).unwrap().unwrap();
    assert_eq!(n, Counts { probes: 9, ok: 9 });
    // And one ms more at the end takes in the next one (47:20, failed).
    let (n, _) = one(&c, &tail, "cam", a + 1, a + 10 * M + 1)
        .unwrap()
        .unwrap();
    assert_eq!(n, Counts { probes: 10, ok: 9 });
    // An empty window: nothing monitored.
    let (n, last) = one(&c, &tail, "cam", a, a).unwrap().unwrap();
    assert_eq!((n.ratio(), last), (None, None));
}

#[test]
fn a_pruned_leading_partial_hour_counts_nothing() {
    let (c, tail) = history();
    // Hour 5's raw heartbeats were never kept: [5:30, 7:00) is hour 6 only.
    let (n, _) = one(&c, &tail, "cam", T0 + 5 * H + 30 * M, T0 + 7 * H)
        .unwrap()
        .unwrap();
    assert_eq!(n, Counts { probes: 60, ok: 60 });
    // Hour 23's are kept: [23:30, 25:00) is 30 raw + hour 24's rollup.
    let (n, _) = one(&c, &tail, "cam", T0 + 23 * H + 30 * M, T0 + 25 * H)
        .unwrap()
        .unwrap();
    assert_eq!(n.probes, 90);
}

#[test]
fn the_streak_reaches_back_over_restarts() {
    let c = db();
    for (ts, from, to) in [
        (100, "unknown", "up"),
        (500, "up", "down"),
        (900, "down", "up"),
        (1200, "unknown", "up"),
    ] {
        c.execute(
            "INSERT INTO events (stream_id, ts_ms, from_state, to_state) VALUES (1, ?1, ?2, ?3)",
            params![ts, from, to],
        )
        .unwrap();
    }
    // Up since 900: the restart at 1200 continued it.
    assert_eq!(
        streak(&c, "cam", "up", Some(1200)).unwrap(),
        Streak {
            state: "up",
            since_ms: Some(900)
        }
    );
    // Down on the board, not committed yet: the board's time.
    assert_eq!(
        streak(&c, "cam", "down", Some(1500)).unwrap().since_ms,
        Some(1500)
    );
    // Unknown is the board's only.
    assert_eq!(
        streak(&c, "cam", "unknown", Some(1600)).unwrap(),
        Streak {
            state: "unknown",
            since_ms: Some(1600)
        }
    );
    assert_eq!(
        streak(&c, "old", "up", None).unwrap().since_ms,
        None,
        "no events, no board time"
    );
}

#[test]
fn cached_rollup_sums_hold_until_the_hours_change() {
    let (c, tail) = history();
    let cache = RollupCache::default();
    let sinces = [NOW - DAY_MS, NOW - 30 * DAY_MS];
    let plain = all(&c, &tail, &sinces, NOW, None).unwrap();
    assert_eq!(all(&c, &tail, &sinces, NOW, Some(&cache)).unwrap(), plain);
    // A rollup changed behind the cache's back (never happens to final
    // hours): the same hours keep the cached sums, which proves the cache
    // is used...
    c.execute(
        "UPDATE rollups SET probes = 1000 WHERE stream_id = 1 AND hour_ms = ?1",
        [T0 + 30 * H],
    )
    .unwrap();
    assert_eq!(all(&c, &tail, &sinces, NOW, Some(&cache)).unwrap(), plain);
    // ...and a watermark moved by retention (hour 46 rolled up, as its
    // raw heartbeats say) means other hours: read again.
    roll_up_hour_46(&c);
    let fresh = all(&c, &tail, &sinces, NOW, Some(&cache)).unwrap();
    assert_eq!(fresh, all(&c, &tail, &sinces, NOW, None).unwrap());
    assert_eq!(
        fresh["cam"].windows[1].probes,
        plain["cam"].windows[1].probes + 940,
        "the changed hour is read"
    );
}

/// An hour later (the watermark moved too), the cached sums are moved by
/// the hours that left and entered each window, not rescanned: the same
/// figures as a scan; a rollup changed in the middle of the range behind
/// the cache's back stays unseen, which proves no rescan happened.
#[test]
fn cached_sums_move_with_the_hours() {
    let (c, tail) = history();
    // History older than the longest window (else every move rescans).
    c.execute(
        "INSERT INTO rollups VALUES (2, ?1, 60, 60, 0, 0)",
        [T0 - 40 * DAY_MS],
    )
    .unwrap();
    let cache = RollupCache::default();
    let at = |now: i64| [now - DAY_MS, now - 7 * DAY_MS, now - 30 * DAY_MS];
    all(&c, &tail, &at(NOW), NOW, Some(&cache)).unwrap();
    // An hour later: hour 46 rolled up (as its raw heartbeats say).
    roll_up_hour_46(&c);
    let later = NOW + H;
    let moved = all(&c, &tail, &at(later), later, Some(&cache)).unwrap();
    assert_eq!(moved, all(&c, &tail, &at(later), later, None).unwrap());
    // 24 h now starts at 25:30: 30 raw minutes, rollups of hours 26-46,
    // raw hour 47 and 48:00-48:29.
    assert_eq!(moved["cam"].windows[0].probes, 30 + 21 * 60 + 90);
    // Behind the cache's back, then another hour: still the moved sums.
    c.execute(
        "UPDATE rollups SET ok = 0 WHERE stream_id = 1 AND hour_ms = ?1",
        [T0 + 30 * H],
    )
    .unwrap();
    c.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'rollup_watermark'",
        [T0 + 48 * H],
    )
    .unwrap();
    c.execute(
        "INSERT INTO rollups VALUES (1, ?1, 60, 54, 0, 0)",
        [T0 + 47 * H],
    )
    .unwrap();
    let later = NOW + 2 * H;
    let moved = all(&c, &tail, &at(later), later, Some(&cache)).unwrap();
    let scanned = all(&c, &tail, &at(later), later, None).unwrap();
    assert_eq!(
        moved["cam"].windows[2].ok,
        scanned["cam"].windows[2].ok + 60,
        "hour 30 was not read again"
    );
    assert_eq!(
        moved["cam"].windows[2].probes,
        scanned["cam"].windows[2].probes
    );
}

/// The hourly pass an hour later: hour 46 rolled up (as its raw heartbeats
/// say) and the watermark moved past it.
fn roll_up_hour_46(c: &rusqlite::Connection) {
    c.execute(
        "INSERT INTO rollups VALUES (1, ?1, 60, 54, 0, 0)",
        [T0 + 46 * H],
    )
    .unwrap();
    c.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'rollup_watermark'",
        [T0 + 47 * H],
    )
    .unwrap();
}
