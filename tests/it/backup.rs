//! Issue 18: a backup downloaded from one box (config with its secrets, API
//! tokens, history) restores on a fresh one: by upload (streamed, checked,
//! applied by a restart in place) and from the boot partition. Bad files
//! change nothing; secrets end only in 0600 files, not in the database.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::{App, TEST_TOKEN};
use super::util::{free_port, temp_dir, wait_until, RtspServer};

const SECRET: &str = "b4ckup-Pa55word";
const READ_TOKEN: &str = "sp_backup-tests-read-only-0123456789abcdefghij";

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    )
}

/// GET `url` with `token` (if any): status, headers we need, body.
fn get(url: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut rq = agent().get(url);
    if let Some(t) = token {
        rq = rq.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = rq.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let disposition = r
        .headers()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let body = r.body_mut().read_to_vec().unwrap();
    (r.status().as_u16(), disposition, body)
}

/// POST `body` to `/system/restore` of `base` with `token` and `ctype`.
fn restore(base: &str, token: Option<&str>, ctype: &str, body: &[u8]) -> (u16, Value) {
    let mut rq = agent()
        .post(&format!("{base}/system/restore"))
        .header("Content-Type", ctype);
    if let Some(t) = token {
        rq = rq.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = rq.send(body).unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    (
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn config(device: &str, stream_name: &str, url: &str) -> String {
    let hash = streampulse::credentials::hash_password("correct horse battery").unwrap();
    format!(
        "device_name: {device}\nadmin_password_hash: '{hash}'\nheartbeat_seconds: 5\n\
         monitor:\n  heartbeat_flush_seconds: 1\nstreams:\n- name: {stream_name}\n  url: {url}\n"
    )
}

#[test]
fn backup_of_one_box_restores_on_a_fresh_one() {
    let rtsp = RtspServer::start();
    // Box A: a camera with a password, an extra read-only token, history.
    let a = temp_dir("backup_a");
    let a_data = a.path().join("data");
    std::fs::create_dir_all(&a_data).unwrap();
    std::fs::write(
        a.path().join("config.yaml"),
        config(
            "Box A",
            "cam",
            &rtsp.url_with_credentials("/h264", "admin", SECRET),
        ),
    )
    .unwrap();
    streampulse::web::auth::seed_token(
        &a_data,
        "reader",
        READ_TOKEN,
        streampulse::web::auth::Scope::Read,
    )
    .unwrap();
    let app_a = App::start(&a.path().join("config.yaml"), &a_data);
    app_a.wait_status(Duration::from_secs(40), "three probes of cam", |v| {
        v["cam"]["probes_total"].as_u64().unwrap_or(0) >= 3 && v["cam"]["status"] == "ok"
    });
    // Heartbeats are written within a second or two (flush 1 s).
    std::thread::sleep(Duration::from_secs(3));
    let backup_ms = jiff::Timestamp::now().as_millisecond();
    let base_a = format!("http://{}", app_a.addr);
    let url = format!("{base_a}/system/backup.spbackup");

    assert_eq!(get(&url, None).0, 401, "a backup without a login");
    assert_eq!(
        get(&url, Some(READ_TOKEN)).0,
        403,
        "a backup with a read token"
    );
    let (code, disposition, backup) = get(&url, Some(TEST_TOKEN));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&backup));
    assert!(backup.starts_with(b"SQLite format 3\0"));
    assert!(
        disposition.contains("streampulse-backup-Box-A-") && disposition.ends_with(".spbackup\""),
        "{disposition}"
    );
    assert!(
        contains(&backup, SECRET),
        "the backup carries the camera's password"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&a_data)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?} left in the data dir");
    let (_, history_a) = app_a.get("/api/streams/cam/history?limit=1000");
    let before: Vec<i64> = history_a["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ts_ms"].as_i64().unwrap())
        .filter(|t| *t < backup_ms - 2000)
        .collect();
    assert!(before.len() >= 2, "{history_a:#}");
    let tokens_a = std::fs::read(a_data.join("api-tokens.json")).unwrap();
    drop(app_a);

    // Box B: freshly set up, another camera; reachable on a fixed port
    // across its restart (the first --listen is a new free port each start).
    let b = temp_dir("backup_b");
    let b_data = b.path().join("data");
    let b_config = b.path().join("config.yaml");
    let b_text = config("Box B", "other", "rtsp://127.0.0.1:9/x");
    std::fs::write(&b_config, &b_text).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let app_b = App::start_with_args(&b_config, &b_data, &["--listen", &listen], &[]);
    let base_b = format!("http://{listen}");
    let pid = app_b.pid();

    // Refused, and nothing changes.
    let (code, v) = restore(
        &base_b,
        Some(TEST_TOKEN),
        "application/octet-stream",
        b"not a backup at all",
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not a StreamPulse backup"),
        "{v}"
    );
    let mut damaged = backup.clone();
    let mid = damaged.len() / 2;
    damaged.truncate(mid);
    let (code, v) = restore(
        &base_b,
        Some(TEST_TOKEN),
        "application/octet-stream",
        &damaged,
    );
    assert_eq!(code, 400, "a truncated backup: {v}");
    assert_eq!(
        restore(&base_b, None, "application/octet-stream", &backup).0,
        401
    );
    assert_eq!(
        restore(
            &base_b,
            Some(READ_TOKEN),
            "application/octet-stream",
            &backup
        )
        .0,
        401,
        "B does not know A's read token"
    );
    let (code, v) = restore(&base_b, Some(TEST_TOKEN), "text/plain", &backup);
    assert_eq!(code, 415, "{v}");
    assert_eq!(std::fs::read_to_string(&b_config).unwrap(), b_text);
    assert!(!b_data.join("restore.pending").exists());
    assert!(app_b.get("/api/status").1.get("other").is_some());

    // Restored: answered, then the daemon restarts in place with A's config,
    // tokens and history.
    let (code, v) = restore(
        &base_b,
        Some(TEST_TOKEN),
        "application/octet-stream",
        &backup,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["device_name"], "Box A", "{v}");
    assert_eq!(v["restarting"], true, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        // Refused or cut off while the daemon restarts: try again.
        let answer = agent()
            .get(&format!("{base_b}/api/status"))
            .header("Authorization", &format!("Bearer {TEST_TOKEN}"))
            .call()
            .ok()
            .and_then(|mut r| {
                let code = r.status().as_u16();
                r.body_mut().read_to_vec().ok().map(|b| (code, b))
            });
        if let Some((200, body)) = answer {
            let v: Value = serde_json::from_slice(&body).unwrap();
            if v.get("cam").is_some() {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "B never came back as A: {}",
            app_b.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.get("other").is_none(), "{status:#}");
    assert_eq!(app_b.pid(), pid, "restarted in place");
    assert!(app_b
        .log_text()
        .contains("restore: restored the backup of \"Box A\""));
    let (code, _, body) = get(&format!("{base_b}/healthz"), Some(READ_TOKEN));
    assert_eq!(code, 200);
    let health: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["device_name"], "Box A");
    let (code, _, body) = get(
        &format!("{base_b}/api/streams/cam/history?limit=1000"),
        Some(READ_TOKEN),
    );
    assert_eq!(code, 200, "A's read token works on B");
    let history_b: Value = serde_json::from_slice(&body).unwrap();
    let restored: Vec<i64> = history_b["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ts_ms"].as_i64().unwrap())
        .collect();
    for t in &before {
        assert!(
            restored.contains(t),
            "A's heartbeat at {t} missing on B: {history_b:#}"
        );
    }

    // Where the secrets are now: 0600 files only; not in the database.
    assert_eq!(mode(&b_config), 0o600);
    assert!(std::fs::read_to_string(&b_config).unwrap().contains(SECRET));
    let bak = b.path().join("config.yaml.bak");
    assert_eq!(mode(&bak), 0o600);
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), b_text);
    assert_eq!(
        std::fs::read(b_data.join("api-tokens.json")).unwrap(),
        tokens_a
    );
    assert_eq!(mode(&b_data.join("api-tokens.json")), 0o600);
    assert!(b_data.join("streampulse.db.before-restore").exists());
    assert!(!b_data.join("restore.pending").exists());
    drop(app_b);
    let db = std::fs::read(b_data.join("streampulse.db")).unwrap();
    assert!(
        !contains(&db, SECRET),
        "the camera's password is in the database"
    );
    assert!(
        !contains(&db, "streampulse_backup"),
        "the backup's tables are in the database"
    );

    // A fresh card with the backup on its boot partition.
    let c = temp_dir("backup_c");
    let boot = c.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(boot.join("restore.spbackup"), &backup).unwrap();
    let c_config = c.path().join("data/config.yaml");
    let boot_arg = boot.join("config.yaml");
    let app_c = App::start_with_args(
        &c_config,
        &c.path().join("data"),
        &["--boot-config", boot_arg.to_str().unwrap()],
        &[],
    );
    let (_, health) = app_c.get("/healthz");
    assert_eq!(health["device_name"], "Box A", "{}", app_c.log_tail(20));
    assert!(
        !boot.join("restore.spbackup").exists(),
        "the backup (secrets) stays on the card"
    );
    assert_eq!(mode(&c_config), 0o600);
    drop(app_c);

    // A damaged one there: set aside with the reason, the box starts as it was.
    let d = temp_dir("backup_d");
    let boot = d.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(boot.join("restore.spbackup"), &damaged).unwrap();
    let d_config = d.path().join("config.yaml");
    std::fs::write(&d_config, config("Box D", "other", "rtsp://127.0.0.1:9/x")).unwrap();
    let boot_arg = boot.join("config.yaml");
    let app_d = App::start_with_args(
        &d_config,
        &d.path().join("data"),
        &["--boot-config", boot_arg.to_str().unwrap()],
        &[],
    );
    assert_eq!(app_d.get("/healthz").1["device_name"], "Box D");
    wait_until(Duration::from_secs(5), "the error note", || {
        boot.join("restore.spbackup.error.txt").exists()
    });
    assert!(boot.join("restore.spbackup.error").exists());
    assert!(!d.path().join("data/restore.pending").exists());
}

/// The System page's restore form in Debian's headless Chromium
/// (`tests/e2e/restore.mjs`): app.js sends box A's backup to box B with
/// the session's CSRF token, follows the restart and lands on the login
/// page; B is box A afterwards.
#[test]
fn restore_form_in_chromium() {
    let e2e = super::util::chromium::e2e_dir();
    let hosts = "web:\n  allowed_hosts: [streampulse.test]\n";
    let a = temp_dir("backup_chromium_a");
    let a_data = a.path().join("data");
    let a_config = a.path().join("config.yaml");
    std::fs::write(
        &a_config,
        config("Box A", "porch", "rtsp://127.0.0.1:9/x") + hosts,
    )
    .unwrap();
    let app_a = App::start(&a_config, &a_data);
    let (code, _, backup) = get(
        &format!("http://{}/system/backup.spbackup", app_a.addr),
        Some(TEST_TOKEN),
    );
    assert_eq!(code, 200);
    drop(app_a);
    let file = a.path().join("box-a.spbackup");
    std::fs::write(&file, &backup).unwrap();

    let b = temp_dir("backup_chromium_b");
    let b_config = b.path().join("config.yaml");
    std::fs::write(
        &b_config,
        config("Box B", "other", "rtsp://127.0.0.1:9/y") + hosts,
    )
    .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let app_b = App::start_with_args(
        &b_config,
        &b.path().join("data"),
        &["--listen", &listen],
        &[],
    );
    let flow = super::util::chromium::run(
        &e2e,
        "restore.mjs",
        &[
            ("SP_BASE", format!("http://streampulse.test:{port}")),
            ("SP_FILE", file.display().to_string()),
            ("SP_PASSWORD", "correct horse battery".to_owned()),
        ],
    );
    assert!(
        flow.status.success() && flow.stdout.contains("RESTORE OK"),
        "the Chromium restore failed ({}):\n{}\n{}\ndaemon log tail:\n{}",
        flow.status,
        flow.stdout,
        flow.stderr,
        app_b.log_tail(40)
    );
    let c = streampulse::config::load(&b_config).unwrap();
    assert_eq!(c.device_name, "Box A");
}
