//! Hot reload: [`Reloader`] notices edits of `config.yaml` by polling its
//! content hash every few seconds (a config is a few KB; this works on vfat
//! and through editors' rename dances, where file events do not). A broken
//! edit is reported once, and the last good config keeps running.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use super::{parse_bytes, Config, Error};

/// Notices changes to the config file; see the module docs.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    /// Hash of the content last reported (or present at start).
    seen_hash: Option<u64>,
}

impl Reloader {
    /// Starts watching `path`, treating its current content as already applied.
    pub fn new(path: &Path) -> Self {
        let seen_hash = std::fs::read(path).ok().map(|b| content_hash(&b));
        Reloader {
            path: path.to_owned(),
            seen_hash,
        }
    }

    /// Returns the new config (or its error) if the content changed since the
    /// last call. A missing file (mid-rename by an editor) is not a change.
    pub fn poll(&mut self) -> Option<Result<Config, Error>> {
        let bytes = std::fs::read(&self.path).ok()?;
        let h = content_hash(&bytes);
        if self.seen_hash == Some(h) {
            return None;
        }
        self.seen_hash = Some(h);
        Some(parse_bytes(&bytes, &self.path.display().to_string()))
    }
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reloader_reports_changes_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, "heartbeat_seconds: 20\n").unwrap();
        let mut r = Reloader::new(&p);
        assert!(r.poll().is_none());
        std::fs::write(&p, "heartbeat_seconds: 30\n").unwrap();
        assert_eq!(
            r.poll().unwrap().unwrap().heartbeat,
            Duration::from_secs(30)
        );
        assert!(r.poll().is_none());
        std::fs::write(&p, "heartbeat_seconds: [\n").unwrap();
        assert!(r.poll().unwrap().is_err());
        assert!(r.poll().is_none(), "a broken file is reported once");
    }
}
