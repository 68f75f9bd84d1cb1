//! The appliance side of `streampulse run`, end to end against the real binary:
//! systemd notifications on a `NOTIFY_SOCKET` the test binds (READY=1 only
//! once the port answers, WATCHDOG=1 keep-alives, STATUS=, STOPPING=1), the
//! boot-partition config import (`--boot-config`), and what `/healthz` says
//! about the box (data-partition space, NTP offset from a loopback SNTP
//! server, the import's outcome).
//!
//! The "wedged monitor withholds pings" property is unit-tested in
//! `src/system/watchdog.rs` with fake progress sources: a real process gives
//! no safe way to freeze one of its threads.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::{self, App};
use super::util::{temp_dir, SnapshotServer, PASSWORD};

/// `streampulse run` (an [`App`]) that hears only the test's fake systemd:
/// the variables a real systemd may have given this test process are
/// removed, and it logs at info. Killed on drop.
struct Daemon(App);

impl Daemon {
    fn start(config: &Path, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let (cmd, env) = app::under_test_systemd(env);
        Daemon(App::launch(cmd, config, data_dir, extra, &env))
    }

    /// GET `path` as JSON; panics on an error status or a body that is not JSON.
    fn get(&self, path: &str) -> Value {
        let (status, v) = self.0.get(path);
        assert!(status < 400 && !v.is_string(), "GET {path}: {status} {v}");
        v
    }

    /// Polls `path` until `pred` holds (the board fills just after the
    /// port is bound); returns the last answer after 20 s regardless.
    fn wait(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.get(path);
            if pred(&v) || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        self.0.log_text()
    }

    /// SIGTERM, then wait (bounded) for exit.
    fn terminate(self) {
        self.0.terminate();
    }
}

/// The test's stand-in for systemd: a datagram socket collecting notifications.
struct FakeSystemd {
    sock: UnixDatagram,
    path: String,
    _dir: tempfile::TempDir,
}

impl FakeSystemd {
    fn bind() -> FakeSystemd {
        let dir = temp_dir("notify");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("binding a unix datagram socket");
        FakeSystemd {
            sock,
            path: path.to_string_lossy().into_owned(),
            _dir: dir,
        }
    }

    /// Next datagram, or None after `timeout`.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        self.sock
            .recv(&mut buf)
            .ok()
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Collects datagrams until `done(all lines so far)` or `timeout`.
    fn collect_until(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        while !done(&lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(msg) = self.recv(left.min(Duration::from_millis(500))) {
                lines.extend(msg.lines().map(str::to_owned));
            }
        }
        lines
    }
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| *l == what).count()
}

/// A daemon on `config` (in a temp dir named after `name`) under a fresh
/// fake systemd: `NOTIFY_SOCKET` names it, `env` adds the rest.
fn under_systemd(
    name: &str,
    config: &str,
    env: &[(&str, &str)],
) -> (tempfile::TempDir, FakeSystemd, Daemon) {
    let dir = temp_dir(name);
    let cfg = write_config(dir.path(), config);
    let systemd = FakeSystemd::bind();
    let mut all = vec![("NOTIFY_SOCKET", systemd.path.as_str())];
    all.extend_from_slice(env);
    let app = Daemon::start(&cfg, &dir.path().join("data"), &[], &all);
    (dir, systemd, app)
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Under a (fake) systemd: READY=1 comes once the port answers, then
/// WATCHDOG=1 at half of WATCHDOG_USEC while probes complete, a STATUS= line
/// that counts the streams, and STOPPING=1 on SIGTERM.
#[test]
fn systemd_notifications_ready_watchdog_status_stopping() {
    let cam = SnapshotServer::start();
    let config = format!(
        "streams:\n- name: Porch\n  url: {}\n  interval: 5\n",
        cam.url("snap.jpg")
    );
    let (_dir, systemd, app) = under_systemd("sd-notify", &config, &[("WATCHDOG_USEC", "1000000")]);
    let first = systemd
        .recv(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no notification; log:\n{}", app.log_text()));
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    // READY=1 means the port is bound: /healthz must answer right away.
    assert_eq!(app.get("/healthz")["ok"], true);
    // Pings every 500 ms; wait for a few and for the first probe's status.
    let lines = systemd.collect_until(Duration::from_secs(30), |l| {
        count(l, "WATCHDOG=1") >= 4 && l.iter().any(|s| s.contains("1 up"))
    });
    assert!(
        count(&lines, "WATCHDOG=1") >= 4,
        "{lines:?}\nlog:\n{}",
        app.log_text()
    );
    let status: Vec<&String> = lines.iter().filter(|l| l.starts_with("STATUS=")).collect();
    assert!(
        status
            .iter()
            .any(|s| s.starts_with("STATUS=1 streams: 1 up, 0 down")),
        "{status:?}"
    );
    assert_eq!(app.get("/healthz")["watchdog"]["ping_interval_ms"], 500);
    app.terminate();
    let rest = systemd.collect_until(Duration::from_secs(5), |l| {
        l.iter().any(|s| s == "STOPPING=1")
    });
    assert!(rest.iter().any(|s| s == "STOPPING=1"), "{rest:?}");
}

/// A box with no streams has nothing to probe but is not wedged: it pings.
#[test]
fn zero_streams_still_ping_the_watchdog() {
    let (_dir, systemd, app) = under_systemd(
        "sd-notify-empty",
        "streams: []\n",
        &[("WATCHDOG_USEC", "600000")],
    );
    let lines = systemd.collect_until(Duration::from_secs(30), |l| count(l, "WATCHDOG=1") >= 5);
    assert_eq!(lines.first().map(String::as_str), Some("READY=1"));
    assert!(count(&lines, "WATCHDOG=1") >= 5, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("STATUS=0 streams")),
        "{lines:?}"
    );
    drop(app);
}

/// `WATCHDOG_PID` names another process (systemd set it for a parent): this
/// process must not ping, but READY=1 still goes out.
#[test]
fn watchdog_for_another_pid_is_not_pinged() {
    let (_dir, systemd, app) = under_systemd(
        "sd-notify-pid",
        "streams: []\n",
        &[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "1")],
    );
    let lines = systemd.collect_until(Duration::from_secs(3), |_| false);
    assert_eq!(
        lines.first().map(String::as_str),
        Some("READY=1"),
        "{lines:?}"
    );
    assert_eq!(count(&lines, "WATCHDOG=1"), 0, "{lines:?}");
    drop(app);
}

/// `--boot-config`: a valid file is imported and renamed (password-free copy
/// left behind); at the next start an invalid one is refused with a
/// line-numbered `.error` note and the imported config keeps running.
#[test]
fn boot_config_is_imported_once_and_a_bad_one_is_refused() {
    let cam = SnapshotServer::start();
    let dir = temp_dir("bootcfg");
    let boot = dir.path().join("boot");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let boot_cfg = boot.join("config.yaml");
    let data_cfg = data.join("config.yaml");
    let good = format!(
        "heartbeat_seconds: 5\nstreams:\n- name: Imported cam\n  url: {}\n  username: admin\n  password: {PASSWORD}\n",
        cam.url("snap.jpg")
    );
    std::fs::write(&boot_cfg, &good).unwrap();
    let boot_arg = boot_cfg.to_string_lossy().into_owned();

    // First start: no config on the data partition yet.
    let app = Daemon::start(&data_cfg, &data, &["--boot-config", &boot_arg], &[]);
    let status = app.wait("/api/status", |v| v.get("Imported cam").is_some());
    assert!(status.get("Imported cam").is_some(), "{status}");
    // Merged into the (empty) current config, so rewritten, not copied.
    assert_eq!(
        streampulse::config::load(&data_cfg).unwrap(),
        streampulse::config::parse(&good, "good").unwrap()
    );
    assert!(!boot_cfg.exists(), "the boot copy must be renamed");
    let applied = std::fs::read_to_string(boot.join("config.yaml.applied")).unwrap();
    assert!(applied.contains("Imported cam"), "{applied}");
    assert!(
        !applied.contains(PASSWORD),
        "password left on FAT:\n{applied}"
    );
    let health = app.get("/healthz");
    assert!(
        health["boot_config"]
            .as_str()
            .unwrap()
            .starts_with("imported"),
        "{health}"
    );
    assert!(!app.log_text().contains(PASSWORD));
    app.terminate();

    // Second start with a broken file: refused, previous config runs.
    std::fs::write(
        &boot_cfg,
        "streams:\n- name: Broken\n  url: rtsp://x/\n  interval: 1\n",
    )
    .unwrap();
    let app = Daemon::start(&data_cfg, &data, &["--boot-config", &boot_arg], &[]);
    let status = app.wait("/api/status", |v| v.get("Imported cam").is_some());
    assert!(status.get("Imported cam").is_some(), "{status}");
    assert!(status.get("Broken").is_none(), "{status}");
    assert!(boot_cfg.exists(), "an invalid file stays in place");
    let note = std::fs::read_to_string(boot.join("config.yaml.error")).unwrap();
    assert!(note.contains("config.yaml:2"), "{note}");
    assert!(note.contains("interval"), "{note}");
    assert!(
        app.log_text().contains("not imported"),
        "{}",
        app.log_text()
    );
    let health = app.get("/healthz");
    assert!(
        health["boot_config"]
            .as_str()
            .unwrap()
            .starts_with("rejected"),
        "{health}"
    );
    drop(app);
}

/// A fresh card: no config anywhere. The box starts with an empty config
/// (to be filled in through the web) instead of failing in a restart loop.
#[test]
fn fresh_card_without_any_config_starts_empty() {
    let dir = temp_dir("bootcfg-fresh");
    let data = dir.path().join("data");
    let data_cfg = data.join("config.yaml");
    let boot_arg = dir.path().join("boot/config.yaml");
    let app = Daemon::start(
        &data_cfg,
        &data,
        &["--boot-config", &boot_arg.to_string_lossy()],
        &[],
    );
    assert_eq!(app.get("/api/status"), serde_json::json!({}));
    assert!(data_cfg.exists());
    drop(app);
}

/// `/healthz` reports the data partition's space and the clock's offset
/// measured against the configured NTP server (a loopback SNTP server that
/// runs 7 s ahead).
#[test]
fn healthz_shows_disk_space_and_ntp_offset() {
    let ntp = streampulse::clock::sntp::fake::serve(
        streampulse::clock::sntp::fake::Behaviour::Skewed(7_000),
    );
    let dir = temp_dir("healthz-box");
    let cfg = write_config(
        dir.path(),
        &format!("time:\n  ntp_servers: ['{ntp}']\nstreams: []\n"),
    );
    let data = dir.path().join("data");
    let app = Daemon::start(&cfg, &data, &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        let h = app.get("/healthz");
        if !h["ntp"].is_null() || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let offset = health["ntp"]["offset_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("no NTP offset: {health}"));
    assert!((offset - 7_000).abs() < 1_000, "offset {offset}: {health}");
    assert_eq!(health["ntp"]["server"], ntp.to_string());
    let disk = &health["disk"];
    assert!(disk["total_bytes"].as_u64().unwrap() > 0, "{health}");
    assert!(
        disk["free_bytes"].as_u64().unwrap() <= disk["total_bytes"].as_u64().unwrap(),
        "{health}"
    );
    assert!(
        disk["retention"]["heartbeat_days"].as_u64().is_some(),
        "{health}"
    );
    assert!(disk["pressure"].is_string(), "{health}");
    // Box health stays out of /api/status, whose keys are stream names.
    assert_eq!(app.get("/api/status"), serde_json::json!({}));
    drop(app);
}
