//! The web GUI over HTTP, against the real daemon, one concern per file:
//! first-boot setup, login and sessions, CSRF and request limits, every
//! route's status and content type, the stream editor with hot reload,
//! "Check now" previews from real RTSP/HTTP cameras, escaping and secret
//! redaction, API tokens, `streampulse passwd`, and the Chromium
//! end-to-end flow (`tests/e2e/flow.mjs`).
//!
//! This file holds what the web tests, the security tests and the live
//! tests share: the [`Browser`], a daemon in a temp dir ([`start`]), and
//! first-boot setup and login ([`set_up`], [`log_in`], [`logged_in`]).

mod browser; // a cookie-keeping client that never follows redirects

mod chromium; // the GUI flow in headless Chromium (tests/e2e/flow.mjs)
mod editor; // the stream editor and settings write config.yaml; the daemon hot-reloads
mod escaping; // a script-like stream name shown as text; no password anywhere
mod login; // login, session cookies, logout, lockout, password change
mod passwd; // `streampulse passwd`
mod previews; // "Check now" previews from real cameras
mod routes; // every route's status and type; CSRF, origin, body limits, methods
mod setup; // first boot: /setup, its validation, then gone for good
mod tokens; // API tokens and web.public_status

use std::path::PathBuf;

pub(crate) use browser::{Browser, Page};

use crate::app::App;
use crate::util::temp_dir;

pub(crate) const PASSWORD: &str = "correct horse battery";
pub(crate) const CAM_SECRET: &str = "Cam-S3cret-9f2";
pub(crate) const XSS: &str = "<script>alert(1)</script>";

/// A daemon with its config file and data dir.
pub(crate) struct Box_ {
    pub(crate) app: App,
    pub(crate) config: PathBuf,
    pub(crate) _dir: tempfile::TempDir,
}

/// Starts the daemon on `config` (written to a fresh temp dir), not set up.
pub(crate) fn start(name: &str, config: &str) -> Box_ {
    let dir = temp_dir(name);
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let app = App::start(&path, &dir.path().join("data"));
    Box_ {
        app,
        config: path,
        _dir: dir,
    }
}

/// Runs first-boot setup with [`PASSWORD`].
pub(crate) fn set_up(b: &mut Browser) {
    let p = b.get("/setup");
    assert_eq!(p.status, 200, "{}", p.text());
    let pre = p.hidden("pre");
    let r = b.post(
        "/setup",
        &[
            ("pre", &pre),
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("device_name", "test box"),
            ("timezone", "Asia/Kolkata"),
        ],
    );
    assert_eq!(r.status, 303, "setup: {}", r.text());
    assert_eq!(r.location(), "/login?msg=setup");
}

/// Logs in with `password`; returns the answer.
pub(crate) fn log_in(b: &mut Browser, password: &str, next: &str) -> Page {
    let p = b.get("/login");
    assert_eq!(p.status, 200, "{}", p.text());
    let pre = p.hidden("pre");
    b.post(
        "/login",
        &[("pre", &pre), ("password", password), ("next", next)],
    )
}

/// A set-up box and a logged-in browser.
pub(crate) fn logged_in(name: &str, config: &str) -> (Box_, Browser) {
    let bx = start(name, config);
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
    let r = log_in(&mut b, PASSWORD, "/");
    assert_eq!(r.status, 303, "login: {}", r.text());
    (bx, b)
}
