//! The write API: streams and the general settings changed by scripts, for
//! provisioning many boxes (issue 19). JSON in, JSON out:
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/streams` | add: `201` + `Location` and the stream |
//! | `GET /api/streams/{name}` | the stream as this API takes it (never its password) |
//! | `PUT /api/streams/{name}` | replace (`200`) or add (`201`) the stream; the same PUT again changes nothing |
//! | `PATCH /api/streams/{name}` | change the fields given (`name` renames) |
//! | `DELETE /api/streams/{name}` | remove it: `200` `{"deleted": name}` |
//! | `POST /api/streams/{name}/check` | probe now: the verdict ("Check now" of the GUI) |
//! | `GET`, `PUT /api/settings` | the general settings (no secret among them); PUT sets the keys given |
//!
//! Nothing here validates or writes on its own: a stream goes through
//! [`edit::upsert_stream`] (the editor's rules, its write-only password,
//! dropped when the URL's scheme, host or port change), settings through
//! [`edit::apply_settings`], and both through the GUI's save
//! ([`pages::save_config`]: [`edit::ConfigFile::edit`], then waiting until
//! the daemon runs the new file). This file only turns JSON into those
//! forms and their errors into JSON: `422 {"errors": {"<field>": "…"}}`
//! for values that are wrong (with `error`, a sentence for all of them),
//! `400` for a body that is not a JSON object, `415` for one that is not
//! `application/json`.
//!
//! Who may: an `admin` API token, or a session with its CSRF token in
//! `X-CSRF-Token` ([`super::handler`]'s gate, [`Route::takes_json`]).

use serde_json::{json, Map, Value};
use tiny_http::Method;

use super::check::{CheckError, CheckResult};
use super::handler::{Req, Resp};
use super::routes::Route;
use super::{pages, HttpError, WebCtx};
use crate::config::edit::{self, EditError, FieldErrors, SettingsForm, StreamForm, Yaml};
use crate::config::Config;
use crate::report::{iso, path_segment};

/// Answers a request to a write API route (the gate let it in).
///
/// # Errors
/// `405` for a method the route does not take, `404` for an unknown stream,
/// `400`/`415` for a body that is not a JSON object; field errors are a
/// `422` answer, not an error.
pub fn handle(ctx: &WebCtx, cfg: &Config, route: &Route, req: &Req) -> Result<Resp, HttpError> {
    match (route, &req.method) {
        (Route::ApiStreams, Method::Post) => add_stream(ctx, req),
        (Route::ApiStream(name), Method::Get | Method::Head) => get_stream(ctx, name),
        (Route::ApiStream(name), Method::Put) => put_stream(ctx, name, req),
        (Route::ApiStream(name), Method::Patch) => patch_stream(ctx, name, req),
        (Route::ApiStream(name), Method::Delete) => delete_stream(ctx, name),
        (Route::ApiStreamCheck(name), Method::Post) => check(ctx, cfg, name),
        (Route::ApiSettings, Method::Get | Method::Head) => {
            Ok(Resp::json(&settings_json(&SettingsForm::from_config(cfg))))
        }
        (Route::ApiSettings, Method::Put) => put_settings(ctx, cfg, req),
        _ => Err(HttpError::new(405, "method not allowed")),
    }
}

/// `value` as a JSON answer with `status`.
fn answer(status: u16, value: &Value) -> Resp {
    let mut r = Resp::json(value);
    r.status = status;
    r
}

/// The body as a JSON object.
fn json_body(req: &Req) -> Result<Map<String, Value>, HttpError> {
    if !req.content_type.starts_with("application/json") {
        return Err(HttpError::new(
            415,
            "send the body as JSON (Content-Type: application/json)",
        ));
    }
    // serde_json's message names a line and column, never the text.
    match serde_json::from_slice(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(HttpError::new(400, "the body must be a JSON object")),
        Err(e) => Err(HttpError::new(400, format!("the body is not JSON: {e}"))),
    }
}

/// `422` with one entry per field in `errors` (and `error`, a sentence for
/// all of them, with those that belong to no one field).
fn unprocessable(errs: &FieldErrors) -> Resp {
    let mut fields = Map::new();
    for (k, m) in &errs.0 {
        if !k.is_empty() && !fields.contains_key(k) {
            fields.insert(k.clone(), Value::String(m.clone()));
        }
    }
    let sentence = errs
        .0
        .iter()
        .map(|(k, m)| {
            if k.is_empty() {
                m.clone()
            } else {
                format!("{k}: {m}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    answer(422, &json!({ "error": sentence, "errors": fields }))
}

/// The answer to an edit that was not saved.
fn edit_failed(e: EditError) -> Result<Resp, HttpError> {
    match e {
        EditError::Fields(errs) => Ok(unprocessable(&errs)),
        EditError::Invalid(m) => Ok(unprocessable(&FieldErrors::one("", m))),
        EditError::Io(e) => {
            tracing::error!("writing the config: {e:#}");
            Err(HttpError::new(
                500,
                "config.yaml could not be written (is the data partition full or read-only?)",
            ))
        }
    }
}

/// Keys of a stream's JSON, as in `config.yaml`.
const STREAM_KEYS: [&str; 11] = [
    "name",
    "url",
    "kind",
    "interval",
    "timeout",
    "enabled",
    "username",
    "password",
    "transport",
    "fail_threshold",
    "ok_threshold",
];

/// Sets the fields of `form` that `body` gives; wrong types and unknown
/// keys go to `errs`. `password`: a string sets it, `""` or `null`
/// removes it, absent keeps it. `has_password` (an answer's read-only key)
/// is ignored, so an answer can be sent back as it is.
fn overlay_stream(form: &mut StreamForm, body: &Map<String, Value>, errs: &mut FieldErrors) {
    for (k, v) in body {
        let text = |errs: &mut FieldErrors| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => Some(String::new()),
            _ => {
                errs.add(k, "expected a string or null");
                None
            }
        };
        let number = |errs: &mut FieldErrors| match v {
            Value::Number(n) if n.is_u64() => Some(n.to_string()),
            Value::Null => Some(String::new()),
            _ => {
                errs.add(k, "expected a whole number or null (the default)");
                None
            }
        };
        let slot = match k.as_str() {
            "name" => &mut form.name,
            "url" => &mut form.url,
            "kind" => &mut form.kind,
            "username" => &mut form.username,
            "transport" => &mut form.transport,
            "interval" | "timeout" | "fail_threshold" | "ok_threshold" => {
                if let Some(n) = number(errs) {
                    match k.as_str() {
                        "interval" => form.interval = n,
                        "timeout" => form.timeout = n,
                        "fail_threshold" => form.fail_threshold = n,
                        _ => form.ok_threshold = n,
                    }
                }
                continue;
            }
            "enabled" => {
                match v {
                    Value::Bool(b) => form.enabled = *b,
                    _ => errs.add(k, "expected true or false"),
                }
                continue;
            }
            "password" => {
                match v {
                    Value::String(s) if !s.is_empty() => {
                        form.password = s.clone();
                        form.clear_password = false;
                    }
                    Value::String(_) | Value::Null => {
                        form.password = String::new();
                        form.clear_password = true;
                    }
                    _ => errs.add(k, "expected a string, or null to remove it"),
                }
                continue;
            }
            "has_password" => continue,
            _ => {
                errs.add(
                    k,
                    format!("unknown field (a stream has {})", STREAM_KEYS.join(", ")),
                );
                continue;
            }
        };
        if let Some(s) = text(errs) {
            *slot = s;
        }
    }
}

/// A stream entry of the file as this API shows it: the URL without
/// credentials, the username, whether a password is stored (never the
/// password), unset keys as `null` (their defaults apply).
pub fn stream_json(entry: &Yaml) -> Value {
    let f = StreamForm::from_entry(entry);
    let url_password = entry
        .get("url")
        .and_then(Yaml::as_text)
        .and_then(|u| url::Url::parse(u.trim()).ok())
        .is_some_and(|u| u.password().is_some_and(|p| !p.is_empty()));
    let has_password = url_password
        || entry
            .get("password")
            .and_then(Yaml::as_text)
            .is_some_and(|p| !p.is_empty());
    let text = |s: String| {
        if s.trim().is_empty() {
            Value::Null
        } else {
            Value::String(s)
        }
    };
    let number = |s: String| match s.trim().parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => text(s),
    };
    // `from_entry` cut the credentials out of a URL that parses; one that
    // does not (a hand-edited file) is masked like any text.
    let url = match url::Url::parse(f.url.trim()) {
        Ok(_) => f.url.clone(),
        Err(_) => crate::redact::redact_text(&f.url, &[]),
    };
    json!({
        "name": f.name,
        "url": url,
        "kind": text(f.kind),
        "interval": number(f.interval),
        "timeout": number(f.timeout),
        "enabled": f.enabled,
        "username": text(f.username),
        "has_password": has_password,
        "transport": text(f.transport),
        "fail_threshold": number(f.fail_threshold),
        "ok_threshold": number(f.ok_threshold),
    })
}

/// `/api/streams/{name}` with the name percent-encoded.
fn api_stream_path(name: &str) -> String {
    format!("/api/streams/{}", path_segment(name))
}

/// What an edit of one stream did.
enum Saved {
    /// There is no such stream (nothing was changed).
    Missing,
    /// The stream as saved; `created` when it was not there before,
    /// `changed` when its entry in the file is not what it was.
    Stream {
        json: Value,
        created: bool,
        changed: bool,
    },
}

/// Saves `form` as the stream called `original` (None: a new one); the
/// answer is the stream as the file has it afterwards.
fn upsert(tree: &mut Yaml, original: Option<&str>, form: &StreamForm) -> Result<Saved, EditError> {
    let before = original.and_then(|n| edit::find_stream(tree, n)).cloned();
    let name = edit::upsert_stream(tree, original, form)?;
    let entry = edit::find_stream(tree, &name).ok_or_else(|| {
        EditError::Invalid(format!("stream {name:?} is not in the file after saving"))
    })?;
    Ok(Saved::Stream {
        json: stream_json(entry),
        created: original.is_none(),
        changed: before.as_ref() != Some(entry),
    })
}

/// The answer to a saved stream edit.
fn saved(r: Result<Saved, EditError>, what: &str) -> Result<Resp, HttpError> {
    match r {
        Ok(Saved::Missing) => Err(HttpError::new(404, "no such stream")),
        Ok(Saved::Stream {
            json,
            created,
            changed,
        }) => {
            let name = json["name"].as_str().unwrap_or_default().to_owned();
            if changed {
                tracing::info!(
                    stream = %name,
                    "stream {} by the API",
                    if created { "added" } else { what }
                );
            } else {
                tracing::debug!(stream = %name, "stream left as it was by the API (nothing to change)");
            }
            if created {
                Ok(answer(201, &json).with_header("Location", api_stream_path(&name)))
            } else {
                Ok(answer(200, &json))
            }
        }
        Err(e) => edit_failed(e),
    }
}

/// `POST /api/streams`: a new stream; `name` and `url` are needed, the rest
/// has defaults (`enabled: true`).
fn add_stream(ctx: &WebCtx, req: &Req) -> Result<Resp, HttpError> {
    let body = json_body(req)?;
    let mut form = StreamForm {
        enabled: true,
        ..StreamForm::default()
    };
    let mut errs = FieldErrors::default();
    overlay_stream(&mut form, &body, &mut errs);
    if !errs.is_empty() {
        return Ok(unprocessable(&errs));
    }
    let r = pages::save_config(ctx, |t| upsert(t, None, &form));
    saved(r, "added")
}

/// `GET /api/streams/{name}`: the stream's entry as the file has it now.
fn get_stream(ctx: &WebCtx, name: &str) -> Result<Resp, HttpError> {
    let path = ctx.gui.config_file.path();
    let text = std::fs::read_to_string(path).map_err(|e| {
        tracing::error!("reading {}: {e}", path.display());
        HttpError::new(500, "config.yaml could not be read")
    })?;
    let tree = edit::parse_tree(&text)
        .map_err(|_| HttpError::new(409, "config.yaml has an error; fix it first"))?;
    let entry = edit::find_stream(&tree, name).ok_or_else(not_found)?;
    Ok(Resp::json(&stream_json(entry)))
}

fn not_found() -> HttpError {
    HttpError::new(404, "no such stream")
}

/// `PUT /api/streams/{name}`: the whole stream (keys left out take their
/// defaults, the password is kept unless given or removed), added when
/// there is none by that name. `name` in the body, if any, must be the
/// URL's: renaming is a PATCH.
fn put_stream(ctx: &WebCtx, name: &str, req: &Req) -> Result<Resp, HttpError> {
    let body = json_body(req)?;
    let mut form = StreamForm {
        name: name.to_owned(),
        enabled: true,
        ..StreamForm::default()
    };
    let mut errs = FieldErrors::default();
    overlay_stream(&mut form, &body, &mut errs);
    if errs.get("name").is_none() && form.name.trim() != name {
        errs.add(
            "name",
            "must be the name in the URL (to rename a stream, PATCH its name)",
        );
    }
    if !errs.is_empty() {
        return Ok(unprocessable(&errs));
    }
    let r = pages::save_config(ctx, |t| {
        let exists = edit::find_stream(t, name).is_some();
        upsert(t, exists.then_some(name), &form)
    });
    if let Ok(Saved::Stream {
        created: false,
        changed: true,
        ..
    }) = &r
    {
        ctx.gui.checks.forget(name);
    }
    saved(r, "replaced")
}

/// `PATCH /api/streams/{name}`: the keys given change, the others stay.
fn patch_stream(ctx: &WebCtx, name: &str, req: &Req) -> Result<Resp, HttpError> {
    let body = json_body(req)?;
    // Wrong types and unknown keys are found without the file.
    let mut errs = FieldErrors::default();
    overlay_stream(&mut StreamForm::default(), &body, &mut errs);
    if !errs.is_empty() {
        return Ok(unprocessable(&errs));
    }
    let r = pages::save_config(ctx, |t| {
        let Some(entry) = edit::find_stream(t, name) else {
            return Ok(Saved::Missing);
        };
        let mut form = StreamForm::from_entry(entry);
        overlay_stream(&mut form, &body, &mut FieldErrors::default());
        upsert(t, Some(name), &form)
    });
    if let Ok(Saved::Stream { changed: true, .. }) = &r {
        ctx.gui.checks.forget(name);
    }
    saved(r, "changed")
}

/// `DELETE /api/streams/{name}`.
fn delete_stream(ctx: &WebCtx, name: &str) -> Result<Resp, HttpError> {
    let r = pages::save_config(ctx, |t| match edit::find_stream(t, name) {
        None => Ok(None),
        Some(e) => {
            let stored = e.get("name").and_then(Yaml::as_text).unwrap_or_default();
            edit::delete_stream(t, name)?;
            Ok(Some(stored))
        }
    });
    match r {
        Ok(None) => Err(not_found()),
        Ok(Some(stored)) => {
            ctx.gui.checks.forget(&stored);
            tracing::info!(stream = %stored, "stream deleted by the API");
            Ok(Resp::json(&json!({ "deleted": stored })))
        }
        Err(e) => edit_failed(e),
    }
}

/// `POST /api/streams/{name}/check`: probes the stream now, as the GUI's
/// "Check now" does (one check at a time; a result younger than
/// [`super::check::REUSE_MS`] is given again); `503` while another runs.
fn check(ctx: &WebCtx, cfg: &Config, name: &str) -> Result<Resp, HttpError> {
    let sc = cfg
        .streams
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(not_found)?;
    match ctx.gui.checks.run(name, &sc.target, ctx.clock.now_ms()) {
        Ok(r) => Ok(Resp::json(&verdict_json(name, &r, cfg))),
        Err(CheckError::Busy) => Ok(answer(
            503,
            &json!({ "error": "another check is running; try again in a few seconds" }),
        )
        .with_header("Retry-After", "5".into())),
        Err(CheckError::NoRuntime) => Err(HttpError::new(503, "checks are not available")),
    }
}

/// A check's verdict: the keys of `/api/status` for one heartbeat, and
/// whether a preview picture was kept (`/streams/{name}/frame.jpg`).
pub fn verdict_json(name: &str, r: &CheckResult, cfg: &Config) -> Value {
    json!({
        "stream": name,
        "status": if r.ok { "ok" } else { "fail" },
        "ok": r.ok,
        "reason": r.reason,
        "message": r.message,
        "latency": r.latency_ms,
        "ts": iso(r.ts_ms, &cfg.tz()),
        "ts_ms": r.ts_ms,
        "stages": r.stages,
        "media": r.media,
        "preview": r.picture.is_ok(),
    })
}

/// The general settings as this API shows and takes them.
fn settings_json(f: &SettingsForm) -> Value {
    let number = |s: &str| {
        s.parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(s.to_owned()))
    };
    json!({
        "device_name": f.device_name,
        "timezone": f.timezone,
        "heartbeat_seconds": number(&f.heartbeat_seconds),
        "heartbeat_days": number(&f.heartbeat_days),
        "rollup_days": number(&f.rollup_days),
        "public_status": f.public_status,
        "session_hours": number(&f.session_hours),
    })
}

/// `PUT /api/settings`: the keys given are set, the others keep their
/// value (so `{"timezone": "Europe/Berlin"}` is a whole request).
fn put_settings(ctx: &WebCtx, cfg: &Config, req: &Req) -> Result<Resp, HttpError> {
    let body = json_body(req)?;
    let mut form = SettingsForm::from_config(cfg);
    let mut errs = FieldErrors::default();
    for (k, v) in &body {
        let slot = match k.as_str() {
            "device_name" => &mut form.device_name,
            "timezone" => &mut form.timezone,
            "heartbeat_seconds" => &mut form.heartbeat_seconds,
            "heartbeat_days" => &mut form.heartbeat_days,
            "rollup_days" => &mut form.rollup_days,
            "session_hours" => &mut form.session_hours,
            "public_status" => {
                match v {
                    Value::Bool(b) => form.public_status = *b,
                    _ => errs.add(k, "expected true or false"),
                }
                continue;
            }
            _ => {
                errs.add(
                    k,
                    "unknown field (settings are device_name, timezone, heartbeat_seconds, \
                     heartbeat_days, rollup_days, public_status, session_hours)",
                );
                continue;
            }
        };
        match (k.as_str(), v) {
            ("device_name" | "timezone", Value::String(s)) => *slot = s.clone(),
            ("device_name" | "timezone", _) => errs.add(k, "expected a string"),
            (_, Value::Number(n)) if n.is_u64() => *slot = n.to_string(),
            _ => errs.add(k, "expected a whole number"),
        }
    }
    if !errs.is_empty() {
        return Ok(unprocessable(&errs));
    }
    match pages::save_config(ctx, |t| edit::apply_settings(t, &form)) {
        Ok(()) => {
            tracing::info!("settings saved by the API");
            let now = ctx.config.read().expect("config lock").clone();
            Ok(Resp::json(&settings_json(&SettingsForm::from_config(&now))))
        }
        Err(e) => edit_failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("the test passes an object"),
        }
    }

    #[test]
    fn overlay_sets_given_fields_and_names_wrong_ones() {
        let mut f = StreamForm {
            name: "a".into(),
            url: "rtsp://h/x".into(),
            interval: "30".into(),
            enabled: true,
            username: "admin".into(),
            ..StreamForm::default()
        };
        let mut errs = FieldErrors::default();
        overlay_stream(
            &mut f,
            &obj(json!({"timeout": 5, "enabled": false, "kind": null, "has_password": true})),
            &mut errs,
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            (f.interval.as_str(), f.timeout.as_str(), f.enabled),
            ("30", "5", false)
        );
        assert!(!f.clear_password, "password absent: kept");
        overlay_stream(&mut f, &obj(json!({"password": null})), &mut errs);
        assert!(f.clear_password && f.password.is_empty());
        overlay_stream(&mut f, &obj(json!({"password": "pw"})), &mut errs);
        assert!(!f.clear_password && f.password == "pw");
        assert!(errs.is_empty(), "{errs:?}");
        overlay_stream(
            &mut f,
            &obj(
                json!({"interval": "ten", "enabled": 1, "url": 3, "colour": "red", "timeout": -1}),
            ),
            &mut errs,
        );
        for k in ["interval", "enabled", "url", "colour", "timeout"] {
            assert!(errs.get(k).is_some(), "{k}: {errs:?}");
        }
        assert_eq!(f.interval, "30", "a wrong value changes nothing");
    }

    #[test]
    fn stream_json_never_shows_a_password() {
        let t = edit::parse_tree(
            "streams:\n- name: a\n  url: rtsp://u:pw-in-url@h/x\n- name: b\n  url: http://h/s.jpg\n  \
             username: v\n  password: pw-in-field\n  interval: 30\n- name: c\n  url: rtsp://h/y\n",
        )
        .unwrap();
        let a = stream_json(edit::find_stream(&t, "a").unwrap());
        let b = stream_json(edit::find_stream(&t, "b").unwrap());
        let c = stream_json(edit::find_stream(&t, "c").unwrap());
        let all = format!("{a}{b}{c}");
        assert!(
            !all.contains("pw-in-url") && !all.contains("pw-in-field"),
            "{all}"
        );
        assert_eq!(a["url"], "rtsp://h/x");
        assert_eq!(a["username"], "u");
        assert_eq!(a["has_password"], true);
        assert_eq!(b["has_password"], true);
        assert_eq!(b["interval"], 30);
        assert_eq!(c["has_password"], false);
        assert_eq!(c["username"], Value::Null);
        assert_eq!(c["interval"], Value::Null);
        assert_eq!(c["enabled"], true);
        // A URL that does not parse is masked; one that does is shown as is
        // (an `@` in its path is not a password).
        let t = edit::parse_tree(
            "streams:\n- name: a\n  url: rtsp://u:pw-in-bad-url@[h/x\n\
             - name: b\n  url: http://h:8080/p@x.jpg\n",
        )
        .unwrap();
        let a = stream_json(edit::find_stream(&t, "a").unwrap());
        assert!(!a.to_string().contains("pw-in-bad-url"), "{a}");
        let b = stream_json(edit::find_stream(&t, "b").unwrap());
        assert_eq!(b["url"], "http://h:8080/p@x.jpg");
    }

    #[test]
    fn field_errors_become_one_entry_per_field() {
        let mut e = FieldErrors::default();
        e.add("url", "not a valid URL");
        e.add("url", "second");
        e.add("", "credentials twice");
        let r = unprocessable(&e);
        assert_eq!(r.status, 422);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["errors"], json!({"url": "not a valid URL"}));
        assert!(v["error"].as_str().unwrap().contains("credentials twice"));
    }
}
