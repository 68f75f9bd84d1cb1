//! One transaction: the stream rows, media facts and state changes that
//! waited for a commit, then the heartbeat blocks whose window ended.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::super::blocks;
use super::{Record, RecorderStats};
use crate::clock::Clock as _;

/// One commit attempt; with the test hook, an injected I/O error instead.
pub(super) fn try_commit(
    conn: &mut Connection,
    ids: &mut HashMap<String, i64>,
    records: &[Record],
    blocks: &[(Arc<str>, blocks::Block)],
    stats: &RecorderStats,
) -> rusqlite::Result<()> {
    #[cfg(test)]
    use std::sync::atomic::Ordering::SeqCst;
    #[cfg(test)]
    if stats
        .inject_io_errors
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_WRITE),
            Some("injected disk I/O error".into()),
        ));
    }
    let _ = stats;
    commit(conn, ids, records, blocks)
}

pub(super) fn stream_id(
    conn: &Connection,
    ids: &mut HashMap<String, i64>,
    name: &str,
) -> rusqlite::Result<Option<i64>> {
    if let Some(id) = ids.get(name) {
        return Ok(Some(*id));
    }
    let id = conn
        .query_row("SELECT id FROM streams WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(id) = id {
        ids.insert(name.to_owned(), id);
    }
    Ok(id)
}

/// Writes `records`, then `blocks` (whose streams they may create), in one
/// transaction.
pub(super) fn commit(
    conn: &mut Connection,
    ids: &mut HashMap<String, i64>,
    records: &[Record],
    blocks: &[(Arc<str>, blocks::Block)],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        for r in records {
            match r {
                Record::Stream {
                    name,
                    kind,
                    url_redacted,
                } => {
                    tx.execute(
                        "INSERT INTO streams (name, kind, url_redacted, created_ms) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, url_redacted = excluded.url_redacted, removed_ms = NULL",
                        params![name, kind.as_str(), url_redacted, now_ms()],
                    )?;
                }
                Record::StreamRemoved { name, ts_ms } => {
                    tx.execute(
                        "UPDATE streams SET removed_ms = ?2 WHERE name = ?1",
                        params![name, ts_ms],
                    )?;
                }
                // Heartbeats go to the tail (`accept`), never here.
                Record::Heartbeat { .. } => {}
                Record::Media {
                    stream,
                    ts_ms,
                    media,
                } => {
                    let Some(id) = stream_id(&tx, ids, stream)? else {
                        continue;
                    };
                    tx.execute(
                        "UPDATE streams SET codec = ?2, width = ?3, height = ?4, fps = ?5, media_ms = ?6 WHERE id = ?1",
                        params![id, media.codec, media.width, media.height, media.fps, ts_ms],
                    )?;
                }
                Record::Event(t) => {
                    let Some(id) = stream_id(&tx, ids, &t.stream)? else {
                        continue;
                    };
                    tx.execute(
                        "INSERT INTO events (stream_id, ts_ms, from_state, to_state, reason, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![id, t.ts_ms, t.from.as_str(), t.to.as_str(), t.reason.map(|r| r.as_str()), t.message],
                    )?;
                }
                Record::Retention(_) | Record::Flush(_) => {}
            }
        }
        for (name, b) in blocks {
            // A stream never committed (removed at once) has nowhere to go.
            if let Some(id) = stream_id(&tx, ids, name)? {
                blocks::insert(&tx, id, b)?;
            }
        }
    }
    tx.commit()
}

/// Creation time for new stream rows; informational only.
fn now_ms() -> i64 {
    crate::clock::RealClock.now_ms()
}
