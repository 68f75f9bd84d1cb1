//! Wall-clock seam. Heartbeat timestamps, retention cut-offs and rollup
//! boundaries read the injected [`Clock`] instead of `SystemTime::now()`, so
//! tests can drive time (including a 1970 boot) without sleeping.
//!
//! Intervals and deadlines use tokio's monotonic time, which tests pause and
//! advance with `tokio::time::pause`; this module is only about *calendar* time.
//!
//! * [`timesync`]: is the kernel clock synchronised (adjtimex)?
//! * [`sntp`]: the clock's measured offset from configured NTP servers.

pub mod sntp;
pub mod timesync;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// 2020-01-01T00:00:00Z: anything earlier is an unset clock.
pub const SANE_EPOCH_MS: i64 = 1_577_836_800_000;
use std::time::{SystemTime, UNIX_EPOCH};

/// Calendar time in milliseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + 'static {
    /// Current realtime clock reading, ms since 1970-01-01T00:00:00Z.
    fn now_ms(&self) -> i64;
}

/// Shared handle used throughout the program.
pub type SharedClock = Arc<dyn Clock>;

/// The system's `CLOCK_REALTIME`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealClock;

impl Clock for RealClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            // A clock before 1970 is nonsense; report the epoch rather than panic.
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct SimulatedClock(AtomicI64);

impl SimulatedClock {
    /// Starts at `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        SimulatedClock(AtomicI64::new(start_ms))
    }

    /// Moves the clock by `delta_ms` (may be negative: clocks jump backwards too).
    pub fn advance(&self, delta_ms: i64) {
        self.0.fetch_add(delta_ms, Ordering::SeqCst);
    }

    /// Sets the clock to `ms`.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for SimulatedClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Returns a shared real clock.
pub fn real() -> SharedClock {
    Arc::new(RealClock)
}
