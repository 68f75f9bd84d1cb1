//! Importing a `config.yaml` dropped on the boot partition, and the
//! factory reset requested the same way.
//!
//! The appliance is configured by putting `config.yaml` on the card's FAT
//! partition (readable and writable from any PC). At start, with
//! `run --boot-config`:
//!
//! 0. a file `factory-reset` beside it is acted on first (`bootcfg/reset.rs`): the
//!    box's config, API tokens and (unless the file says `keep-history`)
//!    history are deleted, so it comes up as on first boot; a `config.yaml`
//!    dropped with it is then imported onto that fresh state;
//! 1. [`import`] *merges* `config.yaml` into the running config
//!    (`bootcfg/merge.rs`): a top-level key the file names replaces the current
//!    value, except that a mapping section (`mqtt:`, `web:`, `monitor:`,
//!    `live:`, …) merges key by key, recursively; keys the file leaves out
//!    keep their value; `key:` with no value removes the key. A `streams:`
//!    list replaces the whole list; without `streams:` the streams (GUI-added
//!    ones too) are kept. A secret written `***` (as `config.yaml.applied`
//!    shows it; in a URL `user:***@`) keeps the current value at the same
//!    place (for a stream: the current stream of the same name; for a URL:
//!    only if scheme, user, host and port are unchanged), so the `.applied`
//!    copy can be edited and dropped back without losing passwords; with no
//!    current value the file is refused. `admin_password_hash` changes only
//!    to an explicit new hash (an empty one is refused), or through
//!    `admin_password: <plain text>` (at least 10 characters, as on the
//!    setup page), which is hashed with Argon2id and stored only as
//!    `admin_password_hash` (for a user without a shell or the `passwd`
//!    tool). A new hash ends every web session: sessions live in memory
//!    and are bound to the hash, and an import happens only at start;
//! 2. the merged result is validated with the same parser as everything
//!    else; an invalid one (or an unresolved `***`) is left where it is and
//!    the error, with its line where known, is written next to it as
//!    `config.yaml.error` (and logged); the last good config keeps running;
//! 3. renames it to `config.yaml.importing` first, so that a boot partition
//!    that cannot be written (mounted read-only, full) stops the import
//!    *before* anything changes: otherwise the same file would be imported on
//!    every start and silently undo edits made since in the web GUI;
//! 4. writes the merged config to the data partition atomically (comments
//!    are not kept), keeping the previous one as `config.yaml.prev`;
//! 5. leaves `config.yaml.applied` on the boot partition: the merged config
//!    with every secret replaced by `***` (`bootcfg/mask.rs`), because a FAT partition
//!    is readable by anyone who pulls the card; then removes `.importing`
//!    (so a plain `admin_password` is gone from the card) and any stale `.error`.
//!
//! A crash between 3 and 5 leaves `config.yaml.importing`, which the next
//! start imports. Nothing here runs after start: the running daemon watches
//! only the data partition's copy.

mod mask;
mod merge;
mod reset;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::health::BootConfig;
use crate::atomic_file::{self, write_atomic, Backup};
use crate::config::edit::{parse_tree, render_body, Yaml};
use crate::config::{self, Config};
use crate::credentials;

pub use mask::masked;
pub use reset::{factory_reset, Reset, FACTORY_RESET_FILE};

/// What [`import`] did.
#[derive(Debug)]
pub enum Outcome {
    /// No `config.yaml` (nor a half-done import) on the boot partition.
    Absent,
    /// Merged into the data partition's config.
    Imported {
        /// Streams in the resulting config.
        streams: usize,
        /// The file set a new admin password (hash or `admin_password`).
        password_changed: bool,
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

/// Renames a boot-partition request file away (`from` → `to`) before acting
/// on it, and makes the rename durable. If the partition cannot be written,
/// the action must not happen: it would be repeated at every start.
fn claim(from: &Path, to: &Path, action: &str) -> Result<()> {
    fs::rename(from, to).with_context(|| {
        format!(
            "renaming {} to {} (is the boot partition writable?); not {action}, \
             or it would happen again at every start",
            from.display(),
            to.display()
        )
    })?;
    sync_dir(parent(from))
}

/// The merged configuration an import would write.
struct Merged {
    tree: Yaml,
    cfg: Config,
    password_changed: bool,
}

/// An error of the imported file named `label`, at `line` if known.
fn file_error(label: &str, line: Option<u64>, message: String) -> config::Error {
    config::Error {
        path: label.to_owned(),
        line,
        column: None,
        message,
    }
}

/// The line (1-based) of the first `key:` at the start of a line of `text`.
fn line_of_key(text: &str, key: &str) -> Option<u64> {
    let prefix = format!("{key}:");
    text.lines()
        .position(|l| l.starts_with(&prefix))
        .map(|i| i as u64 + 1)
}

/// The line of the `nth` (0-based) `***` of `text`, comments skipped.
fn line_of_mask(text: &str, nth: usize) -> Option<u64> {
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        seen += line.matches(merge::MASK).count();
        if seen > nth {
            return Some(i as u64 + 1);
        }
    }
    None
}

/// Replaces `admin_password` in `import` by `admin_password_hash` (Argon2id);
/// returns whether the file sets a new admin password at all.
fn take_admin_password(import: &mut Yaml, text: &str, label: &str) -> Result<bool, config::Error> {
    let err = |key: &str, m: String| file_error(label, line_of_key(text, key), m);
    match import.get("admin_password_hash") {
        Some(Yaml::Null) => {
            return Err(err(
                "admin_password_hash",
                "admin_password_hash: empty; the admin password is only replaced by a new \
                 hash or by admin_password (to start over, use a factory-reset file)"
                    .into(),
            ))
        }
        Some(_) if import.get("admin_password").is_some() => {
            return Err(err(
                "admin_password",
                "give admin_password or admin_password_hash, not both".into(),
            ));
        }
        Some(h) => return Ok(h.as_text().as_deref() != Some(merge::MASK)),
        None => {}
    }
    let Some(pw) = import.get("admin_password") else {
        return Ok(false);
    };
    let pw = pw
        .as_text()
        .ok_or_else(|| err("admin_password", "admin_password: expected text".into()))?;
    credentials::check_new_password(&pw, &pw)
        .map_err(|m| err("admin_password", format!("admin_password: {m}")))?;
    let hash = credentials::hash_password(&pw)
        .map_err(|e| err("admin_password", format!("admin_password: {e:#}")))?;
    import.remove("admin_password");
    import.set("admin_password_hash", Yaml::Str(hash));
    Ok(true)
}

/// Merges the imported `bytes` into `current` (the data partition's config
/// text) and validates the result; errors name the imported file's line
/// where they can.
fn merged(bytes: &[u8], current: &str, label: &str) -> Result<Merged, config::Error> {
    // The file on its own: for the positions of its own mistakes.
    let alone = config::parse_bytes(bytes, label);
    let text = std::str::from_utf8(bytes).map_err(|_| {
        alone
            .clone()
            .err()
            .unwrap_or_else(|| file_error(label, None, "not UTF-8 text".into()))
    })?;
    let mut import = parse_tree(text).map_err(|m| {
        alone
            .clone()
            .err()
            .unwrap_or_else(|| file_error(label, None, m))
    })?;
    let password_changed = take_admin_password(&mut import, text, label)?;
    let mut tree = parse_tree(current).unwrap_or_else(|m| {
        tracing::warn!(
            "boot config: the current config is not YAML ({m}); the imported file replaces it"
        );
        Yaml::Map(Vec::new())
    });
    merge::merge(&mut tree, &import).map_err(|u| {
        file_error(
            label,
            line_of_mask(text, u.nth),
            format!(
                "{}: *** means \"keep the current value\", but there is none to keep \
                 (a URL keeps its password only with the same scheme, user, host and \
                 port); write the value itself",
                u.path
            ),
        )
    })?;
    let body = render_body(&tree).map_err(|m| file_error(label, None, m))?;
    let cfg = config::parse_bytes(body.as_bytes(), label).map_err(|e| match alone {
        // The same mistake in the file alone: its own line.
        Err(a) if a.message == e.message => a,
        _ => file_error(
            label,
            None,
            format!(
                "{} (in the configuration merged from this file and the current one)",
                e.message
            ),
        ),
    })?;
    Ok(Merged {
        tree,
        cfg,
        password_changed,
    })
}

/// The time `now_ms` as RFC 3339 (empty if out of range).
fn timestamp(now_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
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
    let current = match fs::read(data_config) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", data_config.display())),
    };
    let merged = match merged(
        &bytes,
        &String::from_utf8_lossy(&current),
        &boot.display().to_string(),
    ) {
        Ok(m) => m,
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
            write_atomic(&error_file, note.as_bytes(), None)?;
            return Ok(Outcome::Rejected(e));
        }
    };
    if !resumed {
        claim(boot, &importing, "importing")?;
    }
    let when = timestamp(now_ms);
    let body = render_body(&merged.tree).map_err(anyhow::Error::msg)?;
    let text = format!(
        "# StreamPulse configuration. {} from the boot partition was merged into\n\
         # it at {when}; the previous version is config.yaml.prev (comments are not kept).\n{body}",
        boot.file_name().unwrap_or_default().to_string_lossy()
    );
    atomic_file::write_atomic_with(
        data_config,
        text.as_bytes(),
        Some(Backup {
            suffix: ".prev",
            content: &current,
        }),
    )?;
    let applied = format!(
        "# The configuration StreamPulse uses since {when} (merged into {}),\n\
         # every secret replaced by ***. To change it, copy this file to config.yaml,\n\
         # edit it and restart the box: a *** keeps the current secret.\n{}",
        data_config.display(),
        mask::masked(&merged.tree, &merged.cfg).map_err(anyhow::Error::msg)?
    );
    write_atomic(&sibling(boot, ".applied"), applied.as_bytes(), None)?;
    fs::remove_file(&importing).with_context(|| format!("removing {}", importing.display()))?;
    match fs::remove_file(&error_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", error_file.display())),
    }
    sync_dir(parent(boot))?;
    Ok(Outcome::Imported {
        streams: merged.cfg.streams.len(),
        password_changed: merged.password_changed,
    })
}

/// `streampulse run --boot-config`: factory reset if requested, import,
/// logs, records the outcome for `/healthz`, and writes [`DEFAULT_CONFIG`]
/// when there is no config at all (a fresh card without `config.yaml`, or
/// after a reset). Never fails: the box must come up with its last good
/// config whatever the boot partition holds.
pub fn at_start(boot: &Path, data_config: &Path, data_dir: &Path, now_ms: i64) {
    let reset = match factory_reset(parent(boot), data_config, data_dir) {
        Ok(Reset::Absent) => None,
        Ok(Reset::Done { kept_history }) => {
            let m = format!(
                "factory reset: config, API tokens{} deleted; first-boot setup is open",
                if kept_history { "" } else { " and history" }
            );
            tracing::warn!("boot config: {m}");
            Some(("factory reset", m))
        }
        Err(e) => {
            tracing::error!("boot config: factory reset not done: {e:#}");
            Some((
                "factory reset not done",
                format!("factory reset not done: {e:#}"),
            ))
        }
    };
    let (outcome, detail) = match import(boot, data_config, now_ms) {
        Ok(Outcome::Absent) => (
            "nothing to import",
            format!("nothing to import at {}", boot.display()),
        ),
        Ok(Outcome::Imported {
            streams,
            password_changed,
        }) => {
            let m = format!(
                "imported {} into {} ({streams} streams){}",
                boot.display(),
                data_config.display(),
                if password_changed {
                    "; new admin password"
                } else {
                    ""
                }
            );
            tracing::info!("boot config: {m}");
            ("imported", m)
        }
        Ok(Outcome::Rejected(e)) => {
            tracing::error!(
                "boot config: not imported, the previous config keeps running: {e} \
                 (details in {})",
                sibling(boot, ".error").display()
            );
            ("rejected", format!("rejected: {e}"))
        }
        Err(e) => {
            tracing::error!("boot config: import failed: {e:#}");
            ("import failed", format!("import failed: {e:#}"))
        }
    };
    let what = match reset {
        Some((r, m)) => BootConfig {
            outcome: format!("{r}; {outcome}"),
            detail: format!("{m}; {detail}"),
        },
        None => BootConfig {
            outcome: outcome.to_owned(),
            detail,
        },
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
    write_atomic(path, DEFAULT_CONFIG.as_bytes(), None)?;
    Ok(true)
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
        assert!(
            matches!(
                out,
                Outcome::Imported {
                    streams: 2,
                    password_changed: false
                }
            ),
            "{out:?}"
        );
        let written = config::load(&d.data).unwrap();
        assert_eq!(written, config::parse(GOOD, "x").unwrap());
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
        assert!(applied.contains("2023-11-14T22:13:20Z"), "{applied}");
        // A second start finds nothing to import and changes nothing.
        assert!(matches!(
            import(&d.boot, &d.data, 0).unwrap(),
            Outcome::Absent
        ));
        assert_eq!(config::load(&d.data).unwrap(), written);
        // The .applied copy dropped back unchanged changes nothing either.
        fs::write(&d.boot, &applied).unwrap();
        assert!(matches!(
            import(&d.boot, &d.data, 0).unwrap(),
            Outcome::Imported { .. }
        ));
        assert_eq!(config::load(&d.data).unwrap(), written);
    }

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    #[test]
    fn admin_password_is_hashed_and_never_written_in_clear() {
        let d = dirs();
        fs::write(&d.data, format!("admin_password_hash: {HASH}\n{GOOD}")).unwrap();
        // Too short: refused with the line, like the setup page would.
        fs::write(&d.boot, "heartbeat_seconds: 30\nadmin_password: short\n").unwrap();
        let Outcome::Rejected(e) = import(&d.boot, &d.data, 0).unwrap() else {
            panic!("a short password must be refused")
        };
        assert_eq!(e.line, Some(2), "{e}");
        assert!(!e.to_string().contains("short\n"), "{e}");
        // An empty hash does not open the box.
        fs::write(&d.boot, "admin_password_hash:\n").unwrap();
        assert!(matches!(
            import(&d.boot, &d.data, 0).unwrap(),
            Outcome::Rejected(_)
        ));
        fs::write(&d.boot, "admin_password: correct horse battery\n").unwrap();
        let out = import(&d.boot, &d.data, 0).unwrap();
        assert!(
            matches!(
                out,
                Outcome::Imported {
                    streams: 2,
                    password_changed: true
                }
            ),
            "{out:?}"
        );
        let cfg = config::load(&d.data).unwrap();
        let hash = cfg.admin_password_hash.unwrap();
        assert_ne!(hash, HASH);
        assert!(credentials::verify_password("correct horse battery", &hash));
        for dir in [d.boot.parent().unwrap(), d.data.parent().unwrap()] {
            for f in names(dir) {
                let text = fs::read_to_string(dir.join(&f)).unwrap();
                assert!(!text.contains("correct horse"), "{f}: {text}");
                assert!(
                    !text.contains(&hash) || dir == d.data.parent().unwrap(),
                    "{f}"
                );
            }
        }
    }

    #[test]
    fn an_unresolved_mask_is_refused_with_its_line() {
        let d = dirs();
        fs::write(&d.data, GOOD).unwrap();
        fs::write(
            &d.boot,
            "# a comment with *** in it\nstreams:\n- name: Garage\n  url: http://192.0.2.11/snapshot.jpg\n  \
             username: viewer\n  password: '***'\n- name: New\n  url: rtsp://u:***@192.0.2.12/\n",
        )
        .unwrap();
        let Outcome::Rejected(e) = import(&d.boot, &d.data, 0).unwrap() else {
            panic!("expected a rejection")
        };
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.message.contains("streams[\"New\"].url"), "{e}");
        assert_eq!(fs::read_to_string(&d.data).unwrap(), GOOD, "unchanged");
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
            Outcome::Imported { streams: 2, .. }
        ));
        assert_eq!(
            config::load(&d.data).unwrap(),
            config::parse(GOOD, "x").unwrap()
        );
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
}
