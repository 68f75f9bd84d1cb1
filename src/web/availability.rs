//! Availability in the API, on the stream page and in `/metrics`: the
//! figures of [`crate::store::availability`] joined with the board (the
//! current health for the streak, the last OK seen since the start) and the
//! config (which streams, their interval for the time estimates).
//!
//! What the figures mean (a heartbeat stands for one probe interval; time
//! without stored heartbeats, the box offline included, is not monitored)
//! is written once, in the store module and in docs/INTEGRATIONS.md.

use std::collections::HashMap;
use std::fmt::Write as _;

use rusqlite::Connection;
use serde_json::{json, Value};

use super::{HttpError, WebCtx};
use crate::report::iso;
use crate::state::Health;
use crate::store::availability::{self, Counts, Streak, WINDOWS};
use crate::store::retention::DAY_MS;

/// One configured stream's figures over the standard [`WINDOWS`].
#[derive(Clone, Debug)]
pub struct StreamFigures {
    pub name: String,
    pub windows: [Counts; 3],
    pub streak: Streak,
    pub last_ok_ms: Option<i64>,
}

/// The board's view of a stream: streak state and since, last OK.
fn board_facts(ctx: &WebCtx, name: &str) -> (&'static str, Option<i64>, Option<i64>) {
    let board = ctx.board.lock().expect("board lock");
    match board.get(name) {
        Some(s) => (s.health.as_str(), s.health_since_ms, s.last_ok_ms),
        None => (Health::Unknown.as_str(), None, None),
    }
}

/// Figures of every configured stream, in config order, at `now_ms`.
///
/// # Errors
/// A database error (busy, damaged).
pub fn all_streams(
    ctx: &WebCtx,
    conn: &Connection,
    now_ms: i64,
) -> rusqlite::Result<Vec<StreamFigures>> {
    let cfg = ctx.config.read().expect("config lock").clone();
    let sinces: Vec<i64> = WINDOWS.iter().map(|(_, len)| now_ms - len).collect();
    let mut figures = availability::all(
        conn,
        &ctx.heartbeat_tail,
        &sinces,
        now_ms + 1,
        Some(&ctx.rollup_cache),
    )?;
    let mut out = Vec::with_capacity(cfg.streams.len());
    for sc in &cfg.streams {
        let f = figures.remove(&sc.name).unwrap_or_default();
        let (state, since, board_ok) = board_facts(ctx, &sc.name);
        let mut windows = [Counts::default(); 3];
        for (w, c) in windows.iter_mut().zip(f.windows) {
            *w = c;
        }
        out.push(StreamFigures {
            name: sc.name.clone(),
            windows,
            streak: availability::streak(conn, &sc.name, state, since)?,
            last_ok_ms: board_ok.max(f.last_ok_ms),
        });
    }
    Ok(out)
}

fn counts_json(c: &Counts) -> Value {
    json!({ "ratio": c.ratio(), "probes": c.probes, "failed": c.failed() })
}

fn streak_json(s: &Streak, now_ms: i64, tz: &jiff::tz::TimeZone) -> Value {
    json!({
        "state": s.state,
        "since": s.since_ms.map(|t| iso(t, tz)),
        "since_ms": s.since_ms,
        "seconds": s.since_ms.map(|t| ((now_ms - t) / 1000).max(0)),
    })
}

/// The fields `/api/streams` adds to a stream's object: `availability`
/// (per window: `ratio`, `probes`, `failed`), `streak`, `last_ok`,
/// `last_ok_ms`, `last_ok_age_s`.
pub fn stream_fields(f: &StreamFigures, now_ms: i64, tz: &jiff::tz::TimeZone) -> Value {
    let mut windows = serde_json::Map::new();
    for ((label, _), c) in WINDOWS.iter().zip(&f.windows) {
        windows.insert((*label).into(), counts_json(c));
    }
    json!({
        "availability": windows,
        "streak": streak_json(&f.streak, now_ms, tz),
        "last_ok": f.last_ok_ms.map(|t| iso(t, tz)),
        "last_ok_ms": f.last_ok_ms,
        "last_ok_age_s": f.last_ok_ms.map(|t| ((now_ms - t) / 1000).max(0)),
    })
}

/// Latest time a window may name: the end of year 9999 (RFC 3339's last).
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// A `since`/`until` of the availability and CSV routes: epoch ms or RFC
/// 3339 ([`super::api::parse_time`]) from 1970 to 9999, so window
/// arithmetic (hours, windows, defaults) cannot overflow.
pub(super) fn parse_window_time(v: &str) -> Result<i64, HttpError> {
    let t = super::api::parse_time(v)?;
    if (0..=MAX_TIME_MS).contains(&t) {
        Ok(t)
    } else {
        Err(HttpError::new(
            400,
            format!("time {v:?} is out of range (1970 to 9999)"),
        ))
    }
}

/// `/api/streams/{name}/availability?since=…&until=…` (default: now, and
/// the 24 hours before `until`). `until` after now is taken as now; `since` must be before
/// `until` and within `retention.rollup_days`.
pub fn endpoint(
    ctx: &WebCtx,
    conn: &Connection,
    name: &str,
    query: &str,
) -> Result<Value, HttpError> {
    let now = ctx.clock.now_ms();
    let cfg = ctx.config.read().expect("config lock").clone();
    let (mut since, mut until) = (None, now);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "since" => since = Some(parse_window_time(&v)?),
            "until" => until = parse_window_time(&v)?,
            _ => return Err(HttpError::new(400, format!("unknown parameter {k:?}"))),
        }
    }
    let until = until.min(now);
    let since = since.unwrap_or(until - DAY_MS);
    if since >= until {
        return Err(HttpError::new(
            400,
            "since must be before until (and before now)",
        ));
    }
    let kept_days = i64::from(cfg.rollup_retention_days);
    if since < now - kept_days * DAY_MS {
        return Err(HttpError::new(
            400,
            format!("since is older than the history kept (retention.rollup_days: {kept_days})"),
        ));
    }
    let db_err = |e: rusqlite::Error| {
        tracing::error!("availability query: {e}");
        HttpError::new(503, "database busy or unavailable")
    };
    let tail = &ctx.heartbeat_tail;
    let sc = cfg.streams.iter().find(|s| s.name == name);
    let found = availability::one(conn, tail, name, since, until).map_err(db_err)?;
    let (counts, _) = match (found, sc) {
        (Some(f), _) => f,
        (None, Some(_)) => (Counts::default(), None),
        (None, None) => return Err(HttpError::new(404, "no such stream")),
    };
    let (state, board_since, board_ok) = board_facts(ctx, name);
    let streak = availability::streak(conn, name, state, board_since).map_err(db_err)?;
    let last_ok = match board_ok {
        Some(t) => Some(t),
        None => availability::one(conn, tail, name, now - 30 * DAY_MS, now + 1)
            .map_err(db_err)?
            .and_then(|(_, t)| t),
    };
    let tz = cfg.tz();
    let window_s = (until - since) / 1000;
    // Seconds are estimates: a heartbeat stands for one interval (today's).
    let interval_s = sc.map(|s| s.interval.as_secs() as i64);
    let monitored = interval_s.map(|i| (counts.probes as i64 * i).min(window_s));
    let down = monitored.map(|m| match counts.probes {
        0 => 0,
        p => (m as f64 * counts.failed() as f64 / p as f64).round() as i64,
    });
    Ok(json!({
        "stream": name,
        "since": iso(since, &tz),
        "since_ms": since,
        "until": iso(until, &tz),
        "until_ms": until,
        "window_s": window_s,
        "probes": counts.probes,
        "ok": counts.ok,
        "failed": counts.failed(),
        "availability": counts.ratio(),
        "interval_s": interval_s,
        "monitored_s_est": monitored,
        "down_s_est": down,
        "unmonitored_s_est": monitored.map(|m| window_s - m),
        "streak": streak_json(&streak, now, &tz),
        "last_ok": last_ok.map(|t| iso(t, &tz)),
        "last_ok_ms": last_ok,
        "last_ok_age_s": last_ok.map(|t| ((now - t) / 1000).max(0)),
    }))
}

/// Appends the availability gauges to a `/metrics` answer: per stream
/// `streampulse_stream_availability_ratio{stream,window}` (absent for a
/// window without heartbeats), `streampulse_stream_streak_seconds{stream,state}`,
/// `streampulse_stream_last_ok_age_seconds{stream}` (absent if no OK in
/// 30 days), and box-wide `streampulse_availability_ratio{window}`.
pub fn write_metrics(out: &mut String, figures: &[StreamFigures], now_ms: i64) {
    let label = super::metrics::label;
    let fam = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
    };
    fam(
        out,
        "streampulse_stream_availability_ratio",
        "Share of the stream's stored heartbeats in the window that got a frame; time without heartbeats (daemon stopped, box offline) is excluded.",
    );
    for f in figures {
        for ((w, _), c) in WINDOWS.iter().zip(&f.windows) {
            if let Some(r) = c.ratio() {
                let _ = writeln!(
                    out,
                    "streampulse_stream_availability_ratio{{stream=\"{}\",window=\"{w}\"}} {r}",
                    label(&f.name)
                );
            }
        }
    }
    fam(
        out,
        "streampulse_stream_streak_seconds",
        "Seconds the stream has been in its current debounced state (the state label), over restarts.",
    );
    for f in figures {
        if let Some(since) = f.streak.since_ms {
            let _ = writeln!(
                out,
                "streampulse_stream_streak_seconds{{stream=\"{}\",state=\"{}\"}} {}",
                label(&f.name),
                f.streak.state,
                ((now_ms - since) as f64 / 1000.0).max(0.0)
            );
        }
    }
    fam(
        out,
        "streampulse_stream_last_ok_age_seconds",
        "Seconds since the stream's last heartbeat with a frame (absent: none in 30 days).",
    );
    for f in figures {
        if let Some(t) = f.last_ok_ms {
            let _ = writeln!(
                out,
                "streampulse_stream_last_ok_age_seconds{{stream=\"{}\"}} {}",
                label(&f.name),
                ((now_ms - t) as f64 / 1000.0).max(0.0)
            );
        }
    }
    fam(
        out,
        "streampulse_availability_ratio",
        "Share of all configured streams' stored heartbeats in the window that got a frame.",
    );
    let mut total: HashMap<&str, Counts> = HashMap::new();
    for f in figures {
        for ((w, _), c) in WINDOWS.iter().zip(&f.windows) {
            let t = total.entry(w).or_default();
            t.probes += c.probes;
            t.ok += c.ok;
        }
    }
    for (w, _) in WINDOWS {
        if let Some(r) = total.get(w).and_then(Counts::ratio) {
            let _ = writeln!(out, "streampulse_availability_ratio{{window=\"{w}\"}} {r}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_escape_names_and_skip_empty_windows() {
        let f = StreamFigures {
            name: "a \"b\"\\c".into(),
            windows: [
                Counts { probes: 4, ok: 3 },
                Counts::default(),
                Counts { probes: 8, ok: 8 },
            ],
            streak: Streak {
                state: "up",
                since_ms: Some(1_000),
            },
            last_ok_ms: Some(61_000),
        };
        let g = StreamFigures {
            name: "g".into(),
            windows: [
                Counts { probes: 4, ok: 1 },
                Counts::default(),
                Counts::default(),
            ],
            streak: Streak {
                state: "unknown",
                since_ms: None,
            },
            last_ok_ms: None,
        };
        let mut out = String::new();
        write_metrics(&mut out, &[f, g], 121_000);
        let has = |l: &str| assert!(out.lines().any(|x| x == l), "{l} in\n{out}");
        has(r#"streampulse_stream_availability_ratio{stream="a \"b\"\\c",window="24h"} 0.75"#);
        has(r#"streampulse_stream_availability_ratio{stream="a \"b\"\\c",window="30d"} 1"#);
        has(r#"streampulse_stream_streak_seconds{stream="a \"b\"\\c",state="up"} 120"#);
        has(r#"streampulse_stream_last_ok_age_seconds{stream="a \"b\"\\c"} 60"#);
        has(r#"streampulse_availability_ratio{window="24h"} 0.5"#);
        has(r#"streampulse_availability_ratio{window="30d"} 1"#);
        assert!(
            !out.contains("window=\"7d\"}"),
            "no heartbeats in 7d: {out}"
        );
        assert!(!out.contains("stream=\"g\",state"), "no since: {out}");
    }
}
