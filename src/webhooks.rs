//! Webhooks: on every state change, a JSON POST to each URL of `notify:`.
//!
//! ```json
//! {"stream":"Front door","from":"up","to":"down","reason":"timeout",
//!  "message":"...","picture":"ok","ts":"2025-01-01T10:00:00+01:00",
//!  "ts_ms":1735722000000,"device":"streampulse"}
//! ```
//!
//! Never in the monitor's way: a forwarding task reads the monitor's bounded
//! broadcast and `try_send`s each body to one thread per URL through a small
//! bounded queue (full → that notification is dropped for that URL, with a
//! warning). Each thread posts with a hard timeout and retries transient
//! failures (connect errors, timeouts, 408/429/5xx) a bounded number of times
//! with exponential backoff; 4xx answers are not retried. Threads, not the
//! runtime's blocking pool: a receiver that hangs must not take threads the
//! probes need. Credentials in a URL become HTTP Basic auth and never reach a
//! log line (URLs are shown redacted).

use std::sync::mpsc::{self as std_mpsc, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use tokio::sync::broadcast;

pub use crate::config::webhooks::Webhook;
use crate::config::Config;
use crate::redact;
use crate::shutdown;
use crate::state::Transition;

/// Per-request deadline (connect + send + answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notification, the first included.
pub const MAX_ATTEMPTS: u32 = 4;
/// Delay before the first retry; doubles each time (1, 2, 4 s).
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Notifications waiting per URL; more are dropped.
pub const QUEUE_LEN: usize = 32;
/// How long stopping waits for threads busy with a request.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The JSON body for one transition; `ts` in the configured time zone.
pub fn body(t: &Transition, cfg: &Config) -> Vec<u8> {
    let v = json!({
        "stream": t.stream,
        "from": t.from.as_str(),
        "to": t.to.as_str(),
        "reason": t.reason.map(|r| r.as_str()),
        "message": t.message,
        "picture": t.picture.as_str(),
        // Down: the stream page's evidence (last good picture, the failure).
        "evidence": (t.to == crate::state::Health::Down).then(|| crate::report::evidence_link(&t.stream)),
        "ts": crate::report::iso(t.ts_ms, &cfg.tz()),
        "ts_ms": t.ts_ms,
        "device": cfg.device_name,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The running notifier. Lives on the tokio runtime (the forwarder task).
pub struct NotifyHandle {
    hooks: Vec<Webhook>,
    transitions: broadcast::Sender<Transition>,
    running: Option<Running>,
}

struct Running {
    /// Updated on reload so bodies use the current zone and device name.
    cfg_tx: tokio::sync::watch::Sender<Config>,
    forwarder: tokio::task::JoinHandle<()>,
    /// Dropping it makes workers skip pending retries.
    shutdown_tx: shutdown::Sender,
    workers: Vec<JoinHandle<()>>,
}

impl NotifyHandle {
    /// Starts one worker per URL of `cfg.notify` (none: nothing runs). Must be
    /// called inside the tokio runtime.
    pub fn start(cfg: &Config, transitions: broadcast::Sender<Transition>) -> NotifyHandle {
        let mut h = NotifyHandle {
            hooks: cfg.notify.clone(),
            transitions,
            running: None,
        };
        h.running = h.spawn(cfg);
        h
    }

    fn spawn(&self, cfg: &Config) -> Option<Running> {
        if self.hooks.is_empty() {
            return None;
        }
        let (shutdown_tx, shutdown_rx) = shutdown::channel();
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(REQUEST_TIMEOUT))
                .max_redirects(0)
                .user_agent(format!("streampulse/{}", crate::VERSION))
                .build(),
        );
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for (i, hook) in self.hooks.iter().enumerate() {
            let (tx, rx) = std_mpsc::sync_channel::<Vec<u8>>(QUEUE_LEN);
            let (hook, agent, stop) = (hook.clone(), agent.clone(), shutdown_rx.clone());
            queues.push((tx, self.hooks[i].url_redacted.clone()));
            workers.push(
                std::thread::Builder::new()
                    .name(format!("notify-{i}"))
                    .spawn(move || {
                        while let Ok(body) = rx.recv() {
                            if stop.check() {
                                return;
                            }
                            deliver(&agent, &hook, &body, &stop);
                        }
                    })
                    .expect("spawning a webhook thread should succeed"),
            );
        }
        tracing::info!("notify: {} webhook(s)", self.hooks.len());
        let (cfg_tx, cfg_rx) = tokio::sync::watch::channel(cfg.clone());
        let forwarder = tokio::spawn(forward(self.transitions.subscribe(), cfg_rx, queues));
        Some(Running {
            cfg_tx,
            forwarder,
            shutdown_tx,
            workers,
        })
    }

    /// Applies a reloaded config: a changed URL list restarts the workers
    /// (pending notifications of the old list are dropped).
    pub fn apply(&mut self, cfg: &Config) {
        if cfg.notify == self.hooks {
            if let Some(r) = &self.running {
                r.cfg_tx.send_replace(cfg.clone());
            }
            return;
        }
        if let Some(r) = self.running.take() {
            r.stop();
        }
        self.hooks = cfg.notify.clone();
        self.running = self.spawn(cfg);
    }

    /// Stops the forwarder and the workers; waits briefly for requests in flight.
    pub fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
    }
}

impl Running {
    fn stop(self) {
        self.forwarder.abort(); // drops the queues: idle workers return
        drop(self.shutdown_tx); // busy ones skip their retries
        let deadline = Instant::now() + STOP_GRACE;
        for w in self.workers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if w.is_finished() {
                let _ = w.join();
            } // else: stuck in a request; it ends at REQUEST_TIMEOUT, detached.
        }
    }
}

async fn forward(
    mut rx: broadcast::Receiver<Transition>,
    cfg_rx: tokio::sync::watch::Receiver<Config>,
    queues: Vec<(SyncSender<Vec<u8>>, String)>,
) {
    loop {
        let t = match rx.recv().await {
            Ok(t) => t,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("notify: {n} state changes were not sent (too many at once)");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let b = body(&t, &cfg_rx.borrow());
        for (tx, url) in &queues {
            match tx.try_send(b.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => tracing::warn!(
                    stream = %t.stream,
                    "notify {url}: {QUEUE_LEN} notifications already waiting; dropping this one"
                ),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

/// Why one attempt failed.
enum Failed {
    /// Worth another try (network, timeout, 408/429/5xx).
    Transient(String),
    /// The receiver rejected the request; retrying will not help.
    Permanent(String),
}

/// One notification to one URL, with bounded retries.
fn deliver(agent: &ureq::Agent, hook: &Webhook, body: &[u8], stop: &shutdown::Receiver) {
    let mut wait = FIRST_RETRY;
    for attempt in 1..=MAX_ATTEMPTS {
        match post(agent, hook, body) {
            Ok(()) => {
                tracing::debug!("notify {}: delivered", hook.url_redacted);
                return;
            }
            Err(Failed::Permanent(msg)) => {
                tracing::warn!("notify {}: {msg}; not retrying", hook.url_redacted);
                return;
            }
            Err(Failed::Transient(msg)) if attempt == MAX_ATTEMPTS => {
                tracing::warn!(
                    "notify {}: {msg}; giving up after {MAX_ATTEMPTS} attempts",
                    hook.url_redacted
                );
                return;
            }
            Err(Failed::Transient(msg)) => {
                tracing::info!(
                    "notify {}: {msg}; attempt {attempt} of {MAX_ATTEMPTS}, retrying in {} s",
                    hook.url_redacted,
                    wait.as_secs()
                );
                if stop.wait_for(wait) {
                    return;
                }
                wait *= 2;
            }
        }
    }
}

fn post(agent: &ureq::Agent, hook: &Webhook, body: &[u8]) -> Result<(), Failed> {
    let mut rq = agent
        .post(hook.url.as_str())
        .header("Content-Type", "application/json");
    if let Some(c) = &hook.credentials {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.password));
        rq = rq.header("Authorization", format!("Basic {token}"));
    }
    match rq.send(body) {
        Ok(resp) => {
            let code = resp.status().as_u16();
            match code {
                200..=299 => Ok(()),
                408 | 429 | 500..=599 => Err(Failed::Transient(format!("answered {code}"))),
                _ => Err(Failed::Permanent(format!("answered {code}"))),
            }
        }
        // ureq's errors name the host, never the userinfo (we never put it in
        // the URL); scrub anyway in case a peer echoes it.
        Err(e) => Err(Failed::Transient(redact::scrub(
            &e.to_string(),
            hook.credentials.as_ref(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Health;

    #[test]
    fn body_fields() {
        let cfg = crate::config::parse(
            "timezone: Asia/Calcutta\ndevice_name: box1\nnotify:\n- http://127.0.0.1:9/x\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(cfg.notify.len(), 1);
        let t = Transition {
            stream: "cam".into(),
            ts_ms: 1_700_000_000_000,
            from: Health::Up,
            to: Health::Down,
            reason: Some(crate::probe::Reason::Timeout),
            message: "no frame within 10 s".into(),
            picture: crate::picture::PictureVerdict::Frozen,
            failed_stage: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&body(&t, &cfg)).unwrap();
        assert_eq!(v["stream"], "cam");
        assert_eq!((&v["from"], &v["to"]), (&json!("up"), &json!("down")));
        assert_eq!(v["reason"], "timeout");
        assert_eq!(v["ts"], "2023-11-15T03:43:20+05:30");
        assert_eq!(v["ts_ms"], 1_700_000_000_000i64);
        assert_eq!(v["device"], "box1");
        assert_eq!(v["picture"], "frozen");
        assert_eq!(v["evidence"], "/streams/cam#evidence");
    }
}
