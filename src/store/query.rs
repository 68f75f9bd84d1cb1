//! Read queries used by the web API, on read-only connections.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::probe::Reason;

/// One stored heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeartbeatRow {
    pub ts_ms: i64,
    pub ok: bool,
    pub latency_ms: u32,
    pub reason: Option<&'static str>,
    pub clock_unsynced: bool,
}

/// Heartbeats of `stream` with `since_ms <= ts_ms < until_ms`, oldest first, at most `limit`.
/// Returns `None` if the stream is unknown.
pub fn history(
    conn: &Connection,
    stream: &str,
    since_ms: i64,
    until_ms: i64,
    limit: u32,
) -> rusqlite::Result<Option<Vec<HeartbeatRow>>> {
    let id: Option<i64> = conn
        .query_row("SELECT id FROM streams WHERE name = ?1", [stream], |r| {
            r.get(0)
        })
        .map(Some)
        .or_else(|e| {
            if e == rusqlite::Error::QueryReturnedNoRows {
                Ok(None)
            } else {
                Err(e)
            }
        })?;
    let Some(id) = id else { return Ok(None) };
    let mut stmt = conn.prepare_cached(
        "SELECT ts_ms, ok, latency_ms, reason, flags FROM heartbeats
         WHERE stream_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 ORDER BY ts_ms LIMIT ?4",
    )?;
    let rows = stmt
        .query_map(params![id, since_ms, until_ms, limit], |r| {
            let reason: Option<i64> = r.get(3)?;
            let flags: i64 = r.get(4)?;
            Ok(HeartbeatRow {
                ts_ms: r.get(0)?,
                ok: r.get::<_, i64>(1)? != 0,
                latency_ms: r.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
                reason: reason.and_then(Reason::from_code).map(Reason::as_str),
                clock_unsynced: flags & i64::from(super::recorder::FLAG_CLOCK_UNSYNCED) != 0,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(rows))
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
