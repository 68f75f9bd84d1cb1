//! Appliance concerns that are not about cameras.
//!
//! * [`watchdog`]: systemd `READY=1`, `STATUS=`, and `WATCHDOG=1` gated on progress.
//! * [`backup`], [`restore`]: a backup of config, tokens and history, and restoring one.
//! * [`bootcfg`]: importing a `config.yaml` dropped on the boot partition.
//! * [`command`]: running a system tool with a deadline.
//! * [`data_dir`]: the data directory's start-up check and the RAM fallback (degraded mode).
//! * [`health`]: the `system` thread and what `/healthz` shows about the box.
//! * [`health_file`]: the marker an update's health gate waits for.
//! * [`recent_log`]: the daemon's last log lines, for the System page.
//! * [`update`]: installing an update bundle with RAUC, and the rollback note.

pub mod backup;
pub mod bootcfg;
pub mod command;
pub mod data_dir;
pub mod health;
pub mod health_file;
pub mod recent_log;
pub mod restore;
pub mod update;
pub mod watchdog;
