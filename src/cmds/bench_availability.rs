//! `streampulse bench-availability` (hidden; run by `make bench`): how long
//! the availability figures of every stream take over 24 h, 7 d and 30 d.
//!
//! Fills a scratch database with `--streams` streams × `--days` days of
//! hourly rollups, plus the raw heartbeat blocks the figures read (every
//! 15 s over the last 25 hours: the 24-hour window's leading partial hour
//! and the hours since the rollup watermark), then times
//! [`crate::store::availability::all`] (what `/api/streams` and `/metrics`
//! call) and [`crate::store::availability::one`] over 30 days (the stream
//! page, the per-stream endpoint), and the streaks of every stream (three
//! state changes each). Prints the figures and one JSON line.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::params;

use crate::store::availability::{self, WINDOWS};
use crate::store::blocks::{self, Block, Heartbeat, Tail};
use crate::store::retention::{hour_start, DAY_MS, HOUR_MS};

/// Arguments of `bench-availability`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Streams in the scratch database.
    #[arg(long, default_value_t = 1000)]
    pub streams: i64,
    /// Days of hourly rollups.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Directory for the scratch database (removed afterwards) [the temp dir].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(args: Args) -> Result<u8> {
    let dir = args.dir.unwrap_or_else(std::env::temp_dir).join(format!(
        "streampulse-bench-availability-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("streampulse.db");
    let result = bench(&path, args.streams, args.days, args.runs.max(1));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench(path: &std::path::Path, streams: i64, days: i64, runs: usize) -> Result<u8> {
    let now = jiff::Timestamp::now().as_millisecond();
    let hour = hour_start(now);
    let watermark = hour - HOUR_MS;
    let t = Instant::now();
    {
        let mut db = crate::store::open(path)?;
        let tx = db.transaction()?;
        for id in 1..=streams {
            tx.execute(
                "INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (?1, ?2, 'rtsp', 'x', 0)",
                params![id, format!("camera {id}")],
            )?;
        }
        // Rollups in key order (hour, stream), as retention appends them.
        {
            let mut ins = tx.prepare("INSERT INTO rollups VALUES (?1, ?2, 240, ?3, ?4, 900)")?;
            let mut h = hour - days * DAY_MS;
            while h < watermark {
                for id in 1..=streams {
                    let ok = if (h / HOUR_MS + id) % 97 == 0 {
                        200
                    } else {
                        240
                    };
                    ins.execute(params![id, h, ok, ok * 120])?;
                }
                h += HOUR_MS;
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('rollup_watermark', ?1)",
            [watermark],
        )?;
        // A few state changes per stream (the streak reads them).
        for id in 1..=streams {
            for (k, (from, to)) in [("unknown", "up"), ("up", "down"), ("down", "up")]
                .iter()
                .enumerate()
            {
                tx.execute(
                    "INSERT INTO events (stream_id, ts_ms, from_state, to_state) VALUES (?1, ?2, ?3, ?4)",
                    params![id, now - (10 - k as i64 * 3) * DAY_MS - id * 1000, from, to],
                )?;
            }
        }
        // Raw heartbeats every 15 s over the last 25 hours.
        let from = blocks::window_of(now - 25 * HOUR_MS);
        let mut w = from;
        while w < now {
            for id in 1..=streams {
                let mut b: Option<Block> = None;
                let mut ts = w + id % 15_000;
                while ts < (w + blocks::WINDOW_MS).min(now) {
                    let hb = Heartbeat {
                        ts_ms: ts,
                        ok: (ts / 15_000 + id) % 50 != 0,
                        latency_ms: 120,
                        reason: None,
                        flags: 0,
                    };
                    match b.as_mut() {
                        Some(b) => {
                            b.try_push(&hb);
                        }
                        None => b = Some(Block::new(&hb)),
                    }
                    ts += 15_000;
                }
                if let Some(b) = b {
                    blocks::insert(&tx, id, &b)?;
                }
            }
            w += blocks::WINDOW_MS;
        }
        tx.commit()?;
    }
    let filled = t.elapsed();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let conn = crate::store::open_read_only(path)?;
    let tail = Tail::default();
    let sinces: Vec<i64> = WINDOWS.iter().map(|(_, len)| now - len).collect();
    // Without the cache: every call scans the rollups (what the first
    // request after a start costs); with it: what the others cost.
    let mut cold_times = Vec::new();
    let mut n = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let f = availability::all(&conn, &tail, &sinces, now + 1, None)?;
        cold_times.push(t.elapsed());
        n = f.len();
    }
    let cache = availability::RollupCache::default();
    availability::all(&conn, &tail, &sinces, now + 1, Some(&cache))?;
    let mut warm_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        availability::all(&conn, &tail, &sinces, now + 1, Some(&cache))?;
        warm_times.push(t.elapsed());
    }
    // An hour later (retention rolled up one more hour): the cached sums
    // move by the hours that left and entered each window.
    {
        let db = crate::store::open(path)?;
        db.execute(
            "INSERT INTO rollups (stream_id, hour_ms, probes, ok, latency_sum_ms, latency_max_ms)
             SELECT id, ?1, 240, 240, 28800, 900 FROM streams",
            [watermark],
        )?;
        db.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'rollup_watermark'",
            [watermark + HOUR_MS],
        )?;
    }
    let later: Vec<i64> = sinces.iter().map(|s| s + HOUR_MS).collect();
    let t = Instant::now();
    availability::all(&conn, &tail, &later, now + HOUR_MS + 1, Some(&cache))?;
    let moved = t.elapsed();
    let mut one_times = Vec::new();
    for i in 0..runs {
        let name = format!("camera {}", 1 + (i as i64 * 7919) % streams);
        let t = Instant::now();
        availability::one(&conn, &tail, &name, now - 30 * DAY_MS, now + 1)?;
        one_times.push(t.elapsed());
    }
    let mut streak_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for id in 1..=streams {
            availability::streak(&conn, &format!("camera {id}"), "up", Some(now))?;
        }
        streak_times.push(t.elapsed());
    }
    let (cold, warm, one_median, streaks) = (
        median(cold_times),
        median(warm_times),
        median(one_times),
        median(streak_times),
    );
    println!(
        "availability of {n} streams over 24 h, 7 d and {days} d of rollups \
         ({} rows; database {:.1} MB, filled in {:.1} s):",
        streams * days * 24,
        size as f64 / 1e6,
        filled.as_secs_f64()
    );
    println!(
        "  all streams, median of {runs}: {:.1} ms scanning the rollups (the first request), {:.1} ms with them cached",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3
    );
    println!(
        "  all streams an hour later (the cached sums moved): {:.1} ms",
        moved.as_secs_f64() * 1e3
    );
    println!(
        "  one stream over 30 d: median {:.2} ms",
        one_median.as_secs_f64() * 1e3
    );
    println!(
        "  the streaks of all streams (from state changes): median {:.1} ms",
        streaks.as_secs_f64() * 1e3
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "availability",
            "streams": n,
            "days": days,
            "all_scan_ms": cold.as_secs_f64() * 1e3,
            "all_cached_ms": warm.as_secs_f64() * 1e3,
            "all_hour_later_ms": moved.as_secs_f64() * 1e3,
            "one_30d_median_ms": one_median.as_secs_f64() * 1e3,
            "streaks_ms": streaks.as_secs_f64() * 1e3,
        })
    );
    Ok(0)
}
