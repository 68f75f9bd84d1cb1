//! Choosing the data directory at start (issue 15, card robustness).
//!
//! On the appliance the data directory is the SD card's data partition. When
//! it fails fsck, does not mount (it is `nofail`), or is remounted read-only
//! after ext4 errors, the daemon must still run: a dead box shows its user
//! nothing. So `streampulse run --fallback-data-dir DIR` checks the data
//! directory before opening the database, and when it is not usable runs
//! from `DIR` (RAM on the appliance) instead: *degraded*. The reason is kept
//! in [`super::health`] and shown on every page, in `/healthz` and in the
//! sd-notify `STATUS=` line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The file created and removed to test that a directory takes writes.
const PROBE_FILE: &str = ".streampulse-write-probe";

/// Where `streampulse run` keeps its data and reads its config.
#[derive(Debug, PartialEq, Eq)]
pub struct Chosen {
    pub data_dir: PathBuf,
    pub config: PathBuf,
    /// Why the configured data directory is not used (None: it is).
    pub degraded: Option<String>,
}

/// Is `dir` usable: created if missing, then a file created, written,
/// synced and removed (EROFS, ENOTDIR, EACCES, EIO all fail here rather
/// than later inside SQLite).
pub fn check_usable(dir: &Path) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let probe = dir.join(PROBE_FILE);
    let mut f = std::fs::File::create(&probe)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    f.write_all(b"probe")
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing a file in {}", dir.display()))?;
    drop(f);
    std::fs::remove_file(&probe).with_context(|| format!("removing {}", probe.display()))?;
    Ok(())
}

/// Picks the data directory and config path for `run`: `data_dir` and
/// `config` when `data_dir` is usable; otherwise, with a `fallback`, that
/// directory (created), and — if `config` lies inside `data_dir` — a copy of
/// it in the fallback (when it can still be read, e.g. a partition mounted
/// read-only), so the box keeps its streams and password. Without a
/// fallback an unusable `data_dir` is an error, as before.
pub fn choose(data_dir: &Path, config: &Path, fallback: Option<&Path>) -> Result<Chosen> {
    let err = match check_usable(data_dir) {
        Ok(()) => {
            return Ok(Chosen {
                data_dir: data_dir.to_path_buf(),
                config: config.to_path_buf(),
                degraded: None,
            })
        }
        Err(e) => e,
    };
    let Some(fallback) = fallback else {
        return Err(err.context(format!(
            "the data directory {} is not usable",
            data_dir.display()
        )));
    };
    check_usable(fallback).with_context(|| {
        format!(
            "the data directory {} is not usable ({err:#}), nor is the fallback",
            data_dir.display()
        )
    })?;
    let mut reason = format!(
        "data directory {} is not usable ({err:#}); running from {} (in RAM on the appliance): \
         history and changes are lost at the next restart",
        data_dir.display(),
        fallback.display()
    );
    let config = match config.strip_prefix(data_dir) {
        // The config lives on the bad partition: run from a copy.
        Ok(rel) => {
            let copy = fallback.join(rel);
            match copy_config(config, &copy) {
                Ok(true) => reason.push_str("; config.yaml copied from it"),
                Ok(false) => reason.push_str("; no config.yaml to copy from it"),
                Err(e) => reason.push_str(&format!("; config.yaml not copied: {e:#}")),
            }
            copy
        }
        Err(_) => config.to_path_buf(),
    };
    tracing::error!("DEGRADED: {reason}");
    Ok(Chosen {
        data_dir: fallback.to_path_buf(),
        config,
        degraded: Some(reason),
    })
}

/// Copies `from` to `to` (private, atomically); `Ok(false)` if `from` does
/// not exist (or a directory on its path is a file).
fn copy_config(from: &Path, to: &Path) -> Result<bool> {
    let bytes = match std::fs::read(from) {
        Ok(b) => b,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
    };
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::atomic_file::write_atomic(to, &bytes, None)
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_dir_is_kept_and_left_clean() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        let cfg = data.join("config.yaml");
        let c = choose(&data, &cfg, Some(&t.path().join("ram"))).unwrap();
        assert_eq!(c.data_dir, data);
        assert_eq!(c.config, cfg);
        assert_eq!(c.degraded, None);
        assert!(!t.path().join("ram").exists());
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    }

    #[test]
    fn unusable_dir_falls_back_with_a_config_copy() {
        let t = tempfile::tempdir().unwrap();
        // A directory below a regular file: ENOTDIR, even for root.
        std::fs::write(t.path().join("file"), "x").unwrap();
        let data = t.path().join("file/data");
        let cfg = data.join("config.yaml");
        let ram = t.path().join("ram");
        assert!(choose(&data, &cfg, None).is_err());
        let c = choose(&data, &cfg, Some(&ram)).unwrap();
        assert_eq!(c.data_dir, ram);
        assert_eq!(c.config, ram.join("config.yaml"));
        let reason = c.degraded.unwrap();
        assert!(reason.contains("Not a directory"), "{reason}");
        assert!(reason.contains("no config.yaml to copy"), "{reason}");
    }

    #[test]
    fn readable_config_on_a_dir_that_takes_no_writes_is_copied() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("config.yaml"), "streams: []\n").unwrap();
        // The probe file's name taken by a directory: creating it fails
        // (root ignores permission bits), reading config.yaml still works.
        std::fs::create_dir(data.join(PROBE_FILE)).unwrap();
        let ram = t.path().join("ram");
        let c = choose(&data, &data.join("config.yaml"), Some(&ram)).unwrap();
        assert_eq!(c.config, ram.join("config.yaml"));
        assert_eq!(std::fs::read_to_string(&c.config).unwrap(), "streams: []\n");
        assert!(c.degraded.unwrap().contains("copied from it"));
    }

    #[test]
    fn config_outside_the_data_dir_is_used_as_is() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("file"), "x").unwrap();
        let cfg = t.path().join("config.yaml");
        let c = choose(&t.path().join("file/d"), &cfg, Some(&t.path().join("ram"))).unwrap();
        assert_eq!(c.config, cfg);
    }
}
