//! `streampulse network apply`: writes the `network:` settings as
//! systemd-networkd and wpa_supplicant files and (with `--reload`) makes
//! them take effect. Run as root by streampulse-network.service at boot and
//! whenever `/data/config.yaml` changes; see [`crate::network`].

use std::path::PathBuf;

use crate::network::{apply, render, NetworkConfig};

/// Arguments of `network`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Write the files `network:` decides; print what changed.
    Apply(ApplyArgs),
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The config file (a missing file means no network settings).
    #[arg(long)]
    pub config: PathBuf,
    /// Where systemd-networkd's runtime files go (`systemd/network/`).
    #[arg(long, default_value = "/run")]
    pub run_dir: PathBuf,
    /// The data partition (`system/hostname`).
    #[arg(long, default_value = "/data")]
    pub data_dir: PathBuf,
    /// Then reload networkd, restart the supplicant and set the hostname,
    /// as far as they changed (systemctl, as root on the box).
    #[arg(long)]
    pub reload: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let Sub::Apply(a) = args.cmd;
    let settings = if a.config.exists() {
        match crate::config::load(&a.config) {
            Ok(c) => c.network,
            // The files from the last good config stay (or, at boot, none:
            // the image's DHCP default applies).
            Err(e) => {
                eprintln!("{e}\nnetwork settings left as they were");
                return Ok(1);
            }
        }
    } else {
        println!("{}: no such file; no network settings", a.config.display());
        NetworkConfig::default()
    };
    let dirs = apply::Dirs {
        run: a.run_dir,
        data: a.data_dir,
    };
    let changes = apply::write_files(&render::files(&settings), &dirs)?;
    if changes.is_empty() {
        println!("network: nothing changed");
    }
    for c in &changes {
        let verb = if c.written { "wrote" } else { "removed" };
        println!("network: {verb} {}", c.path.display());
    }
    if a.reload {
        apply::run_systemctl(&apply::reload_commands(&changes))?;
    }
    Ok(0)
}
