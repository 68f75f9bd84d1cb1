//! Importing a `config.yaml` dropped on the boot partition.
//!
//! The appliance is configured by putting `config.yaml` on the card's FAT
//! partition (readable and writable from any PC). At start, [`import`]:
//!
//! 1. validates it with the same parser as everything else; an invalid file
//!    is left where it is and the error, with its line, is written next to it
//!    as `config.yaml.error` (and logged); the last good config keeps running;
//! 2. renames it to `config.yaml.importing` first, so that a boot partition
//!    that cannot be written (mounted read-only, full) stops the import
//!    *before* anything changes: otherwise the same file would be imported on
//!    every start and silently undo edits made since in the web GUI;
//! 3. writes it to the data partition atomically (temp file, fsync, rename,
//!    fsync of the directory), keeping the previous one as `config.yaml.prev`;
//! 4. leaves `config.yaml.applied` on the boot partition: the same text with
//!    passwords replaced by `***`, because a FAT partition is readable by
//!    anyone who pulls the card; then removes `.importing` and any stale `.error`.
//!
//! A crash between 2 and 4 leaves `config.yaml.importing`, which the next
//! start imports. Nothing here runs after start: the running daemon watches
//! only the data partition's copy.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config;

/// What [`import`] did.
#[derive(Debug)]
pub enum Outcome {
    /// No `config.yaml` (nor a half-done import) on the boot partition.
    Absent,
    /// Imported into the data partition.
    Imported {
        /// Streams in the imported file.
        streams: usize,
    },
    /// Invalid: left in place, `config.yaml.error` written beside it.
    Rejected(config::Error),
}

/// `dir/name` + `suffix` (e.g. `config.yaml` → `config.yaml.applied`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a directory so a rename in it survives power loss.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Writes `bytes` to `path` atomically: temp file in the same directory,
/// fsync, rename over `path`, fsync the directory.
///
/// # Errors
/// Any I/O error, with the path in the message.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling(path, ".tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    sync_dir(parent(path))
}

/// Imports `boot` into `data_config`; see the module docs.
///
/// # Errors
/// I/O failures (unreadable file, read-only boot partition, full data
/// partition). An *invalid* file is not an error but [`Outcome::Rejected`].
pub fn import(boot: &Path, data_config: &Path, now_ms: i64) -> Result<Outcome> {
    let importing = sibling(boot, ".importing");
    let error_file = sibling(boot, ".error");
    let (source, resumed) = if boot.exists() {
        (boot.to_path_buf(), false)
    } else if importing.exists() {
        (importing.clone(), true)
    } else {
        return Ok(Outcome::Absent);
    };
    let bytes = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let cfg = match config::parse_bytes(&bytes, &boot.display().to_string()) {
        Ok(c) => c,
        Err(e) => {
            let note = format!(
                "StreamPulse did not import {name}:\n\n{e}\n\n\
                 The configuration that was running before is still in use.\n\
                 Fix {name} and restart the box; this file is then removed.\n",
                name = boot.file_name().unwrap_or_default().to_string_lossy()
            );
            if resumed {
                // Never leave an invalid file under the name that means "in progress".
                fs::rename(&importing, boot).with_context(|| {
                    format!("renaming {} to {}", importing.display(), boot.display())
                })?;
            }
            write_atomic(&error_file, note.as_bytes())?;
            return Ok(Outcome::Rejected(e));
        }
    };
    if !resumed {
        fs::rename(boot, &importing).with_context(|| {
            format!(
                "renaming {} to {} (is the boot partition writable?); not importing, \
                 or it would be imported again at every start",
                boot.display(),
                importing.display()
            )
        })?;
        sync_dir(parent(boot))?;
    }
    if data_config.exists() {
        let prev = sibling(data_config, ".prev");
        fs::copy(data_config, &prev)
            .with_context(|| format!("keeping the old config as {}", prev.display()))?;
    }
    write_atomic(data_config, &bytes)?;
    let secrets: Vec<&str> = cfg
        .streams
        .iter()
        .filter_map(|s| s.target.creds.as_ref())
        .map(|c| c.password.as_str())
        .collect();
    let text = String::from_utf8_lossy(&bytes);
    let header = format!(
        "# Imported by StreamPulse into {} at {}; passwords replaced by ***.\n\
         # To change the configuration, put a new config.yaml next to this file.\n",
        data_config.display(),
        jiff::Timestamp::from_millisecond(now_ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    );
    let applied = format!("{header}{}", redact_yaml(&text, &secrets));
    write_atomic(&sibling(boot, ".applied"), applied.as_bytes())?;
    fs::remove_file(&importing).with_context(|| format!("removing {}", importing.display()))?;
    match fs::remove_file(&error_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", error_file.display())),
    }
    sync_dir(parent(boot))?;
    Ok(Outcome::Imported {
        streams: cfg.streams.len(),
    })
}

/// `streampulse run --boot-config`: imports, logs, records the outcome for
/// `/healthz`, and writes [`DEFAULT_CONFIG`] when there is no config at all
/// (a fresh card without `config.yaml`). Never fails: the box must come up
/// with its last good config whatever the boot partition holds.
pub fn at_start(boot: &Path, data_config: &Path, now_ms: i64) {
    let what = match import(boot, data_config, now_ms) {
        Ok(Outcome::Absent) => format!("nothing to import at {}", boot.display()),
        Ok(Outcome::Imported { streams }) => {
            let m = format!(
                "imported {} into {} ({streams} streams)",
                boot.display(),
                data_config.display()
            );
            tracing::info!("boot config: {m}");
            m
        }
        Ok(Outcome::Rejected(e)) => {
            tracing::error!(
                "boot config: not imported, the previous config keeps running: {e} \
                 (details in {})",
                sibling(boot, ".error").display()
            );
            format!("rejected: {e}")
        }
        Err(e) => {
            tracing::error!("boot config: import failed: {e:#}");
            format!("import failed: {e:#}")
        }
    };
    super::health::global().set_boot_config(what);
    match ensure_config(data_config) {
        Ok(true) => tracing::info!(
            "no config yet: wrote an empty one to {}",
            data_config.display()
        ),
        Ok(false) => {}
        Err(e) => tracing::error!("writing a default config: {e:#}"),
    }
}

/// The config a fresh appliance starts with when nothing was imported yet.
pub const DEFAULT_CONFIG: &str = "\
# StreamPulse configuration. Edit it in the web interface, or put a new
# config.yaml on the card's boot partition (FAT) and restart the box.
heartbeat_seconds: 20
streams: []
";

/// Writes [`DEFAULT_CONFIG`] to `path` if there is no file yet; returns true if it did.
///
/// # Errors
/// When the file cannot be written.
pub fn ensure_config(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_atomic(path, DEFAULT_CONFIG.as_bytes())?;
    Ok(true)
}

/// True for keys whose values are secrets (`password`, `admin_password_hash`, …).
fn secret_key(key: &str) -> bool {
    let k = key
        .trim()
        .trim_start_matches('-')
        .trim()
        .to_ascii_lowercase();
    ["password", "passwd", "secret", "token"]
        .iter()
        .any(|s| k.contains(s))
}

/// Replaces the password part of every `scheme://user:password@` in `line`.
fn redact_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || "/?#\"'".contains(c))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `text` with secrets replaced by `***`: values of secret keys, passwords in
/// URLs, and (belt and braces) every known password anywhere.
pub fn redact_yaml(text: &str, passwords: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let redacted = match body.split_once(':') {
            Some((key, value))
                if secret_key(key) && !value.trim().is_empty() && !key.contains("//") =>
            {
                format!("{key}: '***'")
            }
            _ => redact_userinfo(body),
        };
        out.push_str(&redacted);
        out.push_str(nl);
    }
    for p in passwords.iter().filter(|p| p.len() >= 3) {
        out = out.replace(p, "***");
        let enc: String = url::form_urlencoded::byte_serialize(p.as_bytes()).collect();
        if enc != *p {
            out = out.replace(&enc, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
heartbeat_seconds: 30
streams:
- name: Front door
  url: rtsp://admin:Sup3r-secret@192.0.2.10:554/stream1
- name: Garage
  url: http://192.0.2.11/snapshot.jpg
  username: viewer
  password: \"hunter22\"
";

    const BAD: &str = "\
heartbeat_seconds: 30
streams:
- name: Front door
  url: rtsp://192.0.2.10/
  interval: 2
";

    struct Dirs {
        _t: tempfile::TempDir,
        boot: PathBuf,
        data: PathBuf,
    }

    fn dirs() -> Dirs {
        let t = tempfile::tempdir().unwrap();
        let boot = t.path().join("boot");
        let data = t.path().join("data");
        fs::create_dir_all(&boot).unwrap();
        fs::create_dir_all(&data).unwrap();
        Dirs {
            boot: boot.join("config.yaml"),
            data: data.join("config.yaml"),
            _t: t,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn valid_file_is_imported_renamed_and_redacted() {
        let d = dirs();
        fs::write(&d.boot, GOOD).unwrap();
        fs::write(&d.data, "streams: []\n").unwrap();
        fs::write(sibling(&d.boot, ".error"), "old error").unwrap();
        let out = import(&d.boot, &d.data, 1_700_000_000_000).unwrap();
        assert!(matches!(out, Outcome::Imported { streams: 2 }), "{out:?}");
        assert_eq!(fs::read_to_string(&d.data).unwrap(), GOOD);
        assert_eq!(
            fs::read_to_string(sibling(&d.data, ".prev")).unwrap(),
            "streams: []\n"
        );
        assert_eq!(names(d.boot.parent().unwrap()), vec!["config.yaml.applied"]);
        let applied = fs::read_to_string(sibling(&d.boot, ".applied")).unwrap();
        assert!(!applied.contains("Sup3r-secret"), "{applied}");
        assert!(!applied.contains("hunter22"), "{applied}");
        assert!(
            applied.contains("rtsp://admin:***@192.0.2.10:554/stream1"),
            "{applied}"
        );
        assert!(applied.contains("  password: '***'"), "{applied}");
        assert!(applied.contains("2023-11-14T22:13:20Z"), "{applied}");
        // A second start finds nothing to import and changes nothing.
        assert!(matches!(
            import(&d.boot, &d.data, 0).unwrap(),
            Outcome::Absent
        ));
        assert_eq!(fs::read_to_string(&d.data).unwrap(), GOOD);
    }

    #[test]
    fn invalid_file_stays_and_gets_an_error_note_with_the_line() {
        let d = dirs();
        fs::write(&d.boot, BAD).unwrap();
        fs::write(&d.data, GOOD).unwrap();
        let out = import(&d.boot, &d.data, 0).unwrap();
        let Outcome::Rejected(e) = out else {
            panic!("expected a rejection, got {out:?}")
        };
        assert!(e.line.is_some(), "{e}");
        assert_eq!(fs::read_to_string(&d.boot).unwrap(), BAD, "left in place");
        assert_eq!(fs::read_to_string(&d.data).unwrap(), GOOD, "last good kept");
        let note = fs::read_to_string(sibling(&d.boot, ".error")).unwrap();
        assert!(note.contains(&e.to_string()), "{note}");
        assert!(note.contains("interval"), "{note}");
        assert!(!sibling(&d.data, ".prev").exists());
        // Fixed and restarted: imported, and the stale note goes away.
        fs::write(&d.boot, GOOD.replace("30", "40")).unwrap();
        assert!(matches!(
            import(&d.boot, &d.data, 0).unwrap(),
            Outcome::Imported { .. }
        ));
        assert_eq!(names(d.boot.parent().unwrap()), vec!["config.yaml.applied"]);
    }

    #[test]
    fn an_interrupted_import_is_finished_at_the_next_start() {
        let d = dirs();
        fs::write(sibling(&d.boot, ".importing"), GOOD).unwrap();
        assert!(matches!(
            import(&d.boot, &d.data, 0).unwrap(),
            Outcome::Imported { streams: 2 }
        ));
        assert_eq!(fs::read_to_string(&d.data).unwrap(), GOOD);
        assert_eq!(names(d.boot.parent().unwrap()), vec!["config.yaml.applied"]);
    }

    /// If the boot copy cannot be renamed away, nothing is imported: it
    /// would otherwise be imported again at every start. (A non-empty
    /// directory in the way makes the rename fail even for root, which
    /// ignores permission bits.)
    #[test]
    fn boot_copy_that_cannot_be_renamed_imports_nothing() {
        let d = dirs();
        fs::write(&d.boot, GOOD).unwrap();
        fs::write(&d.data, "streams: []\n").unwrap();
        let blocker = sibling(&d.boot, ".importing");
        fs::create_dir_all(blocker.join("x")).unwrap();
        let err = import(&d.boot, &d.data, 0).unwrap_err();
        assert!(format!("{err:#}").contains("not importing"), "{err:#}");
        assert_eq!(fs::read_to_string(&d.data).unwrap(), "streams: []\n");
        assert_eq!(fs::read_to_string(&d.boot).unwrap(), GOOD);
    }

    #[test]
    fn default_config_is_valid_and_written_once() {
        assert!(config::parse(DEFAULT_CONFIG, "default").is_ok());
        let d = dirs();
        let p = d.data.parent().unwrap().join("sub/config.yaml");
        assert!(ensure_config(&p).unwrap());
        fs::write(&p, GOOD).unwrap();
        assert!(!ensure_config(&p).unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), GOOD);
    }

    #[test]
    fn redaction() {
        let r = redact_yaml(
            "a: rtsp://u:p%40ss@h/x and http://h/nouser and http://me@h/\n\
             - password: xyz\n  admin_password_hash: $argon2id$v=19$zzz\nname: password reset\n\
             url: \"rtsp://u:pw@h\"",
            &["p@ss"],
        );
        assert_eq!(
            r,
            "a: rtsp://u:***@h/x and http://h/nouser and http://me@h/\n\
             - password: '***'\n  admin_password_hash: '***'\nname: password reset\n\
             url: \"rtsp://u:***@h\""
        );
    }
}
