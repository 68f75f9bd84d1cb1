//! A full data partition. SQLite in WAL mode cannot even delete when the
//! disk is full, so a small reserve file is kept next to the database and
//! released to make room; then retention runs, and if that frees nothing the
//! oldest rolled-up day of raw heartbeats goes (see the recorder's docs).

use std::time::Duration;

use rusqlite::Connection;

use super::super::retention::{self, Policy};

/// Space held back on the data partition for a disk-full day: enough for
/// SQLite to checkpoint and commit the deletes that make room.
pub const RESERVE_BYTES: u64 = 4 << 20;
/// File name of the reserve, next to the database.
pub const RESERVE_FILE: &str = "streampulse.reserve";
/// After a disk-full recovery attempt, the next one waits this long.
pub(super) const RECOVER_EVERY: Duration = Duration::from_secs(30);
/// How often a released reserve is re-created (if there is room).
pub(super) const RESERVE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// True if the filesystem holding `db` has (almost) no space left: an I/O
/// error there is really a full disk (SQLite reports a failed grow of its
/// WAL index as "disk I/O error", not "disk full").
pub(super) fn partition_full(db: &std::path::Path) -> bool {
    db.parent()
        .and_then(|d| crate::store::disk::usage(d).ok())
        .is_some_and(|u| u.free_bytes < 64 * 1024)
}

/// The data partition is full: release the reserve so SQLite can write
/// again, apply retention now and, if it frees nothing, prune the oldest
/// rolled-up day of raw heartbeats. See the module docs.
pub(super) fn make_room(
    conn: &mut Connection,
    reserve: &mut Reserve,
    now_ms: i64,
    policy: &Policy,
) {
    if reserve.release() {
        tracing::warn!(
            "data partition full: released the {} MiB space reserve to make room",
            RESERVE_BYTES >> 20
        );
    } else {
        tracing::warn!("data partition full (no space reserve left)");
    }
    // A failed pass still leaves the prune below: it deletes only hours an
    // earlier pass rolled up, in small steps that fit a nearly full disk.
    let deleted = match retention::run(conn, now_ms, policy) {
        Ok(r) => r.heartbeats_deleted,
        Err(e) => {
            tracing::error!("retention to make room failed: {e:#}");
            0
        }
    };
    if deleted > 0 {
        tracing::warn!("data partition full: retention pruned {deleted} heartbeats");
        // Freed pages are inside the database file; commits go to the WAL
        // first, which may have no room to grow: start it over.
        restart_wal(conn);
        return;
    }
    let pruned = retention::prune_oldest_day(conn, now_ms);
    restart_wal(conn);
    match pruned {
        Ok(0) => tracing::error!(
            "data partition full and nothing left to prune: heartbeats are kept in memory \
             (bounded) until space is freed"
        ),
        Ok(n) => tracing::warn!(
            "data partition full: pruned the {n} oldest raw heartbeats (their hourly rollups stay)"
        ),
        Err(e) => tracing::error!("pruning to make room failed: {e:#}"),
    }
}

/// Checkpoints and makes the next commit write the WAL from its start
/// (`RESTART`: the file keeps its size, unlike `TRUNCATE`), so a full
/// partition never needs the WAL to grow. Waits at most the busy timeout
/// for readers; failing only means the WAL may have to grow.
pub(super) fn restart_wal(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
        tracing::debug!("WAL restart checkpoint: {e}");
    }
}

/// Creates `path` with `len` bytes of allocated blocks: `fallocate` where the
/// filesystem has it (ext4, tmpfs: no data written, so no flash wear), else
/// real zeros (a sparse file would reserve nothing).
pub(super) fn allocate(path: &std::path::Path, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::create(path)?;
    let len_off = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a valid open fd; fallocate only allocates blocks of that file.
    if unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len_off) } == 0 {
        return Ok(());
    }
    let mut f = f;
    std::io::Write::write_all(&mut f, &vec![0u8; len as usize])?;
    f.sync_all()
}

/// The space reserve next to the database (see the module docs).
pub(super) struct Reserve {
    /// `None` for an in-memory database.
    path: Option<std::path::PathBuf>,
}

impl Reserve {
    pub(super) fn new(db_path: Option<&str>) -> Reserve {
        let path = db_path
            .filter(|p| !p.is_empty())
            .map(|p| std::path::Path::new(p).with_file_name(RESERVE_FILE));
        Reserve { path }
    }

    /// Creates the reserve if it is missing and the partition has room for
    /// it and then some (four times its size); a no-op otherwise.
    pub(super) fn ensure(&mut self) {
        let Some(path) = &self.path else { return };
        if std::fs::metadata(path).is_ok_and(|m| m.len() == RESERVE_BYTES) {
            return;
        }
        let Some(dir) = path.parent() else { return };
        match crate::store::disk::usage(dir) {
            Ok(u) if u.free_bytes >= 4 * RESERVE_BYTES => {}
            _ => return,
        }
        match allocate(path, RESERVE_BYTES) {
            Ok(()) => tracing::debug!("space reserve {} in place", path.display()),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                tracing::warn!("cannot create the space reserve {}: {e}", path.display());
            }
        }
    }

    /// Deletes the reserve; true if there was one.
    pub(super) fn release(&mut self) -> bool {
        self.path
            .as_ref()
            .is_some_and(|p| std::fs::remove_file(p).is_ok())
    }
}
