//! Is the box's clock trustworthy? A Raspberry Pi has no RTC and boots in
//! 1970 (or at the last saved time) until NTP syncs; heartbeats taken before
//! that are flagged rather than stored as if their timestamps were true.
//!
//! The kernel knows whether an NTP daemon (systemd-timesyncd, chrony) has
//! disciplined the clock: `adjtimex` returns `TIME_ERROR` while unsynchronised.

use crate::clock::SANE_EPOCH_MS;

/// Clock sync state as seen at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SyncState {
    /// The kernel reports a synchronised clock.
    pub kernel_synced: bool,
    /// The clock reads a plausible date (after 2020).
    pub plausible: bool,
}

impl SyncState {
    /// Timestamps can be trusted.
    pub fn trusted(&self) -> bool {
        self.kernel_synced && self.plausible
    }
}

/// Seam for reading the sync state (tests fake "unsynced").
pub trait SyncSource: Send + Sync + 'static {
    fn state(&self, now_ms: i64) -> SyncState;
}

/// Reads the kernel's state with `adjtimex(2)`.
#[derive(Debug, Default)]
pub struct KernelSync;

impl SyncSource for KernelSync {
    fn state(&self, now_ms: i64) -> SyncState {
        SyncState {
            kernel_synced: kernel_clock_synced(),
            plausible: now_ms >= SANE_EPOCH_MS,
        }
    }
}

/// A fixed answer, for tests and hosts without NTP.
#[derive(Debug)]
pub struct FixedSync(pub bool);

impl SyncSource for FixedSync {
    fn state(&self, now_ms: i64) -> SyncState {
        SyncState {
            kernel_synced: self.0,
            plausible: now_ms >= SANE_EPOCH_MS,
        }
    }
}

/// True unless the kernel says the clock is unsynchronised.
pub fn kernel_clock_synced() -> bool {
    // SAFETY: adjtimex with modes = 0 only reads; the struct is zeroed and owned.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::adjtimex(&mut tx) };
    rc >= 0 && rc != libc::TIME_ERROR
}
