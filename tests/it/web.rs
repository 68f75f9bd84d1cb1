//! The web GUI over HTTP, against the real daemon: first-boot setup, login
//! and sessions, CSRF and request limits, every route's status and content
//! type, the stream editor with hot reload, "Check now" previews from real
//! RTSP/HTTP cameras, escaping, secret redaction, API tokens, and the
//! Chromium end-to-end flow (`tests/e2e/flow.mjs`).
//!
//! [`Browser`] is a tiny cookie-keeping client that never follows redirects,
//! so each test sees exactly the status, `Location` and `Set-Cookie` a
//! browser would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::app::{App, TEST_TOKEN};
use super::util::{manifest_dir, temp_dir, RtspServer, SnapshotServer};

pub(super) const PASSWORD: &str = "correct horse battery";
pub(super) const CAM_SECRET: &str = "Cam-S3cret-9f2";
pub(super) const XSS: &str = "<script>alert(1)</script>";

/// One answer.
#[derive(Debug)]
pub(super) struct Page {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Page {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(super) fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub(super) fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }
    /// The value of the hidden input `name` (the first one).
    pub(super) fn hidden(&self, name: &str) -> String {
        let t = self.text();
        let key = format!("name=\"{name}\" value=\"");
        let i = t
            .find(&key)
            .unwrap_or_else(|| panic!("no hidden {name} in:\n{t}"));
        t[i + key.len()..].split('"').next().unwrap().to_owned()
    }
    /// The text of the element with `id` (up to the next `<`).
    pub(super) fn by_id(&self, id: &str) -> Option<String> {
        let t = self.text();
        let key = format!("id=\"{id}\"");
        let i = t.find(&key)?;
        let rest = &t[i..];
        let start = rest.find('>')? + 1;
        Some(rest[start..].split('<').next()?.to_owned())
    }
    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A cookie-keeping client that does not follow redirects.
pub(super) struct Browser {
    pub(super) base: String,
    agent: ureq::Agent,
    pub(super) jar: BTreeMap<String, String>,
    /// Extra headers sent with every request.
    pub(super) extra: Vec<(String, String)>,
}

impl Browser {
    pub(super) fn new(app: &App) -> Browser {
        Browser {
            base: format!("http://{}", app.addr),
            agent: ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build(),
            ),
            jar: BTreeMap::new(),
            extra: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, resp: &ureq::http::Response<ureq::Body>) -> Vec<(String, String)> {
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        for (k, v) in &headers {
            if k == "set-cookie" {
                let first = v.split(';').next().unwrap_or("");
                if let Some((name, value)) = first.split_once('=') {
                    if v.contains("Max-Age=0") || value.is_empty() {
                        self.jar.remove(name);
                    } else {
                        self.jar.insert(name.to_owned(), value.to_owned());
                    }
                }
            }
        }
        headers
    }

    fn finish(&mut self, mut resp: ureq::http::Response<ureq::Body>) -> Page {
        let headers = self.keep(&resp);
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub(super) fn get(&mut self, path: &str) -> Page {
        let mut rq = self.agent.get(&format!("{}{path}", self.base));
        if !self.jar.is_empty() {
            rq = rq.header("Cookie", &self.cookie_header());
        }
        for (k, v) in &self.extra {
            rq = rq.header(k, v);
        }
        let resp = rq.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.finish(resp)
    }

    /// POSTs a form as a browser on this site would (same Origin).
    pub(super) fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.post_raw(path, "application/x-www-form-urlencoded", &body, true)
    }

    pub(super) fn post_raw(
        &mut self,
        path: &str,
        ctype: &str,
        body: &str,
        same_origin: bool,
    ) -> Page {
        let mut rq = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Content-Type", ctype);
        if same_origin {
            rq = rq.header("Origin", &self.base);
        }
        if !self.jar.is_empty() {
            rq = rq.header("Cookie", &self.cookie_header());
        }
        for (k, v) in &self.extra {
            rq = rq.header(k, v);
        }
        let resp = rq.send(body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.finish(resp)
    }

    /// The CSRF token of the page at `path`.
    pub(super) fn csrf(&mut self, path: &str) -> String {
        let p = self.get(path);
        assert_eq!(p.status, 200, "GET {path}: {}", p.text());
        p.hidden("csrf")
    }
}

/// A daemon with its config file and data dir.
pub(super) struct Box_ {
    pub(super) app: App,
    pub(super) config: PathBuf,
    pub(super) _dir: tempfile::TempDir,
}

pub(super) fn start(name: &str, config: &str) -> Box_ {
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
pub(super) fn set_up(b: &mut Browser) {
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
pub(super) fn log_in(b: &mut Browser, password: &str, next: &str) -> Page {
    let p = b.get("/login");
    assert_eq!(p.status, 200, "{}", p.text());
    let pre = p.hidden("pre");
    b.post(
        "/login",
        &[("pre", &pre), ("password", password), ("next", next)],
    )
}

/// A set-up box and a logged-in browser.
pub(super) fn logged_in(name: &str, config: &str) -> (Box_, Browser) {
    let bx = start(name, config);
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
    let r = log_in(&mut b, PASSWORD, "/");
    assert_eq!(r.status, 303, "login: {}", r.text());
    (bx, b)
}

/// First boot: everything leads to /setup, the API answers 401, setup
/// validates each field, and once done /setup is gone for good.
#[test]
fn first_boot_setup_then_setup_is_gone() {
    let bx = start("web_first_boot", "heartbeat_seconds: 5\n");
    let mut b = Browser::new(&bx.app);
    for path in ["/", "/streams/x", "/settings", "/login", "/add"] {
        let p = b.get(path);
        assert_eq!((p.status, p.location()), (303, "/setup"), "GET {path}");
    }
    for path in ["/api/status", "/api/streams", "/metrics"] {
        let p = b.get(path);
        assert_eq!(p.status, 401, "GET {path}: {}", p.text());
        assert!(p.text().contains("/setup"), "{path}: {}", p.text());
    }
    assert_eq!(b.get("/healthz").status, 200);
    let css = b.get("/static/app.css");
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));

    let p = b.get("/setup");
    assert_eq!(p.status, 200);
    let pre_cookie = p
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("sp_pre="))
        .expect("a pre-session CSRF cookie")
        .to_owned();
    assert!(
        pre_cookie.contains("HttpOnly") && pre_cookie.contains("SameSite=Strict"),
        "{pre_cookie}"
    );
    assert!(p.header("content-security-policy").is_some());
    assert!(
        !p.text()
            .contains("value=\"admin\" autocomplete=\"current-password\""),
        "no default password anywhere"
    );
    let pre = p.hidden("pre");

    // Without the pre-session token (or with another one): refused.
    let r = b.post(
        "/setup",
        &[
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("timezone", "UTC"),
            ("device_name", "x"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = b.post(
        "/setup",
        &[
            ("pre", "forged"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("timezone", "UTC"),
            ("device_name", "x"),
        ],
    );
    assert_eq!(r.status, 403);

    // Each mistake is shown next to its field, and nothing is written.
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Fields, &str, &str); 4] = [
        (
            &[("password", "short"), ("password2", "short")],
            "err-password",
            "at least 10",
        ),
        (
            &[("password", PASSWORD), ("password2", "other password!")],
            "err-password2",
            "differ",
        ),
        (
            &[
                ("password", PASSWORD),
                ("password2", PASSWORD),
                ("timezone", "Mars/Olympus"),
            ],
            "err-timezone",
            "unknown time zone",
        ),
        (
            &[
                ("password", PASSWORD),
                ("password2", PASSWORD),
                ("stream_name", "cam"),
                ("stream_url", "ftp://x/y"),
            ],
            "err-stream_url",
            "unsupported scheme",
        ),
    ];
    for (fields, id, want) in cases {
        let mut all = vec![
            ("pre", pre.as_str()),
            ("device_name", "box"),
            ("timezone", "UTC"),
        ];
        all.extend_from_slice(fields);
        // Later fields win (last value of a name), like a browser's form.
        let r = b.post("/setup", &all);
        assert_eq!(r.status, 400, "{fields:?}: {}", r.text());
        let msg = r
            .by_id(id)
            .unwrap_or_else(|| panic!("no #{id}: {}", r.text()));
        assert!(msg.contains(want), "{id}: {msg}");
        assert!(!r.text().contains(PASSWORD), "a password is echoed back");
    }
    assert!(!std::fs::read_to_string(&bx.config)
        .unwrap()
        .contains("admin_password_hash"));

    // Setup with a first camera.
    let r = b.post(
        "/setup",
        &[
            ("pre", &pre),
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("device_name", "Lab <b>box</b>"),
            ("timezone", "Europe/Berlin"),
            ("stream_name", "first cam"),
            ("stream_url", "rtsp://127.0.0.1:9/x"),
            ("stream_username", "admin"),
            ("stream_password", CAM_SECRET),
        ],
    );
    assert_eq!(
        (r.status, r.location()),
        (303, "/login?msg=setup"),
        "{}",
        r.text()
    );
    let cfg = std::fs::read_to_string(&bx.config).unwrap();
    assert!(cfg.contains("admin_password_hash: $argon2id$"), "{cfg}");
    assert!(
        !cfg.contains(PASSWORD),
        "the admin password itself is never stored"
    );
    assert!(
        cfg.contains("first cam") && cfg.contains("Europe/Berlin"),
        "{cfg}"
    );
    let cfg_parsed = streampulse::config::parse(&cfg, "c").unwrap();
    assert_eq!(
        cfg_parsed.streams[0]
            .target
            .creds
            .as_ref()
            .unwrap()
            .password,
        CAM_SECRET
    );

    // Gone for good.
    assert_eq!(b.get("/setup").status, 404);
    let r = b.post(
        "/setup",
        &[
            ("pre", &pre),
            ("password", "another password"),
            ("password2", "another password"),
            ("timezone", "UTC"),
            ("device_name", "x"),
        ],
    );
    assert_eq!(r.status, 404);
    assert_eq!(std::fs::read_to_string(&bx.config).unwrap(), cfg);
    let p = b.get("/");
    assert_eq!(p.status, 303);
    assert!(p.location().starts_with("/login"), "{}", p.location());
    let login = b.get("/login?msg=setup");
    assert!(login.text().contains("The admin password is set"));
    assert!(
        login.text().contains("Lab &#60;b&#62;box&#60;/b&#62;"),
        "the device name is escaped"
    );
}

/// Login: wrong password refused, the session cookie's flags, `next`,
/// forged cookies, logout, and sessions ending with a restart.
#[test]
fn login_sessions_logout_and_forged_cookies() {
    let bx = start("web_login", "heartbeat_seconds: 5\n");
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);

    let r = log_in(&mut b, "wrong password!", "/");
    assert_eq!(r.status, 401);
    assert!(r.by_id("err-form").unwrap().contains("Wrong password"));
    assert!(!b.jar.contains_key("sp_session"));

    let r = log_in(&mut b, PASSWORD, "/settings");
    assert_eq!((r.status, r.location()), (303, "/settings"));
    let cookie = r
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("sp_session="))
        .expect("a session cookie")
        .to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=86400"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let p = b.get("/");
    assert_eq!(p.status, 200);
    assert!(p.header("content-type").unwrap().starts_with("text/html"));
    // A logged-in visit to /login goes straight on.
    assert_eq!(b.get("/login").status, 303);

    // Only local `next` targets are followed.
    let mut other = Browser::new(&bx.app);
    let r = log_in(&mut other, PASSWORD, "//evil.example/x");
    assert_eq!((r.status, r.location()), (303, "/"));

    // A forged or unknown cookie is a visitor without a session.
    let mut forged = Browser::new(&bx.app);
    forged.jar.insert(
        "sp_session".into(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    );
    let p = forged.get("/streams/x?range=7d");
    assert_eq!(p.status, 303);
    assert_eq!(p.location(), "/login?next=%2Fstreams%2Fx%3Frange%3D7d");
    assert_eq!(forged.get("/api/streams").status, 401);

    // Logout needs the CSRF token, then ends the session.
    let old = b.jar.get("sp_session").cloned().unwrap();
    assert_eq!(b.post("/logout", &[]).status, 403);
    let csrf = b.csrf("/");
    let r = b.post("/logout", &[("csrf", &csrf)]);
    assert_eq!((r.status, r.location()), (303, "/login?msg=logout"));
    assert!(!b.jar.contains_key("sp_session"), "the cookie is cleared");
    b.jar.insert("sp_session".into(), old);
    assert_eq!(b.get("/").status, 303, "the old cookie no longer works");

    // Sessions live in memory: a restart ends them all.
    let mut other = Browser::new(&bx.app);
    let r = log_in(&mut other, PASSWORD, "/");
    assert_eq!(r.status, 303);
    assert_eq!(other.get("/").status, 200);
    let dir = bx._dir;
    let config = bx.config;
    drop(bx.app);
    let app = App::start(&config, &dir.path().join("data"));
    other.base = format!("http://{}", app.addr);
    let p = other.get("/");
    assert_eq!(p.status, 303);
    assert!(p.location().starts_with("/login"));
}

/// Five wrong passwords from one address lock it out for a while, even for
/// the right password.
#[test]
fn login_rate_limit() {
    let bx = start("web_ratelimit", "heartbeat_seconds: 5\n");
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
    for i in 0..5 {
        let r = log_in(&mut b, &format!("wrong password {i}"), "/");
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = log_in(&mut b, PASSWORD, "/");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r
        .by_id("err-form")
        .unwrap()
        .contains("Too many failed logins"));
    assert!(!b.jar.contains_key("sp_session"));
}

/// Every state-changing request needs the session's CSRF token and a
/// same-site origin; bodies are capped; methods are checked.
#[test]
fn csrf_origin_methods_and_body_limits() {
    let (bx, mut b) = logged_in("web_csrf", "heartbeat_seconds: 5\n");
    let before = std::fs::read_to_string(&bx.config).unwrap();
    let form = [
        ("name", "cam"),
        ("url", "rtsp://127.0.0.1:9/x"),
        ("enabled", "1"),
    ];

    let r = b.post("/add", &form);
    assert_eq!(r.status, 403, "no token: {}", r.text());
    let mut with_wrong = form.to_vec();
    with_wrong.push(("csrf", "not-the-token"));
    assert_eq!(b.post("/add", &with_wrong).status, 403);

    let csrf = b.csrf("/add");
    let mut good = form.to_vec();
    good.push(("csrf", &csrf));
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&good)
        .finish();
    // Right token, but from another site.
    b.extra = vec![("Origin".into(), "http://evil.example".into())];
    let r = b.post_raw("/add", "application/x-www-form-urlencoded", &body, false);
    assert_eq!(r.status, 403, "{}", r.text());
    b.extra = vec![("Sec-Fetch-Site".into(), "cross-site".into())];
    assert_eq!(
        b.post_raw("/add", "application/x-www-form-urlencoded", &body, false)
            .status,
        403
    );
    b.extra.clear();
    assert_eq!(
        b.post_raw("/add", "text/plain", &body, true).status,
        415,
        "only urlencoded forms"
    );
    // A session cookie alone (no token) is not enough even for logout.
    assert_eq!(b.post("/logout", &[]).status, 403);
    assert_eq!(
        std::fs::read_to_string(&bx.config).unwrap(),
        before,
        "nothing written"
    );

    // Oversized bodies: 413 before anything else.
    let big = "x=".to_owned() + &"a".repeat(100_000);
    let r = b.post_raw("/add", "application/x-www-form-urlencoded", &big, true);
    assert_eq!(r.status, 413);

    // Methods.
    assert_eq!(b.get("/logout").status, 405);
    let csrf2 = b.csrf("/");
    assert_eq!(b.post("/api/status", &[("csrf", &csrf2)]).status, 405);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let r = agent
        .put(&format!("http://{}/api/status", bx.app.addr))
        .send("")
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // And the right request works.
    let r = b.post_raw("/add", "application/x-www-form-urlencoded", &body, true);
    assert_eq!(r.status, 303, "{}", r.text());
}

/// Every route, logged in and not: status and content type.
#[test]
fn every_route_answers() {
    let (bx, mut b) = logged_in(
        "web_routes",
        "heartbeat_seconds: 5\nstreams:\n- name: cam x\n  url: rtsp://127.0.0.1:9/x\n",
    );
    let html = "text/html; charset=utf-8";
    let json = "application/json";
    let table: &[(&str, u16, &str)] = &[
        ("/", 200, html),
        ("/add", 200, html),
        ("/settings", 200, html),
        ("/settings/mqtt", 200, html),
        ("/settings/access", 200, html),
        ("/streams/cam%20x", 200, html),
        ("/streams/cam%20x?range=7d", 200, html),
        ("/streams/cam%20x/edit", 200, html),
        ("/streams/cam%20x/delete", 200, html),
        ("/streams/cam%20x/preview", 200, html),
        ("/streams/cam%20x/frame.jpg", 404, html),
        ("/streams/cam%20x/enable", 405, html),
        ("/streams/nope", 404, html),
        ("/streams/nope/edit", 404, html),
        ("/streams/cam%20x/nope", 404, html),
        ("/static/app.js", 200, "text/javascript; charset=utf-8"),
        ("/static/icon.svg", 200, "image/svg+xml"),
        ("/favicon.ico", 200, "image/svg+xml"),
        ("/static/nope.js", 404, html),
        ("/setup", 404, html),
        ("/login", 303, "text/plain; charset=utf-8"),
        ("/logout", 405, html),
        ("/api/status", 200, json),
        ("/api/streams", 200, json),
        ("/api/streams/nope/history", 404, json),
        ("/healthz", 200, json),
        ("/metrics", 200, "text/plain; version=0.0.4; charset=utf-8"),
        ("/nope", 404, html),
    ];
    for (path, status, ctype) in table {
        let p = b.get(path);
        assert_eq!(p.status, *status, "GET {path}: {}", p.text());
        assert_eq!(p.header("content-type"), Some(*ctype), "GET {path}");
        assert_eq!(p.header("x-content-type-options"), Some("nosniff"));
        if ctype.starts_with("text/html") {
            let csp = p.header("content-security-policy").unwrap_or("");
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
            assert_eq!(p.header("x-frame-options"), Some("DENY"));
        }
    }
    // HEAD answers like GET without a body.
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let r = agent
        .head(&format!("http://{}/healthz", bx.app.addr))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Without a session: pages go to the login, the API answers 401.
    let mut anon = Browser::new(&bx.app);
    for (path, status, _) in table {
        let p = anon.get(path);
        let public = path.starts_with("/static/")
            || *path == "/favicon.ico"
            || *path == "/healthz"
            || *path == "/setup"
            || *path == "/nope"
            || *path == "/streams/cam%20x/nope";
        if public {
            assert_eq!(p.status, *status, "anonymous GET {path}");
        } else if path.starts_with("/api/") || *path == "/metrics" {
            assert_eq!(p.status, 401, "anonymous GET {path}");
            assert!(p.header("www-authenticate").is_some());
        } else if *path == "/login" {
            assert_eq!(p.status, 200);
        } else {
            assert_eq!(p.status, 303, "anonymous GET {path}");
            assert!(
                p.location().starts_with("/login?next="),
                "{path}: {}",
                p.location()
            );
        }
    }
}

/// The editor writes config.yaml atomically (with a backup) and the daemon
/// applies it at once: add, validation errors, edit with the password kept,
/// disable/enable, settings, MQTT settings, delete.
#[test]
fn editor_changes_config_and_monitor_hot_reloads() {
    let rtsp = RtspServer::start();
    let (bx, mut b) = logged_in("web_editor", "heartbeat_seconds: 5\n");
    let app = &bx.app;
    let csrf = b.csrf("/add");

    // Validation errors next to the field; nothing written.
    let before = std::fs::read_to_string(&bx.config).unwrap();
    for (fields, id, want) in [
        (
            vec![("name", "a"), ("url", "not a url")],
            "err-url",
            "not a valid URL",
        ),
        (
            vec![("name", ""), ("url", "rtsp://h/x")],
            "err-name",
            "must not be empty",
        ),
        (
            vec![("name", "a"), ("url", "rtsp://h/x"), ("interval", "2")],
            "err-interval",
            "at least 5",
        ),
        (
            vec![("name", "a"), ("url", "rtsp://h/x"), ("interval", "soon")],
            "err-interval",
            "whole number",
        ),
        (
            vec![
                ("name", "a"),
                ("url", "http://h/x"),
                ("transport", "udp"),
                ("kind", "rtsp"),
            ],
            "err-url",
            "does not fit kind",
        ),
    ] {
        let mut f = fields.clone();
        f.push(("csrf", &csrf));
        f.push(("enabled", "1"));
        let r = b.post("/add", &f);
        assert_eq!(r.status, 400, "{fields:?}");
        let msg = r
            .by_id(id)
            .unwrap_or_else(|| panic!("no #{id} in {}", r.text()));
        assert!(msg.contains(want), "{id}: {msg}");
    }
    assert_eq!(std::fs::read_to_string(&bx.config).unwrap(), before);

    // Add: credentials typed into the URL are moved to the fields.
    let url = rtsp.url_with_credentials("/digest", "admin", "s3cret-Pa55");
    let r = b.post(
        "/add",
        &[
            ("csrf", &csrf),
            ("name", "Door cam"),
            ("url", &url),
            ("enabled", "1"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), "/streams/Door%20cam?msg=added");
    let cfg = std::fs::read_to_string(&bx.config).unwrap();
    assert!(
        cfg.contains("username: admin") && cfg.contains("password: s3cret-Pa55"),
        "{cfg}"
    );
    assert!(bx.config.with_file_name("config.yaml.bak").exists());
    // Hot reload: already on the board when the redirect arrives.
    let (_, status) = app.get("/api/status");
    assert!(status.get("Door cam").is_some(), "{status}");
    app.wait_status(Duration::from_secs(30), "Door cam up", |v| {
        v["Door cam"]["state"] == "up"
    });

    // Duplicate names are refused (ignoring case).
    let r = b.post(
        "/add",
        &[
            ("csrf", &csrf),
            ("name", "door CAM"),
            ("url", &rtsp.url("/h264")),
            ("enabled", "1"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.by_id("err-name").unwrap().contains("already"));

    // The edit form never shows the password; blank keeps it.
    let p = b.get("/streams/Door%20cam/edit");
    assert!(
        !p.text().contains("s3cret-Pa55"),
        "password in the edit form"
    );
    assert!(p.text().contains("A password is stored"));
    assert!(p.text().contains(&rtsp.url("/digest")));
    let r = b.post(
        "/streams/Door%20cam/edit",
        &[
            ("csrf", &csrf),
            ("name", "Door cam"),
            ("url", &rtsp.url("/digest")),
            ("username", "admin"),
            ("password", ""),
            ("interval", "6"),
            ("enabled", "1"),
            ("transport", "tcp"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let c = streampulse::config::load(&bx.config).unwrap();
    assert_eq!(
        c.streams[0].target.creds.as_ref().unwrap().password,
        "s3cret-Pa55"
    );
    assert_eq!(c.streams[0].interval, Duration::from_secs(6));
    let (_, streams) = app.get("/api/streams");
    assert_eq!(streams[0]["interval_s"], 6, "{streams}");

    // Disable and enable.
    let r = b.post(
        "/streams/Door%20cam/enable",
        &[("csrf", &csrf), ("enabled", "0")],
    );
    assert_eq!(r.location(), "/streams/Door%20cam?msg=disabled");
    let (_, status) = app.get("/api/status");
    assert_eq!(status["Door cam"]["enabled"], false, "{status}");
    let r = b.post(
        "/streams/Door%20cam/enable",
        &[("csrf", &csrf), ("enabled", "1")],
    );
    assert_eq!(r.location(), "/streams/Door%20cam?msg=enabled");
    let (_, status) = app.get("/api/status");
    assert_eq!(status["Door cam"]["enabled"], true);

    // General settings: errors by field, then a time zone change shows in the API.
    let r = b.post(
        "/settings",
        &[
            ("csrf", &csrf),
            ("device_name", "box"),
            ("timezone", "Nowhere/Special"),
            ("heartbeat_seconds", "3"),
            ("heartbeat_days", "7"),
            ("rollup_days", "730"),
            ("session_hours", "24"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.by_id("err-timezone").is_some() && r.by_id("err-heartbeat_seconds").is_some());
    let r = b.post(
        "/settings",
        &[
            ("csrf", &csrf),
            ("device_name", "box"),
            ("timezone", "America/New_York"),
            ("heartbeat_seconds", "30"),
            ("heartbeat_days", "3"),
            ("rollup_days", "365"),
            ("session_hours", "24"),
        ],
    );
    assert_eq!(
        (r.status, r.location()),
        (303, "/settings?msg=saved"),
        "{}",
        r.text()
    );
    let c = streampulse::config::load(&bx.config).unwrap();
    assert_eq!(
        (c.timezone.as_str(), c.heartbeat_retention_days),
        ("America/New_York", 3)
    );
    let (_, h) = app.get("/healthz");
    assert_eq!(h["timezone"], "America/New_York", "{h}");

    // MQTT settings: validation, then a disabled block is written; the stream survives.
    let r = b.post(
        "/settings/mqtt",
        &[
            ("csrf", &csrf),
            ("enabled", "1"),
            ("host", "mqtt://x"),
            ("transport", "tcp"),
            ("topic", "a/b"),
            ("prefix", "sp"),
            ("interval", "30"),
            ("qos", "0"),
            ("tls_verify", "1"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.by_id("err-host").is_some(), "{}", r.text());
    let r = b.post(
        "/settings/mqtt",
        &[
            ("csrf", &csrf),
            ("host", "broker.invalid"),
            ("transport", "tls"),
            ("username", "u"),
            ("password", "mqtt-pw-1"),
            ("topic", "home/cams"),
            ("prefix", "sp"),
            ("interval", "15"),
            ("qos", "1"),
            ("tls_verify", "1"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let c = streampulse::config::load(&bx.config).unwrap();
    let m = c.mqtt.clone().unwrap();
    assert!(!m.enabled);
    assert_eq!((m.topic.as_str(), m.qos, m.port), ("home/cams", 1, 8883));
    assert_eq!(c.streams.len(), 1);
    let p = b.get("/settings/mqtt");
    assert!(!p.text().contains("mqtt-pw-1"), "MQTT password shown");
    assert!(p.text().contains("A password is stored"));

    // Delete.
    let p = b.get("/streams/Door%20cam/delete");
    assert!(p.text().contains("Delete Door cam?"));
    let r = b.post("/streams/Door%20cam/delete", &[("csrf", &csrf)]);
    assert_eq!((r.status, r.location()), (303, "/?msg=deleted"));
    assert!(streampulse::config::load(&bx.config)
        .unwrap()
        .streams
        .is_empty());
    let (_, status) = app.get("/api/status");
    assert!(status.get("Door cam").is_none(), "{status}");
    assert_eq!(b.get("/streams/Door%20cam").status, 404);
}

/// A stream called `<script>alert(1)</script>` is shown as text on every
/// page, and no page, JSON answer or log shows a camera or MQTT password.
#[test]
fn escaping_and_secret_redaction() {
    let rtsp = RtspServer::start();
    let config = format!(
        "heartbeat_seconds: 5\nmqtt:\n  enabled: false\n  host: broker.invalid\n  username: u\n  password: {CAM_SECRET}-mqtt\n\
         streams:\n- name: '{XSS}'\n  url: {}\n- name: plain\n  url: {}\n  username: admin\n  password: {CAM_SECRET}\n",
        rtsp.url_with_credentials("/digest", "admin", CAM_SECRET),
        rtsp.url("/basic"),
    );
    let (bx, mut b) = logged_in("web_escaping", &config);
    bx.app
        .wait_status(Duration::from_secs(30), "both probed", |v| {
            v[XSS]["status"] != "" && v["plain"]["status"] != ""
        });
    let enc = "%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
    let csrf = b.csrf("/");
    assert_eq!(
        b.post(&format!("/streams/{enc}/preview"), &[("csrf", &csrf)])
            .status,
        303
    );
    let pages = [
        "/".to_owned(),
        format!("/streams/{enc}"),
        format!("/streams/{enc}/edit"),
        format!("/streams/{enc}/delete"),
        format!("/streams/{enc}/preview"),
        "/streams/plain".into(),
        "/streams/plain/edit".into(),
        "/settings".into(),
        "/settings/mqtt".into(),
        "/settings/access".into(),
    ];
    for path in &pages {
        let p = b.get(path);
        assert_eq!(p.status, 200, "{path}");
        let t = p.text();
        assert!(!t.contains(XSS), "{path} has the raw script tag");
        assert!(!t.contains(CAM_SECRET), "{path} shows a password");
        if !path.starts_with("/settings") && !path.contains("plain") {
            assert!(
                t.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
                "{path} should show the name as text"
            );
        }
    }
    for path in ["/api/status", "/api/streams", "/metrics", "/healthz"] {
        let t = b.get(path).text();
        assert!(!t.contains(CAM_SECRET), "{path} shows a password");
    }
    // An error page that echoes a name escapes it too.
    let p = b.get("/streams/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
    assert_eq!(p.status, 404);
    assert!(!p.text().contains("<img src=x"));
    assert!(
        !bx.app.log_text().contains(CAM_SECRET),
        "a password in the log"
    );
}

/// API tokens: made on the Access page and shown once, accepted as Bearer
/// tokens by the JSON API and /metrics, refused once revoked. With
/// `web.public_status: true`, /api/status and /metrics need nothing.
#[test]
fn api_tokens_and_public_status() {
    let (bx, mut b) = logged_in("web_tokens", "heartbeat_seconds: 5\n");
    let csrf = b.csrf("/settings/access");
    let r = b.post(
        "/settings/access",
        &[
            ("csrf", &csrf),
            ("action", "create_token"),
            ("token_name", "Home Assistant"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.by_id("new-token").expect("the new token is shown");
    assert!(token.starts_with("sp_"), "{token}");
    let listed = b.get("/settings/access");
    assert!(listed.text().contains("Home Assistant"));
    assert!(
        !listed.text().contains(&token),
        "a token is shown only once"
    );
    let data = bx.config.with_file_name("data");
    assert!(!std::fs::read_to_string(data.join("api-tokens.json"))
        .unwrap()
        .contains(&token));

    let mut script = Browser::new(&bx.app);
    for path in ["/api/status", "/api/streams", "/metrics"] {
        assert_eq!(script.get(path).status, 401, "{path} without a token");
    }
    script.extra = vec![("Authorization".into(), format!("Bearer {token}"))];
    for path in ["/api/status", "/api/streams", "/metrics"] {
        assert_eq!(script.get(path).status, 200, "{path} with the token");
    }
    assert!(script.get("/api/streams").json().is_array());
    assert_eq!(
        script.get("/").status,
        303,
        "tokens are for the API, not pages"
    );
    script.extra = vec![("Authorization".into(), format!("Bearer {token}x"))];
    assert_eq!(script.get("/api/status").status, 401);

    let t = r.text();
    let row = &t[t
        .find("<td>Home Assistant</td>")
        .expect("the token is listed")..];
    let id = row
        .split("name=\"id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let r = b.post(
        "/settings/access",
        &[("csrf", &csrf), ("action", "revoke"), ("id", &id)],
    );
    assert_eq!(r.status, 303);
    script.extra = vec![("Authorization".into(), format!("Bearer {token}"))];
    assert_eq!(script.get("/api/status").status, 401, "revoked");

    // public_status, through the settings page.
    let r = b.post(
        "/settings",
        &[
            ("csrf", &csrf),
            ("device_name", "box"),
            ("timezone", "UTC"),
            ("heartbeat_seconds", "5"),
            ("heartbeat_days", "7"),
            ("rollup_days", "730"),
            ("public_status", "1"),
            ("session_hours", "24"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let mut anon = Browser::new(&bx.app);
    assert_eq!(anon.get("/api/status").status, 200);
    assert_eq!(anon.get("/metrics").status, 200);
    assert_eq!(
        anon.get("/api/streams").status,
        401,
        "only status and metrics are public"
    );
    assert_eq!(anon.get("/").status, 303);

    // The integration tests' seeded token works too (App::get uses it).
    let mut seeded = Browser::new(&bx.app);
    seeded.extra = vec![("Authorization".into(), format!("Bearer {TEST_TOKEN}"))];
    assert_eq!(seeded.get("/api/streams").status, 200);
}

/// Changing the password ends the other sessions; this browser stays in,
/// and only the new password works afterwards.
#[test]
fn password_change_ends_other_sessions() {
    let (bx, mut b) = logged_in("web_password", "heartbeat_seconds: 5\n");
    let mut other = Browser::new(&bx.app);
    assert_eq!(log_in(&mut other, PASSWORD, "/").status, 303);
    assert_eq!(other.get("/").status, 200);
    let csrf = b.csrf("/settings/access");
    let new = "a much better passphrase";
    let r = b.post(
        "/settings/access",
        &[
            ("csrf", &csrf),
            ("action", "password"),
            ("current_password", "wrong one!!"),
            ("new_password", new),
            ("new_password2", new),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.by_id("err-current_password").is_some());
    let r = b.post(
        "/settings/access",
        &[
            ("csrf", &csrf),
            ("action", "password"),
            ("current_password", PASSWORD),
            ("new_password", new),
            ("new_password2", new),
        ],
    );
    assert_eq!(
        (r.status, r.location()),
        (303, "/settings/access?msg=password"),
        "{}",
        r.text()
    );
    assert_eq!(b.get("/").status, 200, "this browser stays logged in");
    assert_eq!(other.get("/").status, 303, "the other session ended");
    let mut third = Browser::new(&bx.app);
    assert_eq!(log_in(&mut third, PASSWORD, "/").status, 401);
    assert_eq!(log_in(&mut third, new, "/").status, 303);
}

fn decode_stats(jpeg: &[u8]) -> (u32, u32, f64) {
    let img = image::load_from_memory(jpeg)
        .expect("the preview is a decodable JPEG")
        .to_luma8();
    let n = img.pixels().len() as f64;
    let mean = img.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / n;
    let var = img
        .pixels()
        .map(|p| (f64::from(p.0[0]) - mean).powi(2))
        .sum::<f64>()
        / n;
    (img.width(), img.height(), var.sqrt())
}

/// "Check now": H.264 decoded on the box, MJPEG over RTSP and a snapshot
/// shown as JPEGs with stage timings; H.265 says honestly that there is no
/// preview; a dead camera shows the failure.
#[test]
fn check_now_previews() {
    let rtsp = RtspServer::start();
    let snap = SnapshotServer::start();
    let config = format!(
        "heartbeat_seconds: 60\nstreams:\n\
         - name: h264\n  url: {}\n- name: mjpeg\n  url: {}\n- name: h265\n  url: {}\n\
         - name: snap\n  url: {}\n- name: dead\n  url: rtsp://127.0.0.1:9/x\n  timeout: 2\n",
        rtsp.url("/h264"),
        rtsp.url("/mjpeg"),
        rtsp.url("/h265"),
        snap.url("snap.jpg"),
    );
    let (_bx, mut b) = logged_in("web_preview", &config);
    let csrf = b.csrf("/");
    for name in ["h264", "mjpeg", "snap"] {
        let r = b.post(&format!("/streams/{name}/preview"), &[("csrf", &csrf)]);
        assert_eq!(
            (r.status, r.location()),
            (303, format!("/streams/{name}/preview").as_str())
        );
        let p = b.get(&format!("/streams/{name}/preview"));
        let t = p.text();
        assert!(t.contains("Video arrives"), "{name}: {t}");
        assert!(t.contains("First frame"), "{name}: stage timings missing");
        assert!(t.contains("id=\"preview-img\""), "{name}: no picture");
        let f = b.get(&format!("/streams/{name}/frame.jpg"));
        assert_eq!(f.status, 200);
        assert_eq!(f.header("content-type"), Some("image/jpeg"));
        let (w, h, sd) = decode_stats(&f.body);
        assert_eq!((w, h), (320, 240), "{name}");
        assert!(sd > 20.0, "{name}: the picture looks blank (sd {sd:.1})");
        // The stream page shows the kept picture.
        assert!(b
            .get(&format!("/streams/{name}"))
            .text()
            .contains("frame.jpg?t="));
    }
    assert_eq!(
        b.get("/streams/snap/frame.jpg").body,
        super::util::sample_jpeg(),
        "a small camera JPEG is shown as it is"
    );

    let r = b.post("/streams/h265/preview", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    let t = b.get("/streams/h265/preview").text();
    assert!(
        t.contains("Video arrives"),
        "the H.265 stream itself is fine: {t}"
    );
    assert!(t.contains("no preview for H.265"), "{t}");
    assert_eq!(b.get("/streams/h265/frame.jpg").status, 404);

    let r = b.post("/streams/dead/preview", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    let t = b.get("/streams/dead/preview").text();
    assert!(t.contains("No video: connect"), "{t}");
}

/// `streampulse passwd` prints a hash the login accepts, or writes it into
/// a config file; short passwords are refused.
#[test]
fn passwd_command() {
    let run = |args: &[&str], stdin: &str| {
        let mut c = super::util::streampulse()
            .arg("passwd")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let out = run(&[], &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(streampulse::credentials::verify_password(PASSWORD, &hash));

    let dir = temp_dir("web_passwd");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "heartbeat_seconds: 20\nstreams: []\n").unwrap();
    let out = run(
        &["--config", cfg.to_str().unwrap()],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = streampulse::config::load(&cfg).unwrap();
    assert!(streampulse::credentials::verify_password(
        PASSWORD,
        c.admin_password_hash.as_deref().unwrap()
    ));
    assert_eq!(c.heartbeat, Duration::from_secs(20), "other settings kept");

    let out = run(&[], "short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least"));
}

/// The flow in Debian's headless Chromium, opened under a
/// non-localhost name (an insecure origin, as on a LAN): setup, login, add
/// the GStreamer RTSP stream, see it UP on the dashboard, a non-blank
/// preview, edit, delete. Screenshots go to `test-output/web/`.
#[test]
fn e2e_chromium_flow() {
    let e2e = manifest_dir().join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `make deps` (npm ci in tests/e2e)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed: run `make deps`"
    );
    let rtsp = RtspServer::start();
    // The browser uses a name, which the box must be told it answers to.
    let bx = start(
        "web_e2e",
        "heartbeat_seconds: 5\nweb:\n  allowed_hosts: [streampulse.test]\n",
    );
    let port = bx.app.addr.rsplit(':').next().unwrap().to_owned();
    let out = manifest_dir().join("test-output/web");
    std::fs::create_dir_all(&out).unwrap();
    let mut child = Command::new("node")
        .arg("flow.mjs")
        .current_dir(&e2e)
        .env("SP_BASE", format!("http://streampulse.test:{port}"))
        .env("SP_RTSP", rtsp.url("/h264"))
        .env("SP_OUT", &out)
        .env("SP_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node should start");
    let status = super::util::wait_or_kill(&mut child, Duration::from_secs(240));
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success() && stdout.contains("E2E OK"),
        "the Chromium flow failed ({status}):\n{stdout}\n{stderr}\ndaemon log tail:\n{}",
        bx.app.log_tail(40)
    );
    for shot in ["setup.png", "dashboard.png", "stream.png", "preview.png"] {
        let p = out.join(shot);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{} missing or empty", p.display());
    }
    // The flow ends logged out with no streams; the file says the same.
    let c = streampulse::config::load(&bx.config).unwrap();
    assert!(c.streams.is_empty() && c.admin_password_hash.is_some());
}
