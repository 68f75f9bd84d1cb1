//! Restoring a backup ([`super::backup`]): from an upload on the System page
//! (or the same call with an admin API token), or from a `restore.spbackup`
//! dropped on the boot partition of a freshly flashed card.
//!
//! Two steps, so the database is never swapped under a running recorder:
//! 1. **stage**: the upload (or the boot file) is checked completely (an
//!    intact SQLite file, a known format, a schema this version can open, a
//!    valid `config.yaml`) and only then moved to `<data>/restore.pending`;
//!    a bad file changes nothing. After an upload the daemon restarts itself.
//! 2. **apply**, at start, before the database is opened: `config.yaml` and
//!    `api-tokens.json` are written atomically (0600; the replaced config
//!    kept as `config.yaml.bak`, 0600), the current database is moved aside
//!    (`streampulse.db.before-restore`), and the backup becomes the database
//!    once its own tables (the secrets) are dropped and the file rewritten.
//!    A power cut in between leaves `restore.pending` in place, and the next
//!    start applies it again from the beginning.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::backup::{self, sibling, Backup};
use crate::atomic_file::write_atomic;
use crate::credentials::TOKENS_FILE;
use crate::store;

/// A checked backup waiting for the next start, in the data directory.
pub const PENDING: &str = "restore.pending";
/// A backup dropped on the boot partition, next to `config.yaml`.
pub const BOOT_FILE: &str = "restore.spbackup";

/// Checks the backup at `upload` and moves it to `data_dir`'s
/// [`PENDING`]; on any problem removes `upload` and changes nothing.
///
/// # Errors
/// What is wrong with the backup (for the person who sent it).
pub fn stage(upload: &Path, data_dir: &Path) -> Result<Backup> {
    let checked = backup::read(upload);
    let b = match checked {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(upload);
            return Err(e);
        }
    };
    let pending = data_dir.join(PENDING);
    std::fs::rename(upload, &pending)
        .with_context(|| format!("moving the backup to {}", pending.display()))?;
    Ok(b)
}

/// At start: takes a [`BOOT_FILE`] from `boot_dir` (checked, then moved
/// off the card: it holds secrets) and applies a pending restore. Logs
/// what happened; a bad boot file is renamed `restore.spbackup.error`
/// with the reason in `restore.spbackup.error.txt`, and the box starts as
/// it was.
pub fn at_start(boot_dir: Option<&Path>, data_dir: &Path, config_path: &Path) {
    if let Some(dir) = boot_dir {
        let file = dir.join(BOOT_FILE);
        if file.exists() {
            if let Err(e) = take_boot_file(&file, data_dir) {
                tracing::error!("restore: {} not restored: {e:#}", file.display());
                let _ = std::fs::rename(&file, sibling(&file, ".error"));
                let _ = std::fs::write(
                    sibling(&file, ".error.txt"),
                    format!("StreamPulse did not restore {BOOT_FILE}:\n\n{e:#}\n"),
                );
            }
        }
    }
    match apply_pending(data_dir, config_path) {
        Ok(None) => {}
        Ok(Some(b)) => tracing::warn!("restore: restored the {}", b.describe()),
        Err(e) => tracing::error!(
            "restore: the pending backup could not be applied ({e:#}); it stays in {} and is tried again at the next start",
            data_dir.join(PENDING).display()
        ),
    }
}

/// Copies the boot partition's backup into the data directory, checks it,
/// and removes it from the card.
fn take_boot_file(file: &Path, data_dir: &Path) -> Result<()> {
    let upload = data_dir.join(".restore-boot.tmp");
    copy_private(file, &upload)?;
    let b = stage(&upload, data_dir)?;
    std::fs::remove_file(file).with_context(|| format!("removing {}", file.display()))?;
    tracing::info!("restore: took the {} from the boot partition", b.describe());
    Ok(())
}

/// Applies `data_dir`'s [`PENDING`] backup, if any; see the module docs.
fn apply_pending(data_dir: &Path, config_path: &Path) -> Result<Option<Backup>> {
    let pending = data_dir.join(PENDING);
    if !pending.exists() {
        return Ok(None);
    }
    let b = backup::read(&pending)?;
    let db = data_dir.join(store::DB_FILE);
    // The database first: the copy is stripped of the secrets and
    // rewritten before anything of the running box changes.
    let restoring = data_dir.join(".restore-db.tmp");
    copy_private(&pending, &restoring)?;
    backup::strip_to_database(&restoring)?;
    let old_config = std::fs::read_to_string(config_path).unwrap_or_default();
    write_atomic(config_path, &b.config, Some(&old_config))
        .with_context(|| format!("writing {}", config_path.display()))?;
    // It now holds the backup's secrets, whatever mode the old file had.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(config_path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", config_path.display()))?;
    }
    let tokens = data_dir.join(TOKENS_FILE);
    match &b.tokens {
        Some(t) => write_atomic(&tokens, t, None)?,
        None => {
            let _ = std::fs::remove_file(&tokens);
        }
    }
    let aside = sibling(&db, ".before-restore");
    for suffix in ["", "-wal", "-shm"] {
        let from = sibling(&db, suffix);
        if from.exists() {
            let to: PathBuf = sibling(&aside, suffix);
            std::fs::rename(&from, &to)
                .with_context(|| format!("moving {} aside", from.display()))?;
        }
    }
    std::fs::rename(&restoring, &db).context("putting the restored database in place")?;
    std::fs::remove_file(&pending).context("removing the applied backup")?;
    Ok(Some(b))
}

/// Copies `from` to a new 0600 file `to` (replacing it), synced: the
/// copies hold secrets until they are stripped or applied.
fn copy_private(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(to);
    let mut src =
        std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut src, &mut dst).with_context(|| format!("copying {}", from.display()))?;
    dst.sync_all()?;
    Ok(())
}
