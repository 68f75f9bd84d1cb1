//! "Check now": an on-demand probe of one stream from the web page, keeping
//! the frame and turning it into a preview picture ([`crate::preview`]).
//!
//! * One check at a time for the whole box ([`Checks::run`] refuses a second
//!   one while the first runs, rather than queueing web workers behind it):
//!   a probe holds a camera session and a decode can take tens of MB.
//! * The probe runs on the daemon's tokio runtime (so RTSP TEARDOWN is sent
//!   as for the monitor's probes); the web worker waits for it.
//! * Results are kept per stream (the page and `frame.jpg` read them) and a
//!   second click within [`REUSE_MS`] shows the same result instead of
//!   probing again. Kept pictures are capped at [`MAX_KEPT_BYTES`] in all;
//!   the oldest are dropped first.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::byte_cache::ByteCache;
use crate::preview::{self, Picture};
use crate::probe::{MediaFacts, Reason, Stages, Target};

/// A check younger than this is shown again instead of probing again.
pub const REUSE_MS: i64 = 5_000;
/// Preview JPEGs kept in memory at most (all streams together).
pub const MAX_KEPT_BYTES: usize = 4 << 20;

/// The outcome of one "Check now".
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// When the check started, ms since the epoch.
    pub ts_ms: i64,
    pub ok: bool,
    pub reason: Option<Reason>,
    /// Media summary when ok, the failure message otherwise (no credentials).
    pub message: String,
    pub latency_ms: u32,
    pub stages: Stages,
    pub media: MediaFacts,
    /// The preview, or why there is none.
    pub picture: Result<Picture, String>,
}

/// Why a check did not run.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckError {
    /// Another check is running.
    Busy,
    /// The daemon has no runtime to probe on (only in odd test setups).
    NoRuntime,
}

/// Runs checks and keeps their results; see the module docs.
pub struct Checks {
    /// Held for the whole probe + render.
    running: Mutex<()>,
    /// Last result per stream name, capped at [`MAX_KEPT_BYTES`]. Held briefly.
    results: Mutex<ByteCache<Arc<CheckResult>>>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Checks {
    pub fn new(runtime: Option<tokio::runtime::Handle>) -> Self {
        Checks {
            running: Mutex::new(()),
            results: Mutex::new(ByteCache::new(MAX_KEPT_BYTES)),
            runtime,
        }
    }

    /// The last result for `name`, if any.
    pub fn last(&self, name: &str) -> Option<Arc<CheckResult>> {
        self.results
            .lock()
            .expect("check results lock")
            .get(name)
            .cloned()
    }

    /// Forgets `name` (deleted or renamed stream).
    pub fn forget(&self, name: &str) {
        self.results
            .lock()
            .expect("check results lock")
            .remove(name);
    }

    /// Probes `target` now (or returns a result younger than [`REUSE_MS`]).
    ///
    /// # Errors
    /// [`CheckError::Busy`] while another check runs.
    pub fn run(
        &self,
        name: &str,
        target: &Target,
        now_ms: i64,
    ) -> Result<Arc<CheckResult>, CheckError> {
        if let Some(r) = self.last(name) {
            if (0..REUSE_MS).contains(&(now_ms - r.ts_ms)) {
                return Ok(r);
            }
        }
        let rt = self.runtime.as_ref().ok_or(CheckError::NoRuntime)?;
        let _one = match self.running.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(CheckError::Busy),
        };
        let t = Instant::now();
        let (outcome, frame) = rt.block_on(crate::probe::run_keeping_frame(target));
        let picture = match &frame {
            Some(f) => {
                let dims = outcome.media.width.zip(outcome.media.height);
                preview::render(f, dims, &mut preview::h264::OpenH264)
            }
            None if outcome.is_ok() => Err("the probe kept no frame".into()),
            None => Err("no picture: the check failed".into()),
        };
        drop(frame);
        tracing::info!(
            stream = %name,
            "check now: {} in {} ms ({})",
            if outcome.is_ok() { "ok" } else { "failed" },
            t.elapsed().as_millis(),
            match &picture {
                Ok(p) => format!("{}x{} preview, {} bytes", p.width, p.height, p.jpeg.len()),
                Err(m) => m.clone(),
            }
        );
        let result = Arc::new(CheckResult {
            ts_ms: now_ms,
            ok: outcome.is_ok(),
            reason: outcome.reason(),
            message: outcome.message(),
            latency_ms: outcome.latency_ms,
            stages: outcome.stages.clone(),
            media: outcome.media.clone(),
            picture,
        });
        self.keep(name, result.clone());
        Ok(result)
    }

    fn keep(&self, name: &str, r: Arc<CheckResult>) {
        let bytes = r.picture.as_ref().map(|p| p.jpeg.len()).unwrap_or(0);
        self.results
            .lock()
            .expect("check results lock")
            .insert(name, r, bytes);
    }
}
