//! Appliance concerns that are not about cameras.
//!
//! * [`timesync`]: is the kernel clock synchronised (adjtimex)?
//! * [`sntp`]: the clock's measured offset from configured NTP servers.
//! * [`watchdog`]: systemd `READY=1`, `STATUS=`, and `WATCHDOG=1` gated on progress.
//! * [`disk`]: free space on the data partition and the retention it implies.
//! * [`bootcfg`]: importing a `config.yaml` dropped on the boot partition.
//! * [`health`]: the `system` thread and what `/healthz` shows about the box.
//! * [`recent_log`]: the daemon's last log lines, for the System page.

pub mod bootcfg;
pub mod disk;
pub mod health;
pub mod recent_log;
pub mod sntp;
pub mod timesync;
pub mod watchdog;
