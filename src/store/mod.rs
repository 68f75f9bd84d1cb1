//! SQLite storage on the data partition: schema versions, the recorder
//! thread that owns the only write connection, retention, and read queries.
//!
//! Layout follows moonfire-nvr's `db/`: `schema.sql` is the current schema,
//! the `version` table records each creation/upgrade, and [`UPGRADES`] holds
//! one step per version. Nobody runs an upgrade command on an appliance, so
//! [`open`] upgrades at start (after a `VACUUM INTO` backup) and refuses a
//! database newer than the binary (e.g. after an image rollback).

pub mod query;
pub mod recorder;
pub mod retention;

use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, Transaction};

/// Schema version this binary writes. Equals `UPGRADES.len() + 1`.
pub const SCHEMA_VERSION: i64 = 1;

/// Upgrade steps: `UPGRADES[i]` takes a database from version `i + 1` to `i + 2`.
/// Each runs in its own transaction, which also records the version row.
pub const UPGRADES: &[fn(&Transaction) -> rusqlite::Result<()>] = &[];

const SCHEMA: &str = include_str!("schema.sql");

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "streampulse.db";

/// Sets the pragmas every connection uses.
fn set_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    // WAL: readers never block the recorder; NORMAL: a power cut may lose the
    // last commit but never corrupts (the right trade for an SD card).
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Opens (creating or upgrading as needed) the read-write database at `path`.
pub fn open(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
    }
    let mut conn =
        Connection::open(path).with_context(|| format!("opening database {}", path.display()))?;
    set_pragmas(&conn).with_context(|| format!("configuring database {}", path.display()))?;
    init(&mut conn, Some(path))?;
    Ok(conn)
}

/// Opens a read-only connection for web workers.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening database {} read-only", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    Ok(conn)
}

/// Current schema version of `conn`, or 0 for an empty database.
pub fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    let has: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'version'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has {
        return Ok(0);
    }
    conn.query_row("SELECT coalesce(max(id), 0) FROM version", [], |r| r.get(0))
}

/// Creates the schema on an empty database or upgrades an older one.
/// `path` (None for in-memory) is where a pre-upgrade backup goes.
pub fn init(conn: &mut Connection, path: Option<&Path>) -> Result<()> {
    assert_eq!(
        SCHEMA_VERSION,
        UPGRADES.len() as i64 + 1,
        "one upgrade step per version"
    );
    let v = schema_version(conn).context("reading schema version")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if v == 0 {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA).context("creating schema")?;
        tx.execute(
            "INSERT INTO version (id, unix_time, notes) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                SCHEMA_VERSION,
                now,
                format!("created by streampulse {}", crate::VERSION)
            ],
        )?;
        tx.commit()?;
        return Ok(());
    }
    if v > SCHEMA_VERSION {
        bail!(
            "database schema version {v} is newer than this streampulse ({}, schema {SCHEMA_VERSION}); \
             run a newer image or move the database aside",
            crate::VERSION
        );
    }
    if v < SCHEMA_VERSION {
        if let Some(p) = path {
            let backup = p.with_extension(format!("v{v}.bak"));
            let _ = std::fs::remove_file(&backup);
            conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])
                .with_context(|| format!("backing up to {} before upgrade", backup.display()))?;
        }
        for step in v..SCHEMA_VERSION {
            let tx = conn.transaction()?;
            UPGRADES[(step - 1) as usize](&tx)
                .with_context(|| format!("upgrading schema {step} → {}", step + 1))?;
            tx.execute(
                "INSERT INTO version (id, unix_time, notes) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    step + 1,
                    now,
                    format!("upgraded by streampulse {}", crate::VERSION)
                ],
            )?;
            tx.commit()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_db_gets_current_version() {
        let mut c = Connection::open_in_memory().unwrap();
        init(&mut c, None).unwrap();
        assert_eq!(schema_version(&c).unwrap(), SCHEMA_VERSION);
        init(&mut c, None).unwrap(); // idempotent
        let n: i64 = c
            .query_row("SELECT count(*) FROM version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn newer_db_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        init(&mut c, None).unwrap();
        c.execute(
            "INSERT INTO version (id, unix_time) VALUES (?1, 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
        let e = init(&mut c, None).unwrap_err().to_string();
        assert!(e.contains("newer than this streampulse"), "{e}");
    }

    #[test]
    fn file_db_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("x.db")).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
