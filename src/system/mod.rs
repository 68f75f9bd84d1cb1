//! Appliance concerns that are not about cameras: the clock's sync state
//! (and, in later work, the systemd watchdog, disk space, boot-partition import).

pub mod timesync;
