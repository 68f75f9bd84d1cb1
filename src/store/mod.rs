//! SQLite storage on the data partition: schema versions, the recorder
//! thread that owns the only write connection, retention, and read queries.
//!
//! Layout follows moonfire-nvr's `db/`: `schema.sql` is the current schema,
//! the `version` table records each creation/upgrade, and [`UPGRADES`] holds
//! one step per version. Nobody runs an upgrade command on an appliance, so
//! [`open`] upgrades at start (after a `VACUUM INTO` backup) and refuses a
//! database newer than the binary (e.g. after an image rollback).

pub mod availability;
pub mod blocks;
pub mod disk;
pub mod export;
pub mod last_state;
pub mod query;
pub mod recorder;
pub mod retention;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, Transaction};

/// Schema version this binary writes. Equals `UPGRADES.len() + 1`.
pub const SCHEMA_VERSION: i64 = 3;

/// Upgrade steps: `UPGRADES[i]` takes a database from version `i + 1` to `i + 2`.
/// Each runs in its own transaction, which also records the version row.
pub const UPGRADES: &[fn(&Transaction) -> rusqlite::Result<()>] = &[
    |tx| tx.execute_batch(include_str!("upgrade/v1_to_v2.sql")),
    upgrade_v2_to_v3,
];

/// Schema 2 → 3: heartbeat rows become packed blocks ([`blocks`]), and
/// rollups are keyed by hour first (see schema.sql). In Rust,
/// since SQL cannot pack; reads one stream's rows at a time in key order, so
/// memory stays at one block whatever the history's size.
fn upgrade_v2_to_v3(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE heartbeat_blocks (
           window_ms INTEGER NOT NULL,
           stream_id INTEGER NOT NULL,
           first_ms INTEGER NOT NULL,
           probes INTEGER NOT NULL,
           ok INTEGER NOT NULL,
           latency_sum_ms INTEGER NOT NULL,
           latency_max_ms INTEGER NOT NULL,
           data BLOB NOT NULL,
           PRIMARY KEY (window_ms, stream_id, first_ms)
         ) WITHOUT ROWID;",
    )?;
    {
        let mut rows = tx.prepare(
            "SELECT stream_id, ts_ms, ok, latency_ms, reason, flags FROM heartbeats_archive
             UNION ALL
             SELECT stream_id, ts_ms, ok, latency_ms, reason, flags FROM heartbeats_recent
             ORDER BY 1, 2",
        )?;
        let mut rows = rows.query([])?;
        let mut open: Option<(i64, blocks::Block)> = None;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let hb = blocks::Heartbeat {
                ts_ms: r.get(1)?,
                ok: r.get::<_, i64>(2)? != 0,
                latency_ms: r.get::<_, i64>(3)?.clamp(0, u32::MAX as i64) as u32,
                reason: r
                    .get::<_, Option<i64>>(4)?
                    .and_then(crate::probe::Reason::from_code),
                flags: r.get::<_, i64>(5)? as u8,
            };
            let appended = open
                .as_mut()
                .is_some_and(|(oid, b)| *oid == id && b.try_push(&hb));
            if !appended {
                if let Some((oid, b)) = open.take() {
                    blocks::insert(tx, oid, &b)?;
                }
                open = Some((id, blocks::Block::new(&hb)));
            }
        }
        if let Some((oid, b)) = open {
            blocks::insert(tx, oid, &b)?;
        }
    }
    // Rollups re-keyed (hour, stream): appended at the right edge hourly.
    tx.execute_batch(
        "DROP TRIGGER heartbeats_insert;
         DROP VIEW heartbeats;
         DROP TABLE heartbeats_recent;
         DROP TABLE heartbeats_archive;
         CREATE TABLE rollups_v3 (
           stream_id INTEGER NOT NULL,
           hour_ms INTEGER NOT NULL,
           probes INTEGER NOT NULL,
           ok INTEGER NOT NULL,
           latency_sum_ms INTEGER NOT NULL,
           latency_max_ms INTEGER NOT NULL,
           PRIMARY KEY (hour_ms, stream_id)
         ) WITHOUT ROWID;
         INSERT INTO rollups_v3 SELECT stream_id, hour_ms, probes, ok, latency_sum_ms, latency_max_ms FROM rollups;
         DROP TABLE rollups;
         ALTER TABLE rollups_v3 RENAME TO rollups;",
    )
}

const SCHEMA: &str = include_str!("schema.sql");

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "streampulse.db";

/// Sets the pragmas every connection uses.
fn set_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    // 1 KiB pages for a new database (ignored for an existing one): a commit
    // rewrites whole pages (the right edge of heartbeat_blocks and its
    // parents, the events table), and smaller pages waste less of them.
    conn.pragma_update(None, "page_size", 1024)?;
    // WAL: readers never block the recorder; NORMAL: a power cut may lose the
    // last commit but never corrupts (the right trade for an SD card).
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    // Page cache: 256 KiB (SQLite's default is 2 MB per connection, which a
    // large history fills for good). The recorder appends blocks at the
    // right edge and retention deletes at the left edge once an hour; 256
    // KiB holds both edges' paths and an hour of blocks for the rollups.
    conn.pragma_update(None, "cache_size", -256)?;
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
    let v = schema_version(&conn).context("reading schema version")?;
    if v > SCHEMA_VERSION && pre_upgrade_copy(path, SCHEMA_VERSION).exists() {
        drop(conn);
        back_to_pre_upgrade_copy(path, v)?;
        conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        set_pragmas(&conn).with_context(|| format!("configuring database {}", path.display()))?;
    }
    init(&mut conn, Some(path))?;
    Ok(conn)
}

/// Where [`init`] keeps the copy of a schema-`v` database it is about to
/// upgrade (`streampulse.v2.bak`): consistent (`VACUUM INTO`), openable by
/// the version that wrote schema `v`.
pub fn pre_upgrade_copy(db: &Path, v: i64) -> PathBuf {
    db.with_extension(format!("v{v}.bak"))
}

/// A newer version upgraded the database, then the box went back to this
/// one (an update rolled back, docs/UPDATES.md): this version cannot read
/// schema `newer`, so it goes back to the copy taken before that upgrade
/// rather than refuse to start (which on the appliance would be a restart
/// loop). The newer database is kept beside it (`streampulse.db.schema4`),
/// so the history recorded since the upgrade is moved aside, not lost.
fn back_to_pre_upgrade_copy(db: &Path, newer: i64) -> Result<()> {
    let copy = pre_upgrade_copy(db, SCHEMA_VERSION);
    let aside = db.with_extension(format!("db.schema{newer}"));
    tracing::warn!(
        "database {} has schema {newer}, written by a newer streampulse than this one ({},          schema {SCHEMA_VERSION}): going back to the copy taken before that upgrade ({}); the          newer database is kept as {}",
        db.display(),
        crate::VERSION,
        copy.display(),
        aside.display()
    );
    // Closed cleanly above, so the WAL is checkpointed into the file; move
    // any leftovers (a crash) with it.
    for (from, to) in [("", ""), ("-wal", "-wal"), ("-shm", "-shm")] {
        let f = PathBuf::from(format!("{}{from}", db.display()));
        if f.exists() {
            let t = PathBuf::from(format!("{}{to}", aside.display()));
            std::fs::rename(&f, &t)
                .with_context(|| format!("moving {} aside to {}", f.display(), t.display()))?;
        }
    }
    std::fs::rename(&copy, db)
        .with_context(|| format!("putting {} back as {}", copy.display(), db.display()))?;
    Ok(())
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
            let backup = pre_upgrade_copy(p, v);
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

    /// The rollback of an update: a newer version took the pre-upgrade copy
    /// and upgraded the database past this version's schema; this version
    /// then opens the copy (with the history up to the upgrade) and keeps the
    /// newer database aside, instead of refusing to start. Without a copy
    /// the newer database is refused as before and left untouched.
    #[test]
    fn rolled_back_version_opens_the_pre_upgrade_copy() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(DB_FILE);
        let names = |c: &Connection| -> Vec<String> {
            let mut q = c.prepare("SELECT name FROM streams ORDER BY name").unwrap();
            q.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        {
            let c = open(&db).unwrap();
            c.execute(
                "INSERT INTO streams (name, kind, url_redacted, created_ms) VALUES ('before', 'rtsp', 'x', 0)",
                [],
            )
            .unwrap();
            // What a newer version's `init` does before its upgrade step…
            let copy = pre_upgrade_copy(&db, SCHEMA_VERSION);
            c.execute("VACUUM INTO ?1", [copy.to_string_lossy()])
                .unwrap();
            // …then its upgrade, and history recorded by it.
            c.execute(
                "INSERT INTO version (id, unix_time) VALUES (?1, 0)",
                [SCHEMA_VERSION + 1],
            )
            .unwrap();
            c.execute(
                "INSERT INTO streams (name, kind, url_redacted, created_ms) VALUES ('after', 'rtsp', 'x', 0)",
                [],
            )
            .unwrap();
        }
        let c = open(&db).unwrap();
        assert_eq!(schema_version(&c).unwrap(), SCHEMA_VERSION);
        assert_eq!(names(&c), ["before"]);
        assert!(!pre_upgrade_copy(&db, SCHEMA_VERSION).exists());
        let aside = dir
            .path()
            .join(format!("streampulse.db.schema{}", SCHEMA_VERSION + 1));
        let newer = Connection::open(&aside).unwrap();
        assert_eq!(schema_version(&newer).unwrap(), SCHEMA_VERSION + 1);
        assert_eq!(names(&newer), ["after", "before"]);
        drop((c, newer));

        // No copy: refused, and nothing is moved.
        std::fs::rename(&aside, &db).unwrap();
        let e = open(&db).unwrap_err().to_string();
        assert!(e.contains("newer than this streampulse"), "{e}");
        assert!(db.exists());
    }

    /// A schema-1 database with rows upgrades to 3 (through 2): the rows
    /// become packed blocks that read back the same, and the result has the
    /// same tables and columns as a fresh database.
    #[test]
    fn upgrade_and_compare() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let w = blocks::WINDOW_MS;
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(include_str!("upgrade/v1.sql")).unwrap();
            c.execute_batch(
                "INSERT INTO version VALUES (1, 0, 'v1');
                 INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (1, 'a', 'rtsp', 'x', 0);
                 INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (2, 'b', 'rtsp', 'x', 0);
                 INSERT INTO heartbeats VALUES (1, 1000, 1, 120, NULL, 0), (1, 2000, 0, 5, 3, 1);",
            )
            .unwrap();
            // Stream 2: 100 heartbeats 15 s apart (three windows).
            for i in 0..100i64 {
                c.execute(
                    "INSERT INTO heartbeats VALUES (2, ?1, ?2, ?3, NULL, 0)",
                    [w * 100 + i * 15_000, i64::from(i % 3 != 0), i],
                )
                .unwrap();
            }
        }
        let c = open(&path).unwrap();
        assert_eq!(schema_version(&c).unwrap(), SCHEMA_VERSION);
        assert!(
            path.with_extension("v1.bak").exists(),
            "backup before upgrading"
        );
        let rows: Vec<(i64, bool, Option<&str>, u8)> = blocks::load(&c, 1, 0, 10_000)
            .unwrap()
            .into_iter()
            .map(|h| (h.ts_ms, h.ok, h.reason.map(|r| r.as_str()), h.flags))
            .collect();
        assert_eq!(
            rows,
            [
                (1000, true, None, 0),
                (
                    2000,
                    false,
                    crate::probe::Reason::from_code(3).map(|r| r.as_str()),
                    1
                )
            ]
        );
        let two = blocks::load(&c, 2, 0, i64::MAX).unwrap();
        assert_eq!(two.len(), 100);
        assert_eq!(two.iter().filter(|h| h.ok).count(), 66);
        assert_eq!(two[99].latency_ms, 99);
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM heartbeat_blocks WHERE stream_id = 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 3, "one block per window");

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

    /// Schema 2's two heartbeat tables (archive keyed by stream, recent keyed
    /// by time) become blocks: every row once, in time order, the flags and
    /// reasons kept, the old tables and view gone.
    #[test]
    fn upgrade_v2_packs_both_heartbeat_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let w = blocks::WINDOW_MS;
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(include_str!("upgrade/v2.sql")).unwrap();
            c.execute_batch(
                "INSERT INTO version VALUES (2, 0, 'v2');
                 INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (1, 'a', 'rtsp', 'x', 0);
                 INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (2, 'b', 'rtsp', 'x', 0);
                 INSERT INTO rollups VALUES (2, 3600000, 10, 9, 90, 20), (1, 3600000, 4, 4, 8, 3);",
            )
            .unwrap();
            // Archive: stream 1 for an hour, stream 2 for ten minutes; recent:
            // the next 20 minutes of both.
            for i in 0..120i64 {
                c.execute(
                    "INSERT INTO heartbeats_archive VALUES (1, ?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        w * 1000 + i * 30_000,
                        i % 5 != 0,
                        i,
                        (i % 5 == 0).then_some(3),
                        i % 2
                    ],
                )
                .unwrap();
            }
            for i in 0..20i64 {
                c.execute(
                    "INSERT INTO heartbeats_archive VALUES (2, ?1, 1, 7, NULL, 0)",
                    [w * 1005 + i * 30_000],
                )
                .unwrap();
            }
            for i in 0..40i64 {
                for id in [1, 2] {
                    c.execute(
                        "INSERT INTO heartbeats_recent VALUES (?1, ?2, 1, 9, NULL, 0)",
                        [id, w * 1006 + i * 30_000],
                    )
                    .unwrap();
                }
            }
        }
        let c = open(&path).unwrap();
        assert_eq!(schema_version(&c).unwrap(), SCHEMA_VERSION);
        assert!(path.with_extension("v2.bak").exists());
        let a = blocks::load(&c, 1, 0, i64::MAX).unwrap();
        assert_eq!(a.len(), 160);
        assert!(
            a.windows(2).all(|p| p[0].ts_ms < p[1].ts_ms),
            "in time order"
        );
        assert_eq!(a[5].reason, crate::probe::Reason::from_code(3));
        assert!(!a[5].ok && a[6].ok);
        assert_eq!((a[1].flags, a[2].flags), (1, 0));
        assert_eq!(a[159].latency_ms, 9);
        let b = blocks::load(&c, 2, 0, i64::MAX).unwrap();
        assert_eq!(b.len(), 60);
        let gone: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'heartbeats%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0, "old tables, view and trigger dropped");
        let rollups: Vec<(i64, i64, i64)> = c
            .prepare("SELECT hour_ms, stream_id, probes FROM rollups")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rollups,
            [(3_600_000, 1, 4), (3_600_000, 2, 10)],
            "kept, keyed by hour"
        );
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
