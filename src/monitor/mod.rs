//! The scheduler: one task per enabled stream, each on its own jittered
//! interval, all sharing a global cap on concurrent probes.
//!
//! Isolation is the point: each probe carries its own deadline, so a camera
//! (or DNS server) that hangs only ever holds one permit, and only until its
//! first-answer stage deadline (`probe::Target::stage_deadline`, min(timeout,
//! 3 s)), not for the whole timeout: with a share of hung cameras, the permits
//! they hold on average are hung streams × 3 s ÷ interval, which a
//! `max_concurrent_probes` sized for the healthy streams can carry, and other
//! streams keep their schedule. Results go to the board (debounce) and to the
//! recorder (SQLite) without ever blocking on either.
//!
//! [`Monitor::apply`] diffs a new config against the running tasks: unchanged
//! streams keep their task and state, changed ones restart (state kept when
//! only probe settings changed), removed ones stop.
//!
//! Who answers a probe is not the monitor's business: it asks a [`Prober`]
//! (the camera itself, or the live view's session when someone watches).
//! Nothing here knows about the web or the live view; they read what the
//! monitor writes (the board, [`stats`], the transitions broadcast).
//!
//! * `schedule.rs`: one stream's loop (when to probe, where results go).
//! * [`prober`]: the [`Prober`] seam.
//! * [`stats`]: per-stream probe counters for `/metrics`.
//! * [`link`]: whether the box itself is on a network (a dead link is not
//!   every camera down).

pub mod link;
mod schedule;

pub mod prober;
pub mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;

use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::timesync::SyncSource;
use crate::clock::SharedClock;
use crate::config::{Config, StreamConfig};
use crate::shutdown;
use crate::state::{Board, StreamState, Transition};
use crate::store::recorder::{Record, RecorderTx};

pub use prober::{DirectProber, Prober};
pub use stats::ProbeStats;

/// State changes a broadcast holds for slow readers before they lag.
const TRANSITIONS_CAP: usize = 256;

/// Shared by every stream task.
pub struct Ctx {
    pub board: Board,
    pub recorder: RecorderTx,
    pub clock: SharedClock,
    pub sync: Arc<dyn SyncSource>,
    /// Global cap on probes in flight.
    pub permits: Arc<Semaphore>,
    /// Probes completed since start (watchdog and stats).
    pub probes_done: AtomicU64,
    /// tokio-monotonic ms (since `epoch`) of the last completed probe.
    pub last_probe_ms: AtomicI64,
    pub epoch: Instant,
    /// State changes for readers that must never slow a probe (MQTT,
    /// webhooks): a bounded broadcast, so `send` never waits; a reader that
    /// falls behind gets `Lagged` and re-reads the board.
    pub transitions: broadcast::Sender<Transition>,
    /// Latency histograms and failure counts per stream, for `/metrics`.
    pub probe_stats: ProbeStats,
    /// Answers every probe: the camera itself ([`DirectProber`]), or the
    /// live view (a stream watched live is probed through its live session,
    /// one camera session, not two). Chosen once, by `cmds::run`.
    pub prober: Arc<dyn Prober>,
    /// The box's own network: a camera failing while it is down is not
    /// the camera's failure ([`link`]).
    pub link: link::Link,
    /// Each stream's last good picture, from the picture checks; read by
    /// the evidence writer when a stream goes down.
    pub last_good: Arc<crate::picture::LastGood>,
}

impl Ctx {
    pub fn new(
        board: Board,
        recorder: RecorderTx,
        clock: SharedClock,
        sync: Arc<dyn SyncSource>,
        max_concurrent: usize,
        prober: Arc<dyn Prober>,
    ) -> Self {
        Ctx {
            board,
            recorder,
            clock,
            sync,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            probes_done: AtomicU64::new(0),
            last_probe_ms: AtomicI64::new(0),
            epoch: Instant::now(),
            transitions: broadcast::channel(TRANSITIONS_CAP).0,
            probe_stats: ProbeStats::default(),
            prober,
            link: link::Link::system(),
            last_good: Arc::default(),
        }
    }
}

struct Running {
    cfg: StreamConfig,
    task: Option<JoinHandle<()>>,
}

/// Owns the per-stream tasks. Must be used from inside a tokio runtime.
pub struct Monitor {
    ctx: Arc<Ctx>,
    running: HashMap<String, Running>,
    max_concurrent: usize,
    shutdown_rx: shutdown::Receiver,
}

impl Monitor {
    pub fn new(ctx: Arc<Ctx>, max_concurrent: usize, shutdown_rx: shutdown::Receiver) -> Self {
        Monitor {
            ctx,
            running: HashMap::new(),
            max_concurrent,
            shutdown_rx,
        }
    }

    /// Shared context (board, counters).
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// Brings the running tasks in line with `cfg`; see the module docs.
    pub fn apply(&mut self, cfg: &Config) {
        if cfg.max_concurrent_probes > self.max_concurrent {
            self.ctx
                .permits
                .add_permits(cfg.max_concurrent_probes - self.max_concurrent);
        } else if cfg.max_concurrent_probes < self.max_concurrent {
            // Permits in use come back and are forgotten as they return.
            let mut left = self.max_concurrent - cfg.max_concurrent_probes;
            left -= self.ctx.permits.forget_permits(left);
            if left > 0 {
                let permits = self.ctx.permits.clone();
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many(left as u32).await {
                        p.forget();
                    }
                });
            }
        }
        self.max_concurrent = cfg.max_concurrent_probes;

        let wanted: HashMap<&str, &StreamConfig> =
            cfg.streams.iter().map(|s| (s.name.as_str(), s)).collect();
        let now_ms = self.ctx.clock.now_ms();
        // Removed streams. Their states wait in `renamed` for a new name
        // with the same camera (kind + URL): a rename is not a state change.
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !wanted.contains_key(n.as_str()))
            .cloned()
            .collect();
        let mut renamed: Vec<StreamState> = Vec::new();
        for name in gone {
            if let Some(r) = self.running.remove(&name) {
                if let Some(t) = r.task {
                    t.abort();
                }
            }
            renamed.extend(self.ctx.board.lock().expect("board lock").remove(&name));
            self.ctx.recorder.send(Record::StreamRemoved {
                name: name.clone(),
                ts_ms: now_ms,
            });
            tracing::info!(stream = %name, "stream removed from config");
        }
        // New and changed streams.
        for sc in &cfg.streams {
            if let Some(r) = self.running.get(&sc.name) {
                if r.cfg == *sc {
                    continue;
                }
            }
            let previous = self.running.remove(&sc.name);
            if let Some(Running { task: Some(t), .. }) = &previous {
                t.abort();
            }
            {
                let mut board = self.ctx.board.lock().expect("board lock");
                let same_camera = |st: &StreamState| {
                    st.kind == sc.target.kind && st.url_redacted == sc.url_redacted
                };
                if previous.is_none() && !board.contains_key(&sc.name) {
                    if let Some(i) = renamed.iter().position(same_camera) {
                        let mut st = renamed.swap_remove(i);
                        tracing::info!(stream = %sc.name, "renamed from {:?}; state kept", st.name);
                        st.name = sc.name.clone();
                        board.insert(sc.name.clone(), st);
                    }
                }
                let keep = match &previous {
                    Some(p) => {
                        p.cfg.target.url == sc.target.url && p.cfg.target.kind == sc.target.kind
                    }
                    // Not running yet: a state restored from the database
                    // (`cmds::run`) or carried over from a rename, if it is
                    // this camera's.
                    None => board.get(&sc.name).is_some_and(same_camera),
                };
                match board.get_mut(&sc.name) {
                    Some(st) if keep => {
                        st.enabled = sc.enabled;
                        st.url_redacted = sc.url_redacted.clone();
                        st.fail_threshold = sc.fail_threshold;
                        st.ok_threshold = sc.ok_threshold;
                    }
                    _ => {
                        board.insert(sc.name.clone(), StreamState::for_config(sc));
                    }
                }
            }
            self.ctx.recorder.send(Record::Stream {
                name: sc.name.clone(),
                kind: sc.target.kind,
                url_redacted: sc.url_redacted.clone(),
            });
            let task = sc.enabled.then(|| {
                tokio::spawn(schedule::stream_loop(
                    sc.clone(),
                    self.ctx.clone(),
                    self.shutdown_rx.clone(),
                ))
            });
            tracing::info!(
                stream = %sc.name,
                url = %sc.url_redacted,
                "{} stream ({}, every {} s{})",
                if previous.is_some() { "changed" } else { "watching" },
                sc.target.kind,
                sc.interval.as_secs(),
                if sc.enabled { "" } else { ", disabled" }
            );
            self.running.insert(
                sc.name.clone(),
                Running {
                    cfg: sc.clone(),
                    task,
                },
            );
        }
    }

    /// Stops every task and waits for them (probes in flight are dropped,
    /// which queues their RTSP TEARDOWN on the runtime).
    pub async fn stop(mut self) {
        let tasks: Vec<_> = self.running.drain().filter_map(|(_, r)| r.task).collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The scheduler against a fake prober, on tokio's paused clock: sleeps
    //! advance time at once, so minutes of schedule run in milliseconds.

    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use futures::future::BoxFuture;

    use super::*;
    use crate::clock::timesync::FixedSync;
    use crate::clock::SimulatedClock;
    use crate::probe::{Frame, MediaFacts, Outcome, Stages, Target};
    use crate::state::Health;
    use crate::store::recorder::{self, RecorderHandle};

    /// Answers every probe with success after `hold`, noting who was probed
    /// when and how many probes ran at once.
    struct FakeProber {
        hold: Duration,
        calls: Mutex<Vec<(String, Instant)>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    /// Counts a probe out when it ends or is dropped (aborted).
    struct InFlight<'a>(&'a AtomicUsize);

    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Prober for FakeProber {
        fn probe<'a>(
            &'a self,
            name: &'a str,
            _target: &'a Target,
            _keep_frame: bool,
        ) -> BoxFuture<'a, (Outcome, Option<Frame>)> {
            Box::pin(async move {
                self.calls
                    .lock()
                    .unwrap()
                    .push((name.to_owned(), Instant::now()));
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                let _out = InFlight(&self.in_flight);
                self.max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.hold).await;
                let outcome = Outcome {
                    result: Ok(()),
                    latency_ms: u32::try_from(self.hold.as_millis()).unwrap_or(u32::MAX),
                    stages: Stages::default(),
                    media: MediaFacts::default(),
                };
                (outcome, None)
            })
        }
    }

    impl FakeProber {
        /// Probes of `name` started at or after `since`.
        fn count(&self, name: &str, since: Instant) -> usize {
            self.times(name).iter().filter(|t| **t >= since).count()
        }

        /// Probes of any stream started after `t` (not at `t`: a loop
        /// that woke in the same millisecond as the test ran before it).
        fn count_after(&self, t: Instant) -> usize {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.1 > t)
                .count()
        }

        fn times(&self, name: &str) -> Vec<Instant> {
            let calls = self.calls.lock().unwrap();
            calls
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .collect()
        }

        /// Forgets the peak; the probes in flight now are the new one.
        fn reset_peak(&self) {
            let now = self.in_flight.load(Ordering::SeqCst);
            self.max_in_flight.store(now, Ordering::SeqCst);
        }
    }

    struct Harness {
        monitor: Monitor,
        prober: Arc<FakeProber>,
        _shutdown_tx: shutdown::Sender,
        recorder: RecorderHandle,
        _dir: tempfile::TempDir,
    }

    impl Harness {
        /// A monitor running `cfg`, probing through a fake that holds each
        /// probe for `hold`.
        fn start(cfg: &Config, hold: Duration) -> Harness {
            let dir = tempfile::tempdir().unwrap();
            let clock: SharedClock = Arc::new(SimulatedClock::new(1_800_000_000_000));
            let recorder = recorder::start(
                crate::store::open(&dir.path().join("t.db")).unwrap(),
                clock.clone(),
                Duration::from_secs(3600),
                Duration::from_secs(600),
                Default::default(),
            );
            let prober = Arc::new(FakeProber {
                hold,
                calls: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            });
            let ctx = Arc::new(Ctx::new(
                crate::state::new_board(),
                recorder.sender(),
                clock,
                Arc::new(FixedSync(true)),
                cfg.max_concurrent_probes,
                prober.clone(),
            ));
            let (shutdown_tx, shutdown_rx) = shutdown::channel();
            let mut monitor = Monitor::new(ctx, cfg.max_concurrent_probes, shutdown_rx);
            monitor.apply(cfg);
            Harness {
                monitor,
                prober,
                _shutdown_tx: shutdown_tx,
                recorder,
                _dir: dir,
            }
        }

        /// The board's streams and their health.
        fn board(&self) -> BTreeMap<String, Health> {
            let board = self.monitor.ctx().board.lock().unwrap();
            board.iter().map(|(n, s)| (n.clone(), s.health)).collect()
        }

        async fn stop(self) {
            self.monitor.stop().await;
            self.recorder.stop();
        }
    }

    /// A config of `streams` (YAML list items, one line each) under a cap
    /// of `max` probes at once.
    fn config(max: usize, streams: &[&str]) -> Config {
        let mut yaml = format!(
            "heartbeat_seconds: 10\nmonitor:\n  max_concurrent_probes: {max}\nstreams:{}\n",
            if streams.is_empty() { " []" } else { "" }
        );
        for s in streams {
            yaml.push_str(&format!("  - {s}\n"));
        }
        crate::config::parse(&yaml, "test.yaml").unwrap()
    }

    async fn run_for(secs: u64) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }

    const A: &str = "{name: a, url: 'rtsp://127.0.0.1:1/a'}";
    const B: &str = "{name: b, url: 'rtsp://127.0.0.1:1/b'}";
    const C: &str = "{name: c, url: 'rtsp://127.0.0.1:1/c'}";

    #[tokio::test(start_paused = true)]
    async fn added_and_removed_streams_start_and_stop_their_loops() {
        let mut h = Harness::start(&config(4, &[A, B]), Duration::from_millis(200));
        run_for(30).await;
        let t0 = Instant::now();
        assert!(h.prober.count("a", t0 - Duration::from_secs(30)) >= 2);
        assert!(h.prober.count("b", t0 - Duration::from_secs(30)) >= 2);

        h.monitor.apply(&config(4, &[A, C]));
        let names: Vec<String> = h.board().into_keys().collect();
        assert_eq!(names, ["a", "c"], "b left the board, c joined it");
        run_for(30).await;
        let b_after = h.prober.times("b").iter().filter(|t| **t > t0).count();
        assert_eq!(b_after, 0, "a removed stream is not probed");
        assert!(h.prober.count("c", t0) >= 2, "an added stream is probed");
        assert!(h.prober.count("a", t0) >= 2, "an unchanged stream still is");

        h.monitor.apply(&config(4, &[]));
        assert!(h.board().is_empty());
        let t1 = Instant::now();
        run_for(30).await;
        assert_eq!(h.prober.count_after(t1), 0, "no stream left, no probe");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_stream_is_listed_but_never_probed() {
        let off = "{name: off, url: 'rtsp://127.0.0.1:1/off', enabled: false}";
        let h = Harness::start(&config(4, &[A, off]), Duration::from_millis(200));
        run_for(60).await;
        assert_eq!(h.prober.times("off").len(), 0);
        assert!(h.prober.times("a").len() >= 5);
        assert_eq!(h.board().get("off"), Some(&Health::Unknown));
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn changed_stream_restarts_and_unchanged_keeps_its_schedule() {
        let a = "{name: a, url: 'rtsp://127.0.0.1:1/a', interval: 60}";
        let b = "{name: b, url: 'rtsp://127.0.0.1:1/b', interval: 60}";
        let mut h = Harness::start(&config(4, &[a, b]), Duration::from_millis(200));
        // First probes come within 3 s; the next ones not before 54 s.
        run_for(10).await;
        assert_eq!(h.board()["b"], Health::Up);

        // Only a probe setting of b changes: its loop restarts (a first
        // probe within 3 s) and it keeps its state; a's loop runs on.
        let b30 = "{name: b, url: 'rtsp://127.0.0.1:1/b', interval: 30}";
        h.monitor.apply(&config(4, &[a, b30]));
        assert_eq!(h.board()["b"], Health::Up, "same camera: state kept");
        let t0 = Instant::now();
        run_for(5).await;
        assert_eq!(h.prober.count("b", t0), 1, "b restarted at once");
        assert_eq!(h.prober.count("a", t0), 0, "a kept its schedule");

        // Another camera under the same name: a new state.
        let b2 = "{name: b, url: 'rtsp://127.0.0.1:1/other', interval: 30}";
        h.monitor.apply(&config(4, &[a, b2]));
        assert_eq!(h.board()["b"], Health::Unknown, "new camera: state reset");
        h.stop().await;
    }

    /// A rename (same camera, another name) carries the state over: no
    /// `unknown`, `since` kept; a new camera under a new name starts anew.
    #[tokio::test(start_paused = true)]
    async fn a_renamed_stream_keeps_its_state() {
        let mut h = Harness::start(&config(4, &[A, B]), Duration::from_millis(200));
        run_for(10).await;
        assert_eq!(h.board()["a"], Health::Up);
        let since = |h: &Harness, n: &str| h.monitor.ctx().board.lock().unwrap()[n].health_since_ms;
        let a_since = since(&h, "a");
        let hall = "{name: hall, url: 'rtsp://127.0.0.1:1/a'}";
        let other = "{name: other, url: 'rtsp://127.0.0.1:1/x'}";
        h.monitor.apply(&config(4, &[hall, other]));
        let board = h.board();
        assert_eq!(board.keys().collect::<Vec<_>>(), ["hall", "other"]);
        assert_eq!(board["hall"], Health::Up, "same camera: state kept");
        assert_eq!(since(&h, "hall"), a_since);
        assert_eq!(
            board["other"],
            Health::Unknown,
            "b's state is not another camera's"
        );
        assert_eq!(h.monitor.ctx().board.lock().unwrap()["hall"].name, "hall");
        h.stop().await;
    }

    /// A state seeded on the board before the first apply (restored from
    /// the database by `cmds::run`) is kept for the same camera only.
    #[tokio::test(start_paused = true)]
    async fn a_restored_state_is_kept_for_the_same_camera() {
        let cfg = config(4, &[A, B]);
        let mut h = Harness::start(&config(4, &[]), Duration::from_millis(200));
        {
            let mut board = h.monitor.ctx().board.lock().unwrap();
            for sc in &cfg.streams {
                let r = crate::state::Restored {
                    health: Some(Health::Down),
                    since_ms: Some(1),
                    ..Default::default()
                };
                board.insert(sc.name.clone(), StreamState::restored(sc, r));
            }
            // b's entry was another camera's.
            board.get_mut("b").unwrap().url_redacted = "rtsp://elsewhere/".into();
        }
        h.monitor.apply(&cfg);
        assert_eq!(h.board()["a"], Health::Down);
        assert_eq!(h.board()["b"], Health::Unknown);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn interval_is_kept_within_its_jitter() {
        let h = Harness::start(&config(4, &[A]), Duration::from_secs(2));
        run_for(200).await;
        let times = h.prober.times("a");
        assert!(times.len() >= 18, "{} probes in 200 s", times.len());
        assert!(
            times[0] < h.monitor.ctx().epoch + Duration::from_secs(3),
            "first probe within 3 s"
        );
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                // ≤: timers fire on whole milliseconds, rounded up.
                gap >= Duration::from_secs(9) && gap <= Duration::from_secs(11),
                "probes {gap:?} apart; interval 10 s ± 10 %"
            );
        }
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_is_kept_and_follows_reloads() {
        // Six streams each busy 5 s of every 10 s: more work than 2 permits
        // carry, so probes always wait for one.
        let names = ["s1", "s2", "s3", "s4", "s5", "s6"];
        let streams: Vec<String> = names
            .iter()
            .map(|n| format!("{{name: {n}, url: 'rtsp://127.0.0.1:1/{n}'}}"))
            .collect();
        let streams: Vec<&str> = streams.iter().map(String::as_str).collect();
        let mut h = Harness::start(&config(2, &streams), Duration::from_secs(5));
        run_for(60).await;
        assert_eq!(h.prober.max_in_flight.load(Ordering::SeqCst), 2);

        h.monitor.apply(&config(4, &streams));
        h.prober.reset_peak();
        run_for(60).await;
        assert_eq!(
            h.prober.max_in_flight.load(Ordering::SeqCst),
            4,
            "a raised cap is used at once"
        );

        // Lowered: permits in use are forgotten as they come back (probes
        // queued before that still get theirs: allow them to end).
        h.monitor.apply(&config(1, &streams));
        run_for(20).await;
        h.prober.reset_peak();
        let t0 = Instant::now();
        run_for(60).await;
        assert_eq!(h.prober.max_in_flight.load(Ordering::SeqCst), 1);
        let done: usize = names.iter().map(|n| h.prober.count(n, t0)).sum();
        assert!(done >= 11, "one permit still serves probes ({done})");
        h.stop().await;
    }
}
