//! The in-memory board: current state of every stream, and the debounce
//! state machine that turns probe results into up/down transitions.
//!
//! Pure: no I/O, no clock reads (timestamps come in with the heartbeat), so
//! the debounce rules are unit-tested directly. Readers (web, later MQTT) take
//! the board's mutex briefly and copy what they need.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::StreamConfig;
use crate::picture::{PictureState, PictureVerdict};
use crate::probe::{Kind, MediaFacts, Outcome, Reason, Stages};

/// Debounced health of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not enough results yet (just started, or thresholds not reached).
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// One probe's result as the board keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastResult {
    pub ts_ms: i64,
    pub ok: bool,
    pub latency_ms: u32,
    pub reason: Option<Reason>,
    pub message: String,
    pub stages: Stages,
    /// True if the box's clock was not synchronised when this was taken.
    pub clock_unsynced: bool,
}

/// A change of debounced health.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub stream: String,
    pub ts_ms: i64,
    pub from: Health,
    pub to: Health,
    pub reason: Option<Reason>,
    pub message: String,
    /// The picture verdict at the time (`crate::picture`).
    pub picture: PictureVerdict,
    /// For a failure: the stage the probe stopped in
    /// ([`Stages::failed_stage`]).
    pub failed_stage: Option<&'static str>,
}

/// Current state of one stream.
#[derive(Clone, Debug, Serialize)]
pub struct StreamState {
    pub name: String,
    pub kind: Kind,
    pub url_redacted: String,
    pub enabled: bool,
    pub health: Health,
    /// When `health` last changed (ms since epoch), if ever.
    pub health_since_ms: Option<i64>,
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    pub last: Option<LastResult>,
    pub last_ok_ms: Option<i64>,
    pub last_failure: Option<LastResult>,
    /// What the last successful probe learnt.
    pub media: MediaFacts,
    /// What the picture checks found (frozen, black, camera clock).
    pub picture: PictureState,
    pub probes_total: u64,
    pub failures_total: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// While the box itself is offline: the health (and its since) to come
    /// back to, shown as `unknown` meanwhile ([`StreamState::hold_while_box_offline`]).
    #[serde(skip)]
    pub held: Option<(Health, Option<i64>)>,
}

impl StreamState {
    pub fn new(
        name: &str,
        kind: Kind,
        url_redacted: &str,
        enabled: bool,
        fail_threshold: u32,
        ok_threshold: u32,
    ) -> Self {
        StreamState {
            name: name.to_owned(),
            kind,
            url_redacted: url_redacted.to_owned(),
            enabled,
            health: Health::Unknown,
            health_since_ms: None,
            consecutive_ok: 0,
            consecutive_fail: 0,
            last: None,
            last_ok_ms: None,
            last_failure: None,
            media: MediaFacts::default(),
            picture: PictureState::default(),
            probes_total: 0,
            failures_total: 0,
            fail_threshold: fail_threshold.max(1),
            ok_threshold: ok_threshold.max(1),
            held: None,
        }
    }

    /// A configured stream before its first result: `unknown`, nothing
    /// probed yet (the monitor's new board entry, and the pages' view of a
    /// stream the board does not list yet).
    pub fn for_config(sc: &StreamConfig) -> Self {
        StreamState::new(
            &sc.name,
            sc.target.kind,
            &sc.url_redacted,
            sc.enabled,
            sc.fail_threshold,
            sc.ok_threshold,
        )
    }

    /// A probe that failed because the box itself had no network
    /// (`box_offline`): shown as the last result, the stream `unknown`, but
    /// no transition, no counter of the camera's failures moved, the
    /// debounce untouched. The next real result first restores the health
    /// the stream had ([`StreamState::apply`]).
    pub fn hold_while_box_offline(&mut self, ts_ms: i64, outcome: &Outcome, clock_unsynced: bool) {
        self.probes_total += 1;
        if self.held.is_none() {
            self.held = Some((self.health, self.health_since_ms));
            self.health = Health::Unknown;
            self.health_since_ms = Some(ts_ms);
        }
        self.last = Some(LastResult {
            ts_ms,
            ok: false,
            latency_ms: outcome.latency_ms,
            reason: outcome.reason(),
            message: outcome.message(),
            stages: outcome.stages.clone(),
            clock_unsynced,
        });
    }

    /// Applies one probe result; returns the transition if health changed.
    ///
    /// Rules: `fail_threshold` consecutive failures make a stream `down`,
    /// `ok_threshold` consecutive successes make it `up`, from any state.
    pub fn apply(
        &mut self,
        ts_ms: i64,
        outcome: &Outcome,
        clock_unsynced: bool,
    ) -> Option<Transition> {
        // Back from a box-offline spell: judged against the health before it.
        if let Some((health, since)) = self.held.take() {
            self.health = health;
            self.health_since_ms = since;
        }
        let ok = outcome.is_ok();
        let result = LastResult {
            ts_ms,
            ok,
            latency_ms: outcome.latency_ms,
            reason: outcome.reason(),
            message: outcome.message(),
            stages: outcome.stages.clone(),
            clock_unsynced,
        };
        self.probes_total += 1;
        if ok {
            self.consecutive_ok = self.consecutive_ok.saturating_add(1);
            self.consecutive_fail = 0;
            self.last_ok_ms = Some(ts_ms);
            let mut media = outcome.media.clone();
            media.keep_gop_facts_of(&self.media);
            self.media = media;
        } else {
            self.consecutive_fail = self.consecutive_fail.saturating_add(1);
            self.consecutive_ok = 0;
            self.failures_total += 1;
            self.last_failure = Some(result.clone());
        }
        self.last = Some(result);
        let target = if ok && self.consecutive_ok >= self.ok_threshold {
            Health::Up
        } else if !ok && self.consecutive_fail >= self.fail_threshold {
            Health::Down
        } else {
            self.health
        };
        if target == self.health {
            return None;
        }
        let from = self.health;
        self.health = target;
        self.health_since_ms = Some(ts_ms);
        Some(Transition {
            stream: self.name.clone(),
            ts_ms,
            from,
            to: target,
            reason: outcome.reason(),
            message: outcome.message(),
            picture: self.picture.verdict,
            failed_stage: (!ok).then(|| outcome.stages.failed_stage(self.kind)),
        })
    }
}

/// What a stream's state was when the daemon last ran, read from the
/// database at start (`store::last_state`), so a restart is not a state
/// change: no `unknown` in between, no transition (webhook, MQTT, event)
/// for a camera that was already down, `since` kept. Counters
/// (`probes_total`, `failures_total`) are not restored: they count since
/// the process started, as in `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    pub health: Option<Health>,
    pub since_ms: Option<i64>,
    pub last: Option<LastResult>,
    pub last_ok_ms: Option<i64>,
    pub last_failure: Option<LastResult>,
    /// The run of equal results at the end of the stored heartbeats, so
    /// the debounce goes on where it stopped.
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    pub media: MediaFacts,
}

impl StreamState {
    /// A configured stream as it was before the restart (its
    /// [`StreamState::for_config`] with `r` applied). The next probe result
    /// is judged against the restored health: only a real change is a
    /// transition.
    pub fn restored(sc: &StreamConfig, r: Restored) -> Self {
        let mut s = StreamState::for_config(sc);
        if let Some(h) = r.health {
            s.health = h;
            s.health_since_ms = r.since_ms;
        }
        s.last = r.last;
        s.last_ok_ms = r.last_ok_ms;
        s.last_failure = r.last_failure;
        s.consecutive_ok = r.consecutive_ok;
        s.consecutive_fail = r.consecutive_fail;
        s.media = r.media;
        s
    }
}

/// Shared board of all configured streams, keyed by name.
pub type Board = Arc<Mutex<BTreeMap<String, StreamState>>>;

/// Creates an empty board.
pub fn new_board() -> Board {
    Arc::new(Mutex::new(BTreeMap::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Failure;

    fn ok() -> Outcome {
        Outcome {
            result: Ok(()),
            latency_ms: 100,
            stages: Stages::default(),
            media: MediaFacts::default(),
        }
    }

    fn fail(r: Reason) -> Outcome {
        Outcome {
            result: Err(Failure::new(r, "boom")),
            latency_ms: 5,
            stages: Stages::default(),
            media: MediaFacts::default(),
        }
    }

    /// The box's own link going down: `unknown` without transitions, the
    /// camera's counters untouched; back online, the old health returns and
    /// only a real change is a transition.
    #[test]
    fn box_offline_holds_the_health_without_transitions() {
        let mut s = StreamState::new("cam", Kind::Rtsp, "rtsp://x", true, 2, 1);
        assert!(s.apply(1, &ok(), false).is_some()); // unknown → up
        for ts in 2..10 {
            s.hold_while_box_offline(ts, &fail(Reason::BoxOffline), false);
            assert_eq!(s.health, Health::Unknown);
        }
        assert_eq!((s.failures_total, s.consecutive_fail), (0, 0));
        assert_eq!(s.last.as_ref().unwrap().reason, Some(Reason::BoxOffline));
        // Back, and the camera is fine: up again, silently.
        assert_eq!(s.apply(10, &ok(), false), None);
        assert_eq!((s.health, s.health_since_ms), (Health::Up, Some(1)));
        // Back, and the camera really is down: reported as usual.
        s.hold_while_box_offline(11, &fail(Reason::BoxOffline), false);
        assert_eq!(s.apply(12, &fail(Reason::Connect), false), None);
        let t = s.apply(13, &fail(Reason::Connect), false).unwrap();
        assert_eq!((t.from, t.to), (Health::Up, Health::Down));
    }

    #[test]
    fn debounce_down_after_threshold_and_up_again() {
        let mut s = StreamState::new("cam", Kind::Rtsp, "rtsp://h/x", true, 3, 2);
        assert_eq!(s.health, Health::Unknown);
        assert!(s.apply(1, &fail(Reason::Timeout), false).is_none());
        assert!(s.apply(2, &fail(Reason::Timeout), false).is_none());
        let t = s
            .apply(3, &fail(Reason::Connect), false)
            .expect("third failure turns it down");
        assert_eq!(
            (t.from, t.to, t.reason),
            (Health::Unknown, Health::Down, Some(Reason::Connect))
        );
        assert!(
            s.apply(4, &ok(), false).is_none(),
            "one ok is not enough with ok_threshold 2"
        );
        assert_eq!(s.health, Health::Down);
        assert!(
            s.apply(5, &fail(Reason::Auth), false).is_none(),
            "a failure resets the ok run"
        );
        assert!(s.apply(6, &ok(), false).is_none());
        let t = s.apply(7, &ok(), false).expect("two oks turn it up");
        assert_eq!((t.from, t.to), (Health::Down, Health::Up));
        assert_eq!(s.health_since_ms, Some(7));
        assert_eq!(s.last_ok_ms, Some(7));
        assert_eq!(s.last_failure.as_ref().unwrap().reason, Some(Reason::Auth));
        assert_eq!((s.probes_total, s.failures_total), (7, 4));
    }

    /// A restored `down` stream that still fails makes no transition (no
    /// `unknown` in between, `since` kept); one that recovers does.
    #[test]
    fn restored_state_is_not_a_state_change() {
        let sc = crate::config::parse(
            "streams:\n- name: cam\n  url: rtsp://h/x\n  fail_threshold: 3\n",
            "c.yaml",
        )
        .unwrap()
        .streams
        .remove(0);
        let r = Restored {
            health: Some(Health::Down),
            since_ms: Some(100),
            consecutive_fail: 7,
            ..Restored::default()
        };
        let mut s = StreamState::restored(&sc, r.clone());
        assert_eq!((s.health, s.health_since_ms), (Health::Down, Some(100)));
        assert_eq!(s.apply(200, &fail(Reason::Connect), false), None);
        assert_eq!((s.health, s.health_since_ms), (Health::Down, Some(100)));
        assert_eq!(s.consecutive_fail, 8);
        let mut s = StreamState::restored(&sc, r);
        let t = s.apply(200, &ok(), false).expect("a recovery is a change");
        assert_eq!((t.from, t.to), (Health::Down, Health::Up));
        // Nothing known: as a new stream.
        let s = StreamState::restored(&sc, Restored::default());
        assert_eq!(s.health, Health::Unknown);
    }

    #[test]
    fn single_flap_does_not_transition() {
        let mut s = StreamState::new("cam", Kind::Mjpeg, "http://h/", true, 2, 1);
        assert_eq!(s.apply(1, &ok(), false).unwrap().to, Health::Up);
        assert!(s.apply(2, &fail(Reason::Timeout), false).is_none());
        assert!(s.apply(3, &ok(), false).is_none());
        assert_eq!(s.health, Health::Up);
        assert_eq!(s.consecutive_fail, 0);
    }
}
