//! `streampulse network apply`: writes the `network:` settings as
//! systemd-networkd and wpa_supplicant files and (with `--reload`) makes
//! them take effect. Run as root by streampulse-network.service at boot and
//! whenever `/data/config.yaml` changes; see [`crate::network`].

use std::path::{Path, PathBuf};

use crate::config::edit::{self, Yaml};
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
    /// The boot partition's `config.yaml`: its `network:` is used while the
    /// config has none (a first boot, before the daemon imports the file).
    #[arg(long)]
    pub boot_config: Option<PathBuf>,
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
    let settings = match &a.boot_config {
        Some(boot) if settings == NetworkConfig::default() && boot.exists() => {
            boot_network(boot).unwrap_or(settings)
        }
        _ => settings,
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

/// `network:` of the boot partition's `config.yaml`, alone.
///
/// The daemon merges that file into the config when it starts, after
/// network-online.target, which a Wi-Fi-only board without settings reaches
/// only when systemd-networkd-wait-online gives up (2 minutes). Used only
/// while the config has no network settings, where the import's key-by-key
/// merge gives the same result; other keys of the file are the import's
/// business, and so is any error here (it reports it).
fn boot_network(boot: &Path) -> Option<NetworkConfig> {
    let text = std::fs::read_to_string(boot).ok()?;
    let net = edit::parse_tree(&text).ok()?.get("network")?.clone();
    let alone = edit::render_body(&Yaml::Map(vec![("network".into(), net)])).ok()?;
    match crate::config::parse(&alone, &boot.display().to_string()) {
        Ok(c) => {
            println!("network: from {} (not imported yet)", boot.display());
            Some(c.network)
        }
        Err(e) => {
            // Positions would point into `alone`, not the file.
            let (file, m) = (boot.display(), e.message);
            eprintln!("{file}: {m} (not applied before the import, which reports it)");
            None
        }
    }
}
