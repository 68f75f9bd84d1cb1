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
//! port ([`redact::may_keep_secret`]): a kept password must not follow an
//! edited URL to another host.

use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::Mutex;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::atomic_file::write_atomic;
use crate::config::{self, Config, RawStream};
use crate::probe::{Kind, Transport};
use crate::redact;

/// A YAML node with mapping order kept.
#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    /// Keys in file order. Non-string keys are stored as their text.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// The value at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` of a mapping (in place if present, else appended).
    /// A non-mapping becomes an empty mapping first.
    pub fn set(&mut self, key: &str, value: Yaml) {
        let m = self.as_map_mut();
        match m.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => m.push((key.to_owned(), value)),
        }
    }

    /// Sets `key` to `value`, or removes it when `value` is None.
    pub fn set_opt(&mut self, key: &str, value: Option<Yaml>) {
        match value {
            Some(v) => self.set(key, v),
            None => self.remove(key),
        }
    }

    /// Removes `key` from a mapping.
    pub fn remove(&mut self, key: &str) {
        if let Yaml::Map(m) = self {
            m.retain(|(k, _)| k != key);
        }
    }

    /// The mapping at `key`, created (or replacing a scalar/null) if needed.
    pub fn section_mut(&mut self, key: &str) -> &mut Yaml {
        let m = self.as_map_mut();
        let i = match m.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                m.push((key.to_owned(), Yaml::Map(Vec::new())));
                m.len() - 1
            }
        };
        let v = &mut m[i].1;
        if !matches!(v, Yaml::Map(_)) {
            *v = Yaml::Map(Vec::new());
        }
        v
    }

    fn as_map_mut(&mut self) -> &mut Vec<(String, Yaml)> {
        if !matches!(self, Yaml::Map(_)) {
            *self = Yaml::Map(Vec::new());
        }
        match self {
            Yaml::Map(m) => m,
            _ => unreachable!("made a mapping above"),
        }
    }

    /// The text of a scalar (numbers and booleans as written by YAML).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Removes a mapping that became empty (keeps the file tidy).
    fn prune_empty(&mut self, key: &str) {
        if matches!(self.get(key), Some(Yaml::Map(m)) if m.is_empty()) {
            self.remove(key);
        }
    }
}

impl Serialize for Yaml {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Yaml::Null => s.serialize_unit(),
            Yaml::Bool(b) => s.serialize_bool(*b),
            Yaml::Int(i) => s.serialize_i64(*i),
            Yaml::Float(f) => s.serialize_f64(*f),
            Yaml::Str(v) => s.serialize_str(v),
            Yaml::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Yaml::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Yaml, D::Error> {
        d.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Yaml, E> {
        Ok(i64::try_from(v).map_or(Yaml::Float(v as f64), Yaml::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some(item) = a.next_element()? {
            v.push(item);
        }
        Ok(Yaml::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
        let mut m: Vec<(String, Yaml)> = Vec::new();
        while let Some(k) = a.next_key::<Yaml>()? {
            let v: Yaml = a.next_value()?;
            let key = k.as_text().unwrap_or_default();
            m.push((key, v));
        }
        Ok(Yaml::Map(m))
    }
}

/// Parses config text into a tree. An empty file is an empty mapping.
pub fn parse_tree(text: &str) -> Result<Yaml, String> {
    if text.trim().is_empty() {
        return Ok(Yaml::Map(Vec::new()));
    }
    let v: Yaml = serde_saphyr::from_str(text).map_err(|e| {
        e.without_snippet()
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_owned()
    })?;
    match v {
        Yaml::Map(_) => Ok(v),
        Yaml::Null => Ok(Yaml::Map(Vec::new())),
        _ => Err("the file is not a mapping of settings".into()),
    }
}

/// The header written above every GUI-written file.
const HEADER: &str = "# StreamPulse configuration. Written by the web GUI, which keeps the\n\
# previous version as config.yaml.bak (comments are not kept).\n";

/// Renders a tree as config text.
pub fn render(tree: &Yaml) -> Result<String, String> {
    Ok(format!("{HEADER}{}", render_body(tree)?))
}

/// Renders a tree as YAML, without a header.
pub fn render_body(tree: &Yaml) -> Result<String, String> {
    // Plain or quoted scalars only: a long hash folded into a `>-` block is
    // valid YAML but hard to read and to grep for.
    let mut opts = serde_saphyr::SerializerOptions::default();
    opts.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(tree, opts).map_err(|e| format!("cannot write YAML: {e}"))
}

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

    /// Reads the file, lets `f` change the tree, validates and writes it.
    /// Returns `f`'s value and the new validated config.
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
        write_atomic(&self.path, new_text.as_bytes(), Some(&text)).map_err(EditError::Io)?;
        Ok((out, cfg))
    }
}

/// A stream as the add/edit form sends it. Empty strings mean "not set"
/// (the default applies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamForm {
    pub name: String,
    /// May carry `user:pass@`; they are moved to `username`/`password`.
    pub url: String,
    /// `""` (infer from the URL), `rtsp`, `mjpeg` or `snapshot`.
    pub kind: String,
    pub interval: String,
    pub timeout: String,
    pub enabled: bool,
    pub username: String,
    /// Write-only: empty keeps the stored password (unless `clear_password`,
    /// or the URL's scheme, host or port changed).
    pub password: String,
    pub clear_password: bool,
    /// `tcp` or `udp` (RTSP only).
    pub transport: String,
    pub fail_threshold: String,
    pub ok_threshold: String,
}

impl StreamForm {
    /// The form pre-filled from a stream entry of the file: URL without
    /// credentials, the username, never the password.
    pub fn from_entry(entry: &Yaml) -> StreamForm {
        let text = |k: &str| entry.get(k).and_then(Yaml::as_text).unwrap_or_default();
        let raw_url = text("url");
        let (url, url_user) = match url::Url::parse(raw_url.trim()) {
            Ok(u) => {
                let (bare, creds) = redact::split_credentials(&u);
                (bare.to_string(), creds.map(|c| c.username))
            }
            Err(_) => (raw_url.clone(), None),
        };
        StreamForm {
            name: text("name"),
            url,
            kind: text("kind"),
            interval: text("interval"),
            timeout: text("timeout"),
            enabled: !matches!(entry.get("enabled"), Some(Yaml::Bool(false))),
            username: url_user.unwrap_or_else(|| text("username")),
            password: String::new(),
            clear_password: false,
            transport: text("transport"),
            fail_threshold: text("fail_threshold"),
            ok_threshold: text("ok_threshold"),
        }
    }
}

/// Finds the stream called `name` (exact, then ignoring case).
pub fn find_stream<'a>(tree: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    let Some(Yaml::Seq(list)) = tree.get("streams") else {
        return None;
    };
    let idx = stream_index(list, name)?;
    list.get(idx)
}

fn stream_index(list: &[Yaml], name: &str) -> Option<usize> {
    let name_of = |s: &Yaml| s.get("name").and_then(Yaml::as_text).unwrap_or_default();
    list.iter()
        .position(|s| name_of(s).trim() == name)
        .or_else(|| {
            list.iter()
                .position(|s| name_of(s).trim().to_lowercase() == name.to_lowercase())
        })
}

fn streams_mut(tree: &mut Yaml) -> &mut Vec<Yaml> {
    if !matches!(tree.get("streams"), Some(Yaml::Seq(_))) {
        tree.set("streams", Yaml::Seq(Vec::new()));
    }
    match tree.as_map_mut().iter_mut().find(|(k, _)| k == "streams") {
        Some((_, Yaml::Seq(v))) => v,
        _ => unreachable!("streams was made a sequence above"),
    }
}

/// Parses an optional whole number of a form field.
fn opt_u32(errs: &mut FieldErrors, field: &str, v: &str) -> Option<u32> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    match v.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            errs.add(field, "expected a whole number");
            None
        }
    }
}

/// Field names of [`StreamForm`] that validation messages start with.
const STREAM_FIELDS: [&str; 10] = [
    "name",
    "url",
    "kind",
    "interval",
    "timeout",
    "username",
    "password",
    "transport",
    "fail_threshold",
    "ok_threshold",
];

/// Adds or replaces a stream. `original` is the name being edited (None to
/// add). Returns the stream's (possibly new) name.
///
/// # Errors
/// Field errors for anything the form got wrong, `Invalid` when the stream
/// being edited no longer exists.
pub fn upsert_stream(
    tree: &mut Yaml,
    original: Option<&str>,
    form: &StreamForm,
) -> Result<String, EditError> {
    let mut errs = FieldErrors::default();
    let heartbeat = match tree.get("heartbeat_seconds") {
        Some(Yaml::Int(n)) => u32::try_from(*n).unwrap_or(config::DEFAULT_HEARTBEAT_SECS),
        _ => config::DEFAULT_HEARTBEAT_SECS,
    };
    let list = streams_mut(tree);
    let idx = match original {
        Some(n) => Some(stream_index(list, n).ok_or_else(|| {
            EditError::Invalid(format!(
                "stream {n:?} is no longer in the configuration (deleted meanwhile?)"
            ))
        })?),
        None => None,
    };
    let name = form.name.trim().to_owned();
    if let Some(other) = list.iter().enumerate().find(|(i, s)| {
        Some(*i) != idx
            && s.get("name")
                .and_then(Yaml::as_text)
                .is_some_and(|n| n.trim().to_lowercase() == name.to_lowercase())
    }) {
        let _ = other;
        errs.add(
            "name",
            "another stream already has this name (names are compared ignoring case)",
        );
    }

    // Credentials: typed into the URL, typed into the fields, or kept (only
    // for the same scheme, host and port as before).
    let old = idx.map(|i| list[i].clone());
    let old_url = old
        .as_ref()
        .and_then(|e| e.get("url"))
        .and_then(Yaml::as_text);
    let same_endpoint = redact::may_keep_secret(
        old_url
            .as_deref()
            .and_then(redact::Endpoint::of_text)
            .as_ref(),
        redact::Endpoint::of_text(&form.url).as_ref(),
    );
    let old_creds = old.as_ref().filter(|_| same_endpoint).and_then(|e| {
        let url_creds = e
            .get("url")
            .and_then(Yaml::as_text)
            .and_then(|u| url::Url::parse(u.trim()).ok())
            .and_then(|u| redact::split_credentials(&u).1);
        url_creds.or_else(|| {
            let user = e.get("username").and_then(Yaml::as_text)?;
            Some(redact::Credentials {
                username: user,
                password: e
                    .get("password")
                    .and_then(Yaml::as_text)
                    .unwrap_or_default(),
            })
        })
    });
    let (bare_url, url_creds) = match url::Url::parse(form.url.trim()) {
        Ok(u) => {
            let (bare, c) = redact::split_credentials(&u);
            (bare.to_string(), c)
        }
        Err(_) => (form.url.trim().to_owned(), None),
    };
    let creds = match url_creds {
        Some(c) => Some(c),
        None => {
            let user = form.username.trim();
            if user.is_empty() {
                if !form.password.is_empty() {
                    errs.add("username", "a password needs a username");
                }
                None
            } else {
                let password = if !form.password.is_empty() {
                    form.password.clone()
                } else if form.clear_password {
                    String::new()
                } else {
                    old_creds.map(|c| c.password).unwrap_or_default()
                };
                Some(redact::Credentials {
                    username: user.to_owned(),
                    password,
                })
            }
        }
    };

    let kind = match form.kind.trim() {
        "" | "auto" => None,
        k => match serde_plain_kind(k) {
            Some(k) => Some(k),
            None => {
                errs.add("kind", "choose rtsp, mjpeg or snapshot");
                None
            }
        },
    };
    let transport = match form.transport.trim() {
        "" => None,
        t => match t.parse::<Transport>() {
            Ok(t) => Some(t),
            Err(m) => {
                errs.add("transport", m);
                None
            }
        },
    };
    let interval = opt_u32(&mut errs, "interval", &form.interval);
    let timeout = opt_u32(&mut errs, "timeout", &form.timeout);
    let fail_threshold = opt_u32(&mut errs, "fail_threshold", &form.fail_threshold);
    let ok_threshold = opt_u32(&mut errs, "ok_threshold", &form.ok_threshold);
    // Transport only means something for RTSP; the form sends it always.
    let is_rtsp = match kind {
        Some(k) => k == Kind::Rtsp,
        None => bare_url.starts_with("rtsp:"),
    };
    let transport = transport.filter(|t| is_rtsp && *t != Transport::Tcp);

    let raw = RawStream {
        name: name.clone(),
        url: bare_url.clone(),
        kind,
        interval,
        timeout,
        enabled: Some(form.enabled),
        fail_threshold,
        ok_threshold,
        username: creds.as_ref().map(|c| c.username.clone()),
        password: creds.as_ref().map(|c| c.password.clone()),
        transport,
    };
    validate_stream(raw, heartbeat, &mut errs);
    if !errs.is_empty() {
        return Err(errs.into());
    }

    let mut entry = old.unwrap_or(Yaml::Map(Vec::new()));
    entry.set("name", Yaml::Str(name.clone()));
    entry.set("url", Yaml::Str(bare_url));
    entry.set_opt("kind", kind.map(|k| Yaml::Str(k.as_str().into())));
    entry.set_opt("interval", interval.map(|n| Yaml::Int(n.into())));
    entry.set_opt("timeout", timeout.map(|n| Yaml::Int(n.into())));
    entry.set_opt("enabled", (!form.enabled).then_some(Yaml::Bool(false)));
    entry.set_opt(
        "username",
        creds.as_ref().map(|c| Yaml::Str(c.username.clone())),
    );
    entry.set_opt(
        "password",
        creds
            .as_ref()
            .filter(|c| !c.password.is_empty())
            .map(|c| Yaml::Str(c.password.clone())),
    );
    entry.set_opt("transport", transport.map(|t| Yaml::Str(t.as_str().into())));
    entry.set_opt(
        "fail_threshold",
        fail_threshold.map(|n| Yaml::Int(n.into())),
    );
    entry.set_opt("ok_threshold", ok_threshold.map(|n| Yaml::Int(n.into())));
    match idx {
        Some(i) => list[i] = entry,
        None => list.push(entry),
    }
    Ok(name)
}

/// Runs the config's own stream validation, collecting one error per field:
/// it stops at the first problem, so each reported field is replaced by a
/// harmless value and the check runs again (a form then shows every wrong
/// field at once, not one per submit).
fn validate_stream(mut raw: RawStream, heartbeat: u32, errs: &mut FieldErrors) {
    for _ in 0..STREAM_FIELDS.len() {
        let Err(m) = config::stream_from_raw(&raw, heartbeat) else {
            return;
        };
        let field = m
            .split_once(':')
            .map(|(f, _)| f.trim())
            .filter(|f| STREAM_FIELDS.contains(f))
            .unwrap_or("");
        let msg = if field.is_empty() {
            m.clone()
        } else {
            m[field.len() + 1..].trim().to_owned()
        };
        if errs.get(field).is_none() {
            errs.add(field, msg);
        }
        match field {
            "name" => raw.name = "x".into(),
            "url" | "kind" => {
                raw.url = "rtsp://placeholder.invalid/x".into();
                raw.kind = None;
                raw.transport = None;
            }
            "interval" => raw.interval = None,
            "timeout" => raw.timeout = None,
            "transport" => raw.transport = None,
            "fail_threshold" => raw.fail_threshold = None,
            "ok_threshold" => raw.ok_threshold = None,
            "username" | "password" => {
                raw.username = None;
                raw.password = None;
            }
            _ => return,
        }
    }
}

fn serde_plain_kind(k: &str) -> Option<Kind> {
    match k {
        "rtsp" => Some(Kind::Rtsp),
        "mjpeg" => Some(Kind::Mjpeg),
        "snapshot" => Some(Kind::Snapshot),
        _ => None,
    }
}

/// Removes the stream called `name`.
///
/// # Errors
/// `Invalid` when there is no such stream.
pub fn delete_stream(tree: &mut Yaml, name: &str) -> Result<(), EditError> {
    let list = streams_mut(tree);
    let i = stream_index(list, name)
        .ok_or_else(|| EditError::Invalid(format!("no stream called {name:?}")))?;
    list.remove(i);
    Ok(())
}

/// Enables or disables the stream called `name`.
///
/// # Errors
/// `Invalid` when there is no such stream.
pub fn set_enabled(tree: &mut Yaml, name: &str, enabled: bool) -> Result<(), EditError> {
    let list = streams_mut(tree);
    let i = stream_index(list, name)
        .ok_or_else(|| EditError::Invalid(format!("no stream called {name:?}")))?;
    list[i].set_opt("enabled", (!enabled).then_some(Yaml::Bool(false)));
    Ok(())
}

/// Sets the admin password hash (`admin_password_hash`).
pub fn set_admin_hash(tree: &mut Yaml, hash: &str) {
    tree.set("admin_password_hash", Yaml::Str(hash.to_owned()));
}

/// The general settings form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsForm {
    pub device_name: String,
    pub timezone: String,
    pub heartbeat_seconds: String,
    pub heartbeat_days: String,
    pub rollup_days: String,
    pub public_status: bool,
    pub session_hours: String,
}

impl SettingsForm {
    /// The form pre-filled from a validated config.
    pub fn from_config(c: &Config) -> SettingsForm {
        SettingsForm {
            device_name: c.device_name.clone(),
            timezone: c.timezone.clone(),
            heartbeat_seconds: c.heartbeat.as_secs().to_string(),
            heartbeat_days: c.heartbeat_retention_days.to_string(),
            rollup_days: c.rollup_retention_days.to_string(),
            public_status: c.web_public_status,
            session_hours: c.web_session_hours.to_string(),
        }
    }
}

/// Checks a device name (dashboard title, MQTT device).
pub fn check_device_name(errs: &mut FieldErrors, name: &str) {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        errs.add("device_name", "1 to 64 characters, no control characters");
    }
}

/// Checks an IANA time zone name.
pub fn check_timezone(errs: &mut FieldErrors, tz: &str) {
    if jiff::tz::TimeZone::get(tz.trim()).is_err() {
        errs.add(
            "timezone",
            format!(
                "unknown time zone {:?} (expected an IANA name such as Europe/Berlin)",
                tz.trim()
            ),
        );
    }
}

fn ranged(errs: &mut FieldErrors, field: &str, v: &str, lo: u32, hi: u32) -> Option<u32> {
    match v.trim().parse::<u32>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            errs.add(field, format!("a whole number from {lo} to {hi}"));
            None
        }
    }
}

/// Applies the general settings form.
///
/// # Errors
/// Field errors; nothing is changed then.
pub fn apply_settings(tree: &mut Yaml, f: &SettingsForm) -> Result<(), EditError> {
    let mut errs = FieldErrors::default();
    check_device_name(&mut errs, &f.device_name);
    check_timezone(&mut errs, &f.timezone);
    let hb = ranged(
        &mut errs,
        "heartbeat_seconds",
        &f.heartbeat_seconds,
        config::MIN_INTERVAL_SECS,
        config::MAX_INTERVAL_SECS,
    );
    let hd = ranged(&mut errs, "heartbeat_days", &f.heartbeat_days, 1, 3650);
    let rd = ranged(&mut errs, "rollup_days", &f.rollup_days, 1, 36500);
    let sh = ranged(&mut errs, "session_hours", &f.session_hours, 1, 8760);
    if let (Some(h), Some(r)) = (hd, rd) {
        if r < h {
            errs.add(
                "rollup_days",
                "keep hourly summaries at least as long as raw heartbeats",
            );
        }
    }
    if !errs.is_empty() {
        return Err(errs.into());
    }
    tree.set("device_name", Yaml::Str(f.device_name.trim().to_owned()));
    tree.set("timezone", Yaml::Str(f.timezone.trim().to_owned()));
    tree.set("heartbeat_seconds", Yaml::Int(hb.expect("checked").into()));
    let r = tree.section_mut("retention");
    r.set("heartbeat_days", Yaml::Int(hd.expect("checked").into()));
    r.set("rollup_days", Yaml::Int(rd.expect("checked").into()));
    let w = tree.section_mut("web");
    w.set_opt("public_status", f.public_status.then_some(Yaml::Bool(true)));
    let hours = sh.expect("checked");
    w.set_opt(
        "session_hours",
        (hours != config::DEFAULT_SESSION_HOURS).then_some(Yaml::Int(hours.into())),
    );
    tree.prune_empty("web");
    Ok(())
}

/// The MQTT settings form (the keys most people need; others in the file,
/// such as TLS client certificates, are kept as they are).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MqttForm {
    pub enabled: bool,
    pub host: String,
    pub port: String,
    /// `tcp`, `tls`, `ws` or `wss`.
    pub transport: String,
    pub username: String,
    /// Write-only: empty keeps the stored password (unless `clear_password`,
    /// or the transport, host or port changed).
    pub password: String,
    pub clear_password: bool,
    pub topic: String,
    pub prefix: String,
    pub interval: String,
    pub qos: String,
    pub retain: bool,
    pub discovery: bool,
    pub tls_verify: bool,
}

impl MqttForm {
    /// The form pre-filled from a validated config (defaults when absent).
    pub fn from_config(c: &Config) -> MqttForm {
        match &c.mqtt {
            Some(m) => MqttForm {
                enabled: m.enabled,
                host: m.host.clone(),
                port: m.port.to_string(),
                transport: m.transport.as_str().into(),
                username: m
                    .credentials
                    .as_ref()
                    .map(|c| c.username.clone())
                    .unwrap_or_default(),
                password: String::new(),
                clear_password: false,
                topic: m.topic.clone(),
                prefix: m.prefix.clone(),
                interval: m.interval.as_secs().to_string(),
                qos: m.qos.to_string(),
                retain: m.retain,
                discovery: m.discovery,
                tls_verify: m.tls.verify,
            },
            None => MqttForm {
                enabled: false,
                transport: "tcp".into(),
                topic: crate::config::mqtt::DEFAULT_TOPIC.into(),
                prefix: crate::config::mqtt::DEFAULT_PREFIX.into(),
                interval: crate::config::mqtt::DEFAULT_INTERVAL_SECS.to_string(),
                qos: "0".into(),
                tls_verify: true,
                ..MqttForm::default()
            },
        }
    }
}

/// Applies the MQTT form to the `mqtt:` section (canonical keys; v2.2
/// aliases are rewritten, other keys kept).
///
/// # Errors
/// Field errors; nothing is changed then.
pub fn apply_mqtt(tree: &mut Yaml, f: &MqttForm) -> Result<(), EditError> {
    let mut errs = FieldErrors::default();
    let host = f.host.trim();
    if f.enabled && host.is_empty() {
        errs.add("host", "required when MQTT is enabled");
    }
    if host.contains("://") || host.contains(['/', '@']) || host.chars().any(char::is_whitespace) {
        errs.add(
            "host",
            "a host name or address only (choose the protocol below)",
        );
    }
    let transport = match f.transport.trim() {
        t @ ("tcp" | "tls" | "ws" | "wss") => t,
        _ => {
            errs.add("transport", "choose tcp, tls, ws or wss");
            "tcp"
        }
    };
    let port = match f.port.trim() {
        "" => None,
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errs.add("port", "a port number from 1 to 65535");
                None
            }
        },
    };
    let interval = ranged(
        &mut errs,
        "interval",
        &f.interval,
        config::MIN_INTERVAL_SECS,
        config::MAX_INTERVAL_SECS,
    );
    let qos = match f.qos.trim() {
        q @ ("0" | "1" | "2") => q.parse::<i64>().unwrap_or(0),
        _ => {
            errs.add("qos", "0, 1 or 2");
            0
        }
    };
    for (field, v) in [("topic", &f.topic), ("prefix", &f.prefix)] {
        let v = v.trim();
        if v.is_empty() || v.contains(['#', '+']) || v.chars().any(char::is_control) {
            errs.add(field, "a topic without wildcards (# +)");
        }
    }
    let user = f.username.trim();
    if user.is_empty() && !f.password.is_empty() {
        errs.add("username", "a password needs a username");
    }
    if !errs.is_empty() {
        return Err(errs.into());
    }
    let m = tree.section_mut("mqtt");
    let old_password = m.get("password").and_then(Yaml::as_text);
    let old_broker = broker(m);
    for k in config::mqtt::V22_KEYS {
        m.remove(k);
    }
    m.set("enabled", Yaml::Bool(f.enabled));
    m.set_opt(
        "host",
        (!host.is_empty()).then(|| Yaml::Str(host.to_owned())),
    );
    m.set_opt("port", port.map(|p| Yaml::Int(p.into())));
    m.set("transport", Yaml::Str(transport.into()));
    if user.is_empty() {
        m.remove("username");
        m.remove("password");
    } else {
        m.set("username", Yaml::Str(user.to_owned()));
        let pw = if !f.password.is_empty() {
            Some(f.password.clone())
        } else if f.clear_password {
            None
        } else {
            old_password
                .filter(|_| redact::may_keep_secret(old_broker.as_ref(), broker(m).as_ref()))
        };
        m.set_opt("password", pw.map(Yaml::Str));
    }
    m.set("topic", Yaml::Str(f.topic.trim().to_owned()));
    m.set("prefix", Yaml::Str(f.prefix.trim().to_owned()));
    m.set("interval", Yaml::Int(interval.expect("checked").into()));
    m.set("qos", Yaml::Int(qos));
    m.set("retain", Yaml::Bool(f.retain));
    m.set("discovery", Yaml::Bool(f.discovery));
    m.set_opt("tls_verify", (!f.tls_verify).then_some(Yaml::Bool(false)));
    Ok(())
}

/// The broker an `mqtt:` section points at, resolved as the daemon does
/// (v2.2 keys and default ports included); None if it does not validate.
fn broker(section: &Yaml) -> Option<redact::Endpoint> {
    let text = serde_saphyr::to_string(section).ok()?;
    let raw: serde_saphyr::Spanned<config::mqtt::RawMqtt> = serde_saphyr::from_str(&text).ok()?;
    let m = config::mqtt::MqttConfig::from_raw(&raw, "").ok()?;
    Some(redact::Endpoint::new(
        m.transport.as_str(),
        &m.host,
        Some(m.port),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Yaml {
        parse_tree(text).unwrap()
    }

    fn reparse(t: &Yaml) -> Config {
        let text = render(t).unwrap();
        config::parse(&text, "edited.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn round_trip_keeps_unknown_sections_and_order() {
        let src = "# a comment\nheartbeat_seconds: 20\ntimezone: Asia/Calcutta\n\
                   mqtt:\n  enabled: false\n  host: broker.example\n  use_tls: false\n  \
                   api_status_url: http://localhost:7000/api/status\n\
                   streams:\n- name: a\n  url: rtsp://h/x\n";
        let t = tree(src);
        let out = render(&t).unwrap();
        let keys: Vec<&str> = match &t {
            Yaml::Map(m) => m.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!(),
        };
        assert_eq!(keys, ["heartbeat_seconds", "timezone", "mqtt", "streams"]);
        assert_eq!(
            tree(&out),
            t,
            "render then parse gives the same tree:\n{out}"
        );
        assert_eq!(
            config::parse(src, "a").unwrap(),
            config::parse(&out, "b").unwrap()
        );
    }

    #[test]
    fn strings_that_look_like_other_types_stay_strings() {
        let mut t = tree("streams: []\n");
        for (i, pw) in [
            "0123",
            "yes",
            "true",
            "null",
            "~",
            "1.50",
            "- x",
            "a: b",
            "#x",
            " lead",
            "'q\"",
            "%x",
            "@x",
            "multi\nline",
        ]
        .iter()
        .enumerate()
        {
            let form = StreamForm {
                name: format!("cam{i}"),
                url: "rtsp://10.0.0.1/s".into(),
                enabled: true,
                username: "admin".into(),
                password: (*pw).into(),
                ..StreamForm::default()
            };
            upsert_stream(&mut t, None, &form).unwrap();
        }
        let c = reparse(&t);
        for (i, pw) in [
            "0123",
            "yes",
            "true",
            "null",
            "~",
            "1.50",
            "- x",
            "a: b",
            "#x",
            " lead",
            "'q\"",
            "%x",
            "@x",
            "multi\nline",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(
                c.streams[i].target.creds.as_ref().unwrap().password,
                *pw,
                "{}",
                render(&t).unwrap()
            );
        }
    }

    #[test]
    fn add_edit_keeps_password_when_blank_and_moves_url_credentials() {
        let mut t = tree("streams:\n- name: Door\n  url: rtsp://admin:se%40cret@10.0.0.2/live\n");
        let entry = find_stream(&t, "Door").unwrap().clone();
        let form = StreamForm::from_entry(&entry);
        assert_eq!(
            form.url, "rtsp://10.0.0.2/live",
            "the form never shows the password"
        );
        assert_eq!(form.username, "admin");
        assert!(form.password.is_empty());
        let edited = StreamForm {
            interval: "30".into(),
            ..form.clone()
        };
        upsert_stream(&mut t, Some("Door"), &edited).unwrap();
        let c = reparse(&t);
        let s = &c.streams[0];
        assert_eq!(s.target.creds.as_ref().unwrap().password, "se@cret");
        assert_eq!(s.interval.as_secs(), 30);
        assert_eq!(s.target.url.as_str(), "rtsp://10.0.0.2/live");
        // A new password replaces it; clearing removes it.
        let newpw = StreamForm {
            password: "n3w".into(),
            ..edited.clone()
        };
        upsert_stream(&mut t, Some("Door"), &newpw).unwrap();
        assert_eq!(
            reparse(&t).streams[0]
                .target
                .creds
                .as_ref()
                .unwrap()
                .password,
            "n3w"
        );
        let cleared = StreamForm {
            clear_password: true,
            ..edited.clone()
        };
        upsert_stream(&mut t, Some("Door"), &cleared).unwrap();
        assert_eq!(
            reparse(&t).streams[0]
                .target
                .creds
                .as_ref()
                .unwrap()
                .password,
            ""
        );
        // No username: no credentials at all.
        let anon = StreamForm {
            username: String::new(),
            ..edited
        };
        upsert_stream(&mut t, Some("Door"), &anon).unwrap();
        assert!(reparse(&t).streams[0].target.creds.is_none());
    }

    #[test]
    fn field_errors_name_the_field() {
        let mut t = tree("streams:\n- name: a\n  url: rtsp://h/x\n");
        let base = StreamForm {
            name: "b".into(),
            url: "rtsp://h/y".into(),
            enabled: true,
            ..StreamForm::default()
        };
        let cases: Vec<(StreamForm, &str, &str)> = vec![
            (
                StreamForm {
                    url: "not a url".into(),
                    ..base.clone()
                },
                "url",
                "not a valid URL",
            ),
            (
                StreamForm {
                    url: "ftp://h/x".into(),
                    ..base.clone()
                },
                "url",
                "unsupported scheme",
            ),
            (
                StreamForm {
                    name: "A".into(),
                    ..base.clone()
                },
                "name",
                "already has this name",
            ),
            (
                StreamForm {
                    name: " ".into(),
                    ..base.clone()
                },
                "name",
                "must not be empty",
            ),
            (
                StreamForm {
                    interval: "2".into(),
                    ..base.clone()
                },
                "interval",
                "at least 5",
            ),
            (
                StreamForm {
                    interval: "ten".into(),
                    ..base.clone()
                },
                "interval",
                "whole number",
            ),
            (
                StreamForm {
                    interval: "10".into(),
                    timeout: "20".into(),
                    ..base.clone()
                },
                "timeout",
                "longer than the interval",
            ),
            (
                StreamForm {
                    password: "x".into(),
                    ..base.clone()
                },
                "username",
                "needs a username",
            ),
            (
                StreamForm {
                    kind: "mjpeg".into(),
                    ..base.clone()
                },
                "url",
                "does not fit kind",
            ),
        ];
        for (form, field, want) in cases {
            match upsert_stream(&mut t.clone(), None, &form) {
                Err(EditError::Fields(e)) => {
                    let got = e.get(field).unwrap_or_else(|| panic!("{form:?}: {e:?}"));
                    assert!(got.contains(want), "{form:?}: {got}");
                }
                other => panic!("{form:?}: {other:?}"),
            }
        }
        assert!(upsert_stream(&mut t, Some("gone"), &base).is_err());
        // Every wrong field at once.
        let many = StreamForm {
            name: "A".into(),
            url: "ftp://x/y".into(),
            interval: "2".into(),
            ..base.clone()
        };
        match upsert_stream(&mut t.clone(), None, &many) {
            Err(EditError::Fields(e)) => {
                for f in ["name", "url", "interval"] {
                    assert!(e.get(f).is_some(), "{f} missing: {e:?}");
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delete_enable_and_settings() {
        let mut t = tree("streams:\n- name: a\n  url: rtsp://h/x\n- name: b\n  url: rtsp://h/y\n");
        set_enabled(&mut t, "b", false).unwrap();
        assert!(!reparse(&t).streams[1].enabled);
        set_enabled(&mut t, "b", true).unwrap();
        assert!(reparse(&t).streams[1].enabled);
        delete_stream(&mut t, "a").unwrap();
        assert_eq!(reparse(&t).streams.len(), 1);
        assert!(delete_stream(&mut t, "a").is_err());

        let mut f = SettingsForm::from_config(&reparse(&t));
        f.timezone = "Mars/Base".into();
        f.heartbeat_seconds = "1".into();
        match apply_settings(&mut t, &f) {
            Err(EditError::Fields(e)) => {
                assert!(
                    e.get("timezone").is_some() && e.get("heartbeat_seconds").is_some(),
                    "{e:?}"
                );
            }
            o => panic!("{o:?}"),
        }
        f.timezone = "Europe/Berlin".into();
        f.heartbeat_seconds = "30".into();
        f.public_status = true;
        apply_settings(&mut t, &f).unwrap();
        let c = reparse(&t);
        assert_eq!(c.timezone, "Europe/Berlin");
        assert_eq!(c.heartbeat.as_secs(), 30);
        assert!(c.web_public_status);
    }

    /// See: #14 (finding 2). A blank password field keeps the stored password
    /// only while scheme, host and port stay; it never follows the URL elsewhere.
    #[test]
    fn kept_camera_password_is_dropped_when_the_address_changes() {
        let password_after = |stored: &str, url: &str| {
            let mut t = tree(&format!("streams:\n- name: Door\n{stored}"));
            let form = StreamForm {
                url: url.into(),
                ..StreamForm::from_entry(find_stream(&t, "Door").unwrap())
            };
            upsert_stream(&mut t, Some("Door"), &form).unwrap();
            let c = reparse(&t);
            let creds = c.streams[0].target.creds.clone().unwrap();
            assert_eq!(creds.username, "admin", "the username stays");
            creds.password
        };
        let in_url = "  url: rtsp://admin:pw1@Cam.lan/live\n";
        let in_fields = "  url: http://10.0.0.2/snap.jpg\n  username: admin\n  password: pw2\n";
        for (stored, url, kept) in [
            (in_url, "rtsp://cam.lan:554/other", true),
            (in_url, "rtsp://cam2.lan/live", false),
            (in_url, "rtsp://cam.lan:8554/live", false),
            (in_fields, "http://10.0.0.2:80/x.jpg", true),
            (in_fields, "https://10.0.0.2/snap.jpg", false),
            (in_fields, "http://127.0.0.1:9/snap.jpg", false),
        ] {
            let pw = password_after(stored, url);
            assert_eq!(!pw.is_empty(), kept, "{stored} -> {url}: {pw:?}");
        }
    }

    /// See: #14 (finding 2), the MQTT broker's password.
    #[test]
    fn kept_broker_password_is_dropped_when_the_broker_changes() {
        let stored = "mqtt:\n  host: Broker.lan\n  use_tls: true\n  tls_port: 8883\n  \
                      username: u\n  password: pw0\n";
        let password_after = |change: &dyn Fn(&mut MqttForm)| {
            let mut t = tree(stored);
            let mut f = MqttForm::from_config(&reparse(&t));
            change(&mut f);
            apply_mqtt(&mut t, &f).unwrap();
            reparse(&t).mqtt.unwrap().credentials.unwrap().password
        };
        assert_eq!(password_after(&|f| f.host = "broker.lan".into()), "pw0");
        assert_eq!(password_after(&|f| f.port = String::new()), "pw0");
        assert_eq!(password_after(&|f| f.host = "127.0.0.1".into()), "");
        assert_eq!(password_after(&|f| f.port = "8884".into()), "");
        assert_eq!(password_after(&|f| f.transport = "wss".into()), "");
    }

    #[test]
    fn mqtt_form_rewrites_v22_keys_and_keeps_password() {
        let mut t = tree(
            "mqtt:\n  enabled: true\n  host: broker\n  use_tls: true\n  tls_port: 8883\n  \
             username: u\n  password: pw0\n  interval_seconds: 10\n  ca_file: /data/ca.pem\n",
        );
        let c = reparse(&t);
        let mut f = MqttForm::from_config(&c);
        assert_eq!(f.transport, "tls");
        assert!(f.password.is_empty());
        f.qos = "1".into();
        apply_mqtt(&mut t, &f).unwrap();
        let c = reparse(&t);
        let m = c.mqtt.unwrap();
        assert_eq!(m.credentials.unwrap().password, "pw0");
        assert_eq!(m.qos, 1);
        assert_eq!(m.port, 8883);
        assert_eq!(m.interval.as_secs(), 10);
        assert_eq!(m.tls.ca_file.as_deref(), Some(Path::new("/data/ca.pem")));
        assert!(t.get("mqtt").unwrap().get("use_tls").is_none());
        f.host = "mqtt://x".into();
        assert!(matches!(apply_mqtt(&mut t, &f), Err(EditError::Fields(_))));
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
