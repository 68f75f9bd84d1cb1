//! Backups: everything a box needs to be this box again on a fresh card.
//!
//! A backup is one SQLite file (`.spbackup`): a consistent snapshot of the
//! history database taken while the daemon runs (`VACUUM INTO`, which reads
//! one transaction, so the recorder goes on writing meanwhile), plus two
//! tables of its own: `streampulse_backup` (format, version, schema, when,
//! which box) and `streampulse_backup_files` (`config.yaml` with its secrets
//! and the admin password's hash, `api-tokens.json`). One file in a format
//! that checks itself (`PRAGMA quick_check`) and that anyone can open with
//! `sqlite3` to see what is inside; no archive format to add.
//!
//! It holds secrets: it is made 0600, unlinked as soon as it is open (the
//! download streams from the open file), and only an admin gets it.
//! Restoring it is [`super::restore`].

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::credentials::TOKENS_FILE;
use crate::store;

/// The backup format this version writes and reads.
pub const FORMAT: i64 = 1;
/// File name ending of a backup.
pub const EXTENSION: &str = "spbackup";
/// The names kept in `streampulse_backup_files`.
pub const CONFIG_FILE: &str = "config.yaml";

/// What a backup says about itself, and the files it carries.
#[derive(Debug)]
pub struct Backup {
    /// The streampulse version that made it.
    pub version: String,
    /// Its database's schema version.
    pub schema: i64,
    /// When it was made (ms since the epoch).
    pub created_ms: i64,
    /// The box's `device_name` then.
    pub device_name: String,
    /// `config.yaml`, secrets included.
    pub config: Vec<u8>,
    /// `api-tokens.json`, if the box had tokens.
    pub tokens: Option<Vec<u8>>,
}

impl Backup {
    /// One line for logs and answers: which box, when, which version.
    pub fn describe(&self) -> String {
        let when = jiff::Timestamp::from_millisecond(self.created_ms)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|_| "an unknown time".into());
        format!(
            "backup of \"{}\" made {when} by streampulse {}",
            self.device_name, self.version
        )
    }
}

/// Makes a backup of the database at `db` with `config_path` and the API
/// tokens of `data_dir`, in a temporary file in `data_dir`, and returns it
/// open and already unlinked (nothing with secrets stays on the card).
///
/// # Errors
/// Not enough free space for the snapshot, or any I/O or SQLite error.
pub fn create(
    db: &Path,
    config_path: &Path,
    data_dir: &Path,
    device_name: &str,
    now_ms: i64,
) -> Result<File> {
    let db_bytes: u64 = [db.to_path_buf(), sibling(db, "-wal")]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    if let Ok(u) = store::disk::usage(data_dir) {
        // The snapshot is at most the database's size; keep 16 MiB spare so
        // the recorder never meets a full card because of a backup.
        let need = db_bytes + (16 << 20);
        if u.free_bytes < need {
            bail!(
                "not enough free space on the data partition for a backup: {} MiB free, {} MiB needed",
                u.free_bytes >> 20,
                need >> 20
            );
        }
    }
    let config =
        std::fs::read(config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let tokens = std::fs::read(data_dir.join(TOKENS_FILE)).ok();
    let tmp = data_dir.join(format!(".backup-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    // Empty and 0600 before SQLite writes into it (VACUUM INTO accepts an
    // empty file and keeps its mode).
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let made = (|| -> Result<File> {
        let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
        src.busy_timeout(std::time::Duration::from_secs(10))?;
        src.execute("VACUUM INTO ?1", [tmp.to_string_lossy()])
            .context("taking a snapshot of the database")?;
        drop(src);
        let out = Connection::open(&tmp)?;
        let schema = store::schema_version(&out)?;
        out.execute_batch(
            "CREATE TABLE streampulse_backup (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE streampulse_backup_files (name TEXT PRIMARY KEY, content BLOB NOT NULL);",
        )?;
        let meta = [
            ("format", FORMAT.to_string()),
            ("version", crate::VERSION.to_owned()),
            ("schema", schema.to_string()),
            ("created_ms", now_ms.to_string()),
            ("device_name", device_name.to_owned()),
        ];
        for (k, v) in meta {
            out.execute(
                "INSERT INTO streampulse_backup (key, value) VALUES (?1, ?2)",
                [k, &v],
            )?;
        }
        let mut files = vec![(CONFIG_FILE, config)];
        if let Some(t) = tokens {
            files.push((TOKENS_FILE, t));
        }
        for (name, content) in files {
            out.execute(
                "INSERT INTO streampulse_backup_files (name, content) VALUES (?1, ?2)",
                rusqlite::params![name, content],
            )?;
        }
        out.close().map_err(|(_, e)| e)?;
        Ok(File::open(&tmp)?)
    })();
    // Open (or failed): either way the name goes now.
    let _ = std::fs::remove_file(&tmp);
    made
}

/// Reads and checks the backup at `path`: an intact SQLite file in a
/// format this version knows, whose database this version can open and
/// whose `config.yaml` is valid.
///
/// # Errors
/// A message for the person who uploaded it: what is wrong, never a secret.
pub fn read(path: &Path) -> Result<Backup> {
    let mut head = [0u8; 16];
    {
        use std::io::Read;
        let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let n = f.read(&mut head)?;
        if n < 16 || &head != b"SQLite format 3\0" {
            bail!("not a StreamPulse backup (not an SQLite file)");
        }
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .context("not a StreamPulse backup (cannot open it)")?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .context("the backup is damaged")?;
    if check != "ok" {
        bail!("the backup is damaged: {check}");
    }
    let meta = |key: &str| -> Result<Option<String>> {
        conn.query_row(
            "SELECT value FROM streampulse_backup WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()
        .context("not a StreamPulse backup (no backup table)")
    };
    let format: i64 = meta("format")?
        .and_then(|v| v.parse().ok())
        .context("not a StreamPulse backup (no format)")?;
    let version = meta("version")?.unwrap_or_default();
    if format != FORMAT {
        bail!(
            "backup format {format} (made by streampulse {version}) is not known to this version ({}); update the box first",
            crate::VERSION
        );
    }
    let schema = store::schema_version(&conn).context("reading the backup's schema version")?;
    if schema > store::SCHEMA_VERSION {
        bail!(
            "the backup was made by streampulse {version}, whose database (schema {schema}) is newer than this version's ({}, schema {}); update the box to {version} or later first",
            crate::VERSION,
            store::SCHEMA_VERSION
        );
    }
    let file = |name: &str| -> Result<Option<Vec<u8>>> {
        Ok(conn
            .query_row(
                "SELECT content FROM streampulse_backup_files WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    };
    let config = file(CONFIG_FILE)?.context("the backup holds no config.yaml")?;
    crate::config::parse_bytes(&config, "config.yaml in the backup")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tokens = file(TOKENS_FILE)?;
    if let Some(t) = &tokens {
        serde_json::from_slice::<serde_json::Value>(t)
            .context("the backup's api-tokens.json is not valid")?;
    }
    Ok(Backup {
        version,
        schema,
        created_ms: meta("created_ms")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        device_name: meta("device_name")?.unwrap_or_default(),
        config,
        tokens,
    })
}

/// Turns a backup file into a plain database: drops the backup's own
/// tables (the secrets) and rewrites the file so no freed page keeps them.
///
/// # Errors
/// SQLite's.
pub fn strip_to_database(path: &Path) -> Result<()> {
    let c = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    c.pragma_update(None, "secure_delete", "on")?;
    c.execute_batch(
        "DROP TABLE IF EXISTS streampulse_backup_files;
         DROP TABLE IF EXISTS streampulse_backup;
         VACUUM;",
    )
    .context("removing the backup's tables")?;
    c.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// `path` with `suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
