//! The stream editor: adding (`/add`), editing, deleting and enabling or
//! disabling a stream, each an edit of config.yaml. A camera password is
//! write-only here: never shown, kept when left blank.

use askama::Template;

use super::form::{self, Field, Filled, FormPage};
use super::{render, Chrome, LoggedIn};
use crate::config::edit::{self, EditError, StreamForm, Yaml};
use crate::config::StreamConfig;
use crate::web::handler::{Form, Resp};
use crate::web::routes::stream_path;
use crate::web::HttpError;

#[derive(Template)]
#[template(path = "stream_form.html")]
struct StreamFormPage {
    c: Chrome,
    adding: bool,
    original: String,
    action: String,
    back_href: String,
    fields: Vec<Field>,
    general_error: Option<String>,
}

fn stream_fields(f: &StreamForm, has_password: bool, heartbeat: u64) -> Vec<Field> {
    let mut v = vec![
        Field::text("name", "Name", &f.name)
            .required()
            .placeholder("Front door"),
        Field::text("url", "URL", &f.url)
            .required()
            .placeholder("rtsp://192.168.1.20:554/stream1")
            .autocomplete("off")
            .hint("rtsp://…, or an http(s):// MJPEG stream or snapshot URL, or libcamera:0 for the box's own camera. A user:password@ typed here is moved to the fields below."),
        Field::select(
            "kind",
            "Kind",
            &f.kind,
            &[
                ("", "Detect from the URL"),
                ("rtsp", "RTSP (H.264, H.265, MJPEG)"),
                ("mjpeg", "MJPEG over HTTP"),
                ("snapshot", "Snapshot (one JPEG per request)"),
                ("local", "The box's own camera (libcamera:, v4l2://)"),
            ],
        ),
        Field::text("username", "Camera username", &f.username).autocomplete("off"),
    ];
    v.extend(Field::write_only_password(
        "Camera password",
        has_password,
        "the URL's scheme, host or port",
        "camera",
        f.clear_password,
    ));
    v.extend([
        Field::select(
            "transport",
            "RTSP transport",
            if f.transport.is_empty() {
                "auto"
            } else {
                &f.transport
            },
            &[
                (
                    "auto",
                    "Automatic (TCP, or UDP when the camera refuses TCP)",
                ),
                ("tcp", "TCP only"),
                ("udp", "UDP only"),
            ],
        )
        .hint("RTSP only."),
        Field::checkbox("enabled", "Monitor this stream", f.enabled),
        Field::section("Timing", "Leave blank for the defaults."),
        Field::number("interval", "Seconds between probes", &f.interval)
            .placeholder(format!("default {heartbeat}")),
        Field::number("timeout", "Probe timeout, seconds", &f.timeout)
            .placeholder("default 10 (at most the interval)"),
        Field::number("fail_threshold", "Failures before DOWN", &f.fail_threshold)
            .placeholder("default 2"),
        Field::number("ok_threshold", "Successes before UP", &f.ok_threshold)
            .placeholder("default 1"),
    ]);
    v
}

/// A URL as typed, to show again in a form: a password in it (`user:pw@`)
/// is cut out, also when the rest is not a valid URL. (A form shown again
/// after a mistake must not echo a camera password; see `tests/it/security/editor_echo.rs`.)
pub(super) fn without_password(typed: &str) -> String {
    if let Some(mut u) = url::Url::parse(typed.trim()).ok().filter(|u| u.has_host()) {
        if u.password().is_some() {
            let _ = u.set_password(None);
            return u.to_string();
        }
        return typed.to_owned();
    }
    let (scheme, rest) = match typed.find("://") {
        Some(i) => typed.split_at(i + 3),
        None => ("", typed),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}{user}{}", &rest[at..])
        }
        None => typed.to_owned(),
    }
}

/// The add form (`original` is `None`) or the edit form of a stream.
struct StreamEditor<'a> {
    v: LoggedIn<'a>,
    /// The stream's name before this edit.
    original: Option<&'a str>,
    /// Its current config.
    sc: Option<&'a StreamConfig>,
}

impl StreamEditor<'_> {
    /// The stream's entry in the file as it is now (for the edit form).
    fn file_entry(&self, name: &str) -> Option<Yaml> {
        let text = std::fs::read_to_string(self.v.ctx.gui.config_file.path()).ok()?;
        let tree = edit::parse_tree(&text).ok()?;
        edit::find_stream(&tree, name).cloned()
    }
}

impl FormPage for StreamEditor<'_> {
    type Form = StreamForm;
    /// The stream's name after the edit.
    type Saved = String;

    fn initial(&self) -> StreamForm {
        match (self.original, self.sc) {
            (Some(n), Some(sc)) => match self.file_entry(n) {
                Some(e) => StreamForm::from_entry(&e),
                None => StreamForm {
                    name: sc.name.clone(),
                    url: sc.target.url.to_string(),
                    kind: sc.target.kind.as_str().into(),
                    enabled: sc.enabled,
                    username: sc
                        .target
                        .creds
                        .as_ref()
                        .map(|c| c.username.clone())
                        .unwrap_or_default(),
                    ..StreamForm::default()
                },
            },
            _ => StreamForm {
                enabled: true,
                ..StreamForm::default()
            },
        }
    }

    fn read(&self, f: &Form) -> StreamForm {
        StreamForm {
            name: f.get("name"),
            url: f.get("url"),
            kind: f.get("kind"),
            interval: f.get("interval"),
            timeout: f.get("timeout"),
            enabled: f.checked("enabled"),
            username: f.get("username"),
            password: f.get("password"),
            clear_password: f.checked("clear_password"),
            transport: f.get("transport"),
            fail_threshold: f.get("fail_threshold"),
            ok_threshold: f.get("ok_threshold"),
        }
    }

    fn apply(&self, tree: &mut Yaml, form: &StreamForm) -> Result<String, EditError> {
        edit::upsert_stream(tree, self.original, form)
    }

    fn done(&self, new_name: String) -> Resp {
        if let Some(old) = self.original {
            self.v.ctx.gui.checks.forget(old);
        }
        let msg = if self.original.is_some() {
            "saved"
        } else {
            "added"
        };
        tracing::info!(stream = %new_name, "stream {msg} from the web GUI");
        Resp::redirect(&format!("{}?msg={msg}", stream_path(&new_name, "")))
    }

    fn fields(&self, form: StreamForm) -> Vec<Field> {
        // Shown again: a password typed into the URL is not echoed back.
        let form = if self.v.req.is_post() {
            StreamForm {
                url: without_password(&form.url),
                ..form
            }
        } else {
            form
        };
        let has_password = self
            .sc
            .and_then(|s| s.target.creds.as_ref())
            .is_some_and(|c| !c.password.is_empty());
        stream_fields(&form, has_password, self.v.cfg.heartbeat.as_secs())
    }

    fn page(&self, form: Filled) -> Result<Resp, HttpError> {
        let (title, nav) = match self.original {
            Some(n) => (format!("Edit {n}"), ""),
            None => ("Add stream".to_owned(), "add"),
        };
        let page = StreamFormPage {
            c: self.v.chrome(title, nav),
            adding: self.original.is_none(),
            original: self.original.unwrap_or_default().to_owned(),
            action: match self.original {
                Some(n) => stream_path(n, "/edit"),
                None => "/add".into(),
            },
            back_href: match self.original {
                Some(n) => stream_path(n, ""),
                None => "/".into(),
            },
            fields: form.fields,
            general_error: form.general_error,
        };
        render(form.status, &page)
    }
}

/// `/add` (`original` is `None`) and `/streams/<name>/edit`.
pub(super) fn stream_form(v: LoggedIn, original: Option<&str>) -> Result<Resp, HttpError> {
    let sc = original.map(|n| v.stream(n)).transpose()?;
    form::run(v.ctx, v.req, &StreamEditor { v, original, sc })
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDeletePage {
    c: Chrome,
    name: String,
    action: String,
    back_href: String,
}

/// `/streams/<name>/delete`: a GET asks, a POST deletes.
pub(super) fn delete_stream(v: LoggedIn, name: &str) -> Result<Resp, HttpError> {
    v.stream(name)?;
    if v.req.is_post() {
        form::save_or_400(v.ctx, |t| edit::delete_stream(t, name))?;
        v.ctx.gui.checks.forget(name);
        tracing::info!(stream = %name, "stream deleted from the web GUI");
        return Ok(Resp::redirect("/?msg=deleted"));
    }
    let page = ConfirmDeletePage {
        c: v.chrome(format!("Delete {name}"), ""),
        name: name.to_owned(),
        action: stream_path(name, "/delete"),
        back_href: stream_path(name, ""),
    };
    render(200, &page)
}

/// `/streams/<name>/enable` (POST): `enabled` checked or not.
pub(super) fn enable_stream(v: LoggedIn, name: &str) -> Result<Resp, HttpError> {
    v.stream(name)?;
    let enabled = v.req.form().checked("enabled");
    form::save_or_400(v.ctx, |t| edit::set_enabled(t, name, enabled))?;
    Ok(Resp::redirect(&format!(
        "{}?msg={}",
        stream_path(name, ""),
        if enabled { "enabled" } else { "disabled" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_urls_are_shown_without_password() {
        let cases = [
            ("rtsp://admin:pw@10.0.0.1/x", "rtsp://admin@10.0.0.1/x"),
            ("http://u:p%40w@h:8080/a.jpg", "http://u@h:8080/a.jpg"),
            ("rtsp://u:pw@[::1", "rtsp://u@[::1"),
            ("u:pw@host/x", "u@host/x"),
            ("rtsp://admin@10.0.0.1/x", "rtsp://admin@10.0.0.1/x"),
            ("http://h:8080/p@x", "http://h:8080/p@x"),
            ("not a url", "not a url"),
        ];
        for (typed, shown) in cases {
            assert_eq!(without_password(typed), shown, "{typed}");
        }
    }
}
