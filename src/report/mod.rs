//! The status report: what StreamPulse says about its streams to the world.
//! `/api/status`, the MQTT aggregate and per-stream state payloads are all
//! this report ([`status`]), and every time in them, in the JSON API and in
//! webhook bodies is written by [`time`].
//!
//! Why a module of its own: it used to live in `web::api`, so MQTT held the
//! whole web context just to build its payloads and webhooks borrowed the
//! web's time formatter. Here it is built from plain inputs — the board
//! (`state`), the configured time zone (`config`) — so its readers (web,
//! mqtt, webhooks) depend on it, not on each other. It does no I/O and reads
//! no clock: every time it shows comes from the board.
//!
//! Output is typed and streamed into the caller's buffer (no
//! `serde_json::Value` tree per request); its bytes are pinned by tests.

#[cfg(test)]
pub(crate) mod fixture;
pub mod status;
pub mod time;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

pub use status::{StatusReport, StreamReport};
pub use time::{iso, Iso};

use crate::config::Config;
use crate::state::{Board, StreamState};

/// Characters escaped in a path segment: everything but unreserved ones.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `name` as one percent-encoded URL path segment (the web's routes decode
/// it): the stream links the report, webhooks and pages carry.
pub fn path_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

/// The link a down stream's webhook and MQTT state carry: the stream page's
/// evidence section (`crate::evidence`), a path on the box.
pub fn evidence_link(name: &str) -> String {
    format!("/streams/{}#evidence", path_segment(name))
}

/// How a report is laid out in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Indented, for people with `curl` (the web API).
    Pretty,
    /// One line, for machines (MQTT payloads).
    Compact,
}

/// Appends `v` to `out` as JSON. Cannot fail for the report's types (it
/// writes to memory); if it ever did, the error is logged and `out` is left
/// empty rather than half-written, as `to_vec(..).unwrap_or_default()` did.
fn write_json(out: &mut Vec<u8>, v: &impl serde::Serialize, style: Style) {
    let start = out.len();
    let r = match style {
        Style::Pretty => serde_json::to_writer_pretty(&mut *out, v),
        Style::Compact => serde_json::to_writer(&mut *out, v),
    };
    if let Err(e) = r {
        tracing::error!("writing the status report: {e}");
        out.truncate(start);
    }
}

/// Appends the whole report to `out`. Takes the config lock only to read the
/// time zone, then the board's lock for the time it takes to write into
/// memory (never while a slow client or broker is waiting).
pub fn write_status(
    out: &mut Vec<u8>,
    board: &Mutex<BTreeMap<String, StreamState>>,
    config: &RwLock<Arc<Config>>,
    style: Style,
) {
    let tz = config.read().expect("config lock").tz();
    let board = board.lock().expect("board lock");
    write_json(out, &StatusReport::new(&board, &tz), style);
}

/// The report's inputs, as a reader that runs on its own (MQTT) holds them:
/// the board and the live config, shared with the monitor and reload loop.
/// Cheap to clone.
#[derive(Clone)]
pub struct Source {
    board: Board,
    config: Arc<RwLock<Arc<Config>>>,
}

impl Source {
    pub fn new(board: Board, config: Arc<RwLock<Arc<Config>>>) -> Source {
        Source { board, config }
    }

    /// The whole report, compact (the MQTT aggregate).
    pub fn status(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_status(&mut out, &self.board, &self.config, Style::Compact);
        out
    }

    /// The entries of the named streams that are on the board, compact
    /// (their MQTT state payloads), all from one look at the board.
    pub fn streams<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> BTreeMap<String, Vec<u8>> {
        let tz = self.config.read().expect("config lock").tz();
        let board = self.board.lock().expect("board lock");
        let mut out = BTreeMap::new();
        for name in names {
            if let Some(s) = board.get(name) {
                let mut payload = Vec::new();
                write_json(&mut payload, &StreamReport::new(s, &tz), Style::Compact);
                out.insert(name.to_owned(), payload);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::status::tests::assert_same;
    use super::*;

    fn source() -> Source {
        let cfg = crate::config::parse("timezone: Asia/Kolkata\nstreams: []\n", "c.yaml")
            .expect("a minimal config parses");
        let board = crate::state::new_board();
        *board.lock().unwrap() = fixture::board();
        Source::new(board, Arc::new(RwLock::new(Arc::new(cfg))))
    }

    /// What MQTT publishes through [`Source`] is the pinned report.
    #[test]
    fn source_writes_the_pinned_payloads() {
        let s = source();
        assert_same(
            &String::from_utf8(s.status()).unwrap(),
            include_str!("testdata/status_compact.json"),
        );
        let mut states = s.streams(["Lobby Cam", "no such cam"]);
        assert_same(
            &String::from_utf8(states.remove("Lobby Cam").unwrap()).unwrap(),
            include_str!("testdata/stream_lobby_cam.json"),
        );
        assert!(states.is_empty(), "a stream not on the board has no entry");
    }

    /// What the web sends: appended after anything already in the buffer.
    #[test]
    fn write_status_pretty_appends() {
        let s = source();
        let mut out = b"x".to_vec();
        write_status(&mut out, &s.board, &s.config, Style::Pretty);
        assert_eq!(out[0], b'x');
        assert_same(
            std::str::from_utf8(&out[1..]).unwrap(),
            include_str!("testdata/status_pretty.json"),
        );
    }
}
