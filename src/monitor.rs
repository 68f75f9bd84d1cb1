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

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::timesync::SyncSource;
use crate::clock::SharedClock;
use crate::config::{Config, StreamConfig};
use crate::probe;
use crate::shutdown;
use crate::state::{Board, Health, StreamState, Transition};
use crate::store::recorder::{Record, RecorderTx, FLAG_CLOCK_UNSYNCED};
use crate::web::metrics::ProbeStats;

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
    /// The live view, set once at start: a stream watched live is probed
    /// through its live session (one camera session, not two), and probes
    /// keep their frame when the live grid wants a thumbnail.
    pub live: std::sync::OnceLock<Arc<crate::live::Hub>>,
}

impl Ctx {
    pub fn new(
        board: Board,
        recorder: RecorderTx,
        clock: SharedClock,
        sync: Arc<dyn SyncSource>,
        max_concurrent: usize,
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
            live: std::sync::OnceLock::new(),
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
        // Removed streams.
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !wanted.contains_key(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(r) = self.running.remove(&name) {
                if let Some(t) = r.task {
                    t.abort();
                }
            }
            self.ctx.board.lock().expect("board lock").remove(&name);
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
                let keep = previous.as_ref().is_some_and(|p| {
                    p.cfg.target.url == sc.target.url && p.cfg.target.kind == sc.target.kind
                });
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
                tokio::spawn(stream_loop(
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

/// A random duration in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    Duration::from_micros(fastrand::u64(0..max.as_micros().max(1) as u64))
}

async fn stream_loop(sc: StreamConfig, ctx: Arc<Ctx>, shutdown_rx: shutdown::Receiver) {
    let name: Arc<str> = Arc::from(sc.name.as_str());
    // Spread first probes over up to 3 s so a restart does not hit every camera at once.
    let mut next = Instant::now() + jitter(sc.interval.min(Duration::from_secs(3)));
    // The previous heartbeat's timestamp and monotonic time. A wall clock
    // behind it stepped back: the heartbeat is flagged like an unsynced one
    // and, unless NTP vouches for the new reading, stamped on the previous
    // timeline (plus the monotonic time since), so it is not filed among
    // older heartbeats: the history stays in the order it was taken.
    let mut prev: Option<(i64, Instant)> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown_rx.wait() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        let permit = tokio::select! {
            biased;
            _ = shutdown_rx.wait() => return,
            p = ctx.permits.acquire() => match p { Ok(p) => p, Err(_) => return },
        };
        let started = Instant::now();
        let wall_ms = ctx.clock.now_ms();
        let sync = ctx.sync.state(wall_ms);
        let (ts_ms, stepped_back) = match prev {
            Some((p_ts, p_at)) if wall_ms < p_ts => {
                let since = i64::try_from(started.duration_since(p_at).as_millis()).unwrap_or(0);
                let ts = if sync.kernel_synced {
                    wall_ms
                } else {
                    p_ts.saturating_add(since.max(1))
                };
                (ts, true)
            }
            _ => (wall_ms, false),
        };
        prev = Some((ts_ms, started));
        let outcome = tokio::select! {
            biased;
            _ = shutdown_rx.wait() => return,
            o = crate::live::probe_for_monitor(ctx.live.get(), &sc.name, &sc.target) => o,
        };
        drop(permit);
        record(
            &ctx,
            &name,
            ts_ms,
            &outcome,
            !sync.trusted() || stepped_back,
        );

        // Next slot: keep the cadence (interval ± 10 %), never stack up.
        let spread = sc.interval / 10;
        next = started + sc.interval - spread + jitter(spread * 2);
        if next < Instant::now() {
            next = Instant::now() + Duration::from_millis(100);
        }
    }
}

fn record(ctx: &Ctx, name: &Arc<str>, ts_ms: i64, outcome: &probe::Outcome, unsynced: bool) {
    ctx.probes_done.fetch_add(1, Ordering::Relaxed);
    ctx.probe_stats.observe(name, outcome);
    ctx.last_probe_ms
        .store(ctx.epoch.elapsed().as_millis() as i64, Ordering::Relaxed);
    let (transition, media_changed, health) = {
        let mut board = ctx.board.lock().expect("board lock");
        let Some(st) = board.get_mut(&**name) else {
            return;
        };
        let before = st.media.clone();
        let t = st.apply(ts_ms, outcome, unsynced);
        let changed = !st.media.same_stored_facts(&before);
        (t, outcome.is_ok() && changed, st.health)
    };
    match &outcome.result {
        Ok(()) => {
            tracing::debug!(stream = %name, "ok in {} ms: {}", outcome.latency_ms, outcome.media.summary())
        }
        Err(f) => {
            tracing::debug!(stream = %name, "fail in {} ms: {}: {}", outcome.latency_ms, f.reason, f.message)
        }
    }
    ctx.recorder.send(Record::Heartbeat {
        stream: name.clone(),
        ts_ms,
        ok: outcome.is_ok(),
        latency_ms: outcome.latency_ms,
        reason: outcome.reason(),
        flags: if unsynced { FLAG_CLOCK_UNSYNCED } else { 0 },
    });
    if media_changed {
        ctx.recorder.send(Record::Media {
            stream: name.clone(),
            ts_ms,
            media: outcome.media.clone(),
        });
    }
    if let Some(t) = transition {
        match health {
            Health::Down => {
                tracing::warn!(stream = %name, "{} → down: {}", t.from.as_str(), t.message)
            }
            _ => {
                tracing::info!(stream = %name, "{} → {}: {}", t.from.as_str(), t.to.as_str(), t.message)
            }
        }
        // No receiver (MQTT and webhooks off) is not an error.
        let _ = ctx.transitions.send(t.clone());
        ctx.recorder.send(Record::Event(t));
    }
}
