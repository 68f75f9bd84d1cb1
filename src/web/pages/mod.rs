//! The HTML pages: first-boot setup, login, dashboard, stream detail with
//! history, the stream editor, "Check now" previews and the settings. This
//! file holds what every page shares (the frame around it, flash messages,
//! the error page) and sends a logged-in request to its page.
//!
//! Templates are askama files in `templates/`, compiled into the binary and
//! auto-escaped, so a stream called `<script>alert(1)</script>` is shown as
//! text. The structs in the page files are what each template sees;
//! everything is formatted there (times in the configured time zone), so
//! templates only place strings.
//!
//! Forms post back to their own URL. On success the handler redirects
//! (post/redirect/get) with a `msg` code that maps to a fixed sentence; on a
//! validation error it answers 400 with the form, the values typed (never a
//! password) and each error next to its field. [`form`] holds that flow
//! once; edits go through [`crate::config::edit`] and then wait until the
//! daemon has reloaded the file, so the page the browser lands on already
//! shows the change.
//!
//! Layout: `form` (fields and the GET/POST flow), `format` (times,
//! durations), `pre_session` (the CSRF token before a login), `card` (a
//! stream's summary), then one file per page: `setup`, `login`,
//! `dashboard`, `stream`, `editor`, `preview`, `settings`,
//! `mqtt_settings`, `access` and `password`.

mod access;
mod availability;
mod card;
mod dashboard;
mod editor;
mod form;
mod format;
mod login;
mod mqtt_settings;
mod network_settings;
mod password;
mod pre_session;
mod preview;
mod settings;
mod setup;
mod stream;

use askama::Template;

use super::handler::{get_only, Req, Resp};
use super::routes::Route;
use super::{auth, HttpError, WebCtx};
use crate::config::{Config, StreamConfig};

pub(crate) use form::save as save_config;
pub(crate) use format::fmt_duration;
pub use format::{ago, fmt_time};
pub use login::login;
pub use setup::setup;

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
    /// Why the daemon runs degraded (data directory not usable, data in
    /// RAM): shown to everyone, in red, on every page.
    pub data_degraded: Option<String>,
    /// Why the box itself has no network, while it has none (failing
    /// cameras are then not counted as down).
    pub box_offline: Option<String>,
    /// An update that did not become healthy and was rolled back (the
    /// health gate's note), for a session, until dismissed on the System page.
    pub rolled_back: Option<String>,
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
        data_degraded: crate::system::health::global().degraded(),
        box_offline: ctx.monitor.as_ref().and_then(|m| m.link.last()),
        rolled_back: session
            .and_then(|_| ctx.gui.updates.rolled_back())
            .map(|r| rolled_back_line(&r)),
    }
}

/// "The update to 2.0.1 failed and was rolled back to …": the health gate's
/// note in a sentence.
pub(crate) fn rolled_back_line(r: &crate::system::update::RolledBack) -> String {
    format!(
        "The update to {} failed and was rolled back to {} (slot {} was not kept, {}): {}",
        if r.version.is_empty() {
            "a new version"
        } else {
            &r.version
        },
        crate::system::update::running().describe(),
        r.slot,
        r.time,
        r.reason
    )
}

/// The fixed sentence for a `?msg=` code (never echoes user input).
pub(crate) fn flash_for(code: Option<String>) -> Option<String> {
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
        "restored" => "Backup restored. Log in with the password of the box the backup came from.",
        "rebooting" => {
            "Rebooting into the installed update; this page answers again when the box is back."
        }
        _ => return None,
    };
    Some(s.to_owned())
}

pub(crate) fn render<T: Template>(status: u16, t: &T) -> Result<Resp, HttpError> {
    let body = t.render().map_err(|e| {
        tracing::error!("template: {e}");
        HttpError::new(500, "the page could not be rendered")
    })?;
    Ok(Resp::html(status, body))
}

/// A request behind the login (the gate has checked the session and CSRF):
/// what every logged-in page works with.
#[derive(Clone, Copy)]
struct LoggedIn<'a> {
    ctx: &'a WebCtx,
    cfg: &'a Config,
    sess: &'a auth::Session,
    req: &'a Req,
}

impl<'a> LoggedIn<'a> {
    /// The page's frame, without a flash message.
    fn chrome(&self, title: impl Into<String>, nav: &'static str) -> Chrome {
        chrome(self.ctx, self.cfg, Some(self.sess), title, nav)
    }

    /// The page's frame with the flash message its `?msg=` names.
    fn chrome_with_flash(&self, title: impl Into<String>, nav: &'static str) -> Chrome {
        Chrome {
            flash: flash_for(self.req.query_param("msg")),
            ..self.chrome(title, nav)
        }
    }

    /// The configured stream `name`, or 404.
    fn stream(&self, name: &str) -> Result<&'a StreamConfig, HttpError> {
        self.cfg
            .streams
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| HttpError::new(404, "no stream with this name"))
    }
}

/// The logged-in pages (the gate has checked the session and CSRF).
pub fn page(
    ctx: &WebCtx,
    db: &mut Option<rusqlite::Connection>,
    cfg: &Config,
    route: &Route,
    req: &Req,
    session: Option<(&str, &auth::Session)>,
) -> Result<Resp, HttpError> {
    let Some((token, sess)) = session else {
        return Err(HttpError::new(403, "log in first"));
    };
    let v = LoggedIn {
        ctx,
        cfg,
        sess,
        req,
    };
    let post = req.is_post();
    match route {
        Route::Dashboard => get_only(req).and_then(|_| dashboard::dashboard(v)),
        Route::Logout if post => {
            ctx.gui.sessions.remove(token);
            Ok(Resp::redirect("/login?msg=logout")
                .with_header("Set-Cookie", auth::set_cookie(auth::SESSION_COOKIE, "", 0)))
        }
        Route::AddStream => editor::stream_form(v, None),
        Route::Stream(n) => get_only(req).and_then(|_| stream::stream_page(v, db, n)),
        Route::EditStream(n) => editor::stream_form(v, Some(n)),
        Route::DeleteStream(n) => editor::delete_stream(v, n),
        Route::EnableStream(n) if post => editor::enable_stream(v, n),
        Route::Preview(n) => preview::preview(v, n),
        Route::Frame(n) => get_only(req).and_then(|_| preview::frame(ctx, n)),
        Route::Settings => settings::settings(v),
        Route::SettingsMqtt => mqtt_settings::mqtt_settings(v),
        Route::SettingsNetwork => network_settings::network_settings(v),
        Route::SettingsAccess => access::access(v),
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
