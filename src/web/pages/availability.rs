//! The stream page's availability table: uptime over 24 h, 7 d and 30 d
//! ([`crate::store::availability`]), the current streak, the last OK and
//! the CSV download links.

use rusqlite::Connection;

use super::format::{ago, fmt_duration, fmt_time};
use crate::store::availability::{self, Counts, WINDOWS};
use crate::store::blocks::Tail;
use crate::web::routes::stream_path;

/// One window's row.
pub struct AvailRow {
    pub label: &'static str,
    /// `99.95 %`, or `—` when nothing was monitored.
    pub pct: String,
    pub probes: u64,
    pub failed: u64,
}

/// What the page shows.
pub struct AvailView {
    pub rows: Vec<AvailRow>,
    /// `up for 3 h 12 min (since 2026-12-05 09:00:00)`.
    pub streak: String,
    /// `12 s ago (2026-12-05 12:00:00)`, or `none in 30 days`.
    pub last_ok: String,
    pub csv_raw: String,
    pub csv_hour: String,
}

/// The board's facts come in: `state` (`up`/`down`/`unknown`) since
/// `since_ms`, and its last OK. `conn`: None if the database is not
/// available (the figures then show `—`).
pub fn view(
    conn: Option<&Connection>,
    tail: &Tail,
    name: &str,
    board: (&'static str, Option<i64>, Option<i64>),
    now_ms: i64,
    tz: &jiff::tz::TimeZone,
) -> AvailView {
    let (state, since, board_ok) = board;
    let mut counts = [Counts::default(); 3];
    let mut last_ok = board_ok;
    let mut streak_since = since;
    if let Some(c) = conn {
        let mut q = || -> rusqlite::Result<()> {
            for (i, (_, len)) in WINDOWS.iter().enumerate() {
                if let Some((n, l)) = availability::one(c, tail, name, now_ms - len, now_ms + 1)? {
                    counts[i] = n;
                    last_ok = last_ok.max(l);
                }
            }
            streak_since = availability::streak(c, name, state, since)?.since_ms;
            Ok(())
        };
        if let Err(e) = q() {
            tracing::error!("stream page availability: {e}");
        }
    }
    let rows = WINDOWS
        .iter()
        .zip(counts)
        .map(|((label, _), c)| AvailRow {
            label,
            pct: c
                .ratio()
                .map_or("—".into(), |r| format!("{:.2} %", r * 100.0)),
            probes: c.probes,
            failed: c.failed(),
        })
        .collect();
    let streak = match streak_since {
        Some(t) => format!(
            "{state} for {} (since {})",
            fmt_duration(((now_ms - t).max(0) / 1000) as u64),
            fmt_time(t, tz)
        ),
        None => state.to_owned(),
    };
    let api = format!("/api{}", stream_path(name, "/history.csv"));
    AvailView {
        rows,
        streak,
        last_ok: last_ok.map_or("none in 30 days".into(), |t| {
            format!("{} ({})", ago(now_ms, t), fmt_time(t, tz))
        }),
        csv_raw: format!("{api}?resolution=raw"),
        csv_hour: format!("{api}?resolution=hour"),
    }
}
