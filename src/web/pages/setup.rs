//! First-boot setup (`/setup`, only while no admin password exists): the
//! admin password, the box's name and time zone, and optionally the first
//! camera, written to config.yaml in one edit.

use askama::Template;

use super::editor::without_password;
use super::form::{self, timezones, Field, Filled, FormPage};
use super::password::{check_new_password, hash_password};
use super::pre_session::{pre_ok, pre_token, with_cookie, PRE_EXPIRED};
use super::{chrome, render, Chrome};
use crate::config::edit::{self, EditError, FieldErrors, StreamForm, Yaml};
use crate::config::Config;
use crate::credentials;
use crate::web::handler::{Form, Req, Resp};
use crate::web::{HttpError, WebCtx};

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
    if let Some(name) = crate::web::host::BoxNames::read().mdns_name() {
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

/// The setup form as typed.
#[derive(Default)]
struct SetupForm {
    /// The pre-session CSRF token the form sent back.
    pre: String,
    password: String,
    password2: String,
    device_name: String,
    timezone: String,
    stream_name: String,
    stream_url: String,
    stream_username: String,
    stream_password: String,
    /// The password's hash, once it passed the checks.
    hash: String,
}

impl SetupForm {
    /// The first camera, if its name or URL was typed.
    fn first_stream(&self) -> Option<StreamForm> {
        (!self.stream_name.trim().is_empty() || !self.stream_url.trim().is_empty()).then(|| {
            StreamForm {
                name: self.stream_name.clone(),
                url: self.stream_url.clone(),
                enabled: true,
                username: self.stream_username.clone(),
                password: self.stream_password.clone(),
                ..StreamForm::default()
            }
        })
    }
}

/// The first camera's errors, under the setup form's names for its fields.
fn as_first_stream_errors(e: EditError) -> EditError {
    match e {
        EditError::Fields(fe) => EditError::Fields(FieldErrors(
            fe.0.into_iter()
                .map(|(k, m)| {
                    let k = match k.as_str() {
                        "name" => "stream_name",
                        "url" | "kind" | "transport" | "interval" | "timeout" => "stream_url",
                        "username" => "stream_username",
                        "password" => "stream_password",
                        _ => "",
                    };
                    (k.to_owned(), m)
                })
                .collect(),
        )),
        other => other,
    }
}

struct Setup<'a> {
    ctx: &'a WebCtx,
    cfg: &'a Config,
    req: &'a Req,
    /// This page's pre-session token, and its cookie if it is new.
    pre: String,
    cookie: Option<String>,
}

impl FormPage for Setup<'_> {
    type Form = SetupForm;
    type Saved = ();

    fn initial(&self) -> SetupForm {
        SetupForm {
            device_name: self.cfg.device_name.clone(),
            timezone: self.cfg.timezone.clone(),
            ..SetupForm::default()
        }
    }

    fn read(&self, f: &Form) -> SetupForm {
        SetupForm {
            pre: f.get("pre"),
            password: f.get("password"),
            password2: f.get("password2"),
            device_name: f.get("device_name"),
            timezone: f.get("timezone"),
            stream_name: f.get("stream_name"),
            stream_url: f.get("stream_url"),
            stream_username: f.get("stream_username"),
            stream_password: f.get("stream_password"),
            hash: String::new(),
        }
    }

    fn check(&self, f: &mut SetupForm, errs: &mut FieldErrors) -> Result<(), HttpError> {
        if !pre_ok(self.req, &f.pre) {
            return Err(HttpError::new(403, PRE_EXPIRED));
        }
        check_new_password(errs, &f.password, &f.password2, "password", "password2");
        edit::check_device_name(errs, &f.device_name);
        edit::check_timezone(errs, &f.timezone);
        if errs.is_empty() {
            f.hash = hash_password(&f.password)?;
        }
        Ok(())
    }

    fn apply(&self, t: &mut Yaml, f: &SetupForm) -> Result<(), EditError> {
        if t.get("admin_password_hash").is_some() {
            return Err(EditError::Invalid(
                "this box was set up meanwhile; log in instead".into(),
            ));
        }
        edit::set_admin_hash(t, &f.hash);
        t.set("device_name", Yaml::Str(f.device_name.trim().to_owned()));
        t.set("timezone", Yaml::Str(f.timezone.trim().to_owned()));
        if let Some(sf) = &f.first_stream() {
            edit::upsert_stream(t, None, sf).map_err(as_first_stream_errors)?;
        }
        Ok(())
    }

    fn done(&self, (): ()) -> Resp {
        tracing::info!("first-boot setup done: admin password set");
        Resp::redirect("/login?msg=setup")
    }

    fn fields(&self, f: SetupForm) -> Vec<Field> {
        vec![
            Field::password("password", "Admin password", "new-password")
                .required()
                .hint(format!(
                    "At least {} characters.",
                    credentials::MIN_PASSWORD_CHARS
                )),
            Field::password("password2", "The same password again", "new-password").required(),
            Field::text("device_name", "Name of this box", &f.device_name)
                .hint("Shown in the title and to MQTT/Home Assistant."),
            Field::text("timezone", "Time zone", &f.timezone)
                .list("timezones")
                .hint("An IANA name such as Europe/Berlin; times are shown in it."),
            Field::section(
                "First camera (optional)",
                "You can add this and more cameras later.",
            ),
            Field::text("stream_name", "Name", &f.stream_name).placeholder("Front door"),
            Field::text("stream_url", "URL", &without_password(&f.stream_url))
                .placeholder("rtsp://192.168.1.20:554/stream1")
                .hint("rtsp://… or an http(s):// MJPEG or snapshot URL."),
            Field::text("stream_username", "Camera username", &f.stream_username)
                .autocomplete("off"),
            Field::password("stream_password", "Camera password", "off"),
        ]
    }

    fn page(&self, form: Filled) -> Result<Resp, HttpError> {
        let page = SetupPage {
            c: chrome(self.ctx, self.cfg, None, "Set up", ""),
            pre: self.pre.clone(),
            fields: form.fields,
            general_error: form.general_error,
            timezones: timezones(),
            bookmarks: bookmarks(self.req),
        };
        Ok(with_cookie(
            render(form.status, &page)?,
            self.cookie.clone(),
        ))
    }
}

/// `/setup`: the first-boot form (only while no admin password exists).
pub fn setup(ctx: &WebCtx, cfg: &Config, req: &Req) -> Result<Resp, HttpError> {
    let (pre, cookie) = pre_token(req);
    let page = Setup {
        ctx,
        cfg,
        req,
        pre,
        cookie,
    };
    form::run(ctx, req, &page)
}
