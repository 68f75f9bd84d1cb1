//! Secrets never leave the box (issue 8): one full daemon with every kind
//! of password in use, and every way out of the box searched for every
//! form of every password. The test runs as named steps: start the peers,
//! prove the passwords are in use, scan pages, error pages, broken configs,
//! the CLI, then (after a clean stop) the log, MQTT, webhooks and the data
//! directory, and finally prove the scanner finds the passwords where they
//! belong (config.yaml), so that zero hits means zero.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;

use super::{
    collect_files, find, ha_state_topics, last_state, logged_in, streampulse, Broker, Browser,
    LighttpdServer, RtspServer, Spec, Sub,
};
use crate::fakes::FakeRecorder;
use crate::util::{run_with_timeout, PASSWORD as CAM_PW, USER as CAM_USER};
use crate::web::Box_;

const MQTT_USER: &str = "sp-mqtt";
const MQTT_PW: &str = "Mq77-Br0ker-Pw";
const HOOK_USER: &str = "hookuser";
const HOOK_PW: &str = "Wh-T0ken-5xQ";
const WRONG_RTSP: &str = "Wr0ng@Pw:1/x%";
const WRONG_HTTP: &str = "Wr0ng-Http-Pw-2";
const TYPED_PW: &str = "Typed-In-Form-Pw-3";

/// The streams that log in with the right password.
const UP: [&str; 4] = [
    "rtsp basic",
    "rtsp digest",
    "http digest snap",
    "http digest mjpeg",
];
/// The streams with a wrong password.
const DOWN: [&str; 2] = ["rtsp wrong", "http wrong"];

/// Where a secret turned up.
struct Leaks {
    /// Every form of every secret, labelled (see [`secret_forms`]).
    secrets: Vec<(String, String)>,
    searched: Vec<String>,
    hits: Vec<String>,
    bytes: usize,
}

impl Leaks {
    fn new(secrets: Vec<(String, String)>) -> Leaks {
        Leaks {
            secrets,
            searched: Vec::new(),
            hits: Vec::new(),
            bytes: 0,
        }
    }

    /// Searches `text` (from `source`) for every form of every secret.
    fn scan(&mut self, source: &str, text: &[u8]) {
        self.searched.push(source.to_owned());
        self.bytes += text.len();
        for (what, s) in &self.secrets {
            if find(text, s.as_bytes()).is_some() {
                let t = String::from_utf8_lossy(text);
                let i = t.find(s.as_str()).unwrap_or(0);
                let ctx: String = t[i.saturating_sub(120)..].chars().take(300).collect();
                self.hits.push(format!("{source}: {what} in …{ctx}…"));
            }
        }
    }
}

/// The forms a secret may take on the way out: as is, percent-encoded, in
/// an HTTP Basic header, as a Digest HA1.
fn secret_forms(label: &str, user: &str, pw: &str) -> Vec<(String, String)> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let pct: String = url::form_urlencoded::byte_serialize(pw.as_bytes()).collect();
    let mut v = vec![
        (format!("{label} password"), pw.to_owned()),
        (format!("{label} Basic header"), b64(format!("{user}:{pw}"))),
    ];
    if pct != pw {
        v.push((format!("{label} password, percent-encoded"), pct));
    }
    v
}

/// Every password of the test in every form (camera first: the scanner's
/// self-check below picks entries by position).
fn all_secret_forms() -> Vec<(String, String)> {
    let mut secrets = Vec::new();
    secrets.extend(secret_forms("camera", CAM_USER, CAM_PW));
    secrets.extend(secret_forms("mqtt", MQTT_USER, MQTT_PW));
    secrets.extend(secret_forms("webhook", HOOK_USER, HOOK_PW));
    secrets.extend(secret_forms("wrong rtsp", CAM_USER, WRONG_RTSP));
    secrets.extend(secret_forms("wrong http", CAM_USER, WRONG_HTTP));
    secrets.extend(secret_forms("typed", CAM_USER, TYPED_PW));
    secrets
}

/// [`WRONG_RTSP`] percent-encoded, as it stands in a URL.
fn wrong_rtsp_encoded() -> String {
    url::form_urlencoded::byte_serialize(WRONG_RTSP.as_bytes()).collect()
}

/// The password-protected peers: cameras on GStreamer and lighttpd, a
/// mosquitto that wants a password (and a subscriber to everything on it),
/// and a webhook receiver.
struct Peers {
    rtsp: RtspServer,
    web: LighttpdServer,
    broker: Broker,
    sub: Sub,
    hook: FakeRecorder,
}

impl Peers {
    fn start() -> Peers {
        let rtsp = RtspServer::start();
        let web = LighttpdServer::start();
        let broker = Broker::start(Spec {
            login: Some((MQTT_USER, MQTT_PW)),
            ..Spec::default()
        });
        let sub = Sub::start(&broker, "#");
        let hook = FakeRecorder::start(FakeRecorder::OK);
        Peers {
            rtsp,
            web,
            broker,
            sub,
            hook,
        }
    }

    /// The box's config: every stream of [`UP`] and [`DOWN`], MQTT with a
    /// login, a webhook URL with credentials.
    fn config(&self) -> String {
        let wrong_enc = wrong_rtsp_encoded();
        format!(
            "heartbeat_seconds: 5\ndevice_name: secret box\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n\
             mqtt:\n  host: 127.0.0.1\n  port: {mqtt_port}\n  username: {MQTT_USER}\n  password: '{MQTT_PW}'\n  \
             interval: 5\n  discovery: true\n\
             notify:\n- http://{HOOK_USER}:{HOOK_PW}@127.0.0.1:{hook_port}/hook\n\
             streams:\n\
             - name: rtsp basic\n  url: {rtsp_basic}\n\
             - name: rtsp digest\n  url: {rtsp_digest}\n  username: {CAM_USER}\n  password: '{CAM_PW}'\n\
             - name: http digest snap\n  url: http://{CAM_USER}:{CAM_PW}@127.0.0.1:{wp}/digest/snap.jpg\n  kind: snapshot\n\
             - name: http digest mjpeg\n  url: {mjpeg}\n  username: {CAM_USER}\n  password: '{CAM_PW}'\n  kind: mjpeg\n\
             - name: rtsp wrong\n  url: rtsp://{CAM_USER}:{wrong_enc}@127.0.0.1:{rp}/basic\n\
             - name: http wrong\n  url: http://127.0.0.1:{wp}/digest/snap.jpg\n  username: {CAM_USER}\n  password: '{WRONG_HTTP}'\n  kind: snapshot\n",
            mqtt_port = self.broker.tcp_port,
            hook_port = self.hook.port,
            rtsp_basic = self.rtsp.url_with_credentials("/basic", CAM_USER, CAM_PW),
            rtsp_digest = self.rtsp.url("/digest"),
            wp = self.web.port,
            mjpeg = self.web.url("/digest-stream/stream.mjpg"),
            rp = self.rtsp.port,
        )
    }
}

/// The big one: a full daemon with password-protected cameras (RTSP Basic
/// and Digest on GStreamer, HTTP Digest snapshot and MJPEG on lighttpd, and
/// two cameras with wrong passwords, one with URL-special characters),
/// MQTT to a mosquitto that wants a password, a webhook URL with
/// credentials, and a config edit that breaks the file on a password line.
/// Every page, error page, JSON answer, `/metrics`, every MQTT payload
/// (`mosquitto_sub -t '#'`), every webhook body, the whole debug log, the CLI
/// (`probe`, `check-config`) and every file in the data directory but the
/// config itself are searched for every password (as is, percent-encoded,
/// as a Basic header): zero hits. The right passwords are in use (cameras
/// up, broker connected, webhook authenticated), and the scanner finds them
/// in config.yaml, so zero means zero.
#[test]
fn secrets_never_leave_the_box() {
    let peers = Peers::start();
    let (bx, mut b) = logged_in("sec_secrets", &peers.config());
    every_password_is_in_use(&bx, &peers);

    let mut leaks = Leaks::new(all_secret_forms());
    let csrf = b.csrf("/");
    scan_pages(&mut b, &csrf, &mut leaks);
    let mut anon = Browser::new(&bx.app);
    scan_error_pages(&mut b, &mut anon, &csrf, &peers, &mut leaks);
    scan_broken_configs(&bx, &mut b, &mut anon, &mut leaks);
    scan_cli(&peers, &mut leaks);

    // Stop the daemon (its shutdown is logged too), then the log, MQTT,
    // webhooks and the data directory.
    let data = bx.config.with_file_name("data");
    let (log_text, _dir, config_path) = stop(bx);
    scan_after_stop(&log_text, &peers, &data, &mut leaks);
    scanner_finds_the_passwords_in_the_config(&config_path, &leaks.secrets);

    eprintln!(
        "secret scan: {} sources, {} bytes, {} secret forms, {} hits",
        leaks.searched.len(),
        leaks.bytes,
        leaks.secrets.len(),
        leaks.hits.len()
    );
    assert!(
        leaks.hits.is_empty(),
        "secrets left the box:\n{}",
        leaks.hits.join("\n")
    );
}

/// The right passwords are in use: those cameras up, the wrong ones down
/// for `auth`, every stream's state on MQTT (so the broker login worked),
/// and every webhook sent with its credentials.
fn every_password_is_in_use(bx: &Box_, peers: &Peers) {
    let app = &bx.app;
    let status = app.wait_status(
        Duration::from_secs(90),
        "cameras up, wrong ones down",
        |v| {
            UP.iter().all(|n| v[n]["state"] == "up") && DOWN.iter().all(|n| v[n]["state"] == "down")
        },
    );
    for n in DOWN {
        assert_eq!(status[n]["reason"], "auth", "{n}: {}", status[n]);
    }
    peers
        .sub
        .wait_all(Duration::from_secs(30), "every stream's state", |all| {
            let topics = ha_state_topics(all);
            UP.iter().chain(&DOWN).all(|n| {
                let want = if UP.contains(n) { "up" } else { "down" };
                topics
                    .get(*n)
                    .is_some_and(|t| last_state(all, t).as_deref() == Some(want))
            })
        });
    let deadline = Instant::now() + Duration::from_secs(30);
    while peers.hook.requests().len() < UP.len() + DOWN.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    let hooks = peers.hook.requests();
    assert!(hooks.len() >= 6, "webhooks: {hooks:?}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{HOOK_USER}:{HOOK_PW}"));
    assert!(
        hooks.iter().all(
            |(h, _)| h.contains(&format!("Authorization: Basic {basic}"))
                || h.contains(&format!("authorization: Basic {basic}"))
        ),
        "the webhook's credentials are used: {hooks:?}"
    );
}

/// Every page and JSON answer of a logged-in browser, after a "Check now"
/// of every stream (so previews and their errors exist).
fn scan_pages(b: &mut Browser, csrf: &str, leaks: &mut Leaks) {
    let enc = |n: &str| n.replace(' ', "%20");
    for n in UP.iter().chain(&DOWN) {
        let r = b.post(&format!("/streams/{}/preview", enc(n)), &[("csrf", csrf)]);
        assert_eq!(r.status, 303, "check {n}");
    }
    let mut pages: Vec<String> = [
        "/",
        "/add",
        "/settings",
        "/settings/mqtt",
        "/settings/access",
        "/live",
        "/api/status",
        "/api/streams",
        "/api/live",
        "/api/settings",
        "/api/openapi.json",
        "/metrics",
        "/healthz",
        "/nope",
        "/streams/nope",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in UP.iter().chain(&DOWN) {
        let e = enc(n);
        pages.extend([
            format!("/streams/{e}"),
            format!("/streams/{e}?range=7d"),
            format!("/streams/{e}/edit"),
            format!("/streams/{e}/delete"),
            format!("/streams/{e}/preview"),
            format!("/streams/{e}/frame.jpg"),
            format!("/api/streams/{e}/history"),
            format!("/api/streams/{e}"),
            format!("/live/{e}/thumb.jpg"),
        ]);
        // The write API's verdict of a check (the session's CSRF token in
        // the form; the check takes no body).
        let p = format!("/api/streams/{e}/check");
        let r = b.post(&p, &[("csrf", csrf)]);
        assert_eq!(r.status, 200, "POST {p}: {}", r.text());
        leaks.scan(&format!("POST {p}"), &r.body);
    }
    for p in &pages {
        let r = b.get(p);
        leaks.scan(&format!("GET {p} ({})", r.status), &r.body);
    }
}

/// Error pages: 405, 413, 403 (no CSRF), 401 (no login), and forms
/// re-shown with errors after a password was typed into them.
fn scan_error_pages(
    b: &mut Browser,
    anon: &mut Browser,
    csrf: &str,
    peers: &Peers,
    leaks: &mut Leaks,
) {
    let anon_pages = ["/api/status", "/api/streams", "/metrics", "/", "/login"];
    for p in anon_pages {
        let r = anon.get(p);
        leaks.scan(&format!("anonymous GET {p} ({})", r.status), &r.body);
    }
    let r = b.get("/logout");
    leaks.scan("GET /logout (405)", &r.body);
    let r = b.post_raw(
        "/add",
        "application/x-www-form-urlencoded",
        &format!("x={}", "a".repeat(70_000)),
        true,
    );
    assert_eq!(r.status, 413);
    leaks.scan("POST /add (413)", &r.body);
    let r = b.post("/streams/rtsp%20basic/edit", &[("name", "x")]);
    assert_eq!(r.status, 403);
    leaks.scan("POST edit without CSRF (403)", &r.body);
    let typed_url = format!(
        "rtsp://{CAM_USER}:{TYPED_PW}@127.0.0.1:{}/basic",
        peers.rtsp.port
    );
    for (path, fields) in [
        (
            "/streams/rtsp%20basic/edit",
            vec![
                ("name", "rtsp basic"),
                ("url", typed_url.as_str()),
                ("interval", "2"),
                ("enabled", "1"),
            ],
        ),
        (
            "/streams/rtsp%20digest/edit",
            vec![
                ("name", "rtsp digest"),
                ("url", "not a url"),
                ("username", CAM_USER),
                ("password", TYPED_PW),
            ],
        ),
        (
            "/add",
            vec![
                ("name", ""),
                ("url", typed_url.as_str()),
                ("password", TYPED_PW),
            ],
        ),
        (
            "/settings/mqtt",
            vec![
                ("enabled", "1"),
                ("host", "127.0.0.1"),
                ("username", MQTT_USER),
                ("password", TYPED_PW),
                ("interval", "1"),
            ],
        ),
    ] {
        let mut f = fields.clone();
        f.push(("csrf", csrf));
        let r = b.post(path, &f);
        assert_eq!(
            r.status,
            400,
            "POST {path} should fail validation: {}",
            r.text()
        );
        leaks.scan(&format!("POST {path} (400, re-shown form)"), &r.body);
    }
}

/// A config edit that breaks the file on a line with a password: the
/// error is shown on the (public) /healthz and on every page, and
/// `check-config` reports it. The good file is put back at the end.
fn scan_broken_configs(bx: &Box_, b: &mut Browser, anon: &mut Browser, leaks: &mut Leaks) {
    let app = &bx.app;
    let good = std::fs::read_to_string(&bx.config).unwrap();
    // (The GUI has rewritten the file by now, so lines are matched loosely.)
    let edit_line = |find: &dyn Fn(&str) -> bool, to: &dyn Fn(&str) -> String| -> String {
        let mut done = false;
        let mut out = String::new();
        for l in good.lines() {
            if !done && find(l) {
                out.push_str(&to(l));
                done = true;
            } else {
                out.push_str(l);
            }
            out.push('\n');
        }
        out
    };
    let indent = |l: &str| l[..l.len() - l.trim_start().len()].to_owned();
    for broken in [
        // A password that is a list.
        edit_line(&|l| l.contains(CAM_PW), &|l| {
            format!("{}password: ['{CAM_PW}']", indent(l))
        }),
        // A URL with a password and a port out of range.
        edit_line(&|l| l.trim_start().starts_with("url: rtsp://"), &|l| {
            format!(
                "{}url: rtsp://{CAM_USER}:{CAM_PW}@127.0.0.1:99999/basic",
                indent(l)
            )
        }),
        // An unknown key next to the broker password.
        edit_line(&|l| l.contains(MQTT_PW), &|l| {
            format!("{l}\n{}password2: '{MQTT_PW}'", indent(l))
        }),
    ] {
        assert_ne!(broken, good);
        std::fs::write(&bx.config, &broken).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = loop {
            let (_, h) = app.get("/healthz");
            if !h["config_error"].is_null() || Instant::now() > deadline {
                break h;
            }
            thread::sleep(Duration::from_millis(300));
        };
        assert!(
            !health["config_error"].is_null(),
            "no config error shown: {health}"
        );
        leaks.scan(
            "/healthz with a config error",
            health.to_string().as_bytes(),
        );
        let r = anon.get("/healthz");
        leaks.scan("anonymous /healthz with a config error", &r.body);
        let r = b.get("/");
        leaks.scan("dashboard with a config error", &r.body);
        let cc = run_with_timeout(
            {
                let mut c = streampulse();
                c.arg("check-config").arg(&bx.config);
                c
            },
            Duration::from_secs(30),
        );
        assert_ne!(cc.code, 0, "check-config accepts the broken file");
        leaks.scan("check-config stdout", cc.stdout.as_bytes());
        leaks.scan("check-config stderr", cc.stderr.as_bytes());
    }
    std::fs::write(&bx.config, &good).unwrap();
    app.wait_status(Duration::from_secs(30), "config back", |v| {
        v["rtsp basic"]["state"] == "up"
    });
}

/// The CLI: a probe with a wrong password in the URL, and one with the
/// right password as an option, with debug logging.
fn scan_cli(peers: &Peers, leaks: &mut Leaks) {
    let (rtsp, web) = (&peers.rtsp, &peers.web);
    let wrong_enc = wrong_rtsp_encoded();
    for args in [
        vec![
            "probe".to_owned(),
            format!(
                "rtsp://{CAM_USER}:{wrong_enc}@127.0.0.1:{}/basic",
                rtsp.port
            ),
        ],
        vec![
            "probe".to_owned(),
            "--json".to_owned(),
            format!(
                "rtsp://{CAM_USER}:{wrong_enc}@127.0.0.1:{}/basic",
                rtsp.port
            ),
        ],
        vec![
            "probe".to_owned(),
            "--username".to_owned(),
            CAM_USER.to_owned(),
            "--password".to_owned(),
            CAM_PW.to_owned(),
            rtsp.url("/digest"),
        ],
        vec![
            "probe".to_owned(),
            "--json".to_owned(),
            format!(
                "http://{CAM_USER}:{WRONG_HTTP}@127.0.0.1:{}/digest/snap.jpg",
                web.port
            ),
        ],
    ] {
        let mut c = streampulse();
        c.args(&args).env("RUST_LOG", "debug");
        let run = run_with_timeout(c, Duration::from_secs(60));
        let label = args.join(" ").replace(CAM_PW, "<pw>");
        leaks.scan(&format!("`{label}` stdout"), run.stdout.as_bytes());
        leaks.scan(&format!("`{label}` stderr"), run.stderr.as_bytes());
    }
}

/// Stops the daemon cleanly (its shutdown is logged too): its whole log,
/// and what outlives it (its temp dir, the config's path).
fn stop(bx: Box_) -> (String, tempfile::TempDir, PathBuf) {
    let log = bx.app.log.clone();
    let dir = bx._dir;
    let config = bx.config;
    let code = bx.app.terminate();
    assert_eq!(code, Some(0), "clean stop");
    let text = log.lock().unwrap().join("\n");
    (text, dir, config)
}

/// The debug log, every MQTT message, every webhook (body, and headers but
/// the authorization it must carry) and every file in the data directory.
fn scan_after_stop(log_text: &str, peers: &Peers, data: &Path, leaks: &mut Leaks) {
    assert!(log_text.lines().count() > 100, "the debug log is there");
    leaks.scan("daemon log (RUST_LOG=debug)", log_text.as_bytes());
    let msgs = peers.sub.all();
    assert!(msgs.len() >= 10, "MQTT messages: {}", msgs.len());
    for m in &msgs {
        leaks.scan(&format!("MQTT {}", m.topic), m.payload.as_bytes());
        leaks.scan("MQTT topic", m.topic.as_bytes());
    }
    for (h, body) in peers.hook.requests() {
        leaks.scan("webhook body", body.as_bytes());
        let head_without_auth: String = h
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("authorization:"))
            .collect::<Vec<_>>()
            .join("\n");
        leaks.scan("webhook headers", head_without_auth.as_bytes());
    }
    let mut files = Vec::new();
    collect_files(data, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("streampulse.db")),
        "{files:?}"
    );
    for f in &files {
        leaks.scan(&f.display().to_string(), &std::fs::read(f).unwrap());
    }
}

/// The scanner works: config.yaml (and only it) holds the passwords.
fn scanner_finds_the_passwords_in_the_config(config: &Path, secrets: &[(String, String)]) {
    let mut control = Leaks::new(secrets.to_vec());
    control.scan("config.yaml", &std::fs::read(config).unwrap());
    for (what, _) in [&secrets[0], &secrets[2], &secrets[4]] {
        assert!(
            control.hits.iter().any(|h| h.contains(what.as_str())),
            "the scanner does not find {what} in config.yaml: {:?}",
            control.hits
        );
    }
}
