//! Per-stream probe counters: what the board does not keep.
//!
//! The board holds each stream's debounced state; [`ProbeStats`] adds a
//! latency histogram and failure counts by reason, fed by the monitor after
//! every probe (one short mutex section, no allocation once a stream was
//! seen). They live with the monitor that writes them; `/metrics`
//! (`web::metrics`) only reads a copy. Everything is in memory: counters
//! restart at zero with the process, as Prometheus expects.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::probe::{Outcome, Reason};

/// Upper bounds (seconds) of the latency histogram: a good RTSP probe takes
/// 0.1–0.5 s, a slow camera a few seconds, the longest deadline 120 s.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// One stream's counters (a copy, from [`ProbeStats::retain`]).
#[derive(Debug, Default, Clone)]
pub struct StreamStats {
    /// Non-cumulative counts per bucket of [`LATENCY_BUCKETS_S`]; the last
    /// slot is +Inf.
    pub buckets: [u64; LATENCY_BUCKETS_S.len() + 1],
    /// Successful probes and the sum of their latencies.
    pub ok_count: u64,
    pub ok_sum_ms: u64,
    /// Probes finished, successful or not.
    pub probes: u64,
    /// Failed probes, indexed by `Reason::code() - 1`.
    pub failures: [u64; Reason::ALL.len()],
}

/// Per-stream probe counters for `/metrics`. Shared by the monitor (writer)
/// and the web workers (readers); the lock is held for a few additions.
#[derive(Debug, Default)]
pub struct ProbeStats {
    inner: Mutex<BTreeMap<String, StreamStats>>,
}

impl ProbeStats {
    /// Counts one probe: latency into the histogram if it succeeded, its
    /// reason into the failure counts if not.
    pub fn observe(&self, stream: &str, outcome: &Outcome) {
        let mut m = self.inner.lock().expect("probe stats lock");
        if !m.contains_key(stream) {
            m.insert(stream.to_owned(), StreamStats::default());
        }
        let s = m.get_mut(stream).expect("inserted above");
        s.probes += 1;
        match outcome.reason() {
            None => {
                let secs = f64::from(outcome.latency_ms) / 1000.0;
                let i = LATENCY_BUCKETS_S
                    .iter()
                    .position(|b| secs <= *b)
                    .unwrap_or(LATENCY_BUCKETS_S.len());
                s.buckets[i] += 1;
                s.ok_count += 1;
                s.ok_sum_ms += u64::from(outcome.latency_ms);
            }
            Some(r) => s.failures[usize::from(r.code() - 1)] += 1,
        }
    }

    /// Forgets streams not in `keep` (removed from the config) and returns
    /// a copy of the rest.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> BTreeMap<String, StreamStats> {
        let mut m = self.inner.lock().expect("probe stats lock");
        m.retain(|k, _| keep(k));
        m.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Failure, MediaFacts, Stages};

    fn outcome(latency_ms: u32, reason: Option<Reason>) -> Outcome {
        Outcome {
            result: match reason {
                None => Ok(()),
                Some(r) => Err(Failure::new(r, "x")),
            },
            latency_ms,
            stages: Stages::default(),
            media: MediaFacts::default(),
        }
    }

    #[test]
    fn histogram_buckets_and_failures() {
        let p = ProbeStats::default();
        p.observe("a", &outcome(20, None)); // 0.025
        p.observe("a", &outcome(100, None)); // exactly 0.1: le is inclusive
        p.observe("a", &outcome(90_000, None)); // +Inf
        p.observe("a", &outcome(5, Some(Reason::Connect)));
        p.observe("a", &outcome(5, Some(Reason::Connect)));
        let m = p.retain(|_| true);
        let s = &m["a"];
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[2], 1);
        assert_eq!(s.buckets[LATENCY_BUCKETS_S.len()], 1);
        assert_eq!((s.ok_count, s.ok_sum_ms, s.probes), (3, 90_120, 5));
        assert_eq!(s.failures[usize::from(Reason::Connect.code() - 1)], 2);
        assert!(
            p.retain(|n| n != "a").is_empty(),
            "removed streams are forgotten"
        );
    }
}
