//! The stream form of the web GUI: [`StreamForm`] pre-filled from a stream
//! entry of the file (never with its password), and the edits of the
//! `streams:` list: add or replace ([`upsert_stream`]), delete, enable. A
//! stream is checked with the same rules as a loaded file
//! ([`crate::config::stream_from_raw`]), with one error per wrong field.

use super::{EditError, FieldErrors, Yaml};
use crate::config::{self, RawStream};
use crate::probe::{Kind, Transport};
use crate::redact;

/// A stream as the add/edit form sends it. Empty strings mean "not set"
/// (the default applies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamForm {
    pub name: String,
    /// May carry `user:pass@`; they are moved to `username`/`password`.
    pub url: String,
    /// `""` (infer from the URL), `rtsp`, `mjpeg`, `snapshot` or `local`.
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
                errs.add("kind", "choose rtsp, mjpeg, snapshot or local");
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
    let transport = transport.filter(|t| is_rtsp && *t != Transport::Auto);

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
        picture: None,
        capture: None,
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
        "local" => Some(Kind::Local),
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

#[cfg(test)]
mod tests {
    use super::super::tests::{reparse, tree};
    use super::*;

    /// The stored password of the first stream.
    fn first_password(t: &Yaml) -> String {
        let c = reparse(t);
        c.streams[0].target.creds.as_ref().unwrap().password.clone()
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
        assert_eq!(first_password(&t), "n3w");
        let cleared = StreamForm {
            clear_password: true,
            ..edited.clone()
        };
        upsert_stream(&mut t, Some("Door"), &cleared).unwrap();
        assert_eq!(first_password(&t), "");
        // No username: no credentials at all.
        let anon = StreamForm {
            username: String::new(),
            ..edited
        };
        upsert_stream(&mut t, Some("Door"), &anon).unwrap();
        assert!(reparse(&t).streams[0].target.creds.is_none());
    }

    #[test]
    fn box_camera_edits_keep_its_capture_block() {
        let mut t = tree(
            "streams:\n- name: Pi\n  url: libcamera:0\n  kind: local\n  capture:\n    \
             width: 640\n    height: 480\n",
        );
        let form = StreamForm::from_entry(find_stream(&t, "Pi").unwrap());
        assert_eq!(form.kind, "local");
        let edited = StreamForm {
            interval: "30".into(),
            url: "libcamera:".into(),
            ..form
        };
        upsert_stream(&mut t, Some("Pi"), &edited).unwrap();
        let c = reparse(&t);
        let s = &c.streams[0];
        assert_eq!(s.target.kind, Kind::Local);
        assert_eq!(s.interval.as_secs(), 30);
        let cap = s.target.capture.as_ref().unwrap();
        assert_eq!((cap.width, cap.height), (640, 480), "capture: is kept");
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
}
