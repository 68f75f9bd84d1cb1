//! Free space on the data partition, and how retention tightens as it fills.
//!
//! The database is the only thing that grows on `/data`. Retention keeps it
//! bounded in days, but a box with many streams on a small card could still
//! fill it; a full card means failed commits and lost history. So the
//! configured [`Policy`] is tightened in steps as free space shrinks (see
//! [`tightened`]): raw heartbeats go first (rollups keep the long-term
//! picture), rollups only when the card is nearly full. SQLite reuses the
//! pages freed by those deletes, so the file stops growing.
//!
//! `statvfs(2)` is cheap; it is called once a minute by the system thread
//! and on each `/healthz` request.

use std::path::Path;

use anyhow::{Context, Result};

use crate::store::retention::Policy;

/// Space on one filesystem, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Size of the filesystem.
    pub total_bytes: u64,
    /// Space an unprivileged writer can still use (`f_bavail`).
    pub free_bytes: u64,
}

impl Usage {
    /// Free space as a percentage of the total (0 … 100).
    pub fn free_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        self.free_bytes as f64 * 100.0 / self.total_bytes as f64
    }
}

/// `statvfs` of the filesystem holding `path`.
///
/// # Errors
/// When `path` does not exist or the call fails.
pub fn usage(path: &Path) -> Result<Usage> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("path {} contains a NUL byte", path.display()))?;
    // SAFETY: `c` is a valid NUL-terminated string; `st` is zeroed and owned.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statvfs {}", path.display()));
    }
    let frsize = if st.f_frsize > 0 {
        st.f_frsize as u64
    } else {
        st.f_bsize as u64
    };
    Ok(Usage {
        total_bytes: (st.f_blocks as u64).saturating_mul(frsize),
        free_bytes: (st.f_bavail as u64).saturating_mul(frsize),
    })
}

/// How full the data partition is, in the steps [`tightened`] acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pressure {
    /// At least 20 % and 256 MiB free: the configured policy applies.
    None,
    /// Under 20 % or 256 MiB free: raw heartbeats kept half as long.
    Low,
    /// Under 10 % or 128 MiB free: raw heartbeats a quarter as long, rollups ≤ 1 year.
    High,
    /// Under 5 % or 64 MiB free: raw heartbeats 1 day, rollups ≤ 90 days.
    Critical,
}

const MIB: u64 = 1 << 20;

/// Classifies `u`: whichever of the percentage and the absolute floor is worse.
pub fn pressure(u: Usage) -> Pressure {
    let pct = u.free_percent();
    let free = u.free_bytes;
    if pct < 5.0 || free < 64 * MIB {
        Pressure::Critical
    } else if pct < 10.0 || free < 128 * MIB {
        Pressure::High
    } else if pct < 20.0 || free < 256 * MIB {
        Pressure::Low
    } else {
        Pressure::None
    }
}

/// The retention policy to use under `pressure`: never looser than `configured`.
pub fn tightened(configured: Policy, pressure: Pressure) -> Policy {
    let Policy {
        heartbeat_days: h,
        rollup_days: r,
    } = configured;
    match pressure {
        Pressure::None => configured,
        Pressure::Low => Policy {
            heartbeat_days: (h / 2).max(1),
            rollup_days: r,
        },
        Pressure::High => Policy {
            heartbeat_days: (h / 4).max(1),
            rollup_days: r.min(365),
        },
        Pressure::Critical => Policy {
            heartbeat_days: 1,
            rollup_days: r.min(90),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn u(total: u64, free: u64) -> Usage {
        Usage {
            total_bytes: total,
            free_bytes: free,
        }
    }

    #[test]
    fn pressure_uses_the_worse_of_percent_and_floor() {
        assert_eq!(pressure(u(32 * GIB, 30 * GIB)), Pressure::None);
        assert_eq!(pressure(u(32 * GIB, 5 * GIB)), Pressure::Low); // 15.6 %
        assert_eq!(pressure(u(32 * GIB, 3 * GIB)), Pressure::High); // 9.4 %
        assert_eq!(pressure(u(32 * GIB, GIB)), Pressure::Critical); // 3.1 %
                                                                    // A tiny data partition: 50 % free but only 100 MiB.
        assert_eq!(pressure(u(200 * MIB, 100 * MIB)), Pressure::High);
        assert_eq!(pressure(u(100 * MIB, 60 * MIB)), Pressure::Critical);
        assert_eq!(pressure(u(0, 0)), Pressure::Critical);
    }

    #[test]
    fn policy_only_ever_tightens() {
        let cfg = Policy {
            heartbeat_days: 7,
            rollup_days: 730,
        };
        assert_eq!(tightened(cfg, Pressure::None), cfg);
        assert_eq!(tightened(cfg, Pressure::Low).heartbeat_days, 3);
        assert_eq!(
            tightened(cfg, Pressure::High),
            Policy {
                heartbeat_days: 1,
                rollup_days: 365
            }
        );
        assert_eq!(
            tightened(cfg, Pressure::Critical),
            Policy {
                heartbeat_days: 1,
                rollup_days: 90
            }
        );
        // Already-short settings are never lengthened.
        let short = Policy {
            heartbeat_days: 1,
            rollup_days: 30,
        };
        for p in [
            Pressure::None,
            Pressure::Low,
            Pressure::High,
            Pressure::Critical,
        ] {
            let t = tightened(short, p);
            assert!(t.heartbeat_days <= 1 && t.rollup_days <= 30, "{p:?}: {t:?}");
        }
    }

    #[test]
    fn usage_of_a_real_directory() {
        let dir = std::env::temp_dir();
        let got = usage(&dir).expect("statvfs of the temp dir should work");
        assert!(got.total_bytes > 0);
        assert!(got.free_bytes <= got.total_bytes);
        let err = usage(Path::new("/nonexistent/streampulse")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/streampulse"));
    }
}
