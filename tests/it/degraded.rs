//! Issue 15, card robustness: when the data directory cannot be written (on
//! the appliance: /data failed fsck, did not mount, or went read-only),
//! `streampulse run --fallback-data-dir` still runs, from the fallback, and
//! says so: `/healthz` `data.degraded`, a red banner on every page, the
//! sd-notify `STATUS=` line. Here
//! the data directory lies below a regular file (ENOTDIR: the tests run as
//! root, so permission bits would not stop a write).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::{self, App};
use super::util::{self, temp_dir, SnapshotServer};

/// The banner's fixed sentence (src/web/templates/base.html).
const BANNER: &str = "Degraded: the data partition is not usable";

fn start(config: &Path, data: &Path, ram: &Path, extra: &[&str], env: &[(&str, &str)]) -> App {
    let mut args = vec!["--fallback-data-dir", ram.to_str().unwrap()];
    args.extend_from_slice(extra);
    // The token goes where the daemon will keep its data.
    let token_dir = if data.parent().is_some_and(|p| p.is_file()) {
        ram
    } else {
        data
    };
    let (cmd, env) = app::under_test_systemd(env);
    App::launch_with_token_in(token_dir, cmd, config, data, &args, &env)
}

/// Unusable data dir: the daemon runs from the fallback, imports the boot
/// config into its copy of config.yaml there, probes the stream into the
/// fallback's database, says "degraded" in /healthz and on the setup page,
/// and writes nothing below the unusable path.
#[test]
fn unusable_data_dir_runs_degraded_from_the_fallback() {
    let cam = SnapshotServer::start();
    let dir = temp_dir("degraded");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "a regular file\n").unwrap();
    let data = file.join("data");
    let ram = dir.path().join("ram");
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(
        boot.join("config.yaml"),
        format!(
            "monitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\nstreams:\n- name: Porch\n  url: {}\n  interval: 5\n",
            cam.url("snap.jpg")
        ),
    )
    .unwrap();
    let boot_arg = boot.join("config.yaml").to_string_lossy().into_owned();
    // A stand-in for systemd's notify socket, for the STATUS= line.
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let app = start(
        &data.join("config.yaml"),
        &data,
        &ram,
        &["--boot-config", &boot_arg],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("no sd-notify message");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        ready.contains("READY=1") && ready.contains("STATUS=DEGRADED (data in RAM): "),
        "{ready:?}"
    );

    let health = app.get("/healthz").1;
    assert_eq!(health["data"]["degraded"], true, "{health}");
    let reason = health["data"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Not a directory") && reason.contains(&*ram.to_string_lossy()),
        "{health}"
    );
    assert!(
        app.log_text().contains("DEGRADED: data directory"),
        "{}",
        app.log_text()
    );
    // No password yet: the setup page, with the banner (the reason escaped).
    let setup = app.get_text("/setup");
    assert!(setup.contains(BANNER), "{setup}");
    assert!(setup.contains("Not a directory"), "{setup}");

    // The imported stream runs from the copy and is stored in RAM.
    app.wait_status(Duration::from_secs(30), "Porch up", |v| {
        v["Porch"]["state"] == "up"
    });
    assert!(std::fs::read_to_string(ram.join("config.yaml"))
        .unwrap()
        .contains("Porch"));
    let db = ram.join(streampulse::store::DB_FILE);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = rusqlite::Connection::open(&db)
            .map(|c| util::stored_heartbeats(&c).len())
            .unwrap_or(0);
        if n > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat in {}; log:\n{}",
            db.display(),
            app.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    app.terminate();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "a regular file\n",
        "the unusable path was touched"
    );
}

/// A usable data dir: the fallback is not used, nothing says degraded.
#[test]
fn usable_data_dir_is_not_degraded() {
    let dir = temp_dir("not-degraded");
    let data = dir.path().join("data");
    let ram = dir.path().join("ram");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "streams: []\n").unwrap();
    let app = start(&cfg, &data, &ram, &[], &[]);
    let health = app.get("/healthz").1;
    assert_eq!(
        health["data"],
        serde_json::json!({"degraded": false, "reason": Value::Null}),
        "{health}"
    );
    let setup = app.get_text("/setup");
    assert!(setup.contains("<form"), "{setup}");
    assert!(!setup.contains(BANNER), "{setup}");
    assert!(!ram.exists(), "the fallback was created");
    assert!(data.join(streampulse::store::DB_FILE).exists());
    app.terminate();
}
