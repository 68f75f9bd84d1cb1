//! Factory reset from the boot partition: a file named `factory-reset`
//! next to `config.yaml`, whose only meaning is "start over".
//!
//! At start, before any import: the file is first renamed to
//! `factory-reset.done` (if the boot partition cannot be written, nothing is
//! reset: the file would otherwise reset the box at every start); then the
//! data partition's `config.yaml` (with its `.bak` and `.prev`, which hold
//! the same secrets) and `api-tokens.json` are deleted, and the history
//! database too unless the file contains the line `keep-history`. The box
//! then comes up as on first boot: no admin password, `/setup` open.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{claim, sibling, sync_dir};
use crate::credentials::TOKENS_FILE;
use crate::store::DB_FILE;

/// The file on the boot partition that asks for a factory reset.
pub const FACTORY_RESET_FILE: &str = "factory-reset";

/// What [`factory_reset`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reset {
    /// No `factory-reset` file.
    Absent,
    /// Reset; the history database was kept (`keep-history`) or deleted.
    Done { kept_history: bool },
}

/// Performs a requested factory reset; see the module docs.
///
/// # Errors
/// When the request cannot be renamed away (nothing was deleted then) or a
/// file cannot be deleted.
pub fn factory_reset(boot_dir: &Path, data_config: &Path, data_dir: &Path) -> Result<Reset> {
    let request = boot_dir.join(FACTORY_RESET_FILE);
    if !request.exists() {
        return Ok(Reset::Absent);
    }
    let text =
        fs::read_to_string(&request).with_context(|| format!("reading {}", request.display()))?;
    let kept_history = text.lines().any(|l| l.trim() == "keep-history");
    let done = sibling(&request, ".done");
    claim(&request, &done, "resetting")?;
    let mut doomed: Vec<PathBuf> = vec![
        data_config.to_path_buf(),
        sibling(data_config, ".bak"),
        sibling(data_config, ".prev"),
        data_dir.join(TOKENS_FILE),
    ];
    if !kept_history {
        let db = data_dir.join(DB_FILE);
        doomed.extend(["-wal", "-shm", "-journal"].map(|s| sibling(&db, s)));
        doomed.push(db);
        // Pre-upgrade copies (`streampulse.v2.bak`) hold the same history.
        let stem = Path::new(DB_FILE).with_extension("");
        let stem = stem.to_string_lossy();
        if let Ok(entries) = fs::read_dir(data_dir) {
            doomed.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
                            n.starts_with(&format!("{stem}.v")) && n.ends_with(".bak")
                        })
                    }),
            );
        }
    }
    for p in &doomed {
        match fs::remove_file(p) {
            Ok(()) => tracing::info!("factory reset: deleted {}", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("deleting {}", p.display())),
        }
    }
    sync_dir(data_dir)?;
    if let Some(dir) = data_config.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    Ok(Reset::Done { kept_history })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_deletes_config_tokens_and_history_unless_kept() {
        for (content, kept) in [("", false), ("# keep the graphs\nkeep-history\n", true)] {
            let t = tempfile::tempdir().unwrap();
            let (boot, data) = (t.path().join("boot"), t.path().join("data"));
            fs::create_dir_all(&boot).unwrap();
            fs::create_dir_all(&data).unwrap();
            let cfg = data.join("config.yaml");
            for f in [
                "config.yaml",
                "config.yaml.bak",
                TOKENS_FILE,
                DB_FILE,
                "streampulse.v2.bak",
                "clock",
            ] {
                fs::write(data.join(f), "x").unwrap();
            }
            assert_eq!(factory_reset(&boot, &cfg, &data).unwrap(), Reset::Absent);
            assert!(cfg.exists());
            fs::write(boot.join(FACTORY_RESET_FILE), content).unwrap();
            assert_eq!(
                factory_reset(&boot, &cfg, &data).unwrap(),
                Reset::Done { kept_history: kept }
            );
            assert!(!boot.join(FACTORY_RESET_FILE).exists());
            assert!(boot.join("factory-reset.done").exists());
            for f in ["config.yaml", "config.yaml.bak", TOKENS_FILE] {
                assert!(!data.join(f).exists(), "{f}");
            }
            assert_eq!(data.join(DB_FILE).exists(), kept);
            assert_eq!(data.join("streampulse.v2.bak").exists(), kept);
            assert!(data.join("clock").exists(), "not ours to delete");
            // Done once: the next start finds no request.
            assert_eq!(factory_reset(&boot, &cfg, &data).unwrap(), Reset::Absent);
        }
    }

    /// A request that cannot be renamed away resets nothing.
    #[test]
    fn an_unwritable_boot_partition_resets_nothing() {
        let t = tempfile::tempdir().unwrap();
        let (boot, data) = (t.path().join("boot"), t.path().join("data"));
        fs::create_dir_all(boot.join("factory-reset.done/x")).unwrap();
        fs::create_dir_all(&data).unwrap();
        fs::write(boot.join(FACTORY_RESET_FILE), "").unwrap();
        let cfg = data.join("config.yaml");
        fs::write(&cfg, "streams: []\n").unwrap();
        let e = factory_reset(&boot, &cfg, &data).unwrap_err();
        assert!(format!("{e:#}").contains("not resetting"), "{e:#}");
        assert!(cfg.exists());
    }
}
