//! The crate's one way to replace a file: atomically, durably, and never
//! readable by others on the way.
//!
//! `config.yaml`, `api-tokens.json` and the boot partition's import markers
//! all go through [`write_atomic_with`]: a power cut leaves the old file or
//! the new one, never half of each, and a file that may hold a secret is
//! never world-readable, not even for the moment between create and chmod.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A copy of a file's previous content, kept beside it by [`write_atomic_with`].
#[derive(Clone, Copy, Debug)]
pub struct Backup<'a> {
    /// Appended to the file's name (`.bak`, `.prev`).
    pub suffix: &'a str,
    pub content: &'a [u8],
}

/// [`write_atomic_with`] keeping `backup` (when given and not empty) as
/// `<path>.bak`. The one atomic write of the crate; see there.
///
/// # Errors
/// When the temp file cannot be written or renamed.
pub fn write_atomic(path: &Path, bytes: &[u8], backup: Option<&str>) -> anyhow::Result<()> {
    let backup = backup.map(|b| Backup {
        suffix: ".bak",
        content: b.as_bytes(),
    });
    write_atomic_with(path, bytes, backup)
}

/// Replaces `path` with `bytes`: temp file in the same directory, fsync,
/// rename over the old file, fsync of the directory. Every file written this
/// way may hold a secret (config, API tokens, their backups), so:
/// * a new file is 0600 whatever the umask;
/// * a rewritten file keeps its owner, group and mode (so `streampulse
///   passwd --config` run as root leaves the service user's file readable
///   by the service user);
/// * the backup (best effort: a failure is logged) is 0600, owned like the file.
///
/// On FAT (the boot partition) owner and mode come from the mount options
/// and cannot be changed; they are left as the mount gives them.
///
/// # Errors
/// When the temp file cannot be written, given its owner or mode, or renamed.
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    backup: Option<Backup<'_>>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (mode, owner) = match std::fs::metadata(path) {
        Ok(m) => (m.mode() & 0o7777, Some((m.uid(), m.gid()))),
        Err(_) => (0o600, None),
    };
    if let Some(b) = backup.filter(|b| !b.content.is_empty()) {
        let mut bak = path.as_os_str().to_owned();
        bak.push(b.suffix);
        let bak = PathBuf::from(bak);
        if let Err(e) = replace(&bak, b.content, 0o600, owner) {
            tracing::warn!("could not keep a backup at {}: {e:#}", bak.display());
        }
    }
    replace(path, bytes, mode, owner)
}

/// Writes `bytes` to a temp file with `mode` and `owner` (uid, gid), then
/// renames it over `path`; see [`write_atomic_with`].
fn replace(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.yaml".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        // Created 0600 (the umask can only take bits away), so the content is
        // never readable by others, even before the mode below is set.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        if !on_fat(&f) {
            let meta = f
                .metadata()
                .with_context(|| format!("reading the mode of {}", tmp.display()))?;
            // Only root can give a file away; anyone else rewrites it as
            // their own (as a plain rename always did).
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            if let Some((uid, gid)) = owner.filter(|&o| root && o != (meta.uid(), meta.gid())) {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                    .with_context(|| format!("giving {} to {uid}:{gid}", tmp.display()))?;
            }
            // After fchown, which may clear set-id bits.
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting permissions of {}", tmp.display()))?;
        }
        f.sync_all()
            .with_context(|| format!("flushing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("replacing {} with {}", path.display(), tmp.display()))?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing directory {}", dir.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// True if `f` is on a FAT file system, where chmod/chown are refused.
fn on_fat(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: fstatfs on an open descriptor into a zeroed, owned struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) };
    // i128: the field's and the constant's types differ between libcs.
    rc == 0 && i128::from(st.f_type) == i128::from(libc::MSDOS_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Findings 7 and 10 of issue 14: files holding secrets are 0600 when
    /// new (whatever the umask), a rewrite keeps the file's owner and mode,
    /// and the backup is 0600 with the same owner. (Tests run as root, so
    /// the file is first given to another user, as the appliance's
    /// `streampulse` user would own it.)
    #[test]
    fn atomic_writes_are_private_and_keep_the_owner() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        // SAFETY: umask only changes this process's file-creation mask.
        let old_mask = unsafe { libc::umask(0o022) };
        write_atomic(&p, b"streams: []\n", None).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600, "new file under umask 022");

        std::os::unix::fs::chown(&p, Some(990), Some(991)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"heartbeat_seconds: 30\n", Some("streams: []\n")).unwrap();
        unsafe { libc::umask(old_mask) };
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (990, 991, 0o640));
        let bak = std::fs::metadata(dir.path().join("config.yaml.bak")).unwrap();
        assert_eq!(
            (bak.uid(), bak.gid(), bak.mode() & 0o7777),
            (990, 991, 0o600)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.yaml.bak")).unwrap(),
            "streams: []\n"
        );
        // A .bak left world-readable by an older version is tightened too.
        std::fs::set_permissions(
            dir.path().join("config.yaml.bak"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        write_atomic(
            &p,
            b"heartbeat_seconds: 40\n",
            Some("heartbeat_seconds: 30\n"),
        )
        .unwrap();
        let bak = std::fs::metadata(dir.path().join("config.yaml.bak")).unwrap();
        assert_eq!(bak.mode() & 0o7777, 0o600);
    }
}
