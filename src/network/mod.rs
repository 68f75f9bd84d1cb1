//! The box's network settings (`network:` in `config.yaml`) and how they are
//! applied on the appliance.
//!
//! [`settings`] validates the section (plain data, no I/O); [`render`] turns
//! it into systemd-networkd `.network` files, a wpa_supplicant config and the
//! hostname override; [`apply`] writes those files (atomically, only when
//! they changed) and asks systemd to pick them up. The daemon runs
//! unprivileged and never applies anything itself: a root oneshot,
//! `streampulse network apply --reload` (overlay/…/streampulse-network.service),
//! does it at boot and whenever `/data/config.yaml` changes.

pub mod apply;
pub mod render;
pub mod settings;

pub use settings::{Addressing, NetworkConfig, RawNetwork, StaticIpv4, Wifi};
