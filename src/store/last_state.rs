//! What each stream's state was when the daemon last ran, for the board at
//! start ([`crate::state::Restored`]): a restart is then not a state
//! change (no `unknown`, no transition for a camera already down, `since`
//! kept).
//!
//! Where it comes from: the debounced health and its start from `events`
//! (the newest event's `to_state`, and the oldest of the newest run of
//! events to that state, as [`super::availability::streak`] counts it);
//! the last result, the last OK and the debounce's run from the newest
//! stored heartbeats; codec and size from the `streams` row.
//!
//! A state belongs to the camera (kind + URL), not to the name: a stream
//! renamed (while running or in the file while stopped) finds its state
//! under the rows of its URL that are no longer configured. Read once at
//! start, before the recorder takes the connection; costs a few key
//! lookups per stream.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection};

use super::blocks::{self, Heartbeat, Tail, WINDOW_MS};
use crate::probe::{Kind, MediaFacts, Reason, Stages};
use crate::state::{Health, LastResult, Restored};

/// Heartbeats looked at, back from the newest stored window: an hour.
const LOOK_BACK_WINDOWS: i64 = 6;
/// Where the last OK is searched when the last hour had none.
const LAST_OK_SEARCH_MS: i64 = 30 * 24 * 3600 * 1000;
/// Events read back at most, for the start of the current run.
const EVENTS_BACK: usize = 200;
/// A row renamed away counts for a configured row created this close to
/// its removal (or after): the rename's two records commit apart.
const RENAME_SLACK_MS: i64 = 120_000;

/// One configured stream to look up.
#[derive(Clone, Copy, Debug)]
pub struct Wanted<'a> {
    pub name: &'a str,
    pub kind: Kind,
    pub url_redacted: &'a str,
}

struct Row {
    id: i64,
    name: String,
    kind: String,
    url: String,
    created_ms: i64,
    removed_ms: Option<i64>,
    media: MediaFacts,
}

/// The last known state of each wanted stream that has one (streams never
/// seen, or seen at another URL, are absent). `now_ms` bounds the search
/// for the last OK.
///
/// # Errors
/// SQLite errors; the caller starts without restored states.
pub fn last_states(
    conn: &Connection,
    wanted: &[Wanted<'_>],
    now_ms: i64,
) -> rusqlite::Result<HashMap<String, Restored>> {
    let rows: Vec<Row> = conn
        .prepare(
            "SELECT id, name, kind, url_redacted, created_ms, removed_ms, codec, width, height, fps
             FROM streams",
        )?
        .query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                name: r.get(1)?,
                kind: r.get(2)?,
                url: r.get(3)?,
                created_ms: r.get(4)?,
                removed_ms: r.get(5)?,
                media: MediaFacts {
                    codec: r.get(6)?,
                    width: r.get(7)?,
                    height: r.get(8)?,
                    fps: r.get::<_, Option<f64>>(9)?.map(|f| f as f32),
                    ..MediaFacts::default()
                },
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let configured: HashSet<&str> = wanted.iter().map(|w| w.name).collect();
    // The newest stored window: about when the daemon last ran.
    let newest: Option<i64> =
        conn.query_row("SELECT max(window_ms) FROM heartbeat_blocks", [], |r| {
            r.get(0)
        })?;
    let mut out = HashMap::new();
    for w in wanted {
        let same_camera = |r: &Row| r.kind == w.kind.as_str() && r.url == w.url_redacted;
        let own = rows.iter().find(|r| r.name == w.name && same_camera(r));
        let candidates: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                if own.is_some_and(|o| o.id == r.id) {
                    return true;
                }
                same_camera(r)
                    && !configured.contains(r.name.as_str())
                    && own.is_none_or(|o| {
                        r.removed_ms
                            .is_none_or(|t| t >= o.created_ms - RENAME_SLACK_MS)
                    })
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        if let Some(r) = restore_one(conn, &candidates, own, newest, now_ms)? {
            out.insert(w.name.to_owned(), r);
        }
    }
    Ok(out)
}

fn restore_one(
    conn: &Connection,
    rows: &[&Row],
    own: Option<&Row>,
    newest_window: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<Option<Restored>> {
    // Events of every candidate, newest first.
    let mut events: Vec<(i64, String, Option<String>, Option<String>)> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT ts_ms, to_state, reason, message FROM events
         WHERE stream_id = ?1 ORDER BY ts_ms DESC LIMIT ?2",
    )?;
    for r in rows {
        let found = stmt.query_map(params![r.id, EVENTS_BACK as i64], |e| {
            Ok((e.get(0)?, e.get(1)?, e.get(2)?, e.get(3)?))
        })?;
        for e in found {
            events.push(e?);
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.0));
    let health = events.first().and_then(|e| match e.1.as_str() {
        "up" => Some(Health::Up),
        "down" => Some(Health::Down),
        _ => None,
    });
    let since_ms = health.and_then(|h| {
        events
            .iter()
            .take_while(|e| e.1 == h.as_str())
            .map(|e| e.0)
            .min()
    });

    let mut hbs: Vec<Heartbeat> = Vec::new();
    if let Some(newest) = newest_window {
        for r in rows {
            hbs.extend(blocks::load(
                conn,
                r.id,
                newest - LOOK_BACK_WINDOWS * WINDOW_MS,
                newest + WINDOW_MS,
            )?);
        }
    }
    hbs.sort_by_key(|h| h.ts_ms);
    // Box-offline results were never the camera's (the board held them).
    let camera: Vec<&Heartbeat> = hbs
        .iter()
        .filter(|h| h.reason != Some(Reason::BoxOffline))
        .collect();
    let (mut consecutive_ok, mut consecutive_fail) = (0u32, 0u32);
    if let Some(last) = camera.last() {
        let run = camera.iter().rev().take_while(|h| h.ok == last.ok).count() as u32;
        if last.ok {
            consecutive_ok = run;
        } else {
            consecutive_fail = run;
        }
    }
    let down_event = events.iter().find(|e| e.1 == "down");
    let result = |h: &Heartbeat| LastResult {
        ts_ms: h.ts_ms,
        ok: h.ok,
        latency_ms: h.latency_ms,
        reason: h.reason,
        message: match (h.ok, h.reason, down_event) {
            (true, ..) => "OK (before the restart)".to_owned(),
            (false, Some(r), Some(e)) if e.2.as_deref() == Some(r.as_str()) => {
                e.3.clone().unwrap_or_default()
            }
            (false, r, _) => format!(
                "{} (before the restart)",
                r.map_or("failed", |r| r.as_str())
            ),
        },
        stages: Stages::default(),
        clock_unsynced: h.flags & 1 != 0,
    };
    let last = hbs.last().map(result);
    let last_failure = camera.iter().rev().find(|h| !h.ok).map(|h| result(h));
    let mut last_ok_ms = camera.iter().rev().find(|h| h.ok).map(|h| h.ts_ms);
    if last_ok_ms.is_none() {
        for r in rows {
            let found = super::availability::one(
                conn,
                &Tail::default(),
                &r.name,
                now_ms - LAST_OK_SEARCH_MS,
                now_ms,
            )?;
            last_ok_ms = last_ok_ms.max(found.and_then(|(_, t)| t));
        }
    }
    if health.is_none() && last.is_none() && last_ok_ms.is_none() {
        return Ok(None);
    }
    // Media facts: this name's row, else the newest candidate that has some.
    let media = own
        .filter(|r| r.media.codec.is_some())
        .or_else(|| rows.iter().copied().find(|r| r.media.codec.is_some()))
        .map(|r| r.media.clone())
        .unwrap_or_default();
    Ok(Some(Restored {
        health,
        since_ms,
        last,
        last_ok_ms,
        last_failure,
        consecutive_ok,
        consecutive_fail,
        media,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OptionalExtension;

    fn id_of(conn: &Connection, name: &str) -> Option<i64> {
        conn.query_row("SELECT id FROM streams WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
        .unwrap()
    }

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::init(&mut c, None).unwrap();
        c
    }

    fn stream(c: &Connection, name: &str, url: &str, created: i64, removed: Option<i64>) -> i64 {
        c.execute(
            "INSERT INTO streams (name, kind, url_redacted, created_ms, removed_ms) VALUES (?1, 'rtsp', ?2, ?3, ?4)",
            params![name, url, created, removed],
        )
        .unwrap();
        id_of(c, name).unwrap()
    }

    fn event(c: &Connection, id: i64, ts: i64, from: &str, to: &str) {
        c.execute(
            "INSERT INTO events (stream_id, ts_ms, from_state, to_state, reason, message) VALUES (?1, ?2, ?3, ?4, ?5, 'connection refused')",
            params![id, ts, from, to, Reason::Connect.as_str()],
        )
        .unwrap();
    }

    fn heartbeats(c: &Connection, id: i64, hbs: &[(i64, bool)]) {
        let hb = |&(ts_ms, ok): &(i64, bool)| Heartbeat {
            ts_ms,
            ok,
            latency_ms: if ok { 120 } else { 3 },
            reason: (!ok).then_some(Reason::Connect),
            flags: 0,
        };
        let mut b = blocks::Block::new(&hb(&hbs[0]));
        for h in &hbs[1..] {
            assert!(b.try_push(&hb(h)));
        }
        blocks::insert(c, id, &b).unwrap();
    }

    const T0: i64 = 1_700_000_000_000 / WINDOW_MS * WINDOW_MS;

    fn want(name: &str, url: &str) -> Wanted<'static> {
        Wanted {
            name: Box::leak(name.to_owned().into_boxed_str()),
            kind: Kind::Rtsp,
            url_redacted: Box::leak(url.to_owned().into_boxed_str()),
        }
    }

    /// Down since the first `down` of the newest run (a restart's
    /// `unknown → down` counts as the same run), the debounce's run and
    /// the last OK from the heartbeats.
    #[test]
    fn down_stream_restores_health_since_and_run() {
        let c = db();
        let id = stream(&c, "cam", "rtsp://h/x", T0, None);
        event(&c, id, T0 + 1_000, "unknown", "up");
        event(&c, id, T0 + 5_000, "up", "down");
        event(&c, id, T0 + 9_000, "unknown", "down");
        heartbeats(
            &c,
            id,
            &[
                (T0 + 1_000, true),
                (T0 + 4_000, true),
                (T0 + 5_000, false),
                (T0 + 9_000, false),
            ],
        );
        let got = last_states(&c, &[want("cam", "rtsp://h/x")], T0 + 60_000).unwrap();
        let r = &got["cam"];
        assert_eq!(r.health, Some(Health::Down));
        assert_eq!(r.since_ms, Some(T0 + 5_000));
        assert_eq!((r.consecutive_ok, r.consecutive_fail), (0, 2));
        assert_eq!(r.last_ok_ms, Some(T0 + 4_000));
        let last = r.last.as_ref().unwrap();
        assert_eq!(
            (last.ts_ms, last.ok, last.reason),
            (T0 + 9_000, false, Some(Reason::Connect))
        );
        assert_eq!(last.message, "connection refused");
        assert_eq!(r.last_failure.as_ref().unwrap().ts_ms, T0 + 9_000);
    }

    /// Another URL under the same name is another camera: nothing restored.
    #[test]
    fn another_url_restores_nothing() {
        let c = db();
        let id = stream(&c, "cam", "rtsp://h/x", T0, None);
        event(&c, id, T0 + 1_000, "unknown", "down");
        let got = last_states(&c, &[want("cam", "rtsp://h/other")], T0 + 60_000).unwrap();
        assert!(got.is_empty(), "{got:?}");
    }

    /// Renamed (the old row removed when the new one appeared, or an old
    /// name no longer configured): the camera's state follows the rename.
    #[test]
    fn a_rename_keeps_the_state() {
        let c = db();
        let old = stream(&c, "Lobby", "rtsp://h/x", T0, Some(T0 + 20_000));
        event(&c, old, T0 + 1_000, "unknown", "down");
        heartbeats(&c, old, &[(T0 + 1_000, false), (T0 + 10_000, false)]);
        let new = stream(&c, "Hall", "rtsp://h/x", T0 + 21_000, None);
        heartbeats(&c, new, &[(T0 + 25_000, false)]);
        let got = last_states(&c, &[want("Hall", "rtsp://h/x")], T0 + 60_000).unwrap();
        let r = &got["Hall"];
        assert_eq!(
            (r.health, r.since_ms),
            (Some(Health::Down), Some(T0 + 1_000))
        );
        assert_eq!(r.consecutive_fail, 3);
        assert_eq!(r.last.as_ref().unwrap().ts_ms, T0 + 25_000);
        // Renamed in the file while the daemon was stopped: the old row is
        // not marked removed, but its name is no longer configured.
        let c = db();
        let old = stream(&c, "Lobby", "rtsp://h/x", T0, None);
        event(&c, old, T0 + 1_000, "unknown", "up");
        let got = last_states(&c, &[want("Hall", "rtsp://h/x")], T0 + 60_000).unwrap();
        assert_eq!(got["Hall"].health, Some(Health::Up));
        // ...unless the old name is still configured (two entries, one URL).
        let got = last_states(
            &c,
            &[want("Hall", "rtsp://h/x"), want("Lobby", "rtsp://h/x")],
            T0 + 60_000,
        )
        .unwrap();
        assert!(!got.contains_key("Hall"), "{got:?}");
        assert_eq!(got["Lobby"].health, Some(Health::Up));
    }

    #[test]
    fn never_seen_is_absent() {
        let c = db();
        assert!(last_states(&c, &[want("cam", "rtsp://h/x")], T0)
            .unwrap()
            .is_empty());
    }
}
