//! Writes [`super::render::files`] and tells systemd about them.
//!
//! Files are replaced atomically (temp file in the same directory, created
//! with its final mode, fsynced, renamed), and only when content or mode
//! differ, so a config edit that leaves `network:` alone changes nothing.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::render::{self, File, Root};

/// Where [`Root::Run`] and [`Root::Data`] are (`/run`, `/data` on the box).
#[derive(Clone, Debug)]
pub struct Dirs {
    pub run: PathBuf,
    pub data: PathBuf,
}

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Which file, as in [`render`] (`render::WPA`, ...).
    pub file: &'static str,
    pub path: PathBuf,
    /// False: it was removed.
    pub written: bool,
}

/// Brings the files on disk in line with `files`; returns what changed.
pub fn write_files(files: &[File], dirs: &Dirs) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();
    for f in files {
        let base = match f.root {
            Root::Run => &dirs.run,
            Root::Data => &dirs.data,
        };
        let path = base.join(f.path);
        let changed = match &f.contents {
            Some(c) => write_if_changed(&path, c, f.mode)?,
            None => remove(&path)?,
        };
        if changed {
            changes.push(Change {
                file: f.path,
                path,
                written: f.contents.is_some(),
            });
        }
    }
    Ok(changes)
}

fn write_if_changed(path: &Path, contents: &str, mode: u32) -> anyhow::Result<bool> {
    let same = fs::read(path).is_ok_and(|old| old == contents.as_bytes())
        && fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode);
    if same {
        return Ok(false);
    }
    let dir = path.parent().context("a file path without a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().context("a path without a file name")?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let _ = fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        // Created with its final mode: the key is never readable by others,
        // not even for a moment.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have removed bits of `mode`.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

fn remove(path: &Path) -> anyhow::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// The `systemctl` calls that make `changes` take effect, in order.
///
/// All are `--no-block`, and `try-…` where the unit may not run yet: at
/// boot this runs before networkd and the supplicant (which then read the
/// new files when they start), and waiting for their jobs would deadlock.
/// networkd's reload is `networkctl reload`, which reconfigures the links
/// whose `.network` changed. The hostname is set by the unit that owns the
/// rule for it (the override, else the unique default).
pub fn reload_commands(changes: &[Change]) -> Vec<Vec<&'static str>> {
    let any = |files: &[&str]| changes.iter().any(|c| files.contains(&c.file));
    let mut cmds = Vec::new();
    if any(&[render::ETHERNET, render::WIFI]) {
        cmds.push(vec![
            "--no-block",
            "try-reload-or-restart",
            "systemd-networkd.service",
        ]);
    }
    if any(&[render::WPA]) {
        cmds.push(vec![
            "--no-block",
            "try-restart",
            "wpa_supplicant@wlan0.service",
        ]);
    }
    if any(&[render::HOSTNAME]) {
        cmds.push(vec![
            "--no-block",
            "restart",
            "streampulse-hostname.service",
        ]);
    }
    cmds
}

/// Runs `systemctl` (found on `PATH`) with each of `cmds`.
pub fn run_systemctl(cmds: &[Vec<&str>]) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for args in cmds {
        let status = Command::new("systemctl")
            .args(args)
            .status()
            .with_context(|| format!("running systemctl {}", args.join(" ")))?;
        // `try-…` of a unit this image does not have (no wpa_supplicant on
        // an Orange Pi): systemctl's "not installed" (5) means nothing to
        // restart, not a failure.
        let absent = status.code() == Some(5) && args.iter().any(|a| a.starts_with("try-"));
        if absent {
            tracing::info!("systemctl {}: no such unit here", args.join(" "));
        } else if !status.success() {
            failed.push(format!("systemctl {} ({status})", args.join(" ")));
        }
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::settings::{Addressing, NetworkConfig, Psk, Wifi};

    fn dirs(t: &tempfile::TempDir) -> Dirs {
        Dirs {
            run: t.path().join("run"),
            data: t.path().join("data"),
        }
    }

    #[test]
    fn writes_once_then_only_what_changed() {
        let t = tempfile::tempdir().unwrap();
        let mut n = NetworkConfig {
            hostname: Some("hall".into()),
            ethernet: None,
            wifi: Some(Wifi {
                ssid: "Home".into(),
                psk: Some(Psk::Passphrase("12345678".into())),
                country: "DE".into(),
                addressing: Addressing::Dhcp,
            }),
        };
        let first = write_files(&render::files(&n), &dirs(&t)).unwrap();
        let names: Vec<_> = first.iter().map(|c| c.file).collect();
        assert_eq!(names, [render::WIFI, render::WPA, render::HOSTNAME]);
        let wpa = t.path().join("run").join(render::WPA);
        assert_eq!(
            fs::metadata(&wpa).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_files(&render::files(&n), &dirs(&t))
            .unwrap()
            .is_empty());

        // A looser mode is repaired even when the content is the same.
        fs::set_permissions(&wpa, fs::Permissions::from_mode(0o644)).unwrap();
        let again = write_files(&render::files(&n), &dirs(&t)).unwrap();
        assert_eq!(
            again.iter().map(|c| c.file).collect::<Vec<_>>(),
            [render::WPA]
        );
        assert_eq!(
            fs::metadata(&wpa).unwrap().permissions().mode() & 0o777,
            0o600
        );

        n.hostname = None;
        n.ethernet = Some(Addressing::Dhcp);
        let c = write_files(&render::files(&n), &dirs(&t)).unwrap();
        assert_eq!(
            c.iter().map(|c| (c.file, c.written)).collect::<Vec<_>>(),
            [(render::ETHERNET, true), (render::HOSTNAME, false)]
        );
        assert!(!t.path().join("data/system/hostname").exists());
        assert_eq!(
            reload_commands(&c),
            [
                vec![
                    "--no-block",
                    "try-reload-or-restart",
                    "systemd-networkd.service"
                ],
                vec!["--no-block", "restart", "streampulse-hostname.service"],
            ]
        );
        assert!(reload_commands(&[]).is_empty());
    }
}
