//! Webhooks end to end: `notify:` URLs get a JSON POST per state change.
//! The receiver is a real HTTP server (tiny_http) run by the test; a receiver
//! that accepts and never answers is [`FakeSilentServer`], a named fake.
//! State changes are real: a snapshot file is removed and restored on the
//! real snapshot server, and closed ports refuse.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use super::app::App;
use super::fakes::FakeSilentServer;
use super::util::{closed_port, temp_dir, SnapshotServer};

const HOOK_SECRET: &str = "hook-S3cret-tok";
const WAIT: Duration = Duration::from_secs(40);

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// A tiny_http server answering every POST with `status`, recording it.
struct Receiver {
    port: u16,
    server: Arc<tiny_http::Server>,
    got: Arc<Mutex<Vec<Got>>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s2, g2) = (server.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            while let Ok(mut rq) = s2.recv() {
                let header = |name: &str| {
                    rq.headers()
                        .iter()
                        .find(|h| h.field.to_string().eq_ignore_ascii_case(name))
                        .map(|h| h.value.to_string())
                };
                let (authorization, content_type) =
                    (header("Authorization"), header("Content-Type"));
                let mut text = String::new();
                let _ = rq.as_reader().read_to_string(&mut text);
                g2.lock().unwrap().push(Got {
                    path: rq.url().to_owned(),
                    authorization,
                    content_type,
                    body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                });
                let _ = rq.respond(tiny_http::Response::empty(status));
            }
        });
        Receiver {
            port,
            server,
            got,
            thread: Some(thread),
        }
    }

    fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn wait(&self, what: &str, pred: impl Fn(&Got) -> bool) -> Got {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(g) = self.all().into_iter().find(|g| pred(g)) {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:#?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn change(g: &Got, stream: &str, from: &str, to: &str) -> bool {
    g.body["stream"] == stream && g.body["from"] == from && g.body["to"] == to
}

/// Each state change is POSTed once with stream, from, to, reason and ts;
/// credentials in the URL become Basic auth and are never logged.
#[test]
fn webhook_posts_every_state_change() {
    let snap = SnapshotServer::start();
    let hook = Receiver::start(200);
    let dir = temp_dir("webhook");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\ntimezone: Asia/Calcutta\ndevice_name: hook box\nnotify:\n\
             - http://bot:{HOOK_SECRET}@127.0.0.1:{}/hook?src=sp\nstreams:\n\
             - name: Door\n  url: {}\n  kind: snapshot\n  fail_threshold: 1\n",
            hook.port,
            snap.url("snap.jpg")
        ),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));

    let up = hook.wait("unknown → up", |g| change(g, "Door", "unknown", "up"));
    assert_eq!(up.path, "/hook?src=sp");
    assert_eq!(up.content_type.as_deref(), Some("application/json"));
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bot:{HOOK_SECRET}"))
    );
    assert_eq!(up.authorization.as_deref(), Some(expected.as_str()));
    assert_eq!(up.body["reason"], Value::Null);
    assert_eq!(up.body["device"], "hook box");
    assert!(up.body["ts_ms"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(
        up.body["ts"].as_str().unwrap().ends_with("+05:30"),
        "ts in the configured zone: {}",
        up.body
    );

    std::fs::rename(snap.dir().join("snap.jpg"), snap.dir().join("away.jpg")).unwrap();
    let down = hook.wait("up → down", |g| change(g, "Door", "up", "down"));
    assert_eq!(down.body["reason"], "not_found", "{}", down.body);
    assert!(!down.body["message"].as_str().unwrap().is_empty());

    std::fs::rename(snap.dir().join("away.jpg"), snap.dir().join("snap.jpg")).unwrap();
    hook.wait("down → up", |g| change(g, "Door", "down", "up"));

    let all = hook.all();
    assert_eq!(all.len(), 3, "one POST per change: {all:#?}");
    // The receiver's URL may be logged, its password not.
    let log = app.log_text();
    assert!(log.contains("notify: 1 webhook(s)"), "{log}");
    assert!(
        !log.contains(HOOK_SECRET),
        "the webhook password was logged"
    );
    assert_eq!(app.terminate(), Some(0));
}

/// A receiver that keeps failing (HTTP 500) gets a bounded number of
/// attempts with backoff, then the notification is given up and logged.
#[test]
fn webhook_retries_are_bounded() {
    let hook = Receiver::start(500);
    let dir = temp_dir("webhook_500");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nnotify:\n- http://127.0.0.1:{}/fail\nstreams:\n\
             - name: Dead\n  url: http://127.0.0.1:{}/x.jpg\n  kind: snapshot\n  fail_threshold: 1\n",
            hook.port,
            closed_port()
        ),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    let deadline = Instant::now() + WAIT;
    while !app.log_text().contains("giving up after 4 attempts") {
        assert!(Instant::now() < deadline, "{}", app.log_tail(30));
        std::thread::sleep(Duration::from_millis(200));
    }
    let attempts = hook.all();
    assert_eq!(attempts.len(), 4, "{attempts:#?}");
    assert!(attempts
        .iter()
        .all(|g| change(g, "Dead", "unknown", "down")));
    assert!(app.log_text().contains("answered 500"));
    // Nothing else is due (the stream stays down): no further attempts.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.all().len(), 4);
}

/// A receiver that accepts and never answers delays nothing: the other
/// receiver gets every change at once, probes keep their schedule, and the
/// daemon still stops promptly.
#[test]
fn hanging_webhook_blocks_nothing() {
    let hang = FakeSilentServer::start();
    let hook = Receiver::start(200);
    let snap = SnapshotServer::start();
    let dir = temp_dir("webhook_hang");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nnotify:\n- {}\n- http://127.0.0.1:{}/ok\nstreams:\n\
             - name: Dead\n  url: http://127.0.0.1:{}/x.jpg\n  kind: snapshot\n  fail_threshold: 1\n\
             - name: Door\n  url: {}\n  kind: snapshot\n",
            hang.url("http", "/hang"),
            hook.port,
            closed_port(),
            snap.url("snap.jpg")
        ),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    hook.wait("Dead down", |g| change(g, "Dead", "unknown", "down"));
    hook.wait("Door up", |g| change(g, "Door", "unknown", "up"));

    // Probes go on while the hung receiver holds its worker.
    app.wait_status(WAIT, "two more probes", |v| {
        v["Door"]["probes_total"].as_u64().unwrap_or(0) >= 3
    });
    let deadline = Instant::now() + WAIT;
    while !app.log_text().contains("attempt 1 of 4") {
        assert!(Instant::now() < deadline, "{}", app.log_tail(30));
        std::thread::sleep(Duration::from_millis(200));
    }
    // terminate() fails the test if the daemon needs more than 20 s.
    assert_eq!(app.terminate(), Some(0));
}
