//! Issue 14 (outside audit): see the module list in security/mod.rs.
//!
//! Findings 2 and 3: a password kept from a blank form field must not follow
//! an edited address to another host (camera streams through "Check now" and
//! the monitor, the MQTT broker), and a config error that quotes a secret
//! must not reach anonymous callers, logs or the start-up failure. The
//! "other host" is a [`FakeRecorder`]: a loopback listener the test owns
//! that records what arrives, as an attacker's host would.

use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;

use super::{logged_in, streampulse, temp_dir, App, Browser, LighttpdServer};
use crate::fakes::FakeRecorder;
use crate::util::{run_with_timeout, HTTP_PASSWORD};

/// A password that must never leave the config file.
const SECRET: &str = "S3cretPw";
const MQTT_PW: &str = "mqtt-S3cret-71";
const BASIC_CHALLENGE: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// True if `bytes` hold `secret` in clear text or inside Basic auth for `user`.
fn carries(bytes: &[u8], user: &str, secret: &str) -> bool {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    let text = String::from_utf8_lossy(bytes);
    text.contains(secret) || text.contains(&basic)
}

/// The stored password of the stream `name` in the config file ("" if none).
fn stored_password(config: &std::path::Path, name: &str) -> String {
    let c = streampulse::config::load(config).expect("the saved config is valid");
    let s = c
        .streams
        .iter()
        .find(|s| s.name == name)
        .expect("the stream");
    s.target
        .creds
        .as_ref()
        .map(|c| c.password.clone())
        .unwrap_or_default()
}

/// See: #14 (finding 2). Editing a stream's URL to another port with a blank
/// password field, then "Check now": the camera's password does not reach
/// the new address (neither from the check nor from the monitor's probes)
/// and is not kept in the file. Editing without changing scheme, host or
/// port still keeps it (and the check against real Basic auth passes).
#[test]
fn kept_camera_password_does_not_follow_a_changed_url() {
    let cam = LighttpdServer::start();
    let cam_url = format!("http://127.0.0.1:{}/basic/snap.jpg", cam.port);
    let (bx, mut b) = logged_in(
        "secrets_kept_camera_pw",
        &format!(
            "heartbeat_seconds: 5\nstreams:\n- name: Door\n  url: {cam_url}\n  kind: snapshot\n  \
             username: admin\n  password: {HTTP_PASSWORD}\n"
        ),
    );
    let csrf = b.csrf("/streams/Door/edit");
    let edit = |b: &mut Browser, url: &str| {
        let r = b.post(
            "/streams/Door/edit",
            &[
                ("csrf", &csrf),
                ("name", "Door"),
                ("url", url),
                ("kind", "snapshot"),
                ("username", "admin"),
                ("password", ""),
                ("transport", "tcp"),
                ("enabled", "1"),
            ],
        );
        assert_eq!(r.status, 303, "saving {url}: {}", r.text());
    };
    let check_now = |b: &mut Browser| {
        let r = b.post("/streams/Door/preview", &[("csrf", &csrf)]);
        assert_eq!(r.status, 303, "check now: {}", r.text());
        b.get("/streams/Door/preview")
            .by_id("verdict")
            .unwrap_or_default()
    };

    // Same scheme, host and port (another query): the password is kept and works.
    let hint = b.get("/streams/Door/edit").text();
    assert!(
        hint.contains("it is not kept if you change"),
        "the form says when the password is dropped"
    );
    edit(&mut b, &format!("{cam_url}?v=2"));
    assert_eq!(stored_password(&bx.config, "Door"), HTTP_PASSWORD);
    let verdict = check_now(&mut b);
    assert!(verdict.contains("Video arrives"), "{verdict}");

    // Another port on loopback, owned by the test: nothing of the password arrives.
    let catcher = FakeRecorder::start(BASIC_CHALLENGE);
    edit(
        &mut b,
        &format!("http://127.0.0.1:{}/basic/snap.jpg", catcher.port),
    );
    let verdict = check_now(&mut b);
    assert!(!verdict.contains("Video arrives"), "{verdict}");
    // The check's requests, and the monitor's next probe (interval 5 s).
    let seen = catcher.wait_for(2, Duration::from_secs(20), "requests at the new URL");
    for req in &seen {
        assert!(
            !carries(req, "admin", HTTP_PASSWORD),
            "the camera's password reached the new URL:\n{}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(stored_password(&bx.config, "Door"), "");
    let file = std::fs::read_to_string(&bx.config).unwrap();
    assert!(!file.contains(HTTP_PASSWORD), "{file}");
}

/// See: #14 (finding 2), the broker. The MQTT form with a changed host and
/// a blank password: the stored broker password is not kept and the new
/// host's CONNECT carries none; the same form without a change keeps it.
#[test]
fn kept_broker_password_does_not_follow_a_changed_host() {
    // The stored broker, and a host the attacker controls on the same port.
    let broker = FakeRecorder::start(b"");
    let other = FakeRecorder::start_on("127.0.0.2", broker.port, b"");
    let (bx, mut b) = logged_in(
        "secrets_kept_broker_pw",
        &format!(
            "heartbeat_seconds: 5\nstreams: []\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  \
             username: sp\n  password: {MQTT_PW}\n",
            broker.port
        ),
    );
    let seen = broker.wait_for(1, Duration::from_secs(20), "CONNECT at the stored broker");
    assert!(
        seen.iter().any(|c| carries(c, "sp", MQTT_PW)),
        "the client sends its password in CONNECT (else this test proves nothing)"
    );
    let csrf = b.csrf("/settings/mqtt");
    let page = b.get("/settings/mqtt").text();
    assert!(page.contains("it is not kept if you change"), "hint");
    let port = broker.port.to_string();
    let save = |b: &mut Browser, host: &str| {
        let r = b.post(
            "/settings/mqtt",
            &[
                ("csrf", &csrf),
                ("enabled", "1"),
                ("host", host),
                ("port", &port),
                ("transport", "tcp"),
                ("username", "sp"),
                ("password", ""),
                ("topic", "streampulse/status"),
                ("prefix", "streampulse"),
                ("interval", "30"),
                ("qos", "0"),
                ("tls_verify", "1"),
            ],
        );
        assert_eq!(r.status, 303, "saving host {host}: {}", r.text());
        let c = streampulse::config::load(&bx.config).unwrap();
        c.mqtt.unwrap().credentials.unwrap().password
    };
    assert_eq!(save(&mut b, "127.0.0.1"), MQTT_PW, "unchanged: kept");
    let kept = save(&mut b, "127.0.0.2");
    let seen = other.wait_for(1, Duration::from_secs(30), "CONNECT at the new host");
    for c in &seen {
        assert!(
            !carries(c, "sp", MQTT_PW),
            "the broker password reached the new host"
        );
    }
    assert_eq!(kept, "", "another host: dropped");
    let file = std::fs::read_to_string(&bx.config).unwrap();
    assert!(!file.contains(MQTT_PW), "{file}");
}

/// Broken `mqtt:` blocks whose host holds a password: as a URL, and bare.
fn broken_mqtt_blocks() -> [String; 2] {
    [
        format!("mqtt:\n  host: mqtt://user:{SECRET}@127.0.0.1:1\n"),
        format!("mqtt:\n  host: user:{SECRET}@127.0.0.1\n  port: 1\n"),
    ]
}

/// `GET path` with neither cookie nor token.
fn anonymous_get(b: &mut Browser, path: &str) -> String {
    let r = b.get(path);
    assert_eq!(r.status, 200, "anonymous GET {path}: {}", r.text());
    r.text()
}

/// See: #14 (finding 3). A running box's config gets an `mqtt:` host with a
/// password: anonymous `/healthz` and `/login` say only that there is an
/// error; the logged-in dashboard and a token's `/healthz` show it without
/// the password; the daemon's log never has the password.
#[test]
fn config_errors_reach_logged_in_users_only_and_quote_no_secret() {
    let (bx, mut b) = logged_in(
        "secrets_config_error",
        "heartbeat_seconds: 5\nstreams: []\n",
    );
    let good = std::fs::read_to_string(&bx.config).unwrap();
    let mut anon = Browser::new(&bx.app);
    let wait_error = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, h) = bx.app.get("/healthz");
            if h["config_error"].is_string() == want {
                return h;
            }
            assert!(Instant::now() < deadline, "config_error never {want}: {h}");
            thread::sleep(Duration::from_millis(200));
        }
    };
    for block in broken_mqtt_blocks() {
        std::fs::write(&bx.config, format!("{good}{block}")).unwrap();
        let h = wait_error(true);
        let detail = h["config_error"].as_str().unwrap();
        assert!(
            detail.contains("mqtt.host"),
            "{block}: a token sees the detail: {h}"
        );
        assert!(
            !h.to_string().contains(SECRET),
            "{block}: token /healthz: {h}"
        );

        let health = anonymous_get(&mut anon, "/healthz");
        let v: serde_json::Value = serde_json::from_str(&health).unwrap();
        assert!(
            v["config_error"].is_string(),
            "{block}: anonymous sees that: {v}"
        );
        for leak in [SECRET, "mqtt.host"] {
            assert!(
                !health.contains(leak),
                "{block}: anonymous /healthz has {leak}: {health}"
            );
        }
        let login = anonymous_get(&mut anon, "/login");
        assert!(
            login.contains("config.yaml has an error"),
            "{block}: login banner"
        );
        for leak in [SECRET, "mqtt.host"] {
            assert!(!login.contains(leak), "{block}: /login has {leak}");
        }

        let dash = b.get("/");
        assert_eq!(dash.status, 200);
        let dash = dash.text();
        assert!(
            dash.contains("mqtt.host"),
            "{block}: the admin sees the error"
        );
        assert!(
            !dash.contains(SECRET),
            "{block}: dashboard has the password"
        );

        std::fs::write(&bx.config, &good).unwrap();
        wait_error(false);
    }
    let log = bx.app.log_text();
    assert!(log.contains("mqtt.host"), "the error is logged:\n{log}");
    assert!(!log.contains(SECRET), "the password is in the log:\n{log}");
}

/// See: #14 (finding 3). Starting (and `check-config`) with such a config
/// fails with an error naming the key and line, without the password.
#[test]
fn start_up_error_quotes_no_secret() {
    let dir = temp_dir("secrets_start_up");
    let config = dir.path().join("config.yaml");
    for block in broken_mqtt_blocks() {
        std::fs::write(&config, format!("heartbeat_seconds: 5\n{block}")).unwrap();
        let data = dir.path().join("data");
        let run = || {
            let mut c = streampulse();
            c.args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(&data)
                .arg("--config")
                .arg(&config);
            c
        };
        let check = || {
            let mut c = streampulse();
            c.arg("check-config").arg(&config);
            c
        };
        for (what, cmd) in [("run", run()), ("check-config", check())] {
            let r = run_with_timeout(cmd, Duration::from_secs(30));
            let out = format!("{}{}", r.stdout, r.stderr);
            assert_ne!(r.code, 0, "{what} accepted {block}");
            assert!(
                out.contains("config.yaml:3:"),
                "{what}: names the line: {out}"
            );
            assert!(out.contains("mqtt.host"), "{what}: names the key: {out}");
            assert!(!out.contains(SECRET), "{what}: {out}");
        }
    }
}

/// See: #14 (finding 3). A boot-partition import that is rejected: the
/// anonymous `/healthz` says "rejected" and nothing of the file's error; a
/// token sees the error, scrubbed.
#[test]
fn rejected_boot_import_is_generic_for_anonymous_callers() {
    let dir = temp_dir("secrets_boot_import");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "heartbeat_seconds: 5\nstreams: []\n").unwrap();
    let boot = dir.path().join("boot-config.yaml");
    std::fs::write(
        &boot,
        format!("streams:\n- name: B\n  url: rtsp://admin:{SECRET}@127.0.0.1/x\n  interval: 1\n"),
    )
    .unwrap();
    let boot_arg = boot.to_string_lossy().into_owned();
    let app = App::start_with_args(
        &config,
        &dir.path().join("data"),
        &["--boot-config", &boot_arg],
        &[],
    );
    let (_, h) = app.get("/healthz");
    let detail = h["boot_config"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("rejected: ") && detail.contains("interval"),
        "{h}"
    );
    assert!(!h.to_string().contains(SECRET), "{h}");
    let anon = super::raw(&app.addr, None, &super::get_req("/healthz", ""));
    let v: serde_json::Value = serde_json::from_slice(&anon.body).unwrap();
    assert_eq!(v["boot_config"], "rejected", "{v}");
    assert!(!anon.text().contains("interval"), "{}", anon.text());
    assert!(!app.log_text().contains(SECRET), "{}", app.log_text());
}
