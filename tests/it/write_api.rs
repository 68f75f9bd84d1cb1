//! Issue 19, item 1: the write API against the real daemon: every route's
//! success, field-named validation errors, refusal without an `admin`
//! token (none 401, `read` 403, `live` 403), camera passwords never in an
//! answer or the log, an idempotent PUT (the second one writes nothing),
//! PATCH changing only what it names, DELETE then 404, "check" against a
//! real RTSP server and a closed port, the daemon running each change at
//! once (`/api/status`), and a session writing with its CSRF header.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::app::{App, TEST_TOKEN};
use crate::util::{closed_port, temp_dir, RtspServer, PASSWORD, USER};
use crate::web::{log_in, set_up, Browser, PASSWORD as ADMIN_PASSWORD};

/// A `read` token seeded next to [`TEST_TOKEN`] (admin).
const READ_TOKEN: &str = "sp_write-api-read-0123456789abcdefghijklmnopq";
/// A `live` token.
const LIVE_TOKEN: &str = "sp_write-api-live-0123456789abcdefghijklmnopq";

/// One answer: status, `Location`, `Retry-After`, body text.
struct Answer {
    status: u16,
    location: Option<String>,
    retry_after: Option<String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

/// A script talking to the box with a token; keeps every answer's text so
/// a test can search them all for secrets.
struct Script {
    base: String,
    agent: ureq::Agent,
    seen: Vec<String>,
}

impl Script {
    fn new(app: &App) -> Script {
        Script {
            base: format!("http://{}", app.addr),
            agent: ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build(),
            ),
            seen: Vec::new(),
        }
    }

    /// `method path` with `token` (None: no Authorization) and a body of
    /// `ctype` (JSON unless said otherwise).
    fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        ctype: &str,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        macro_rules! with_headers {
            ($rq:expr) => {{
                let mut rq = $rq;
                if let Some(a) = &auth {
                    rq = rq.header("Authorization", a);
                }
                rq
            }};
        }
        let resp = match method {
            "GET" => with_headers!(self.agent.get(&url)).call(),
            "DELETE" => with_headers!(self.agent.delete(&url)).call(),
            m => {
                let rq = match m {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => panic!("method {m}"),
                };
                with_headers!(rq)
                    .header("Content-Type", ctype)
                    .send(body.unwrap_or(""))
            }
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (location, retry_after) = (header("location"), header("retry-after"));
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        self.seen.push(text.clone());
        Answer {
            status,
            location,
            retry_after,
            text,
        }
    }

    /// `method path` with the admin token and `body` as JSON.
    fn admin(&mut self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let text = body.map(|b| b.to_string());
        self.send(
            method,
            path,
            Some(TEST_TOKEN),
            text.as_deref(),
            "application/json",
        )
    }
}

/// A daemon on `config` with the read and live tokens seeded too.
fn start(name: &str, config: &str) -> (App, tempfile::TempDir) {
    let dir = temp_dir(name);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (t, scope) in [
        (READ_TOKEN, streampulse::web::auth::Scope::Read),
        (LIVE_TOKEN, streampulse::web::auth::Scope::Live),
    ] {
        streampulse::web::auth::seed_token(&data, "write api test", t, scope).unwrap();
    }
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let app = App::start(&dir.path().join("config.yaml"), &data);
    (app, dir)
}

fn config_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("config.yaml")
}

/// The file's bytes and modification time.
fn snapshot(p: &Path) -> (Vec<u8>, std::time::SystemTime) {
    (
        std::fs::read(p).unwrap(),
        std::fs::metadata(p).unwrap().modified().unwrap(),
    )
}

/// Asserts that no answer and no log line holds `secret`.
fn never_shown(s: &Script, app: &App, secrets: &[&str]) {
    for secret in secrets {
        for t in &s.seen {
            assert!(!t.contains(secret), "an answer shows {secret:?}: {t}");
        }
        let log = app.log_text();
        assert!(!log.contains(secret), "the log shows {secret:?}:\n{log}");
    }
}

/// Every write route: no token 401, a `read` or `live` token 403 (saying
/// which scope is needed), a form body with the admin token 403; nothing
/// is written. `GET /api/streams` stays open to `read`.
#[test]
fn writes_need_an_admin_token() {
    let (app, dir) = start(
        "wapi_refuse",
        "heartbeat_seconds: 60\nstreams:\n- name: cam x\n  url: rtsp://127.0.0.1:9/x\n  timeout: 2\n",
    );
    let before = snapshot(&config_path(&dir));
    let mut s = Script::new(&app);
    let body = json!({"name": "new", "url": "rtsp://127.0.0.1:9/y"}).to_string();
    let cases = [
        ("POST", "/api/streams"),
        ("GET", "/api/streams/cam%20x"),
        ("PUT", "/api/streams/cam%20x"),
        ("PATCH", "/api/streams/cam%20x"),
        ("DELETE", "/api/streams/cam%20x"),
        ("POST", "/api/streams/cam%20x/check"),
        ("GET", "/api/settings"),
        ("PUT", "/api/settings"),
    ];
    for (m, path) in cases {
        let r = s.send(m, path, None, Some(&body), "application/json");
        assert_eq!(r.status, 401, "{m} {path} without a token: {}", r.text);
        assert!(r.json()["error"].is_string(), "{}", r.text);
        for token in [READ_TOKEN, LIVE_TOKEN] {
            let r = s.send(m, path, Some(token), Some(&body), "application/json");
            assert_eq!(r.status, 403, "{m} {path} with {token}: {}", r.text);
            assert!(r.text.contains("admin token"), "{m} {path}: {}", r.text);
        }
        if m != "GET" && m != "DELETE" {
            // A form is what a browser sends; with a token it is refused.
            let r = s.send(
                m,
                path,
                Some(TEST_TOKEN),
                Some("name=new&url=rtsp%3A%2F%2F127.0.0.1%3A9%2Fy"),
                "application/x-www-form-urlencoded",
            );
            assert_eq!(r.status, 403, "{m} {path} as a form: {}", r.text);
            assert!(r.text.contains("application/json"), "{}", r.text);
        }
    }
    let r = s.send("GET", "/api/streams", Some(READ_TOKEN), None, "");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()[0]["name"], "cam x");
    // Methods the routes do not take.
    let r = s.admin("DELETE", "/api/streams", None);
    assert_eq!(r.status, 405, "{}", r.text);
    let r = s.admin("GET", "/api/streams/cam%20x/check", None);
    assert_eq!(r.status, 405, "{}", r.text);
    let r = s.admin("PUT", "/api/status", Some(json!({})));
    assert_eq!(r.status, 405, "{}", r.text);
    // Bodies are capped like every other (64 KiB).
    let big = json!({"name": "x".repeat(100_000)}).to_string();
    let r = s.send(
        "PUT",
        "/api/streams/cam%20x",
        Some(TEST_TOKEN),
        Some(&big),
        "application/json",
    );
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(snapshot(&config_path(&dir)), before, "nothing was written");
}

/// Add, read, replace (twice), change, delete: each answer, what the file
/// holds and what the daemon runs right after, and the camera password
/// (typed into the URL or a field) in no answer and no log line.
#[test]
fn streams_are_added_replaced_changed_and_deleted() {
    let rtsp = RtspServer::start();
    let other_secret = "Other-S3cret-77";
    let (app, dir) = start(
        "wapi_streams",
        "heartbeat_seconds: 60\nstreams:\n- name: cam x\n  url: rtsp://127.0.0.1:9/x\n  timeout: 2\n",
    );
    let config = config_path(&dir);
    let mut s = Script::new(&app);

    // POST: added, credentials moved out of the URL, running at once.
    let url = rtsp.url_with_credentials("/basic", USER, PASSWORD);
    let r = s.admin(
        "POST",
        "/api/streams",
        Some(json!({"name": "Door cam", "url": url, "interval": 10, "timeout": 5})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.location.as_deref(), Some("/api/streams/Door%20cam"));
    let door = r.json();
    assert_eq!(door["name"], "Door cam");
    assert_eq!(door["url"], rtsp.url("/basic"));
    assert_eq!(door["username"], USER);
    assert_eq!(door["has_password"], true);
    assert_eq!(door["interval"], 10);
    assert_eq!(door["kind"], Value::Null);
    let (_, status) = app.get("/api/status");
    assert!(status.get("Door cam").is_some(), "hot-applied: {status:#}");
    app.wait_status(Duration::from_secs(30), "Door cam up", |v| {
        v["Door cam"]["state"] == "up"
    });
    let cfg = streampulse::config::load(&config).unwrap();
    let sc = cfg.streams.iter().find(|s| s.name == "Door cam").unwrap();
    assert_eq!(sc.target.creds.as_ref().unwrap().password, PASSWORD);

    // GET: the same as the POST's answer.
    let r = s.admin("GET", "/api/streams/Door%20cam", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), door);

    // Validation: each wrong field named, nothing written.
    let before = snapshot(&config);
    for (body, fields) in [
        (
            json!({"name": "bad", "url": "ftp://h/x", "interval": 2}),
            vec!["url", "interval"],
        ),
        (
            json!({"name": "door CAM", "url": "rtsp://h/x"}),
            vec!["name"],
        ),
        (json!({"name": "bad", "url": "not a url"}), vec!["url"]),
        (
            json!({"name": "bad", "url": "rtsp://h/x", "interval": "ten", "colour": "red"}),
            vec!["interval", "colour"],
        ),
        (
            json!({"name": "bad", "url": "rtsp://h/x", "password": other_secret}),
            vec!["username"],
        ),
        (json!({"url": "rtsp://h/x"}), vec!["name"]),
    ] {
        let r = s.admin("POST", "/api/streams", Some(body.clone()));
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        let v = r.json();
        for f in fields {
            assert!(v["errors"][f].is_string(), "{body}: {f} not named: {v}");
        }
        assert!(!r.text.contains(other_secret), "{}", r.text);
    }
    let r = s.send(
        "POST",
        "/api/streams",
        Some(TEST_TOKEN),
        Some("{not json"),
        "application/json",
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s.admin("POST", "/api/streams", Some(json!(["a"])));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s.send(
        "POST",
        "/api/streams",
        Some(TEST_TOKEN),
        Some("<stream/>"),
        "application/xml",
    );
    assert_eq!(r.status, 415, "{}", r.text);
    assert_eq!(snapshot(&config), before, "refused requests write nothing");

    // PUT: replace, idempotent. The password is kept when not sent.
    let put = json!({"url": rtsp.url("/basic"), "username": USER, "interval": 20, "timeout": 5});
    let first = s.admin("PUT", "/api/streams/Door%20cam", Some(put.clone()));
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json()["interval"], 20);
    assert_eq!(first.json()["has_password"], true, "kept: {}", first.text);
    let after_first = snapshot(&config);
    std::thread::sleep(Duration::from_millis(50));
    let second = s.admin("PUT", "/api/streams/Door%20cam", Some(put.clone()));
    assert_eq!(
        (second.status, second.json()),
        (200, first.json()),
        "the same PUT, the same answer"
    );
    assert_eq!(
        snapshot(&config),
        after_first,
        "the second PUT wrote nothing"
    );
    assert!(
        app.log_text()
            .contains("stream left as it was by the API (nothing to change) stream=Door cam"),
        "{}",
        app.log_tail(10)
    );
    let cfg = streampulse::config::load(&config).unwrap();
    let sc = cfg.streams.iter().find(|s| s.name == "Door cam").unwrap();
    assert_eq!(sc.interval.as_secs(), 20);
    assert_eq!(sc.target.creds.as_ref().unwrap().password, PASSWORD);
    // PUT of a new name adds it (201), again is a 200 with the same body.
    let yard = json!({"url": "rtsp://127.0.0.1:9/yard", "username": "op", "password": other_secret, "timeout": 2});
    let r = s.admin("PUT", "/api/streams/Yard", Some(yard.clone()));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.location.as_deref(), Some("/api/streams/Yard"));
    let again = s.admin("PUT", "/api/streams/Yard", Some(yard.clone()));
    assert_eq!((again.status, again.json()), (200, r.json()));
    assert_eq!(r.json()["has_password"], true);
    // PUT errors: another name in the body, a bad value.
    let r = s.admin(
        "PUT",
        "/api/streams/Yard",
        Some(json!({"name": "Garden", "url": "rtsp://127.0.0.1:9/yard"})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.json()["errors"]["name"]
        .as_str()
        .unwrap()
        .contains("PATCH"));
    let r = s.admin(
        "PUT",
        "/api/streams/Yard",
        Some(json!({"url": "rtsp://127.0.0.1:9/yard", "timeout": 0})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.json()["errors"]["timeout"].is_string(), "{}", r.text);

    // PATCH: only the keys given change.
    let before_patch = s.admin("GET", "/api/streams/Door%20cam", None).json();
    let r = s.admin(
        "PATCH",
        "/api/streams/Door%20cam",
        Some(json!({"fail_threshold": 3})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let mut want = before_patch.clone();
    want["fail_threshold"] = json!(3);
    assert_eq!(r.json(), want, "only fail_threshold changed");
    let r = s.admin(
        "PATCH",
        "/api/streams/Door%20cam",
        Some(json!({"enabled": false})),
    );
    want["enabled"] = json!(false);
    assert_eq!((r.status, r.json()), (200, want.clone()));
    let cfg = streampulse::config::load(&config).unwrap();
    let sc = cfg.streams.iter().find(|s| s.name == "Door cam").unwrap();
    assert!(!sc.enabled);
    assert_eq!(sc.fail_threshold, 3);
    assert_eq!(sc.interval.as_secs(), 20);
    assert_eq!(sc.target.creds.as_ref().unwrap().password, PASSWORD);
    let r = s.admin(
        "PATCH",
        "/api/streams/Door%20cam",
        Some(json!({"enabled": true, "ok_threshold": 0})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.json()["errors"]["ok_threshold"].is_string(), "{}", r.text);
    // The example in docs/INTEGRATIONS.md.
    let r = s.admin(
        "PATCH",
        "/api/streams/Door%20cam",
        Some(json!({"interval": 2, "transport": "quic"})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({
            "error": "transport: unknown transport \"quic\"; expected auto, tcp or udp; \
                      interval: must be at least 5 seconds (got 2)",
            "errors": {
                "interval": "must be at least 5 seconds (got 2)",
                "transport": "unknown transport \"quic\"; expected auto, tcp or udp"
            }
        })
    );
    let r = s.admin(
        "PATCH",
        "/api/streams/Door%20cam",
        Some(json!({"enabled": "yes"})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.json()["errors"]["enabled"].is_string(), "{}", r.text);
    // A new host: the kept password is dropped (the username stays).
    let moved = format!("rtsp://localhost:{}/basic", rtsp.port);
    let r = s.admin("PATCH", "/api/streams/Yard", Some(json!({"url": moved})));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["has_password"], false, "{}", r.text);
    assert_eq!(r.json()["username"], "op");
    // Rename.
    let r = s.admin(
        "PATCH",
        "/api/streams/Yard",
        Some(json!({"name": "Garden"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Garden");
    let (_, status) = app.get("/api/status");
    assert!(
        status.get("Garden").is_some() && status.get("Yard").is_none(),
        "renamed on the board: {status:#}"
    );
    let r = s.admin("PATCH", "/api/streams/Yard", Some(json!({"interval": 30})));
    assert_eq!(r.status, 404, "{}", r.text);

    // DELETE, then 404 everywhere.
    let r = s.admin("DELETE", "/api/streams/Garden", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"deleted": "Garden"}));
    let (_, status) = app.get("/api/status");
    assert!(status.get("Garden").is_none(), "{status:#}");
    for (m, body) in [
        ("GET", None),
        ("DELETE", None),
        ("PATCH", Some(json!({"interval": 30}))),
    ] {
        let r = s.admin(m, "/api/streams/Garden", body);
        assert_eq!(r.status, 404, "{m}: {}", r.text);
        assert_eq!(r.json()["error"], "no such stream");
    }
    assert!(!std::fs::read_to_string(&config).unwrap().contains("Garden"));

    // The passwords, plain and percent-encoded, in no answer and no log line.
    never_shown(&s, &app, &[PASSWORD, other_secret, "s3cret-Pa55"]);
}

/// `POST …/check`: the verdict of a probe now, against a real RTSP server
/// (with credentials), a closed port and a peer that never answers (while
/// that one runs, a second check is a 503 with `Retry-After`); unknown
/// streams 404.
#[test]
fn check_returns_the_verdict() {
    let rtsp = RtspServer::start();
    let closed = closed_port();
    let silent = crate::fakes::FakeSilentServer::start();
    let (app, _dir) = start(
        "wapi_check",
        &format!(
            "heartbeat_seconds: 60\nstreams:\n- name: cam\n  url: {}\n  timeout: 10\n\
             - name: gone\n  url: rtsp://127.0.0.1:{closed}/x\n  timeout: 2\n\
             - name: silent\n  url: {}\n  timeout: 5\n",
            rtsp.url_with_credentials("/basic", USER, PASSWORD),
            silent.url("rtsp", "/x"),
        ),
    );
    let mut s = Script::new(&app);

    // One check at a time: the silent peer's takes the stage deadline (3 s).
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let mut s = Script::new(&app);
            s.admin("POST", "/api/streams/silent/check", None)
        });
        // Well inside the 3 s the slow check holds the box's one check.
        std::thread::sleep(Duration::from_millis(1500));
        let r = s.admin("POST", "/api/streams/gone/check", None);
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(r.retry_after.as_deref(), Some("5"));
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("another check"));
        let r = slow.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(
            (v["ok"].clone(), v["reason"].clone()),
            (json!(false), json!("timeout")),
            "{v:#}"
        );
    });
    let r = s.admin("POST", "/api/streams/cam/check", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["stream"], "cam");
    assert_eq!(
        (v["ok"].clone(), v["status"].clone()),
        (json!(true), json!("ok")),
        "{v:#}"
    );
    assert_eq!(v["media"]["codec"], "h264", "{v:#}");
    assert!(v["latency"].as_u64().is_some(), "{v:#}");
    assert!(v["stages"]["first_frame_ms"].as_u64().is_some(), "{v:#}");
    assert!(v["ts"].is_string() && v["ts_ms"].is_i64(), "{v:#}");

    let r = s.admin("POST", "/api/streams/gone/check", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        (v["ok"].clone(), v["status"].clone()),
        (json!(false), json!("fail")),
        "{v:#}"
    );
    assert_eq!(v["reason"], "connect", "{v:#}");
    assert!(!v["message"].as_str().unwrap().is_empty(), "{v:#}");
    assert_eq!(v["preview"], false);

    let r = s.admin("POST", "/api/streams/nope/check", None);
    assert_eq!(r.status, 404, "{}", r.text);
    never_shown(&s, &app, &[PASSWORD]);
}

/// `GET`/`PUT /api/settings`: the keys given are set and run at once, the
/// same PUT again writes nothing, wrong values and unknown keys are named.
#[test]
fn settings_are_read_and_set() {
    let (app, dir) = start(
        "wapi_settings",
        "heartbeat_seconds: 60\ndevice_name: box 1\n",
    );
    let config = config_path(&dir);
    let mut s = Script::new(&app);
    let r = s.admin("GET", "/api/settings", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["device_name"], "box 1");
    assert_eq!(v["heartbeat_seconds"], 60);
    for k in [
        "timezone",
        "heartbeat_days",
        "rollup_days",
        "public_status",
        "session_hours",
    ] {
        assert!(!v[k].is_null(), "{k}: {v}");
    }

    let put =
        json!({"timezone": "Europe/Berlin", "heartbeat_seconds": 30, "device_name": "Site 7"});
    let r = s.admin("PUT", "/api/settings", Some(put.clone()));
    assert_eq!(r.status, 200, "{}", r.text);
    let mut want = v.clone();
    want["timezone"] = json!("Europe/Berlin");
    want["heartbeat_seconds"] = json!(30);
    want["device_name"] = json!("Site 7");
    assert_eq!(r.json(), want, "the keys given changed, the rest kept");
    let cfg = streampulse::config::load(&config).unwrap();
    assert_eq!(
        (
            cfg.timezone.as_str(),
            cfg.heartbeat.as_secs(),
            cfg.device_name.as_str()
        ),
        ("Europe/Berlin", 30, "Site 7")
    );
    let (_, health) = app.get("/healthz");
    assert_eq!(health["device_name"], "Site 7", "running: {health}");
    let written = snapshot(&config);
    std::thread::sleep(Duration::from_millis(50));
    let r = s.admin("PUT", "/api/settings", Some(put));
    assert_eq!((r.status, r.json()), (200, want.clone()));
    assert_eq!(snapshot(&config), written, "the second PUT wrote nothing");

    for (body, field) in [
        (json!({"heartbeat_seconds": 1}), "heartbeat_seconds"),
        (json!({"timezone": "Mars/Base"}), "timezone"),
        (json!({"device_name": 5}), "device_name"),
        (json!({"public_status": "yes"}), "public_status"),
        (
            json!({"heartbeat_days": 30, "rollup_days": 7}),
            "rollup_days",
        ),
        (json!({"admin_password_hash": "x"}), "admin_password_hash"),
    ] {
        let r = s.admin("PUT", "/api/settings", Some(body.clone()));
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert!(r.json()["errors"][field].is_string(), "{body}: {}", r.text);
    }
    assert_eq!(snapshot(&config), written, "refused PUTs wrote nothing");
    assert_eq!(s.admin("GET", "/api/settings", None).json(), want);
}

/// A logged-in browser session writes with its CSRF token in
/// `X-CSRF-Token`; without it the same request is refused.
#[test]
fn a_session_writes_with_its_csrf_header() {
    let (app, dir) = start("wapi_session", "heartbeat_seconds: 60\n");
    let mut b = Browser::new(&app);
    set_up(&mut b);
    assert_eq!(log_in(&mut b, ADMIN_PASSWORD, "/").status, 303);
    let body =
        json!({"name": "from browser", "url": "rtsp://127.0.0.1:9/b", "timeout": 2}).to_string();
    let r = b.post_raw("/api/streams", "application/json", &body, true);
    assert_eq!(r.status, 403, "no CSRF header: {}", r.text());
    assert!(!std::fs::read_to_string(config_path(&dir))
        .unwrap()
        .contains("from browser"));
    let csrf = b.csrf("/");
    b.extra = vec![("X-CSRF-Token".into(), csrf)];
    let r = b.post_raw("/api/streams", "application/json", &body, true);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["name"], "from browser");
    let (_, status) = app.get("/api/status");
    assert!(status.get("from browser").is_some(), "{status:#}");
}

/// The provisioning script of docs/INTEGRATIONS.md (and README.md), run as it is written
/// (only the camera's address is this test's), twice: the camera is added
/// and checked `ok`, the time zone set; the second run writes nothing.
/// The camera password is in no output.
#[test]
fn the_documented_provisioning_script_works_twice() {
    let doc =
        std::fs::read_to_string(crate::util::manifest_dir().join("docs/INTEGRATIONS.md")).unwrap();
    let script = crate::util::between(&doc, "<!-- provision.sh", "\n```\n")
        .and_then(|b| b.split_once("```sh\n"))
        .map(|(_, s)| s.to_owned())
        .expect("docs/INTEGRATIONS.md has the provision.sh block");
    assert!(script.lines().count() <= 14, "about 10 lines:\n{script}");
    let readme = std::fs::read_to_string(crate::util::manifest_dir().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```sh\n{script}\n```")),
        "README.md shows the same script as docs/INTEGRATIONS.md"
    );
    let rtsp = RtspServer::start();
    let script = script.replace("rtsp://192.168.1.20:554/stream1", &rtsp.url("/basic"));
    let (app, dir) = start("wapi_script", "heartbeat_seconds: 60\n");
    let path = dir.path().join("provision.sh");
    std::fs::write(&path, &script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = || {
        let out = std::process::Command::new(&path)
            .arg(format!("http://{}", app.addr))
            .env("STREAMPULSE_TOKEN", TEST_TOKEN)
            .env("CAM_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
        text
    };
    let first = run();
    assert!(first.contains("\"status\": \"ok\""), "{first}");
    let cfg = streampulse::config::load(&config_path(&dir)).unwrap();
    assert_eq!(cfg.timezone, "Europe/Berlin");
    let sc = &cfg.streams[0];
    assert_eq!(
        (sc.name.as_str(), sc.interval.as_secs()),
        ("front-door", 30)
    );
    assert_eq!(sc.target.creds.as_ref().unwrap().password, PASSWORD);
    let written = snapshot(&config_path(&dir));
    std::thread::sleep(Duration::from_millis(50));
    let second = run();
    assert!(second.contains("\"status\": \"ok\""), "{second}");
    assert_eq!(
        snapshot(&config_path(&dir)),
        written,
        "the second run wrote nothing"
    );
    assert!(!app.log_text().contains(PASSWORD));
}

/// `/api/openapi.json` (scope `read`) describes exactly the `/api/` URLs
/// that `src/web/routes.rs` gives in the `Route` enum's comments; each
/// path decodes to an API route, lists the methods that route takes (GET
/// for the read-only ones, every one for the write API), and each GET it
/// lists answers 200 on a box with a stream. The file is also checked by
/// openapi-spec-validator (installed by `make deps`).
#[test]
fn openapi_describes_every_api_route() {
    use std::collections::BTreeSet;
    use streampulse::web::routes::Route;
    let (app, _dir) = start(
        "wapi_openapi",
        "heartbeat_seconds: 60\nstreams:\n- name: cam x\n  url: rtsp://127.0.0.1:9/x\n  timeout: 2\n",
    );
    let mut s = Script::new(&app);
    let r = s.send("GET", "/api/openapi.json", Some(READ_TOKEN), None, "");
    assert_eq!(r.status, 200, "{}", r.text);
    let spec = r.json();
    assert_eq!(spec["openapi"], "3.0.3");
    let paths = spec["paths"].as_object().expect("paths");

    let src =
        std::fs::read_to_string(crate::util::manifest_dir().join("src/web/routes.rs")).unwrap();
    let body = crate::util::between(&src, "pub enum Route {", "\n}").unwrap();
    let from_routes: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.split_once("// /api/"))
        .map(|(_, rest)| format!("/api/{}", rest.split_whitespace().next().unwrap()))
        .collect();
    assert!(from_routes.len() >= 10, "{from_routes:?}");
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        documented, from_routes,
        "src/web/openapi.json's paths vs the /api/ routes of src/web/routes.rs"
    );

    // History answers 404 until the stream's first heartbeat.
    crate::util::wait_until(Duration::from_secs(30), "cam x's first heartbeat", || {
        let r = s.send(
            "GET",
            "/api/streams/cam%20x/history",
            Some(TEST_TOKEN),
            None,
            "",
        );
        r.status == 200
    });
    for (path, item) in paths {
        let concrete = path.replace("{name}", "cam%20x");
        let route = Route::decode(&concrete);
        assert!(route.is_api(), "{path} decodes to {route:?}");
        let methods: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
            .map(|k| k.to_uppercase())
            .collect();
        let want: BTreeSet<String> = if route.takes_json() {
            route
                .allow()
                .split(", ")
                .filter(|m| *m != "HEAD")
                .map(str::to_owned)
                .collect()
        } else {
            ["GET".to_owned()].into()
        };
        assert_eq!(methods, want, "{path} ({route:?})");
        if methods.contains("GET") {
            let r = s.send("GET", &concrete, Some(TEST_TOKEN), None, "");
            assert_eq!(r.status, 200, "GET {concrete}: {}", r.text);
        }
    }

    // Debian's Python with openapi-spec-validator from PyPI (make deps).
    let python = crate::util::manifest_dir().join("target/pyvenv/bin/python");
    let mut c = std::process::Command::new(&python)
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run `make deps` (openapi-spec-validator in target/pyvenv)",
                python.display()
            )
        });
    {
        use std::io::Write;
        c.stdin
            .take()
            .unwrap()
            .write_all(r.text.as_bytes())
            .unwrap();
    }
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
