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
pub const SCHEMA_VERSION: i64 = 2;

/// Upgrade steps: `UPGRADES[i]` takes a database from version `i + 1` to `i + 2`.
/// Each runs in its own transaction, which also records the version row.
pub const UPGRADES: &[fn(&Transaction) -> rusqlite::Result<()>] =
    &[|tx| tx.execute_batch(include_str!("upgrade/v1_to_v2.sql"))];

const SCHEMA: &str = include_str!("schema.sql");

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "streampulse.db";

/// Sets the pragmas every connection uses.
fn set_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    // 1 KiB pages for a new database (ignored for an existing one): a commit
    // rewrites whole pages (the right edge of heartbeats_recent and its
    // parents), and 1 KiB already holds ~5 s of heartbeats of 100 streams.
    conn.pragma_update(None, "page_size", 1024)?;
    // WAL: readers never block the recorder; NORMAL: a power cut may lose the
    // last commit but never corrupts (the right trade for an SD card).
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    // Page cache: 1 MiB (SQLite's default is 2 MB per connection, which a
    // large history fills for good). The recorder only touches the edge of
    // the heartbeat tables; retention scans once an hour.
    conn.pragma_update(None, "cache_size", -1024)?;
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
    // 512 KiB of page cache per web worker instead of SQLite's 2 MB default:
    // history reads are one-off range scans, and there are N workers.
    conn.pragma_update(None, "cache_size", -512)?;
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

    /// A schema-1 database with rows upgrades to 2: the rows stay readable
    /// through the `heartbeats` view, new ones land in `heartbeats_recent`,
    /// and the result has the same tables and columns as a fresh database.
    #[test]
    fn upgrade_and_compare() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(include_str!("upgrade/v1.sql")).unwrap();
            c.execute_batch(
                "INSERT INTO version VALUES (1, 0, 'v1');
                 INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (1, 'a', 'rtsp', 'x', 0);
                 INSERT INTO heartbeats VALUES (1, 1000, 1, 120, NULL, 0), (1, 2000, 0, 5, 3, 1);",
            )
            .unwrap();
        }
        let c = open(&path).unwrap();
        assert_eq!(schema_version(&c).unwrap(), SCHEMA_VERSION);
        assert!(
            path.with_extension("v1.bak").exists(),
            "backup before upgrading"
        );
        c.execute(
            "INSERT INTO heartbeats_recent (stream_id, ts_ms, ok, latency_ms) VALUES (1, 3000, 1, 99)",
            [],
        )
        .unwrap();
        let rows: Vec<(i64, i64, i64)> = c
            .prepare("SELECT ts_ms, ok, flags FROM heartbeats WHERE stream_id = 1 ORDER BY ts_ms")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, [(1000, 1, 0), (2000, 0, 1), (3000, 1, 0)]);

        let shape = |c: &Connection| -> Vec<String> {
            let mut out = Vec::new();
            let names: Vec<(String, String)> = c
                .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for (ty, name) in names {
                out.push(format!("{ty} {name}"));
                let cols: Vec<String> = c
                    .prepare(&format!("PRAGMA table_info({name})"))
                    .unwrap()
                    .query_map([], |r| {
                        Ok(format!(
                            "  {} {} pk{}",
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(5)?
                        ))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                out.extend(cols);
            }
            out
        };
        let mut fresh = Connection::open_in_memory().unwrap();
        init(&mut fresh, None).unwrap();
        assert_eq!(shape(&c), shape(&fresh));
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
