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
use crate::state::{Board, Health, StreamState};

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

/// The box's own facts beyond its streams, as `streampulse run` reads them
/// when asked ([`Source::with_box_facts`]): the report does no I/O itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BoxFacts {
    /// Now, ms since the epoch (the payload's `ts`).
    pub now_ms: i64,
    /// The kernel says the clock is synchronised and it reads a plausible date.
    pub clock_synced: Option<bool>,
    /// Free space on the data partition, % of its size.
    pub disk_free_percent: Option<f64>,
    /// The config file on disk failed to load (the previous one runs). A
    /// flag only: the error's text may quote the file.
    pub config_error: bool,
}

/// Reads [`BoxFacts`]; called once per MQTT interval.
pub type BoxFactsFn = Arc<dyn Fn() -> BoxFacts + Send + Sync>;

/// The box payload (MQTT `<prefix>/<device>/box/state`), fields in
/// alphabetical order like the stream entries.
#[derive(serde::Serialize)]
struct BoxReport<'a> {
    clock_synced: Option<bool>,
    config_error: bool,
    disk_free_percent: Option<f64>,
    /// Configured streams, enabled or not.
    streams: usize,
    streams_disabled: usize,
    streams_down: usize,
    streams_unknown: usize,
    streams_up: usize,
    ts: Iso<'a>,
    ts_ms: i64,
}

/// The report's inputs, as a reader that runs on its own (MQTT) holds them:
/// the board and the live config, shared with the monitor and reload loop.
/// Cheap to clone.
#[derive(Clone)]
pub struct Source {
    board: Board,
    config: Arc<RwLock<Arc<Config>>>,
    box_facts: Option<BoxFactsFn>,
}

impl Source {
    pub fn new(board: Board, config: Arc<RwLock<Arc<Config>>>) -> Source {
        Source {
            board,
            config,
            box_facts: None,
        }
    }

    /// Adds where the box's own facts come from (without: all unknown, ts 0).
    pub fn with_box_facts(mut self, f: BoxFactsFn) -> Source {
        self.box_facts = Some(f);
        self
    }

    /// The box payload, compact: the facts and the streams counted by health.
    pub fn box_status(&self) -> Vec<u8> {
        let facts = self.box_facts.as_ref().map(|f| f()).unwrap_or_default();
        let tz = self.config.read().expect("config lock").tz();
        let board = self.board.lock().expect("board lock");
        let mut r = BoxReport {
            clock_synced: facts.clock_synced,
            config_error: facts.config_error,
            disk_free_percent: facts.disk_free_percent.map(|p| (p * 10.0).round() / 10.0),
            streams: board.len(),
            streams_disabled: 0,
            streams_down: 0,
            streams_unknown: 0,
            streams_up: 0,
            ts: Iso::new(facts.now_ms, &tz),
            ts_ms: facts.now_ms,
        };
        for s in board.values() {
            match (s.enabled, s.health) {
                (false, _) => r.streams_disabled += 1,
                (true, Health::Up) => r.streams_up += 1,
                (true, Health::Down) => r.streams_down += 1,
                (true, Health::Unknown) => r.streams_unknown += 1,
            }
        }
        let mut out = Vec::new();
        write_json(&mut out, &r, Style::Compact);
        out
    }

    /// When each named stream's last probe ran (None: not yet), from one
    /// look at the board; streams not on it are absent.
    pub fn probe_times<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> BTreeMap<String, Option<i64>> {
        let board = self.board.lock().expect("board lock");
        names
            .into_iter()
            .filter_map(|n| Some((n.to_owned(), board.get(n)?.last.as_ref().map(|l| l.ts_ms))))
            .collect()
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
    use serde_json::Value;

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

    /// The box payload counts the board by health; the facts come from the
    /// function `streampulse run` gives.
    #[test]
    fn box_status_counts_and_facts() {
        let s = source();
        let empty: Value = serde_json::from_slice(&s.box_status()).unwrap();
        assert_eq!(empty["clock_synced"], Value::Null);
        assert_eq!(empty["streams"], fixture::board().len());
        let s = s.with_box_facts(Arc::new(|| BoxFacts {
            now_ms: 1_700_000_000_000,
            clock_synced: Some(true),
            disk_free_percent: Some(42.1234),
            config_error: true,
        }));
        let v: Value = serde_json::from_slice(&s.box_status()).unwrap();
        assert_eq!(v["clock_synced"], true);
        assert_eq!(v["config_error"], true);
        assert_eq!(v["disk_free_percent"], 42.1);
        assert_eq!(v["ts"], "2023-11-15T03:43:20+05:30");
        let b = fixture::board();
        let n = |h| b.values().filter(|s| s.enabled && s.health == h).count();
        assert_eq!(v["streams_down"], n(Health::Down));
        assert_eq!(v["streams_up"], n(Health::Up));
        assert_eq!(
            s.probe_times(["Lobby Cam", "nope"]),
            BTreeMap::from([("Lobby Cam".to_owned(), Some(1_700_000_005_000))])
        );
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
