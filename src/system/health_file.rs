//! The "this version works" marker an update's health gate waits for.
//!
//! After an update the box boots the new root slot on trial: the bootloader
//! falls back to the old slot unless the new one is marked good.
//! `streampulse-mark-good.service` marks it good only once this file exists
//! (docs/UPDATES.md), so "good" means what a user means: the daemon started,
//! opened its database, bound its port (all before this task starts),
//! probed a camera and recorded the verdict (a failing camera's too: a camera
//! that is down during an update must not roll the update back), and a
//! commit to the database succeeded. A box with no enabled stream has nothing
//! to record: there the bound port and the opened database are the proof.
//!
//! The file holds the daemon's version; it lives in a runtime directory
//! (`--health-file /run/streampulse-ram/healthy` on the appliance), which
//! systemd empties when the service stops, so a stale marker from an earlier
//! start cannot pass the gate.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::Config;
use crate::shutdown;
use crate::store::recorder::RecorderStats;

/// How often the condition is checked: cheap, and a gate's deadline is minutes.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Whether the running daemon has proven itself (see the module docs).
fn proven(stats: &RecorderStats, cfg: &Config) -> bool {
    // Raw heartbeats are held in memory up to `heartbeat_flush_seconds`
    // (10 min) before their block is written, so "recorded" is: the recorder
    // holds a verdict, and the database takes writes (a commit succeeded, the
    // last one did not fail).
    let recorded = stats.heartbeats_committed.load(Ordering::Relaxed)
        + stats.unwritten.load(Ordering::Relaxed)
        > 0;
    let committed = stats.commits.load(Ordering::Relaxed) > 0 && !stats.failing();
    if cfg.streams.iter().any(|s| s.enabled) {
        recorded && committed
    } else {
        // Nothing to record, so maybe nothing ever to commit.
        !stats.failing()
    }
}

/// Removes a leftover marker now, then writes `path` (the version, 0644 via
/// the umask) once the daemon has proven itself; gives up at shutdown.
pub fn start(
    path: PathBuf,
    stats: Arc<RecorderStats>,
    config: Arc<RwLock<Arc<Config>>>,
    shutdown: shutdown::Receiver,
) -> tokio::task::JoinHandle<()> {
    // A marker from an earlier run (a host, or a directory systemd keeps)
    // must not pass the gate for this one.
    let _ = std::fs::remove_file(&path);
    tokio::spawn(async move {
        loop {
            let cfg = config.read().expect("config lock").clone();
            if proven(&stats, &cfg) {
                let text = format!("{}\n", crate::VERSION);
                match std::fs::write(&path, text) {
                    Ok(()) => tracing::info!("healthy: wrote {}", path.display()),
                    Err(e) => tracing::error!(
                        "could not write the health file {} (an update's health gate waits for it): {e}",
                        path.display()
                    ),
                }
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.wait() => return,
            }
        }
    })
}
