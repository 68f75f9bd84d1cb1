//! Changing `config.yaml` from the web GUI and `streampulse passwd --config`.
//!
//! The file stays the one source of truth: an edit reads the current file,
//! changes only the keys it is about, checks the result with the same
//! [`config::parse`] the daemon uses, and replaces the file atomically
//! (temp file in the same directory, fsync, rename, fsync of the directory),
//! keeping the previous content as `config.yaml.bak`. The running daemon's
//! [`config::Reloader`] then applies it like any other edit, so there is one
//! path from file to monitor whether a person used vi or the browser.
//!
//! The file is handled as an ordered YAML tree ([`Yaml`]), not through
//! [`config::RawConfig`], so sections and keys this module does not know
//! (MQTT v2.2 aliases, `notify:`, keys added later) survive an edit
//! unchanged. What is lost: comments and the original quoting, since the
//! tree is written back in a canonical form; the `.bak` keeps the original.
//!
//! Edits are serialised by a process-wide lock inside [`ConfigFile`], and
//! each one re-reads the file under it, so two browsers saving at once both
//! land (each patch applies to the other's result).
//!
//! Camera and broker passwords are write-only here: a form never receives
//! one, and a blank password field keeps the stored one
//! ([`StreamForm::password`]) unless the address changed scheme, host or
//! port ([`crate::redact::may_keep_secret`]): a kept password must not
//! follow an edited URL to another host.
//!
//! This file is the edit transaction ([`ConfigFile::edit`]) and the errors
//! forms get back; the tree is `yaml.rs`, each form has its file
//! (`stream_form.rs`, `settings_form.rs`, `mqtt_form.rs`, `network_form.rs`).

mod mqtt_form;
mod network_form;
mod settings_form;
mod stream_form;
mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::atomic_file::write_atomic;
use crate::config::{self, Config};
pub use mqtt_form::{apply_mqtt, MqttForm};
pub use network_form::{apply_network, has_wifi_key, NetworkForm};
pub use settings_form::{
    apply_settings, check_device_name, check_timezone, set_admin_hash, SettingsForm,
};
pub use stream_form::{delete_stream, find_stream, set_enabled, upsert_stream, StreamForm};
pub use yaml::{parse_tree, render, render_body, Yaml};

/// Errors tied to form fields, shown next to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    /// Adds an error for `field` (`""` for the form as a whole).
    pub fn add(&mut self, field: &str, msg: impl Into<String>) {
        self.0.push((field.to_owned(), msg.into()));
    }
    /// The first error for `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// A single error for `field`.
    pub fn one(field: &str, msg: impl Into<String>) -> Self {
        let mut e = FieldErrors::default();
        e.add(field, msg);
        e
    }
}

/// Why an edit was not written.
#[derive(Debug)]
pub enum EditError {
    /// The form's values are wrong; nothing was written.
    Fields(FieldErrors),
    /// The current file cannot be edited (it does not parse as YAML) or the
    /// result would not validate; the message names the problem.
    Invalid(String),
    /// Reading or writing the file failed.
    Io(anyhow::Error),
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditError::Fields(e) => {
                let parts: Vec<String> = e.0.iter().map(|(k, m)| format!("{k}: {m}")).collect();
                write!(f, "{}", parts.join("; "))
            }
            EditError::Invalid(m) => write!(f, "{m}"),
            EditError::Io(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<FieldErrors> for EditError {
    fn from(e: FieldErrors) -> Self {
        EditError::Fields(e)
    }
}

/// The config file being edited. One per process (the lock is per instance).
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// Serialises read-modify-write cycles; held only for one edit.
    lock: Mutex<()>,
}

impl ConfigFile {
    pub fn new(path: &Path) -> Self {
        ConfigFile {
            path: path.to_owned(),
            lock: Mutex::new(()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file, lets `f` change the tree, validates and writes it
    /// (unless the result is the file's current text: then nothing is
    /// written). Returns `f`'s value and the new validated config.
    ///
    /// # Errors
    /// `f`'s own errors; [`EditError::Invalid`] when the current file is not
    /// YAML or the result does not validate; [`EditError::Io`] on I/O errors.
    pub fn edit<T>(
        &self,
        f: impl FnOnce(&mut Yaml) -> Result<T, EditError>,
    ) -> Result<(T, Config), EditError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(EditError::Io(
                    anyhow::Error::new(e).context(format!("reading {}", self.path.display())),
                ))
            }
        };
        let mut tree = parse_tree(&text).map_err(|m| {
            EditError::Invalid(format!(
                "{} cannot be edited here until its error is fixed: {m}",
                self.path.display()
            ))
        })?;
        let out = f(&mut tree)?;
        let new_text = render(&tree).map_err(EditError::Invalid)?;
        let cfg = config::parse(&new_text, &self.path.display().to_string())
            .map_err(|e| EditError::Invalid(format!("the change would not be valid: {e}")))?;
        // An edit that changes nothing (the write API's repeated PUT, a form
        // saved as it was) leaves the file, its mtime and its `.bak` alone.
        if new_text != text {
            write_atomic(&self.path, new_text.as_bytes(), Some(&text)).map_err(EditError::Io)?;
        }
        Ok((out, cfg))
    }
}

/// Parses a whole number of a form field that must lie in `lo..=hi`.
fn ranged(errs: &mut FieldErrors, field: &str, v: &str, lo: u32, hi: u32) -> Option<u32> {
    match v.trim().parse::<u32>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            errs.add(field, format!("a whole number from {lo} to {hi}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a tree; the test's text is valid YAML.
    pub(super) fn tree(text: &str) -> Yaml {
        parse_tree(text).unwrap()
    }

    /// Renders `t` and validates the result as the daemon would.
    pub(super) fn reparse(t: &Yaml) -> Config {
        let text = render(t).unwrap();
        config::parse(&text, "edited.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn edit_writes_atomically_with_backup_and_refuses_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, "# mine\nheartbeat_seconds: 20\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let cf = ConfigFile::new(&p);
        let (_, cfg) = cf
            .edit(|t| {
                t.set("timezone", Yaml::Str("Europe/Paris".into()));
                Ok(())
            })
            .unwrap();
        assert_eq!(cfg.timezone, "Europe/Paris");
        assert_eq!(config::load(&p).unwrap(), cfg);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.yaml.bak")).unwrap(),
            "# mine\nheartbeat_seconds: 20\n"
        );
        let before = std::fs::read(&p).unwrap();
        let r = cf.edit(|t| {
            t.set("heartbeat_seconds", Yaml::Int(1));
            Ok(())
        });
        assert!(matches!(r, Err(EditError::Invalid(_))), "{r:?}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            before,
            "an invalid result is not written"
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640,
            "the original's mode is kept"
        );
        // An edit that changes nothing writes nothing (same bytes, same
        // mtime, the .bak keeps the last real change).
        let (text, mtime) = (
            std::fs::read(&p).unwrap(),
            std::fs::metadata(&p).unwrap().modified().unwrap(),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        cf.edit(|t| {
            t.set("timezone", Yaml::Str("Europe/Paris".into()));
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), text);
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.yaml.bak")).unwrap(),
            "# mine\nheartbeat_seconds: 20\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        // A file that is not YAML is not overwritten by an edit.
        std::fs::write(&p, "streams: [\n").unwrap();
        assert!(matches!(cf.edit(|_| Ok(())), Err(EditError::Invalid(_))));
        // A missing file is created with mode 0600.
        let p2 = dir.path().join("new.yaml");
        let cf2 = ConfigFile::new(&p2);
        cf2.edit(|t| {
            set_admin_hash(t, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
            Ok(())
        })
        .unwrap();
        assert_eq!(
            std::fs::metadata(&p2).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&p2).unwrap();
        assert!(
            text.contains("admin_password_hash: $argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\n"),
            "one plain line: {text}"
        );
    }
}
