//! The HTML pages: first-boot setup, login, dashboard, stream detail with
//! history, the stream editor, "Check now" previews and the settings.
//!
//! Templates are askama files in `templates/`, compiled into the binary and
//! auto-escaped, so a stream called `<script>alert(1)</script>` is shown as
//! text. The structs below are what each template sees; everything is
//! formatted here (times in the configured time zone), so templates only
//! place strings.
//!
//! Forms post back to their own URL. On success the handler redirects
//! (post/redirect/get) with a `msg` code that maps to a fixed sentence; on a
//! validation error it answers 400 with the form, the values typed (never a
//! password) and each error next to its field. Edits go through
//! [`crate::config::edit`] and then wait until the daemon has reloaded the
//! file, so the page the browser lands on already shows the change.

use std::time::{Duration, Instant};

use askama::Template;

use super::check::{CheckError, CheckResult};
use super::handler::{get_only, open_db, Req, Resp};
use super::routes::{stream_path, Route};
use super::{auth, chart, HttpError, WebCtx};
use crate::config::edit::{self, EditError, FieldErrors, MqttForm, SettingsForm, StreamForm, Yaml};
use crate::config::{Config, StreamConfig};
use crate::credentials;
use crate::probe::Stages;
use crate::state::StreamState;
use crate::store::query;

/// Longest wait for the daemon to apply a config the GUI wrote.
const RELOAD_WAIT: Duration = Duration::from_secs(5);

/// What every page's frame (`base.html`) shows.
pub struct Chrome {
    pub title: String,
    pub device: String,
    /// The session's CSRF token ("" without a session).
    pub csrf: String,
    /// Which main-menu entry is current.
    pub nav: &'static str,
    pub logged_in: bool,
    pub version: &'static str,
    /// The last config reload error, if the file is broken: its text for a
    /// session, empty otherwise (it names hosts, keys and values; issue 14).
    pub config_error: Option<String>,
    /// A one-line confirmation ("Saved.").
    pub flash: Option<String>,
}

pub(crate) fn chrome(
    ctx: &WebCtx,
    cfg: &Config,
    session: Option<&auth::Session>,
    title: impl Into<String>,
    nav: &'static str,
) -> Chrome {
    Chrome {
        title: title.into(),
        device: cfg.device_name.clone(),
        csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
        nav,
        logged_in: session.is_some(),
        version: crate::VERSION,
        config_error: ctx
            .config_error
            .lock()
            .expect("config_error lock")
            .as_ref()
            .map(|e| session.map(|_| e.clone()).unwrap_or_default()),
        flash: None,
    }
}

/// The fixed sentence for a `?msg=` code (never echoes user input).
fn flash_for(code: Option<String>) -> Option<String> {
    let s = match code.as_deref()? {
        "setup" => "The admin password is set. Log in with it.",
        "logout" => "Logged out.",
        "expired" => "Please log in (again) to continue.",
        "added" => "Stream added. The first result arrives within a few seconds.",
        "saved" => "Saved. The monitor is already using the new settings.",
        "deleted" => "Stream deleted.",
        "enabled" => "Stream enabled.",
        "disabled" => "Stream disabled: it is no longer probed.",
        "password" => "Password changed. Other sessions were logged out.",
        "revoked" => "Token revoked.",
        _ => return None,
    };
    Some(s.to_owned())
}

/// One input of a form (see `fields.html`).
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    /// `text`, `password`, `number`, `select`, `checkbox` or `section` (a heading).
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    pub options: Vec<Opt>,
    pub error: Option<String>,
    pub hint: String,
    pub placeholder: String,
    pub required: bool,
    pub autocomplete: &'static str,
    /// id of a `<datalist>` with suggestions.
    pub list: &'static str,
}

/// One `<option>`.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Field {
    fn new(name: &'static str, label: &'static str, kind: &'static str) -> Field {
        Field {
            name,
            label,
            kind,
            value: String::new(),
            checked: false,
            options: Vec::new(),
            error: None,
            hint: String::new(),
            placeholder: String::new(),
            required: false,
            autocomplete: "",
            list: "",
        }
    }
    fn text(name: &'static str, label: &'static str, value: &str) -> Field {
        Field {
            value: value.to_owned(),
            ..Field::new(name, label, "text")
        }
    }
    fn number(name: &'static str, label: &'static str, value: &str) -> Field {
        Field {
            value: value.to_owned(),
            ..Field::new(name, label, "number")
        }
    }
    fn password(name: &'static str, label: &'static str, autocomplete: &'static str) -> Field {
        Field {
            autocomplete,
            ..Field::new(name, label, "password")
        }
    }
    fn checkbox(name: &'static str, label: &'static str, checked: bool) -> Field {
        Field {
            checked,
            ..Field::new(name, label, "checkbox")
        }
    }
    fn select(
        name: &'static str,
        label: &'static str,
        value: &str,
        opts: &[(&str, &str)],
    ) -> Field {
        Field {
            options: opts
                .iter()
                .map(|(v, l)| Opt {
                    value: (*v).to_owned(),
                    label: (*l).to_owned(),
                    selected: *v == value,
                })
                .collect(),
            ..Field::new(name, label, "select")
        }
    }
    fn section(label: &'static str, hint: &str) -> Field {
        Field {
            hint: hint.to_owned(),
            ..Field::new("", label, "section")
        }
    }
    fn hint(mut self, h: impl Into<String>) -> Field {
        self.hint = h.into();
        self
    }
    fn placeholder(mut self, p: impl Into<String>) -> Field {
        self.placeholder = p.into();
        self
    }
    fn required(mut self) -> Field {
        self.required = true;
        self
    }
    fn autocomplete(mut self, a: &'static str) -> Field {
        self.autocomplete = a;
        self
    }
    fn list(mut self, l: &'static str) -> Field {
        self.list = l;
        self
    }
}

/// Puts each error next to its field; returns errors that match no field
/// (shown above the form).
fn attach(fields: &mut [Field], errs: &FieldErrors) -> Option<String> {
    let mut general = Vec::new();
    for (name, msg) in &errs.0 {
        match fields
            .iter_mut()
            .find(|f| f.name == name.as_str() && f.kind != "section")
        {
            Some(f) if f.error.is_none() => f.error = Some(msg.clone()),
            Some(_) => {}
            None => general.push(if name.is_empty() {
                msg.clone()
            } else {
                format!("{name}: {msg}")
            }),
        }
    }
    (!general.is_empty()).then(|| general.join(" "))
}

pub(crate) fn render<T: Template>(status: u16, t: &T) -> Result<Resp, HttpError> {
    let body = t.render().map_err(|e| {
        tracing::error!("template: {e}");
        HttpError::new(500, "the page could not be rendered")
    })?;
    Ok(Resp::html(status, body))
}

// ---------------------------------------------------------------- formatting

/// `2026-11-28 17:30:05` in `tz`.
pub fn fmt_time(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago` (the dashboard's script
/// formats the same way).
pub fn ago(now_ms: i64, ms: i64) -> String {
    let s = (now_ms - ms) / 1000;
    match s {
        i64::MIN..=0 => "just now".into(),
        1..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

pub(crate) fn fmt_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{secs} s")
    }
}

fn fmt_bytes(b: u64) -> String {
    let gb = b as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.0} MB", b as f64 / 1e6)
    }
}

fn stages_list(st: &Stages, http: bool) -> Vec<(String, String)> {
    let rows = [
        ("DNS", st.dns_ms),
        ("Connect", st.connect_ms),
        (if http { "Request" } else { "DESCRIBE" }, st.describe_ms),
        ("SETUP", st.setup_ms),
        ("PLAY", st.play_ms),
        ("First frame", st.first_frame_ms),
    ];
    rows.iter()
        .filter_map(|(l, v)| v.map(|ms| ((*l).to_owned(), format!("{ms} ms"))))
        .collect()
}

fn media_text(m: &crate::probe::MediaFacts) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &m.codec {
        parts.push(c.clone());
    }
    if let (Some(w), Some(h)) = (m.width, m.height) {
        parts.push(format!("{w}x{h}"));
    }
    if let Some(f) = m.fps {
        parts.push(format!("{} fps", (f * 100.0).round() / 100.0));
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(" · ")
    }
}

/// A stream as the dashboard card and the detail page show it.
pub struct Card {
    pub name: String,
    pub href: String,
    pub edit_href: String,
    pub preview_href: String,
    /// `up`, `down`, `unknown` or `disabled` (CSS class).
    pub state: &'static str,
    /// Symbol and word, so the state reads without colour.
    pub state_label: &'static str,
    pub enabled: bool,
    pub latency: String,
    pub media: String,
    pub last_ok: String,
    pub last_fail: String,
    pub message: String,
}

fn state_label(state: &str) -> &'static str {
    match state {
        "up" => "✔ UP",
        "down" => "✖ DOWN",
        "disabled" => "○ DISABLED",
        _ => "? UNKNOWN",
    }
}

fn card(s: &StreamState, now: i64, tz: &jiff::tz::TimeZone) -> Card {
    let state = if !s.enabled {
        "disabled"
    } else {
        s.health.as_str()
    };
    let latency = match &s.last {
        Some(l) if l.ok => format!("{} ms", l.latency_ms),
        Some(l) => format!("failed after {} ms", l.latency_ms),
        None => "—".into(),
    };
    let last_ok = s
        .last_ok_ms
        .map(|t| format!("{} ({})", fmt_time(t, tz), ago(now, t)))
        .unwrap_or_else(|| "never".into());
    let last_fail = s
        .last_failure
        .as_ref()
        .map(|f| {
            format!(
                "{}: {} ({})",
                f.reason.map(|r| r.as_str()).unwrap_or("failed"),
                f.message,
                fmt_time(f.ts_ms, tz)
            )
        })
        .unwrap_or_else(|| "none".into());
    // Once there is a result, the rows above say it all (the media line
    // when ok, "Last failure" with the message when not).
    let message = match &s.last {
        Some(_) => String::new(),
        None if s.enabled => "waiting for the first probe".into(),
        None => "disabled: not probed".into(),
    };
    Card {
        name: s.name.clone(),
        href: stream_path(&s.name, ""),
        edit_href: stream_path(&s.name, "/edit"),
        preview_href: stream_path(&s.name, "/preview"),
        state,
        state_label: state_label(state),
        enabled: s.enabled,
        latency,
        media: media_text(&s.media),
        last_ok,
        last_fail,
        message,
    }
}

/// A card for a configured stream the board does not list (yet).
fn card_for_config(sc: &StreamConfig, now: i64, tz: &jiff::tz::TimeZone) -> Card {
    let s = StreamState::new(
        &sc.name,
        sc.target.kind,
        &sc.url_redacted,
        sc.enabled,
        sc.fail_threshold,
        sc.ok_threshold,
    );
    card(&s, now, tz)
}

// -------------------------------------------------------------- dispatching

/// The logged-in pages (the gate has checked the session and CSRF).
pub fn page(
    ctx: &WebCtx,
    db: &mut Option<rusqlite::Connection>,
    cfg: &Config,
    route: &Route,
    req: &Req,
    session: Option<(&str, &auth::Session)>,
) -> Result<Resp, HttpError> {
    let Some((token, s)) = session else {
        return Err(HttpError::new(403, "log in first"));
    };
    let post = req.is_post();
    match route {
        Route::Dashboard => get_only(req).and_then(|_| dashboard(ctx, cfg, s, req)),
        Route::Logout if post => {
            ctx.gui.sessions.remove(token);
            Ok(Resp::redirect("/login?msg=logout")
                .with_header("Set-Cookie", auth::set_cookie(auth::SESSION_COOKIE, "", 0)))
        }
        Route::AddStream => stream_form(ctx, cfg, s, req, None),
        Route::Stream(n) => get_only(req).and_then(|_| stream_page(ctx, db, cfg, s, req, n)),
        Route::EditStream(n) => stream_form(ctx, cfg, s, req, Some(n)),
        Route::DeleteStream(n) => delete_stream(ctx, cfg, s, req, n),
        Route::EnableStream(n) if post => enable_stream(ctx, cfg, req, n),
        Route::Preview(n) => preview(ctx, cfg, s, req, n),
        Route::Frame(n) => get_only(req).and_then(|_| frame(ctx, n)),
        Route::Settings => settings(ctx, cfg, s, req),
        Route::SettingsMqtt => mqtt_settings(ctx, cfg, s, req),
        Route::SettingsAccess => access(ctx, cfg, s, req),
        _ => Err(HttpError::new(405, "method not allowed")),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    heading: String,
    message: String,
}

/// An HTML error page (the message is ours, escaped anyway).
pub fn error_page(
    ctx: &WebCtx,
    cfg: &Config,
    session: Option<&auth::Session>,
    e: &HttpError,
) -> Resp {
    let heading = match e.status {
        400 => "That did not work",
        401 | 403 => "Not allowed",
        404 => "Not found",
        405 => "Not like this",
        413 => "Too much data",
        429 => "Slow down",
        _ => "Something went wrong",
    };
    let page = ErrorPage {
        c: chrome(ctx, cfg, session, heading, ""),
        heading: heading.into(),
        message: e.public_msg.clone(),
    };
    match page.render() {
        Ok(b) => Resp::html(e.status, b),
        Err(_) => Resp::new(
            e.status,
            "text/plain; charset=utf-8",
            e.public_msg.clone().into_bytes(),
        ),
    }
}

/// Writes the config with `f` and waits (bounded) until the daemon runs it.
fn save<T>(
    ctx: &WebCtx,
    f: impl FnOnce(&mut Yaml) -> Result<T, EditError>,
) -> Result<T, EditError> {
    let (out, new_cfg) = ctx.gui.config_file.edit(f)?;
    ctx.gui.reload_now.notify_one();
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        if **ctx.config.read().expect("config lock") == new_cfg {
            break;
        }
        if Instant::now() > deadline {
            tracing::warn!("config.yaml was written but not reloaded within {RELOAD_WAIT:?}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(out)
}

fn edit_failed(e: EditError) -> Result<FieldErrors, HttpError> {
    match e {
        EditError::Fields(f) => Ok(f),
        EditError::Invalid(m) => Ok(FieldErrors::one("", m)),
        EditError::Io(e) => {
            tracing::error!("writing the config: {e:#}");
            Err(HttpError::new(
                500,
                "config.yaml could not be written (is the data partition full or read-only?)",
            ))
        }
    }
}

fn timezones() -> Vec<String> {
    jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_owned())
        .filter(|n| n.contains('/') && !n.starts_with("Etc/") && !n.starts_with("posix/"))
        .collect()
}

/// The pre-session CSRF token of a login/setup form, and the cookie to set
/// if the browser has none yet.
fn pre_token(req: &Req) -> (String, Option<String>) {
    match req.cookie(auth::PRE_COOKIE) {
        Some(t) if t.len() == 43 => (t.to_owned(), None),
        _ => {
            let t = auth::random_token();
            let c = auth::set_cookie(auth::PRE_COOKIE, &t, 3600);
            (t, Some(c))
        }
    }
}

fn pre_ok(req: &Req, sent: &str) -> bool {
    req.cookie(auth::PRE_COOKIE)
        .is_some_and(|c| !c.is_empty() && auth::ct_eq(c.as_bytes(), sent.as_bytes()))
}

fn with_cookie(mut r: Resp, cookie: Option<String>) -> Resp {
    if let Some(c) = cookie {
        r.headers.push(("Set-Cookie", c));
    }
    r
}

const PRE_EXPIRED: &str =
    "the form was out of date or cookies are blocked; reload the page and try again";

// -------------------------------------------------------------------- setup

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    c: Chrome,
    pre: String,
    fields: Vec<Field>,
    general_error: Option<String>,
    timezones: Vec<String>,
    /// Addresses to bookmark: the one in use, and the box's mDNS name.
    bookmarks: Vec<String>,
}

/// The addresses a user should bookmark on the first-boot page: the one the
/// browser used (it worked) and `http://<hostname>.local/`, which survives a
/// new DHCP address.
fn bookmarks(req: &Req) -> Vec<String> {
    let mut v = Vec::new();
    if !req.host.is_empty() {
        v.push(format!("http://{}/", req.host));
    }
    if let Some(name) = super::host::BoxNames::read().mdns_name() {
        // The port the browser used (8000 on a host run), none for 80.
        let port = req
            .host
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .filter(|p| *p != 80)
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let url = format!("http://{name}{port}/");
        if !v.contains(&url) {
            v.push(url);
        }
    }
    v
}

/// `/setup`: the first-boot form (only while no admin password exists).
pub fn setup(ctx: &WebCtx, cfg: &Config, req: &Req) -> Result<Resp, HttpError> {
    let (pre, cookie) = pre_token(req);
    let f = req.form();
    let v = |k: &str| {
        if req.is_post() {
            f.get(k)
        } else {
            String::new()
        }
    };
    let device = if req.is_post() {
        f.get("device_name")
    } else {
        cfg.device_name.clone()
    };
    let tz = if req.is_post() {
        f.get("timezone")
    } else {
        cfg.timezone.clone()
    };
    let mut errs = FieldErrors::default();
    if req.is_post() {
        if !pre_ok(req, &f.get("pre")) {
            return Err(HttpError::new(403, PRE_EXPIRED));
        }
        let (pw, pw2) = (f.get("password"), f.get("password2"));
        if let Err(m) = credentials::check_new_password(&pw, &pw2) {
            let field = if m.contains("differ") {
                "password2"
            } else {
                "password"
            };
            errs.add(field, m);
        }
        edit::check_device_name(&mut errs, &device);
        edit::check_timezone(&mut errs, &tz);
        let first = (!f.get("stream_name").trim().is_empty()
            || !f.get("stream_url").trim().is_empty())
        .then(|| StreamForm {
            name: f.get("stream_name"),
            url: f.get("stream_url"),
            enabled: true,
            username: f.get("stream_username"),
            password: f.get("stream_password"),
            ..StreamForm::default()
        });
        if errs.is_empty() {
            let hash = credentials::hash_password(&pw).map_err(|e| {
                tracing::error!("{e:#}");
                HttpError::new(500, "the password could not be hashed")
            })?;
            let result = save(ctx, |t| {
                if t.get("admin_password_hash").is_some() {
                    return Err(EditError::Invalid(
                        "this box was set up meanwhile; log in instead".into(),
                    ));
                }
                edit::set_admin_hash(t, &hash);
                t.set("device_name", Yaml::Str(device.trim().to_owned()));
                t.set("timezone", Yaml::Str(tz.trim().to_owned()));
                if let Some(sf) = &first {
                    edit::upsert_stream(t, None, sf).map_err(|e| match e {
                        EditError::Fields(fe) => EditError::Fields(FieldErrors(
                            fe.0.into_iter()
                                .map(|(k, m)| {
                                    let k = match k.as_str() {
                                        "name" => "stream_name",
                                        "url" | "kind" | "transport" | "interval" | "timeout" => {
                                            "stream_url"
                                        }
                                        "username" => "stream_username",
                                        "password" => "stream_password",
                                        _ => "",
                                    };
                                    (k.to_owned(), m)
                                })
                                .collect(),
                        )),
                        other => other,
                    })?;
                }
                Ok(())
            });
            match result {
                Ok(()) => {
                    tracing::info!("first-boot setup done: admin password set");
                    return Ok(Resp::redirect("/login?msg=setup"));
                }
                Err(e) => errs = edit_failed(e)?,
            }
        }
    }
    let mut fields = vec![
        Field::password("password", "Admin password", "new-password")
            .required()
            .hint(format!(
                "At least {} characters.",
                credentials::MIN_PASSWORD_CHARS
            )),
        Field::password("password2", "The same password again", "new-password").required(),
        Field::text("device_name", "Name of this box", &device)
            .hint("Shown in the title and to MQTT/Home Assistant."),
        Field::text("timezone", "Time zone", &tz)
            .list("timezones")
            .hint("An IANA name such as Europe/Berlin; times are shown in it."),
        Field::section(
            "First camera (optional)",
            "You can add this and more cameras later.",
        ),
        Field::text("stream_name", "Name", &v("stream_name")).placeholder("Front door"),
        Field::text("stream_url", "URL", &without_password(&v("stream_url")))
            .placeholder("rtsp://192.168.1.20:554/stream1")
            .hint("rtsp://… or an http(s):// MJPEG or snapshot URL."),
        Field::text("stream_username", "Camera username", &v("stream_username"))
            .autocomplete("off"),
        Field::password("stream_password", "Camera password", "off"),
    ];
    let general_error = attach(&mut fields, &errs);
    let page = SetupPage {
        c: chrome(ctx, cfg, None, "Set up", ""),
        pre,
        fields,
        general_error,
        timezones: timezones(),
        bookmarks: bookmarks(req),
    };
    let status = if errs.is_empty() { 200 } else { 400 };
    Ok(with_cookie(render(status, &page)?, cookie))
}

// -------------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    pre: String,
    next: String,
    error: Option<String>,
}

/// Only same-origin absolute paths are followed after login (no open
/// redirect): one leading `/`, then neither `/` nor `\`, no whitespace or
/// control character anywhere. Browsers drop tabs and newlines from a
/// `Location` and treat `\` as `/`, so `/\t/evil.example` would leave the
/// box; the same rules hold for the percent-decoded path, so nothing a
/// later decoding step uncovers (`/%2F%2Fevil`, `/%09/evil`) gets past
/// either. A decoded space stays allowed: stream names may hold one.
fn safe_next(next: &str) -> String {
    let local = |p: &str, space_ok: bool| {
        let mut rest = p.chars();
        rest.next() == Some('/')
            && !matches!(rest.next(), Some('/' | '\\'))
            && !p.contains('\\')
            && !p
                .chars()
                .any(|c| c.is_control() || (c.is_whitespace() && !(space_ok && c == ' ')))
    };
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8();
    match decoded {
        Ok(d) if local(next, false) && local(&d, true) => next.to_owned(),
        _ => "/".into(),
    }
}

/// When a login lockout of `wait_secs` ends: the time in the configured
/// zone and how long that is from now (`2026-11-28 17:45:05 (in 14 min)`).
fn lock_end(ctx: &WebCtx, cfg: &Config, wait_secs: u64) -> String {
    let wait_ms = i64::try_from(wait_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let end = ctx.clock.now_ms().saturating_add(wait_ms);
    format!(
        "{} (in {})",
        fmt_time(end, &cfg.tz()),
        fmt_duration(wait_secs)
    )
}

/// `/login`.
pub fn login(
    ctx: &WebCtx,
    cfg: &Config,
    req: &Req,
    who: &super::handler::Who,
) -> Result<Resp, HttpError> {
    let hash = cfg
        .admin_password_hash
        .as_deref()
        .ok_or_else(|| HttpError::new(404, "not set up yet"))?;
    let (pre, cookie) = pre_token(req);
    let f = req.form();
    let next = safe_next(&if req.is_post() {
        f.get("next")
    } else {
        req.query_param("next").unwrap_or_default()
    });
    if !req.is_post() && who.session.is_some() {
        return Ok(Resp::redirect(&next));
    }
    let mut status = 200;
    // A lockout is shown before anyone types a password, with its end.
    let mut error = ctx.gui.limiter.check(req.remote).err().map(|wait| {
        format!(
            "Too many failed logins: logging in is paused until {}.",
            lock_end(ctx, cfg, wait)
        )
    });
    if req.is_post() {
        if !pre_ok(req, &f.get("pre")) {
            return Err(HttpError::new(403, PRE_EXPIRED));
        }
        match ctx.gui.limiter.check(req.remote) {
            Err(_) => status = 429,
            Ok(()) => {
                if credentials::verify_password(&f.get("password"), hash) {
                    ctx.gui.limiter.succeeded(req.remote);
                    let life = i64::from(cfg.web_session_hours) * 3_600_000;
                    let (tok, _) = ctx.gui.sessions.create(life, hash);
                    tracing::info!("login from {}", req.remote);
                    return Ok(Resp::redirect(&next)
                        .with_header(
                            "Set-Cookie",
                            auth::set_cookie(auth::SESSION_COOKIE, &tok, life / 1000),
                        )
                        .with_header("Set-Cookie", auth::set_cookie(auth::PRE_COOKIE, "", 0)));
                }
                ctx.gui.limiter.failed(req.remote);
                tracing::warn!("failed login from {}", req.remote);
                status = 401;
                error = Some("Wrong password.".into());
            }
        }
    }
    let mut c = chrome(ctx, cfg, None, "Log in", "");
    c.flash = flash_for(req.query_param("msg"));
    let page = LoginPage {
        c,
        pre,
        next,
        error,
    };
    Ok(with_cookie(render(status, &page)?, cookie))
}

// ---------------------------------------------------------------- dashboard

/// The box's own health, on the dashboard.
pub struct HealthView {
    pub clock: String,
    pub clock_class: &'static str,
    pub disk: String,
    /// Empty while heartbeats are committed; otherwise why not.
    pub recording_error: String,
    pub uptime: String,
    pub now: String,
    pub tz: String,
}

fn health_view(ctx: &WebCtx, cfg: &Config) -> HealthView {
    let now = ctx.clock.now_ms();
    let sync = ctx.sync.state(now);
    let (clock, clock_class) = if sync.trusted() {
        ("synchronised".to_owned(), "good")
    } else if !sync.plausible {
        ("not set (no NTP yet): times are wrong".to_owned(), "bad")
    } else {
        ("not synchronised: times may drift".to_owned(), "bad")
    };
    let data_dir = ctx.db_path.parent().unwrap_or(std::path::Path::new("."));
    let disk = match crate::store::disk::usage(data_dir) {
        Ok(u) => format!(
            "{} of {} ({:.0} %)",
            fmt_bytes(u.free_bytes),
            fmt_bytes(u.total_bytes),
            u.free_percent()
        ),
        Err(_) => "unknown".into(),
    };
    let st = &ctx.recorder_stats;
    let recording_error = if st.failing() {
        let json = st.json();
        format!(
            "Heartbeats are not being saved: {} ({} waiting in memory; retrying)",
            json["error"].as_str().unwrap_or("write failed"),
            json["backlog"]
        )
    } else {
        String::new()
    };
    HealthView {
        clock,
        clock_class,
        disk,
        recording_error,
        uptime: fmt_duration(ctx.started.elapsed().as_secs()),
        now: fmt_time(now, &cfg.tz()),
        tz: cfg.timezone.clone(),
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    c: Chrome,
    cards: Vec<Card>,
    health: HealthView,
    summary: String,
}

fn dashboard(ctx: &WebCtx, cfg: &Config, s: &auth::Session, req: &Req) -> Result<Resp, HttpError> {
    let now = ctx.clock.now_ms();
    let tz = cfg.tz();
    let cards: Vec<Card> = {
        let board = ctx.board.lock().expect("board lock");
        cfg.streams
            .iter()
            .map(|sc| match board.get(&sc.name) {
                Some(st) => card(st, now, &tz),
                None => card_for_config(sc, now, &tz),
            })
            .collect()
    };
    let count = |st: &str| cards.iter().filter(|c| c.state == st).count();
    let summary = if cards.is_empty() {
        "No streams configured.".to_owned()
    } else {
        let mut s = format!(
            "{} stream{}: {} up, {} down, {} unknown",
            cards.len(),
            if cards.len() == 1 { "" } else { "s" },
            count("up"),
            count("down"),
            count("unknown")
        );
        if count("disabled") > 0 {
            s.push_str(&format!(", {} disabled", count("disabled")));
        }
        s
    };
    let mut c = chrome(ctx, cfg, Some(s), "Dashboard", "dashboard");
    c.flash = flash_for(req.query_param("msg"));
    let page = DashboardPage {
        c,
        cards,
        health: health_view(ctx, cfg),
        summary,
    };
    render(200, &page)
}

// ------------------------------------------------------------ stream detail

/// A state change in the event list.
pub struct EventView {
    pub when: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// A kept preview picture.
pub struct PictureView {
    pub src: String,
    pub width: u32,
    pub height: u32,
    pub when: String,
    pub caption: String,
}

fn picture_view(name: &str, r: &CheckResult, tz: &jiff::tz::TimeZone) -> Option<PictureView> {
    let p = r.picture.as_ref().ok()?;
    let when = fmt_time(r.ts_ms, tz);
    let how = if p.passthrough {
        "the camera's own JPEG".to_owned()
    } else if p.source_width != p.width {
        format!(
            "{}x{} scaled to {}x{} on this box in {} ms",
            p.source_width, p.source_height, p.width, p.height, p.render_ms
        )
    } else {
        format!("decoded on this box in {} ms", p.render_ms)
    };
    Some(PictureView {
        src: format!("{}?t={}", stream_path(name, "/frame.jpg"), r.ts_ms),
        width: p.width,
        height: p.height,
        caption: format!("Taken {when}: {how}."),
        when,
    })
}

#[derive(Template)]
#[template(path = "stream.html")]
struct StreamPage {
    c: Chrome,
    s: Card,
    enable_href: String,
    delete_href: String,
    since: String,
    url: String,
    kind: String,
    transport: String,
    interval: u64,
    timeout: u64,
    last_probe: String,
    stages: Vec<(String, String)>,
    range: &'static str,
    range_label: &'static str,
    uptime_24h: String,
    uptime_7d: String,
    chart: chart::Chart,
    picture: Option<PictureView>,
    events: Vec<EventView>,
}

fn pct(probes: u64, ok: u64) -> String {
    if probes == 0 {
        "—".into()
    } else {
        format!("{:.2} %", ok as f64 * 100.0 / probes as f64)
    }
}

fn find_stream<'a>(cfg: &'a Config, name: &str) -> Result<&'a StreamConfig, HttpError> {
    cfg.streams
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| HttpError::new(404, "no stream with this name"))
}

fn stream_page(
    ctx: &WebCtx,
    db: &mut Option<rusqlite::Connection>,
    cfg: &Config,
    sess: &auth::Session,
    req: &Req,
    name: &str,
) -> Result<Resp, HttpError> {
    let sc = find_stream(cfg, name)?;
    let now = ctx.clock.now_ms();
    let tz = cfg.tz();
    let st = ctx.board.lock().expect("board lock").get(name).cloned();
    let st = st.unwrap_or_else(|| {
        StreamState::new(
            &sc.name,
            sc.target.kind,
            &sc.url_redacted,
            sc.enabled,
            sc.fail_threshold,
            sc.ok_threshold,
        )
    });
    let http = sc.target.kind != crate::probe::Kind::Rtsp;
    let (range, range_label, span, bucket) = match req.query_param("range").as_deref() {
        Some("7d") => ("7d", "last 7 days", 7 * 86_400_000i64, 3_600_000i64),
        _ => ("24h", "last 24 hours", 86_400_000i64, 300_000i64),
    };
    let until = (now / bucket + 1) * bucket;
    let since = until - span;
    let day = 86_400_000;
    let tail = &*ctx.heartbeat_tail;
    let (rows, up24, up7, events) = match open_db(ctx, db) {
        Ok(conn) => {
            let q = || -> rusqlite::Result<_> {
                let week =
                    query::raw(conn, tail, name, now - 7 * day, now + 1)?.unwrap_or_default();
                let last_day = &week[week.partition_point(|h| h.ts_ms < now - day)..];
                Ok((
                    query::buckets(conn, tail, name, since, until, bucket)?,
                    // One read of the week's raw heartbeats serves both.
                    query::uptime_of(conn, name, last_day, now - day, now + 1)?,
                    query::uptime_of(conn, name, &week, now - 7 * day, now + 1)?,
                    query::events(conn, name, now - 7 * day, 50)?,
                ))
            };
            q().unwrap_or_else(|e| {
                tracing::error!("stream page history: {e}");
                (Vec::new(), (0, 0), (0, 0), Vec::new())
            })
        }
        Err(_) => (Vec::new(), (0, 0), (0, 0), Vec::new()),
    };
    let chart = chart::build(&rows, since, until, bucket, &tz);
    let events = events
        .into_iter()
        .map(|e| EventView {
            when: fmt_time(e.ts_ms, &tz),
            reason: match (e.reason, e.message) {
                (Some(r), Some(m)) => format!("{r}: {m}"),
                (Some(r), None) => r,
                (None, Some(m)) => m,
                (None, None) => String::new(),
            },
            from: e.from,
            to: e.to,
        })
        .collect();
    let last_probe = match &st.last {
        Some(l) => format!(
            "{} ({}): {}",
            fmt_time(l.ts_ms, &tz),
            if l.ok { "ok" } else { "failed" },
            l.message
        ),
        None => "none yet".into(),
    };
    let stages = st
        .last
        .as_ref()
        .map(|l| stages_list(&l.stages, http))
        .unwrap_or_default();
    let picture = ctx
        .gui
        .checks
        .last(name)
        .and_then(|r| picture_view(name, &r, &tz));
    let mut c = chrome(ctx, cfg, Some(sess), sc.name.clone(), "");
    c.flash = flash_for(req.query_param("msg"));
    let page = StreamPage {
        c,
        s: card(&st, now, &tz),
        enable_href: stream_path(name, "/enable"),
        delete_href: stream_path(name, "/delete"),
        since: st
            .health_since_ms
            .map(|t| fmt_time(t, &tz))
            .unwrap_or_default(),
        url: sc.url_redacted.clone(),
        kind: sc.target.kind.as_str().into(),
        transport: if http {
            String::new()
        } else {
            sc.target.transport.as_str().to_uppercase()
        },
        interval: sc.interval.as_secs(),
        timeout: sc.target.timeout.as_secs(),
        last_probe,
        stages,
        range,
        range_label,
        uptime_24h: pct(up24.0, up24.1),
        uptime_7d: pct(up7.0, up7.1),
        chart,
        picture,
        events,
    };
    render(200, &page)
}

// ------------------------------------------------------------ stream editor

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
            .hint("rtsp://…, or an http(s):// MJPEG stream or snapshot URL. A user:password@ typed here is moved to the fields below."),
        Field::select(
            "kind",
            "Kind",
            &f.kind,
            &[
                ("", "Detect from the URL"),
                ("rtsp", "RTSP (H.264, H.265, MJPEG)"),
                ("mjpeg", "MJPEG over HTTP"),
                ("snapshot", "Snapshot (one JPEG per request)"),
            ],
        ),
        Field::text("username", "Camera username", &f.username).autocomplete("off"),
        Field::password("password", "Camera password", "new-password").hint(if has_password {
            "A password is stored. Leave this blank to keep it; it is not kept if you change \
             the URL's scheme, host or port."
        } else {
            "Leave blank if the camera needs none."
        }),
    ];
    if has_password {
        v.push(Field::checkbox(
            "clear_password",
            "Remove the stored password",
            f.clear_password,
        ));
    }
    v.extend([
        Field::select(
            "transport",
            "RTSP transport",
            if f.transport.is_empty() {
                "tcp"
            } else {
                &f.transport
            },
            &[("tcp", "TCP (works through most networks)"), ("udp", "UDP")],
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
/// after a mistake must not echo a camera password; see `tests/it/security.rs`.)
fn without_password(typed: &str) -> String {
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

fn form_from_post(f: &super::handler::Form) -> StreamForm {
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

/// The stream's entry in the file as it is now (for the edit form).
fn file_entry(ctx: &WebCtx, name: &str) -> Option<Yaml> {
    let text = std::fs::read_to_string(ctx.gui.config_file.path()).ok()?;
    let tree = edit::parse_tree(&text).ok()?;
    edit::find_stream(&tree, name).cloned()
}

fn stream_form(
    ctx: &WebCtx,
    cfg: &Config,
    sess: &auth::Session,
    req: &Req,
    original: Option<&str>,
) -> Result<Resp, HttpError> {
    let sc = original.map(|n| find_stream(cfg, n)).transpose()?;
    let has_password = sc
        .and_then(|s| s.target.creds.as_ref())
        .is_some_and(|c| !c.password.is_empty());
    let mut errs = FieldErrors::default();
    let form = if req.is_post() {
        let form = form_from_post(&req.form());
        match save(ctx, |t| edit::upsert_stream(t, original, &form)) {
            Ok(new_name) => {
                if let Some(old) = original {
                    ctx.gui.checks.forget(old);
                }
                let msg = if original.is_some() { "saved" } else { "added" };
                tracing::info!(stream = %new_name, "stream {msg} from the web GUI");
                return Ok(Resp::redirect(&format!(
                    "{}?msg={msg}",
                    stream_path(&new_name, "")
                )));
            }
            Err(e) => errs = edit_failed(e)?,
        }
        // Shown again: a password typed into the URL is not echoed back.
        StreamForm {
            url: without_password(&form.url),
            ..form
        }
    } else {
        match (original, sc) {
            (Some(n), Some(sc)) => match file_entry(ctx, n) {
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
    };
    let mut fields = stream_fields(&form, has_password, cfg.heartbeat.as_secs());
    let general_error = attach(&mut fields, &errs);
    let (title, nav) = match original {
        Some(n) => (format!("Edit {n}"), ""),
        None => ("Add stream".to_owned(), "add"),
    };
    let page = StreamFormPage {
        c: chrome(ctx, cfg, Some(sess), title, nav),
        adding: original.is_none(),
        original: original.unwrap_or_default().to_owned(),
        action: match original {
            Some(n) => stream_path(n, "/edit"),
            None => "/add".into(),
        },
        back_href: match original {
            Some(n) => stream_path(n, ""),
            None => "/".into(),
        },
        fields,
        general_error,
    };
    render(if errs.is_empty() { 200 } else { 400 }, &page)
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDeletePage {
    c: Chrome,
    name: String,
    action: String,
    back_href: String,
}

fn delete_stream(
    ctx: &WebCtx,
    cfg: &Config,
    sess: &auth::Session,
    req: &Req,
    name: &str,
) -> Result<Resp, HttpError> {
    find_stream(cfg, name)?;
    if req.is_post() {
        return match save(ctx, |t| edit::delete_stream(t, name)) {
            Ok(()) => {
                ctx.gui.checks.forget(name);
                tracing::info!(stream = %name, "stream deleted from the web GUI");
                Ok(Resp::redirect("/?msg=deleted"))
            }
            Err(e) => {
                let errs = edit_failed(e)?;
                Err(HttpError::new(
                    400,
                    errs.0.first().map(|(_, m)| m.clone()).unwrap_or_default(),
                ))
            }
        };
    }
    let page = ConfirmDeletePage {
        c: chrome(ctx, cfg, Some(sess), format!("Delete {name}"), ""),
        name: name.to_owned(),
        action: stream_path(name, "/delete"),
        back_href: stream_path(name, ""),
    };
    render(200, &page)
}

fn enable_stream(ctx: &WebCtx, cfg: &Config, req: &Req, name: &str) -> Result<Resp, HttpError> {
    find_stream(cfg, name)?;
    let enabled = req.form().checked("enabled");
    match save(ctx, |t| edit::set_enabled(t, name, enabled)) {
        Ok(()) => Ok(Resp::redirect(&format!(
            "{}?msg={}",
            stream_path(name, ""),
            if enabled { "enabled" } else { "disabled" }
        ))),
        Err(e) => {
            let errs = edit_failed(e)?;
            Err(HttpError::new(
                400,
                errs.0.first().map(|(_, m)| m.clone()).unwrap_or_default(),
            ))
        }
    }
}

// ------------------------------------------------------------------ preview

/// A check result as the preview page shows it.
pub struct CheckView {
    pub ok: bool,
    pub verdict: String,
    pub message: String,
    pub when: String,
    pub latency: String,
    pub stages: Vec<(String, String)>,
    pub picture: Option<PictureView>,
    pub no_picture: String,
}

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewPage {
    c: Chrome,
    name: String,
    action: String,
    back_href: String,
    busy: bool,
    result: Option<CheckView>,
}

fn preview(
    ctx: &WebCtx,
    cfg: &Config,
    sess: &auth::Session,
    req: &Req,
    name: &str,
) -> Result<Resp, HttpError> {
    let sc = find_stream(cfg, name)?;
    let mut busy = false;
    if req.is_post() {
        match ctx.gui.checks.run(name, &sc.target, ctx.clock.now_ms()) {
            Ok(_) => return Ok(Resp::redirect(&stream_path(name, "/preview"))),
            Err(CheckError::Busy) => busy = true,
            Err(CheckError::NoRuntime) => {
                return Err(HttpError::new(503, "checks are not available right now"))
            }
        }
    }
    let tz = cfg.tz();
    let http = sc.target.kind != crate::probe::Kind::Rtsp;
    let result = ctx.gui.checks.last(name).map(|r| CheckView {
        ok: r.ok,
        verdict: if r.ok {
            "✔ Video arrives".into()
        } else {
            format!(
                "✖ No video: {}",
                r.reason.map(|x| x.as_str()).unwrap_or("failed")
            )
        },
        message: r.message.clone(),
        when: fmt_time(r.ts_ms, &tz),
        latency: format!("{} ms", r.latency_ms),
        stages: stages_list(&r.stages, http),
        picture: picture_view(name, &r, &tz),
        no_picture: r.picture.as_ref().err().cloned().unwrap_or_default(),
    });
    let page = PreviewPage {
        c: chrome(ctx, cfg, Some(sess), format!("Check {name}"), ""),
        name: name.to_owned(),
        action: stream_path(name, "/preview"),
        back_href: stream_path(name, ""),
        busy,
        result,
    };
    render(if busy { 503 } else { 200 }, &page)
}

fn frame(ctx: &WebCtx, name: &str) -> Result<Resp, HttpError> {
    let r = ctx
        .gui
        .checks
        .last(name)
        .ok_or_else(|| HttpError::new(404, "no picture kept for this stream"))?;
    let p = r
        .picture
        .as_ref()
        .map_err(|_| HttpError::new(404, "no picture kept for this stream"))?;
    Ok(Resp::new(200, "image/jpeg", p.jpeg.clone()))
}

// ----------------------------------------------------------------- settings

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    c: Chrome,
    tab: &'static str,
    intro: String,
    action: &'static str,
    fields: Vec<Field>,
    general_error: Option<String>,
    timezones: Vec<String>,
}

fn settings(
    ctx: &WebCtx,
    cfg: &Config,
    sess: &auth::Session,
    req: &Req,
) -> Result<Resp, HttpError> {
    let mut errs = FieldErrors::default();
    let f = if req.is_post() {
        let p = req.form();
        let f = SettingsForm {
            device_name: p.get("device_name"),
            timezone: p.get("timezone"),
            heartbeat_seconds: p.get("heartbeat_seconds"),
            heartbeat_days: p.get("heartbeat_days"),
            rollup_days: p.get("rollup_days"),
            public_status: p.checked("public_status"),
            session_hours: p.get("session_hours"),
        };
        match save(ctx, |t| edit::apply_settings(t, &f)) {
            Ok(()) => return Ok(Resp::redirect("/settings?msg=saved")),
            Err(e) => errs = edit_failed(e)?,
        }
        f
    } else {
        SettingsForm::from_config(cfg)
    };
    let mut fields = vec![
        Field::text("device_name", "Name of this box", &f.device_name).required(),
        Field::text("timezone", "Time zone", &f.timezone)
            .list("timezones")
            .hint("IANA name, e.g. Europe/Berlin. Pages, the API and MQTT show times in it."),
        Field::number(
            "heartbeat_seconds",
            "Seconds between probes (default for streams)",
            &f.heartbeat_seconds,
        )
        .hint("5 to 86400. A stream's own interval overrides it."),
        Field::section("Retention", "How long history is kept on the SD card."),
        Field::number(
            "heartbeat_days",
            "Days of raw heartbeats",
            &f.heartbeat_days,
        ),
        Field::number(
            "rollup_days",
            "Days of hourly summaries and state changes",
            &f.rollup_days,
        ),
        Field::section("Web access", ""),
        Field::checkbox(
            "public_status",
            "Let anyone on the network read /api/status and /metrics without logging in",
            f.public_status,
        )
        .hint("For scripts and Prometheus on a trusted LAN. Otherwise use an API token."),
        Field::number(
            "session_hours",
            "Stay logged in for (hours without use)",
            &f.session_hours,
        ),
    ];
    let general_error = attach(&mut fields, &errs);
    let mut c = chrome(ctx, cfg, Some(sess), "Settings", "settings");
    c.flash = flash_for(req.query_param("msg"));
    let page = SettingsPage {
        c,
        tab: "general",
        intro: String::new(),
        action: "/settings",
        fields,
        general_error,
        timezones: timezones(),
    };
    render(if errs.is_empty() { 200 } else { 400 }, &page)
}

fn mqtt_settings(
    ctx: &WebCtx,
    cfg: &Config,
    sess: &auth::Session,
    req: &Req,
) -> Result<Resp, HttpError> {
    let has_password = cfg
        .mqtt
        .as_ref()
        .and_then(|m| m.credentials.as_ref())
        .is_some_and(|c| !c.password.is_empty());
    let mut errs = FieldErrors::default();
    let f = if req.is_post() {
        let p = req.form();
        let f = MqttForm {
            enabled: p.checked("enabled"),
            host: p.get("host"),
            port: p.get("port"),
            transport: p.get("transport"),
            username: p.get("username"),
            password: p.get("password"),
            clear_password: p.checked("clear_password"),
            topic: p.get("topic"),
            prefix: p.get("prefix"),
            interval: p.get("interval"),
            qos: p.get("qos"),
            retain: p.checked("retain"),
            discovery: p.checked("discovery"),
            tls_verify: p.checked("tls_verify"),
        };
        match save(ctx, |t| edit::apply_mqtt(t, &f)) {
            Ok(()) => return Ok(Resp::redirect("/settings/mqtt?msg=saved")),
            Err(e) => errs = edit_failed(e)?,
        }
        f
    } else {
        MqttForm::from_config(cfg)
    };
    let mut fields = vec![
        Field::checkbox("enabled", "Publish to an MQTT broker", f.enabled),
        Field::text("host", "Broker host", &f.host)
            .placeholder("192.168.1.5 or broker.example.com")
            .hint("Host name or address only."),
        Field::select(
            "transport",
            "Transport",
            &f.transport,
            &[
                ("tcp", "MQTT over TCP"),
                ("tls", "MQTT over TLS"),
                ("ws", "WebSockets"),
                ("wss", "WebSockets over TLS"),
            ],
        ),
        Field::number("port", "Port", &f.port).placeholder("default for the transport"),
        Field::text("username", "Username", &f.username).autocomplete("off"),
        Field::password("password", "Password", "new-password").hint(if has_password {
            "A password is stored. Leave this blank to keep it; it is not kept if you change \
             the host, port or transport."
        } else {
            "Leave blank if the broker needs none."
        }),
    ];
    if has_password {
        fields.push(Field::checkbox(
            "clear_password",
            "Remove the stored password",
            f.clear_password,
        ));
    }
    fields.extend([
        Field::checkbox(
            "tls_verify",
            "Verify the broker's certificate (TLS)",
            f.tls_verify,
        ),
        Field::section("Topics", ""),
        Field::text("topic", "Aggregate status topic", &f.topic),
        Field::text("prefix", "Per-stream topic prefix", &f.prefix),
        Field::number(
            "interval",
            "Seconds between aggregate publications",
            &f.interval,
        ),
        Field::select(
            "qos",
            "QoS",
            &f.qos,
            &[
                ("0", "0: at most once"),
                ("1", "1: at least once"),
                ("2", "2: exactly once"),
            ],
        ),
        Field::checkbox("retain", "Retain the aggregate status", f.retain),
        Field::checkbox("discovery", "Home Assistant discovery", f.discovery),
    ]);
    let general_error = attach(&mut fields, &errs);
    let mut c = chrome(ctx, cfg, Some(sess), "MQTT settings", "settings");
    c.flash = flash_for(req.query_param("msg"));
    let page = SettingsPage {
        c,
        tab: "mqtt",
        intro: "TLS certificate files, the client id and other advanced keys stay as written in config.yaml.".into(),
        action: "/settings/mqtt",
        fields,
        general_error,
        timezones: Vec::new(),
    };
    render(if errs.is_empty() { 200 } else { 400 }, &page)
}

/// An API token as listed.
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created: String,
    /// `read`, `live` or `admin`.
    pub scope: &'static str,
    /// What the scope opens, in words.
    pub scope_text: &'static str,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    c: Chrome,
    fields: Vec<Field>,
    general_error: Option<String>,
    tokens: Vec<TokenView>,
    token_error: Option<String>,
    new_token: Option<String>,
    new_token_name: String,
    /// The new token's scope, as listed.
    new_token_scope: &'static str,
    /// (name, description) of every scope, for the creation form.
    scopes: Vec<(&'static str, &'static str)>,
    public_status: bool,
    host: String,
}

fn access(ctx: &WebCtx, cfg: &Config, sess: &auth::Session, req: &Req) -> Result<Resp, HttpError> {
    let mut errs = FieldErrors::default();
    let mut token_error = None;
    let mut new_token = None;
    let mut new_token_name = String::new();
    let mut new_token_scope = "";
    let mut flash = flash_for(req.query_param("msg"));
    if req.is_post() {
        let p = req.form();
        match p.get("action").as_str() {
            "password" => {
                let hash = cfg.admin_password_hash.clone().unwrap_or_default();
                let (cur, pw, pw2) = (
                    p.get("current_password"),
                    p.get("new_password"),
                    p.get("new_password2"),
                );
                if let Err(wait) = ctx.gui.limiter.check(req.remote) {
                    errs.add(
                        "current_password",
                        format!(
                            "too many wrong passwords; try again after {}",
                            lock_end(ctx, cfg, wait)
                        ),
                    );
                } else if !credentials::verify_password(&cur, &hash) {
                    ctx.gui.limiter.failed(req.remote);
                    errs.add("current_password", "this is not the current password");
                } else if let Err(m) = credentials::check_new_password(&pw, &pw2) {
                    let field = if m.contains("differ") {
                        "new_password2"
                    } else {
                        "new_password"
                    };
                    errs.add(field, m);
                } else {
                    let new_hash = credentials::hash_password(&pw).map_err(|e| {
                        tracing::error!("{e:#}");
                        HttpError::new(500, "the password could not be hashed")
                    })?;
                    match save(ctx, |t| {
                        edit::set_admin_hash(t, &new_hash);
                        Ok(())
                    }) {
                        Ok(()) => {
                            // Everyone else is logged out; this browser stays in.
                            ctx.gui.sessions.clear();
                            let life = i64::from(cfg.web_session_hours) * 3_600_000;
                            let (tok, _) = ctx.gui.sessions.create(life, &new_hash);
                            tracing::info!("admin password changed from {}", req.remote);
                            return Ok(Resp::redirect("/settings/access?msg=password")
                                .with_header(
                                    "Set-Cookie",
                                    auth::set_cookie(auth::SESSION_COOKIE, &tok, life / 1000),
                                ));
                        }
                        Err(e) => errs = edit_failed(e)?,
                    }
                }
            }
            "create_token" => {
                let name = p.get("token_name").trim().to_owned();
                // No choice sent (an older page): the least a token can open.
                let scope = match p.get("scope").as_str() {
                    "" => Some(auth::Scope::Read),
                    s => auth::Scope::parse(s),
                };
                if name.is_empty()
                    || name.chars().count() > 64
                    || name.chars().any(char::is_control)
                {
                    token_error = Some("give the token a name (1 to 64 characters)".into());
                } else if let Some(scope) = scope {
                    match ctx.gui.tokens.create(&name, scope, ctx.clock.now_ms()) {
                        Ok(t) => {
                            tracing::info!("API token {name:?} ({}) created", scope.as_str());
                            new_token = Some(t);
                            new_token_name = name;
                            new_token_scope = scope.as_str();
                        }
                        Err(e) => token_error = Some(format!("{e:#}")),
                    }
                } else {
                    token_error =
                        Some("choose what the token may open: read, live or admin".into());
                }
            }
            "revoke" => {
                let id = p.get("id");
                match ctx.gui.tokens.revoke(&id) {
                    Ok(true) => {
                        tracing::info!("API token {id} revoked");
                        return Ok(Resp::redirect("/settings/access?msg=revoked"));
                    }
                    Ok(false) => token_error = Some("no such token".into()),
                    Err(e) => token_error = Some(format!("{e:#}")),
                }
            }
            _ => return Err(HttpError::new(400, "unknown action")),
        }
        flash = None;
    }
    let mut fields = vec![
        Field::password("current_password", "Current password", "current-password"),
        Field::password("new_password", "New password", "new-password").hint(format!(
            "At least {} characters.",
            credentials::MIN_PASSWORD_CHARS
        )),
        Field::password("new_password2", "New password again", "new-password"),
    ];
    let general_error = attach(&mut fields, &errs);
    let tz = cfg.tz();
    let tokens = ctx
        .gui
        .tokens
        .list()
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            created: if t.created_ms > 0 {
                fmt_time(t.created_ms, &tz)
            } else {
                "—".into()
            },
            scope: t.scope.as_str(),
            scope_text: t.scope.describe(),
        })
        .collect();
    let mut c = chrome(ctx, cfg, Some(sess), "Password & API tokens", "settings");
    c.flash = flash;
    let page = AccessPage {
        c,
        fields,
        general_error,
        tokens,
        token_error: token_error.clone(),
        new_token,
        new_token_name,
        new_token_scope,
        scopes: auth::Scope::ALL
            .iter()
            .map(|s| (s.as_str(), s.describe()))
            .collect(),
        public_status: cfg.web_public_status,
        host: if req.host.is_empty() {
            "<device>:8000".into()
        } else {
            req.host.clone()
        },
    };
    let bad = !errs.is_empty() || token_error.is_some();
    render(if bad { 400 } else { 200 }, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_and_durations() {
        assert_eq!(ago(10_000, 10_000), "just now");
        assert_eq!(ago(15_000, 10_000), "5 s ago");
        assert_eq!(ago(200_000, 10_000), "3 min ago");
        assert_eq!(ago(3 * 3_600_000, 0), "3 h ago");
        assert_eq!(ago(3 * 86_400_000, 0), "3 d ago");
        assert_eq!(fmt_duration(59), "59 s");
        assert_eq!(fmt_duration(3700), "1 h 1 min");
        assert_eq!(fmt_duration(90_000), "1 d 1 h");
    }

    #[test]
    fn next_is_local_only() {
        for ok in [
            "/",
            "/streams/x",
            "/streams/Front%20door/edit",
            "/streams/a%2Fb",
            "/streams/Caf%C3%A9?tab=1",
            "/live",
        ] {
            assert_eq!(safe_next(ok), ok);
        }
        // See: issue 14, finding 5 (browsers strip the tab: `//evil.example/x`).
        for hostile in [
            "/%09/evil.example/x",
            "/\t/evil.example/x",
            "/\t/evil",
            "/\n/evil",
            "/\r\n/evil",
            "/%0a/evil",
            "/%0D%0A/evil",
            "/%00/evil",
            "/\u{7f}/evil",
            "/\u{85}/evil",
            "/\u{a0}/evil",
            "/\u{3000}/evil",
            "/ /evil",
            " /evil",
            "\t//evil",
            "//evil",
            "//evil.example/",
            "///evil",
            "/%2F%2Fevil",
            "/%2fevil",
            "/%5Cevil",
            "/%5C%5Cevil",
            "/\\evil",
            "\\\\evil",
            "/x/\\evil",
            "https://evil",
            "http://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "%2F%2Fevil",
            "/%ff",
            "",
        ] {
            assert_eq!(safe_next(hostile), "/", "{hostile:?}");
        }
    }

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
