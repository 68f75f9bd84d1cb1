//! systemd service notifications: `READY=1`, `STATUS=…`, `STOPPING=1`, and a
//! `WATCHDOG=1` keep-alive that is only sent while the box does its work.
//!
//! The unit is `Type=notify` with `WatchdogSec=`: systemd restarts the
//! service when pings stop. A pinger that pings from its own timer would keep
//! a wedged monitor alive forever, so each ping is gated on *progress*: every
//! [`Source`] exposes a stamp that changes when work gets done (the main loop's
//! tick counter, the recorder's loop stamp, the number of completed probes),
//! and how long it may stay unchanged. Pings stop as soon as one source has
//! been quiet for longer than its allowance.
//!
//! Why an allowance instead of "changed since the last ping": pings go out
//! at half of `WATCHDOG_USEC` (e.g. every 15 s), while a stream probes every
//! 20 s … 1 day. "No probe finished since the last ping" is normal; "no probe
//! finished for twice the longest interval plus its timeout" is a wedge. A
//! source whose allowance is `None` expects no progress right now (a box with
//! zero enabled streams probes nothing), and its clock restarts when it starts
//! expecting progress again, so an hour without streams does not count
//! against the first stream added.
//!
//! Without `$NOTIFY_SOCKET` (a host, a test) nothing is sent and nothing
//! breaks. The pinger runs on its own thread, so a wedged tokio runtime
//! cannot keep it alive by accident: the runtime's progress is one of the
//! sources.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::monitor;
use crate::shutdown;
use crate::state::{Board, Health};
use crate::store::recorder::RecorderStats;

/// Where notifications go. A seam: tests record messages instead.
pub trait Notifier: Send + Sync + 'static {
    /// Sends one notification datagram (newline-separated `KEY=value` lines).
    ///
    /// # Errors
    /// The socket's error; callers log it and carry on.
    fn send(&self, msg: &str) -> std::io::Result<()>;
}

/// systemd's `$NOTIFY_SOCKET`, via the `sd-notify` crate.
#[derive(Debug)]
pub struct SystemdNotifier;

impl SystemdNotifier {
    /// A notifier if the process runs under a service manager (`$NOTIFY_SOCKET` set).
    pub fn from_env() -> Option<SystemdNotifier> {
        std::env::var_os("NOTIFY_SOCKET").map(|_| SystemdNotifier)
    }
}

impl Notifier for SystemdNotifier {
    fn send(&self, msg: &str) -> std::io::Result<()> {
        let states: Vec<sd_notify::NotifyState> = msg
            .lines()
            .filter_map(|l| match l {
                "READY=1" => Some(sd_notify::NotifyState::Ready),
                "WATCHDOG=1" => Some(sd_notify::NotifyState::Watchdog),
                "STOPPING=1" => Some(sd_notify::NotifyState::Stopping),
                _ => l
                    .strip_prefix("STATUS=")
                    .map(sd_notify::NotifyState::Status),
            })
            .collect();
        sd_notify::notify(&states)
    }
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`, for this PID).
pub fn watchdog_usec_from_env() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// Builds a `STATUS=` line: one line, no newlines, bounded length.
pub fn status_line(text: &str) -> String {
    let one: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    format!("STATUS={one}")
}

/// One thing that must keep making progress.
pub struct Source {
    /// Short name used in logs and `/healthz` (`main-loop`, `recorder`, `probes`).
    pub name: &'static str,
    /// Reads the current stamp: any number that changes when work gets done.
    pub stamp: Box<dyn Fn() -> i64 + Send>,
    /// How long the stamp may stay unchanged; `None` while no progress is
    /// expected (e.g. no enabled streams).
    pub allowance: Box<dyn Fn() -> Option<Duration> + Send>,
}

impl Source {
    /// A source with a fixed allowance.
    pub fn fixed(
        name: &'static str,
        allowance: Duration,
        stamp: impl Fn() -> i64 + Send + 'static,
    ) -> Source {
        Source {
            name,
            stamp: Box::new(stamp),
            allowance: Box::new(move || Some(allowance)),
        }
    }
}

/// Last observation of one source.
struct Track {
    stamp: i64,
    changed_at: Instant,
    expecting: bool,
}

/// A source that made no progress for longer than its allowance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The source's name.
    pub source: &'static str,
    /// How long its stamp has not changed.
    pub quiet: Duration,
    /// What it was allowed.
    pub allowance: Duration,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} made no progress for {} s (allowed {} s)",
            self.source,
            self.quiet.as_secs(),
            self.allowance.as_secs()
        )
    }
}

/// Decides, from the sources' stamps, whether the box is making progress.
/// Pure apart from calling the sources; time is passed in.
pub struct Gate {
    sources: Vec<(Source, Option<Track>)>,
}

impl Gate {
    /// A gate over `sources`; each starts "just changed" at its first check.
    pub fn new(sources: Vec<Source>) -> Gate {
        Gate {
            sources: sources.into_iter().map(|s| (s, None)).collect(),
        }
    }

    /// Samples every source at `now`; returns the stalled ones (empty = healthy).
    pub fn check(&mut self, now: Instant) -> Vec<Stall> {
        let mut stalls = Vec::new();
        for (src, track) in &mut self.sources {
            let stamp = (src.stamp)();
            let allowance = (src.allowance)();
            let t = track.get_or_insert(Track {
                stamp,
                changed_at: now,
                expecting: allowance.is_some(),
            });
            // Progress, or progress just became expected: restart its clock.
            if t.stamp != stamp || (allowance.is_some() && !t.expecting) {
                t.stamp = stamp;
                t.changed_at = now;
            }
            t.expecting = allowance.is_some();
            if let Some(allowance) = allowance {
                let quiet = now.saturating_duration_since(t.changed_at);
                if quiet > allowance {
                    stalls.push(Stall {
                        source: src.name,
                        quiet,
                        allowance,
                    });
                }
            }
        }
        stalls
    }
}

/// What the pinger did last; shown in `/healthz`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WatchdogStatus {
    /// systemd supervises us (`$NOTIFY_SOCKET` set).
    pub supervised: bool,
    /// Ping interval in ms (half of `WATCHDOG_USEC`); `None` = no watchdog.
    pub ping_interval_ms: Option<u64>,
    /// Pings sent so far.
    pub pings: u64,
    /// Sources that stalled at the last check (pings withheld while non-empty).
    pub stalled: Vec<String>,
}

/// Sends `WATCHDOG=1`/`STATUS=` on each [`Pinger::tick`] while the gate is open.
pub struct Pinger {
    notifier: Arc<dyn Notifier>,
    gate: Gate,
    status: Box<dyn Fn() -> String + Send>,
    watchdog: bool,
    last_status: String,
    was_stalled: bool,
    /// Shared view for `/healthz`.
    pub report: Arc<Mutex<WatchdogStatus>>,
}

impl Pinger {
    /// `watchdog`: send `WATCHDOG=1` (false: only keep `STATUS=` current).
    pub fn new(
        notifier: Arc<dyn Notifier>,
        gate: Gate,
        status: Box<dyn Fn() -> String + Send>,
        watchdog: bool,
    ) -> Pinger {
        Pinger {
            notifier,
            gate,
            status,
            watchdog,
            last_status: String::new(),
            was_stalled: false,
            report: Arc::default(),
        }
    }

    /// One check at `now`: returns true if `WATCHDOG=1` was sent.
    pub fn tick(&mut self, now: Instant) -> bool {
        let stalls = self.gate.check(now);
        let mut msg = Vec::new();
        if stalls.is_empty() {
            if self.was_stalled {
                tracing::warn!("watchdog: progress again, pinging systemd again");
            }
            if self.watchdog {
                msg.push("WATCHDOG=1".to_owned());
            }
        } else if !self.was_stalled {
            let what: Vec<String> = stalls.iter().map(Stall::to_string).collect();
            tracing::error!(
                "watchdog: withholding pings, systemd will restart the service: {}",
                what.join("; ")
            );
        }
        self.was_stalled = !stalls.is_empty();
        let status = match stalls.first() {
            None => (self.status)(),
            Some(s) => format!("stalled: {s}"),
        };
        if status != self.last_status {
            msg.push(status_line(&status));
            self.last_status = status;
        }
        let pinged = msg.iter().any(|m| m == "WATCHDOG=1");
        if !msg.is_empty() {
            if let Err(e) = self.notifier.send(&msg.join("\n")) {
                tracing::warn!("watchdog: notifying systemd failed: {e}");
            }
        }
        let mut r = self.report.lock().expect("watchdog report lock");
        r.supervised = true;
        r.pings += u64::from(pinged);
        r.stalled = stalls.iter().map(Stall::to_string).collect();
        pinged
    }
}

/// The running pinger thread.
pub struct WatchdogHandle {
    join: JoinHandle<()>,
    notifier: Arc<dyn Notifier>,
    /// What the pinger last did.
    pub report: Arc<Mutex<WatchdogStatus>>,
}

impl WatchdogHandle {
    /// Tells systemd the service is stopping (`STOPPING=1`).
    pub fn stopping(&self) {
        if let Err(e) = self.notifier.send("STOPPING=1") {
            tracing::warn!("notifying systemd (STOPPING=1) failed: {e}");
        }
    }

    /// Waits for the thread; it ends once shutdown was requested.
    pub fn join(self) {
        let _ = self.join.join();
    }
}

/// How often `STATUS=` is refreshed when systemd set no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Starts the `watchdog` thread: a tick every `every` (half of `WATCHDOG_USEC`,
/// or [`STATUS_EVERY`] with `watchdog_usec = None`) until `shutdown_rx` fires.
pub fn start(
    notifier: Arc<dyn Notifier>,
    watchdog_usec: Option<Duration>,
    sources: Vec<Source>,
    status: Box<dyn Fn() -> String + Send>,
    shutdown_rx: shutdown::Receiver,
) -> WatchdogHandle {
    let every = watchdog_usec.map_or(STATUS_EVERY, |d| (d / 2).max(Duration::from_millis(100)));
    let mut pinger = Pinger::new(
        notifier.clone(),
        Gate::new(sources),
        status,
        watchdog_usec.is_some(),
    );
    let report = pinger.report.clone();
    {
        let mut r = report.lock().expect("watchdog report lock");
        r.supervised = true;
        r.ping_interval_ms = watchdog_usec.map(|_| every.as_millis() as u64);
    }
    if let Some(d) = watchdog_usec {
        tracing::info!(
            "watchdog: systemd expects a ping every {} ms; pinging every {} ms while making progress",
            d.as_millis(),
            every.as_millis()
        );
    }
    let join = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || loop {
            pinger.tick(Instant::now());
            if shutdown_rx.wait_for(every) {
                return;
            }
        })
        .expect("spawning the watchdog thread should succeed");
    WatchdogHandle {
        join,
        notifier,
        report,
    }
}

/// Everything `streampulse run` lets the watchdog watch.
pub struct RunProgress {
    /// Bumped by the main loop on every pass (every 2 s).
    pub loop_ticks: Arc<AtomicU64>,
    /// The scheduler's counters (`probes_done`).
    pub monitor: Arc<monitor::Ctx>,
    /// The recorder's loop stamp (`last_progress_ms`, every ≤ 250 ms).
    pub recorder: Arc<RecorderStats>,
    /// The running config (which streams are enabled, their intervals).
    pub config: Arc<RwLock<Arc<Config>>>,
    /// The board, for the `STATUS=` line.
    pub board: Board,
}

/// How long the main loop may go without a pass (it passes every 2 s).
pub const MAIN_LOOP_ALLOWANCE: Duration = Duration::from_secs(30);
/// How long the recorder may go without a loop pass: a slow SD card can
/// hold one commit or retention pass for a while.
pub const RECORDER_ALLOWANCE: Duration = Duration::from_secs(120);

/// How long the scheduler may go without completing any probe: twice the
/// slowest enabled stream's interval plus timeout, plus a minute. `None` with
/// no enabled streams (nothing to probe is not a wedge).
pub fn probe_allowance(cfg: &Config) -> Option<Duration> {
    cfg.streams
        .iter()
        .filter(|s| s.enabled)
        .map(|s| (s.interval + s.target.timeout) * 2 + Duration::from_secs(60))
        .max()
}

/// One-line summary for `STATUS=` (shown by `systemctl status`).
pub fn board_status(board: &Board, probes_done: u64) -> String {
    let b = board.lock().expect("board lock");
    let enabled = b.values().filter(|s| s.enabled);
    let (mut up, mut down, mut unknown) = (0, 0, 0);
    for s in enabled {
        match s.health {
            Health::Up => up += 1,
            Health::Down => down += 1,
            Health::Unknown => unknown += 1,
        }
    }
    format!(
        "{} streams: {up} up, {down} down, {unknown} unknown; {probes_done} probes",
        b.len()
    )
}

/// `status` led by `DEGRADED (data in RAM): ` while the daemon runs
/// degraded ([`super::data_dir`]), so `systemctl status` says so first.
fn degraded_prefix(status: String) -> String {
    match super::health::global().degraded() {
        Some(_) => format!("DEGRADED (data in RAM): {status}"),
        None => status,
    }
}

/// Under systemd (`$NOTIFY_SOCKET`): sends `READY=1` and starts the pinger
/// over the main loop, the recorder and the probes. `None` without systemd.
/// Call once the database is open and the web port is bound.
pub fn start_for_run(p: RunProgress, shutdown_rx: shutdown::Receiver) -> Option<WatchdogHandle> {
    let notifier: Arc<dyn Notifier> = Arc::new(SystemdNotifier::from_env()?);
    let probes_done = |m: &monitor::Ctx| m.probes_done.load(Ordering::Relaxed);
    let status_text = degraded_prefix(board_status(&p.board, probes_done(&p.monitor)));
    let ready = format!("READY=1\n{}", status_line(&status_text));
    if let Err(e) = notifier.send(&ready) {
        tracing::warn!("notifying systemd (READY=1) failed: {e}");
    }
    let (ticks, rec, mon, mon2, cfg) = (
        p.loop_ticks,
        p.recorder,
        p.monitor.clone(),
        p.monitor,
        p.config,
    );
    let sources = vec![
        Source::fixed("main-loop", MAIN_LOOP_ALLOWANCE, move || {
            ticks.load(Ordering::Relaxed) as i64
        }),
        Source::fixed("recorder", RECORDER_ALLOWANCE, move || {
            rec.last_progress_ms.load(Ordering::Relaxed)
        }),
        Source {
            name: "probes",
            stamp: Box::new(move || probes_done(&mon) as i64),
            allowance: Box::new(move || probe_allowance(&cfg.read().expect("config lock"))),
        },
    ];
    let board = p.board;
    let status = Box::new(move || degraded_prefix(board_status(&board, probes_done(&mon2))));
    Some(start(
        notifier,
        watchdog_usec_from_env(),
        sources,
        status,
        shutdown_rx,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    /// Records every message instead of sending it.
    #[derive(Default)]
    struct FakeNotifier(Mutex<Vec<String>>);

    impl Notifier for FakeNotifier {
        fn send(&self, msg: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(msg.to_owned());
            Ok(())
        }
    }

    impl FakeNotifier {
        fn pings(&self) -> usize {
            self.0
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
                .count()
        }
        fn statuses(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .flat_map(|m| m.lines().map(str::to_owned).collect::<Vec<_>>())
                .filter(|l| l.starts_with("STATUS="))
                .collect()
        }
    }

    /// A counter a test bumps to fake progress.
    fn counter() -> Arc<AtomicI64> {
        Arc::new(AtomicI64::new(0))
    }

    fn src(name: &'static str, c: &Arc<AtomicI64>, allowance: Duration) -> Source {
        let c = c.clone();
        Source::fixed(name, allowance, move || c.load(Ordering::SeqCst))
    }

    const S: Duration = Duration::from_secs(1);

    /// The core property: pings continue while every source advances, stop
    /// once one source wedges past its allowance, and resume if it recovers.
    #[test]
    fn pings_only_while_all_sources_progress() {
        let (main_loop, recorder, probes) = (counter(), counter(), counter());
        let gate = Gate::new(vec![
            src("main-loop", &main_loop, 30 * S),
            src("recorder", &recorder, 120 * S),
            src("probes", &probes, 60 * S),
        ]);
        let fake = Arc::new(FakeNotifier::default());
        let mut p = Pinger::new(fake.clone(), gate, Box::new(|| "2 streams".into()), true);
        let t0 = Instant::now();
        // Healthy for 10 minutes: everything advances every 15 s.
        for i in 0..40u32 {
            main_loop.fetch_add(1, Ordering::SeqCst);
            recorder.fetch_add(1, Ordering::SeqCst);
            if i % 2 == 0 {
                probes.fetch_add(1, Ordering::SeqCst);
            }
            assert!(p.tick(t0 + 15 * S * i), "healthy tick {i} must ping");
        }
        assert_eq!(fake.pings(), 40);
        // Wedge the monitor: probes stop finishing, the rest keeps ticking.
        let wedged_at = t0 + 15 * S * 40;
        let mut pinged_after = 0;
        for i in 0..10u32 {
            main_loop.fetch_add(1, Ordering::SeqCst);
            recorder.fetch_add(1, Ordering::SeqCst);
            if p.tick(wedged_at + 15 * S * i) {
                pinged_after = i;
            }
        }
        // The last probe finished at 15 s * 38 = 570 s; the allowance is 60 s:
        // ticks at 600 s and 615 s (quiet 30 s, 45 s) and 630 s (60 s) still
        // ping, 645 s (75 s) and later do not.
        assert_eq!(
            pinged_after, 2,
            "pings must stop once the allowance is exceeded"
        );
        let r = p.report.lock().unwrap().clone();
        assert_eq!(r.stalled.len(), 1, "{r:?}");
        assert!(r.stalled[0].starts_with("probes made no progress"), "{r:?}");
        assert!(
            fake.statuses()
                .last()
                .unwrap()
                .starts_with("STATUS=stalled: probes"),
            "{:?}",
            fake.statuses()
        );
        // Recovery: probes finish again → pings resume.
        probes.fetch_add(1, Ordering::SeqCst);
        assert!(p.tick(wedged_at + 15 * S * 10));
    }

    #[test]
    fn wedged_recorder_or_main_loop_stops_pings() {
        for wedge in ["main-loop", "recorder"] {
            let (main_loop, recorder) = (counter(), counter());
            let gate = Gate::new(vec![
                src("main-loop", &main_loop, 30 * S),
                src("recorder", &recorder, 120 * S),
            ]);
            let fake = Arc::new(FakeNotifier::default());
            let mut p = Pinger::new(fake.clone(), gate, Box::new(String::new), true);
            let t0 = Instant::now();
            let mut last_ping = None;
            for i in 0..30u32 {
                if wedge != "main-loop" {
                    main_loop.fetch_add(1, Ordering::SeqCst);
                }
                if wedge != "recorder" {
                    recorder.fetch_add(1, Ordering::SeqCst);
                }
                if p.tick(t0 + 10 * S * i) {
                    last_ping = Some(i);
                }
            }
            let allowed_ticks = if wedge == "main-loop" { 3 } else { 12 };
            assert_eq!(last_ping, Some(allowed_ticks), "{wedge}");
        }
    }

    /// A box with no enabled streams still pings (the main loop and recorder
    /// tick), and adding a stream after an idle hour does not count that hour.
    #[test]
    fn zero_streams_still_ping_and_idle_time_is_not_held_against_new_streams() {
        let (main_loop, probes) = (counter(), counter());
        let streams = Arc::new(AtomicI64::new(0));
        let s2 = streams.clone();
        let p2 = probes.clone();
        let gate = Gate::new(vec![
            src("main-loop", &main_loop, 30 * S),
            Source {
                name: "probes",
                stamp: Box::new(move || p2.load(Ordering::SeqCst)),
                allowance: Box::new(move || (s2.load(Ordering::SeqCst) > 0).then_some(60 * S)),
            },
        ]);
        let fake = Arc::new(FakeNotifier::default());
        let mut p = Pinger::new(fake.clone(), gate, Box::new(String::new), true);
        let t0 = Instant::now();
        for i in 0..240u32 {
            main_loop.fetch_add(1, Ordering::SeqCst);
            assert!(p.tick(t0 + 15 * S * i), "an idle box must keep pinging");
        }
        // A stream is added after an hour: its first probe has 60 s.
        streams.store(1, Ordering::SeqCst);
        let t1 = t0 + 15 * S * 240;
        main_loop.fetch_add(1, Ordering::SeqCst);
        assert!(p.tick(t1), "the idle hour must not count");
        main_loop.fetch_add(1, Ordering::SeqCst);
        assert!(p.tick(t1 + 45 * S));
        main_loop.fetch_add(1, Ordering::SeqCst);
        assert!(
            !p.tick(t1 + 75 * S),
            "no probe in 75 s with a 60 s allowance"
        );
    }

    #[test]
    fn status_only_mode_never_pings_and_sends_status_on_change() {
        let c = counter();
        let gate = Gate::new(vec![src("main-loop", &c, 30 * S)]);
        let fake = Arc::new(FakeNotifier::default());
        let text = Arc::new(Mutex::new("1 stream".to_owned()));
        let t2 = text.clone();
        let mut p = Pinger::new(
            fake.clone(),
            gate,
            Box::new(move || t2.lock().unwrap().clone()),
            false,
        );
        let t0 = Instant::now();
        for i in 0..3 {
            c.fetch_add(1, Ordering::SeqCst);
            assert!(!p.tick(t0 + S * i));
        }
        *text.lock().unwrap() = "2 streams\nwith a newline".into();
        c.fetch_add(1, Ordering::SeqCst);
        p.tick(t0 + 4 * S);
        assert_eq!(fake.pings(), 0);
        assert_eq!(
            fake.statuses(),
            vec!["STATUS=1 stream", "STATUS=2 streams with a newline"]
        );
    }

    #[test]
    fn pinger_thread_stops_on_shutdown() {
        let c = counter();
        let fake = Arc::new(FakeNotifier::default());
        let (tx, rx) = shutdown::channel();
        let c2 = c.clone();
        let h = start(
            fake.clone(),
            Some(Duration::from_millis(200)),
            vec![Source::fixed("main-loop", 30 * S, move || {
                c2.load(Ordering::SeqCst)
            })],
            Box::new(|| "ok".into()),
            rx,
        );
        // The first tick happens at start; wait (bounded) until it is seen.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fake.pings() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(fake.pings() >= 1);
        assert_eq!(h.report.lock().unwrap().ping_interval_ms, Some(100));
        drop(tx);
        h.join();
    }
}
