//! StreamPulse: a camera-stream health monitor that proves, on every heartbeat,
//! that real video arrives (a decodable frame), not merely that a host answers.
//!
//! # Layout
//!
//! Data flows one way (see `docs/ARCHITECTURE.md`):
//!
//! ```text
//! config.yaml ─► config ─► monitor ──asks──► Prober (live hub or probe::{rtsp,http})
//!                            │                      ─► Outcome (+ frame, now and then)
//!                            ├──► picture (frozen / black / camera clock verdicts)
//!                  ┌─────────┴──────────┐
//!                  ▼                    ▼
//!            state (board,         store::recorder (one thread,
//!            debounce)             batched SQLite transactions)
//!                  │                    │
//!                report ───────► readers: web (GUI, API, /metrics, live page),
//!                                mqtt, webhooks
//! ```
//!
//! No top-level module imports one that imports it back (`scripts/module-graph.py`,
//! run by `make test`); the live hub, created by `cmds::run`, implements the
//! monitor's [`monitor::Prober`] so the monitor never sees the web or live layers.
//!
//! * [`config`]: parse + validate `config.yaml` (errors name line and column), hot reload.
//!   Its [`config::edit`] is the web GUI's edits of `config.yaml` (validated, atomic write).
//! * [`probe`]: one probe of one stream, with a hard deadline and byte cap.
//! * [`monitor`]: per-stream jittered schedules under a global concurrency cap.
//! * [`state`]: the in-memory board and the debounce state machine (pure, no I/O).
//! * [`store`]: SQLite schema, versions, the recorder thread and retention.
//! * [`web`]: the HTTP server: web GUI (setup, login, dashboard, history, editor,
//!   "Check now" previews), JSON API and Prometheus `/metrics`.
//! * [`report`]: the status report (`/api/status`, MQTT state and aggregate payloads)
//!   and the ISO time format, built from the board and the config; web, mqtt and
//!   webhooks read it, none of them reads another.
//! * [`mqtt`]: publishing to an MQTT broker (status, per-stream state, HA discovery).
//! * [`webhooks`]: POSTs on state changes.
//! * [`evidence`]: a down stream's last good picture and failure record, on the
//!   data partition (written only when a stream goes down).
//! * [`network`]: the box's hostname, Wi-Fi and addresses, applied as networkd
//!   and wpa_supplicant files by `streampulse network apply` (root, not the daemon).
//! * [`picture`]: picture verdicts from the probe's frame (frozen, black/blank)
//!   and the camera's clock (RTCP sender reports), judged per stream in the monitor.
//! * [`preview`]: the web's "Check now" picture (JPEG pass-through, on-box H.264 decode).
//! * [`live`]: the live grid: MJPEG relay and RTSP → fragmented MP4, one camera
//!   session per stream shared by its viewers, thumbnails.
//! * [`system`]: appliance concerns: watchdog, the
//!   boot-partition import (merge, masked `.applied`, factory reset), `/healthz`,
//!   the recent-log ring.
//! * [`clock`]: the wall-clock seam, and whether the kernel clock is synced (SNTP, adjtimex).
//! * [`credentials`]: the admin password's hash rules and the API token file.
//! * [`atomic_file`]: the one atomic, private file write.
//! * [`byte_cache`]: per-stream pictures kept under a byte cap (thumbnails, "Check now").
//! * [`log_once`]: third-party warnings about a stream (camera quirks) logged once
//!   per stream, not at every probe.
//! * [`redact`]: secrets out of text (URLs, config errors, logs, diagnostics).
//! * [`cmds`]: the subcommands of the `streampulse` binary.

pub mod atomic_file;
pub mod byte_cache;
pub mod clock;
pub mod cmds;
pub mod config;
pub mod credentials;
pub mod evidence;
pub mod live;
pub mod log_once;
pub mod monitor;
pub mod mqtt;
pub mod network;
pub mod picture;
pub mod preview;
pub mod probe;
pub mod redact;
pub mod report;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod system;
pub mod web;
pub mod webhooks;

/// Version string reported by `--version`, `/healthz` and the user agent.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
