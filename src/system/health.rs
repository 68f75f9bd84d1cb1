//! The box's own health: data-partition space (and the retention it
//! implies), degraded mode (the data directory was not usable: data in
//! RAM), the NTP offset, the watchdog, the boot-config import, the web
//! listeners. Shown in
//! `/healthz`; `/api/status` stays keyed by stream name only (seed shape).
//!
//! [`start`] runs the `system` thread: every minute it reads free space and,
//! when the pressure step changes, sends the recorder a tightened retention
//! policy ([`crate::store::disk::tightened`]); every ten minutes it measures the
//! clock's offset against the configured NTP servers. Slow or dead NTP
//! servers only delay this thread, never a probe.
//!
//! Why a process-wide [`global`]: there is one box, one data partition and
//! one clock per process, and the web handlers (which live in another module
//! with their own context struct) read it. Only `streampulse run` writes it;
//! a value that was never set reads as `null`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::watchdog::WatchdogStatus;
use crate::clock::sntp;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::shutdown;
use crate::store::disk::{self, Pressure};
use crate::store::recorder::{Record, RecorderTx};
use crate::store::retention::Policy;

/// Everything `/healthz` shows about the box beyond the streams.
#[derive(Default)]
pub struct Health {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    data_dir: Option<PathBuf>,
    /// Why the data directory is not used ([`super::data_dir`]).
    degraded: Option<String>,
    ntp: Option<Result<sntp::Measurement, String>>,
    pressure: Option<Pressure>,
    retention: Option<Policy>,
    watchdog: Option<Arc<Mutex<WatchdogStatus>>>,
    boot_config: Option<BootConfig>,
    web_listen: Option<WebListen>,
}

/// Addresses the web server listens on, and those it could not bind.
#[derive(Clone)]
struct WebListen {
    listening: Vec<String>,
    /// (address, error)
    failed: Vec<(String, String)>,
}

/// What the boot-config import did at start: `outcome` is for anyone
/// (`imported`, `factory reset; imported`, ...), `detail` for logged-in
/// callers only (a rejected import's text quotes the file's error).
#[derive(Clone, Debug)]
pub struct BootConfig {
    pub outcome: String,
    pub detail: String,
}

/// The process's [`Health`]; see the module docs for why it is global.
pub fn global() -> &'static Health {
    static H: OnceLock<Health> = OnceLock::new();
    H.get_or_init(Health::default)
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("health lock")
    }

    /// Records where the data partition is.
    pub fn set_data_dir(&self, dir: &Path) {
        self.lock().data_dir = Some(dir.to_path_buf());
    }

    /// Records that the daemon runs degraded (data in RAM), and why.
    pub fn set_degraded(&self, reason: Option<String>) {
        self.lock().degraded = reason;
    }

    /// Why the daemon runs degraded, if it does (every page shows it).
    pub fn degraded(&self) -> Option<String> {
        self.lock().degraded.clone()
    }

    /// Records what the boot-config import did at start.
    pub fn set_boot_config(&self, what: BootConfig) {
        self.lock().boot_config = Some(what);
    }

    /// Records the addresses the web server bound and those it could not.
    pub fn set_web_listen(&self, listening: Vec<String>, failed: Vec<(String, String)>) {
        self.lock().web_listen = Some(WebListen { listening, failed });
    }

    /// Shares the watchdog's report.
    pub fn set_watchdog(&self, report: Arc<Mutex<WatchdogStatus>>) {
        self.lock().watchdog = Some(report);
    }

    /// The last measured pressure (None before the first check).
    pub fn pressure(&self) -> Option<Pressure> {
        self.lock().pressure
    }

    /// `configured` as tightened for the last measured pressure.
    pub fn effective_policy(&self, configured: Policy) -> Policy {
        disk::tightened(configured, self.pressure().unwrap_or(Pressure::None))
    }

    /// The `/healthz` fragment: `data` (degraded mode), `disk` (of `data_dir`), `ntp`, `watchdog`,
    /// `boot_config`. Without `detail` (a caller not logged in),
    /// `boot_config` is the outcome only ([`BootConfig`]).
    pub fn json(&self, data_dir: &Path, detail: bool) -> Value {
        let (degraded, ntp, pressure, retention, watchdog, boot, web) = {
            let i = self.lock();
            (
                i.degraded.clone(),
                i.ntp.clone(),
                i.pressure,
                i.retention,
                i.watchdog.clone(),
                i.boot_config.clone(),
                i.web_listen.clone(),
            )
        };
        let d = data_dir;
        let disk = match disk::usage(d) {
            Ok(u) => json!({
                "path": d,
                "total_bytes": u.total_bytes,
                "free_bytes": u.free_bytes,
                "free_percent": (u.free_percent() * 10.0).round() / 10.0,
                "pressure": disk::pressure(u),
                "retention": retention.map(|p| json!({
                    "heartbeat_days": p.heartbeat_days,
                    "rollup_days": p.rollup_days,
                    "tightened": pressure.is_some_and(|p| p != Pressure::None),
                })),
            }),
            Err(e) => json!({"path": d, "error": format!("{e:#}")}),
        };
        json!({
            // Public, like the disk's path: anyone at the box should learn
            // that its history is not being kept.
            "data": {"degraded": degraded.is_some(), "reason": degraded},
            "disk": disk,
            "ntp": ntp.map(|r| match r {
                Ok(m) => serde_json::to_value(m).unwrap_or(Value::Null),
                Err(e) => json!({"error": e}),
            }),
            "watchdog": watchdog.map(|w| serde_json::to_value(&*w.lock().expect("watchdog report lock")).unwrap_or(Value::Null)),
            // Which addresses failed is public (the box is reachable on the
            // others); why, for logged-in callers only.
            "web": web.map(|w| json!({
                "listening": w.listening,
                "listen_failed": w.failed.into_iter().map(|(a, e)| if detail {
                    json!({"address": a, "error": e})
                } else {
                    json!({"address": a})
                }).collect::<Vec<_>>(),
            })),
            "boot_config": boot.map(|b| if detail {
                crate::redact::redact_text(&b.detail, &[])
            } else {
                b.outcome
            }),
        })
    }
}

/// How often free space is checked.
const DISK_EVERY: Duration = Duration::from_secs(60);
/// How often the NTP offset is measured.
const NTP_EVERY: Duration = Duration::from_secs(600);
/// How soon a failed measurement is retried: one datagram, and /healthz
/// should not show a server that is back as failing for 10 minutes.
const NTP_RETRY: Duration = Duration::from_secs(30);
/// Deadline of one SNTP query.
const NTP_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the `system` thread (see the module docs); it ends at shutdown.
pub fn start(
    health: &'static Health,
    config: Arc<RwLock<Arc<Config>>>,
    recorder: RecorderTx,
    clock: SharedClock,
    shutdown_rx: shutdown::Receiver,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("system".into())
        .spawn(move || {
            let mut next_ntp = Instant::now();
            let mut sent: Option<Policy> = None;
            loop {
                let cfg = config.read().expect("config lock").clone();
                check_disk(health, &cfg, &recorder, &mut sent);
                if Instant::now() >= next_ntp && !cfg.ntp_servers.is_empty() {
                    let r = sntp::query_any(&cfg.ntp_servers, NTP_TIMEOUT, &*clock);
                    next_ntp = Instant::now() + if r.is_ok() { NTP_EVERY } else { NTP_RETRY };
                    match &r {
                        Ok(m) if m.offset_ms.abs() > 1_000 => tracing::warn!(
                            "clock is {} ms off {} (is NTP blocked?)",
                            m.offset_ms,
                            m.server
                        ),
                        Ok(m) => tracing::debug!("clock offset {} ms ({})", m.offset_ms, m.server),
                        Err(e) => tracing::warn!("NTP check failed: {e}"),
                    }
                    health.lock().ntp = Some(r.map_err(|e| e.to_string()));
                }
                // Wake for a retry of a failed NTP check too (the disk check
                // then runs early: a statvfs, nothing more).
                let wait = if cfg.ntp_servers.is_empty() {
                    DISK_EVERY
                } else {
                    DISK_EVERY.min(next_ntp.saturating_duration_since(Instant::now()))
                };
                if shutdown_rx.wait_for(wait.max(Duration::from_secs(1))) {
                    return;
                }
            }
        })
        .expect("spawning the system thread should succeed")
}

/// Reads free space and sends a new retention policy when the step changed.
fn check_disk(health: &Health, cfg: &Config, recorder: &RecorderTx, sent: &mut Option<Policy>) {
    let Some(dir) = health.lock().data_dir.clone() else {
        return;
    };
    let u = match disk::usage(&dir) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("disk check: {e:#}");
            return;
        }
    };
    let p = disk::pressure(u);
    let previous = health.lock().pressure.replace(p);
    if previous.is_some_and(|old| old != p) || (previous.is_none() && p != Pressure::None) {
        let msg = format!(
            "data partition {}: {} MiB free ({:.1} %), pressure {p:?}",
            dir.display(),
            u.free_bytes >> 20,
            u.free_percent()
        );
        if p == Pressure::None {
            tracing::info!("{msg}");
        } else {
            tracing::warn!("{msg}: retention tightened");
        }
    }
    let configured = Policy {
        heartbeat_days: cfg.heartbeat_retention_days,
        rollup_days: cfg.rollup_retention_days,
    };
    let effective = disk::tightened(configured, p);
    health.lock().retention = Some(effective);
    if let Some(policy) = policy_to_send(sent, configured, p) {
        recorder.send(Record::Retention(policy));
    }
}

/// The policy to send the recorder, if it changed. The recorder starts with
/// the configured policy, so nothing is sent while that still applies.
/// Updates `sent`.
fn policy_to_send(sent: &mut Option<Policy>, configured: Policy, p: Pressure) -> Option<Policy> {
    let effective = disk::tightened(configured, p);
    let send = *sent != Some(effective) && (sent.is_some() || effective != configured);
    *sent = Some(effective);
    send.then_some(effective)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_sent_only_when_the_step_changes() {
        let cfg = Policy {
            heartbeat_days: 8,
            rollup_days: 730,
        };
        let mut sent = None;
        // Plenty of space at start: the recorder already has `cfg`.
        assert_eq!(policy_to_send(&mut sent, cfg, Pressure::None), None);
        assert_eq!(policy_to_send(&mut sent, cfg, Pressure::None), None);
        // Filling up: tightened once per step, not once a minute.
        let low = policy_to_send(&mut sent, cfg, Pressure::Low).unwrap();
        assert_eq!(low.heartbeat_days, 4);
        assert_eq!(policy_to_send(&mut sent, cfg, Pressure::Low), None);
        let critical = policy_to_send(&mut sent, cfg, Pressure::Critical).unwrap();
        assert_eq!((critical.heartbeat_days, critical.rollup_days), (1, 90));
        // Space freed (or a bigger card): back to the configured policy.
        assert_eq!(policy_to_send(&mut sent, cfg, Pressure::None), Some(cfg));
        // A box that starts nearly full tightens at once.
        let mut fresh = None;
        assert!(policy_to_send(&mut fresh, cfg, Pressure::High).is_some());
    }
}
