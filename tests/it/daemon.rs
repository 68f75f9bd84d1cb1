//! End-to-end tests of `streampulse run`: real RTSP server and fakes on
//! loopback, the JSON API, hot reload, secret redaction, crash safety.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::App;
use super::fakes::{FakeRtspCamera, FakeSilentServer, RtspFault};
use super::util::{closed_port, temp_dir, RtspServer};

const SECRET: &str = "s3cret-Pa55";

fn status_of<'a>(v: &'a Value, name: &str) -> &'a Value {
    &v[name]
}

/// The monitor serves `/api/status` in the seed's shape plus what it learnt,
/// reports real failures with their reason, and never shows a password.
#[test]
fn status_api_reports_real_streams_and_failures() {
    let rtsp = RtspServer::start();
    let silent = FakeSilentServer::start();
    let dir = temp_dir("status_api");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\ntimezone: Asia/Calcutta\nstreams:\n\
             - name: cam h264\n  url: {}\n\
             - name: cam-digest\n  url: {}\n\
             - name: cam-wrong-password\n  url: {}\n\
             - name: cam-off\n  url: rtsp://127.0.0.1:{}/x\n\
             - name: cam-silent\n  url: {}\n  timeout: 2\n\
             - name: cam-udp-only\n  url: {}\n",
            rtsp.url("/h264"),
            rtsp.url_with_credentials("/digest", "admin", SECRET),
            rtsp.url_with_credentials("/basic", "admin", "not-the-password"),
            closed_port(),
            silent.url("rtsp", "/stream"),
            rtsp.url("/udponly"),
        ),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    let v = app.wait_status(
        Duration::from_secs(40),
        "every stream to have a result",
        |v| {
            [
                "cam h264",
                "cam-digest",
                "cam-wrong-password",
                "cam-off",
                "cam-silent",
                "cam-udp-only",
            ]
            .iter()
            .all(|n| v[*n]["status"] != "")
        },
    );

    let ok = status_of(&v, "cam h264");
    assert_eq!(ok["status"], "ok", "{v:#}");
    assert!(ok["latency"].as_u64().unwrap() > 0);
    assert_eq!(ok["codec"], "h264");
    assert_eq!(ok["resolution"], "320x240");
    assert_eq!(ok["state"], "up");
    assert_eq!(ok["transport"], "tcp", "{v:#}");
    // No `transport:` set: `auto` got UDP from the server that refuses TCP.
    let udp = status_of(&v, "cam-udp-only");
    assert_eq!(
        (&udp["status"], &udp["transport"]),
        (&"ok".into(), &"udp".into()),
        "{v:#}"
    );
    assert!(
        ok["ts"].as_str().unwrap().ends_with("+05:30"),
        "ts in the configured zone: {ok}"
    );
    assert_eq!(status_of(&v, "cam-digest")["status"], "ok", "{v:#}");
    assert_eq!(
        status_of(&v, "cam-wrong-password")["reason"],
        "auth",
        "{v:#}"
    );
    assert_eq!(status_of(&v, "cam-off")["reason"], "connect", "{v:#}");
    assert_eq!(status_of(&v, "cam-silent")["reason"], "timeout", "{v:#}");
    assert_eq!(status_of(&v, "cam-silent")["status"], "fail");

    // Debounce: the default fail_threshold is 2, so the dead camera goes down.
    app.wait_status(Duration::from_secs(30), "cam-off to be down", |v| {
        v["cam-off"]["state"] == "down"
    });

    // History and events from SQLite (after the recorder's commit interval).
    let deadline = Instant::now() + Duration::from_secs(20);
    let hist = loop {
        let (code, h) = app.get("/api/streams/cam%20h264/history");
        assert_eq!(code, 200, "{h}");
        if !h["heartbeats"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let hb = hist["heartbeats"].as_array().unwrap();
    assert!(!hb.is_empty(), "history should have heartbeats: {hist}");
    assert_eq!(hb[0]["status"], "ok");
    let (code, _) = app.get("/api/streams/nope/history");
    assert_eq!(code, 404);
    let (code, _) = app.get("/api/streams/cam%20h264/history?since=yesterday");
    assert_eq!(code, 400);

    // No password anywhere a user can see.
    for path in [
        "/api/status",
        "/api/streams",
        "/healthz",
        "/",
        "/api/streams/cam-digest/history",
    ] {
        let body = app.get_text(path);
        assert!(
            !body.contains(SECRET),
            "{path} leaks the camera password:\n{body}"
        );
    }
    let (_, streams) = app.get("/api/streams");
    let digest = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cam-digest")
        .unwrap();
    assert_eq!(
        digest["url"].as_str().unwrap(),
        rtsp.url_with_credentials("/digest", "admin", "***")
    );
    let (code, health) = app.get("/healthz");
    assert_eq!(code, 200);
    assert_eq!(health["ok"], true);
    let log = app.log_text();
    assert!(!log.contains(SECRET), "the log leaks the camera password");
    assert_eq!(app.terminate(), Some(0), "SIGTERM stops cleanly");
}

/// A camera that accepts and never answers holds only its own probe: the
/// healthy stream keeps its 5 s cadence (a serial scheduler would stretch
/// every gap by the 4 s hang).
#[test]
fn hung_camera_does_not_delay_other_streams() {
    let rtsp = RtspServer::start();
    let silent: Vec<FakeSilentServer> = (0..3).map(|_| FakeSilentServer::start()).collect();
    let dir = temp_dir("hung_camera");
    let config = dir.path().join("config.yaml");
    let mut text = format!(
        "heartbeat_seconds: 5\nmonitor:\n  max_concurrent_probes: 8\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\nstreams:\n- name: healthy\n  url: {}\n",
        rtsp.url("/mjpeg")
    );
    for (i, s) in silent.iter().enumerate() {
        text.push_str(&format!(
            "- name: hung-{i}\n  url: {}\n  timeout: 4\n",
            s.url("rtsp", "/x")
        ));
    }
    std::fs::write(&config, text).unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    app.wait_status(
        Duration::from_secs(60),
        "six probes of the healthy stream",
        |v| v["healthy"]["probes_total"].as_u64().unwrap_or(0) >= 6,
    );
    std::thread::sleep(Duration::from_secs(2)); // let the recorder commit
    let (_, hist) = app.get("/api/streams/healthy/history");
    let ts: Vec<i64> = hist["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ts_ms"].as_i64().unwrap())
        .collect();
    assert!(ts.len() >= 5, "{hist}");
    let gaps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    // interval 5 s ± 10 % jitter plus a probe of well under a second.
    assert!(
        gaps.iter().all(|g| *g < 7_500),
        "healthy stream was delayed: gaps {gaps:?} ms"
    );
    let (_, v) = app.get("/api/status");
    for i in 0..3 {
        assert_eq!(v[format!("hung-{i}")]["reason"], "timeout", "{v:#}");
    }
}

/// Added, changed and removed streams take effect without a restart;
/// unchanged streams keep their state; a broken file keeps the last good config.
#[test]
fn hot_reload_applies_changes_and_survives_a_broken_file() {
    let rtsp = RtspServer::start();
    let dir = temp_dir("hot_reload");
    let config = dir.path().join("config.yaml");
    let keep = format!("- name: keep\n  url: {}\n", rtsp.url("/mjpeg"));
    std::fs::write(
        &config,
        format!("heartbeat_seconds: 5\nstreams:\n{keep}- name: remove-me\n  url: rtsp://127.0.0.1:{}/x\n", closed_port()),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    let v = app.wait_status(Duration::from_secs(30), "keep to be up", |v| {
        v["keep"]["state"] == "up"
    });
    assert!(v.get("remove-me").is_some());
    let probes_before = v["keep"]["probes_total"].as_u64().unwrap();

    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nstreams:\n{keep}- name: added\n  url: {}\n  interval: 6\n",
            rtsp.url("/h265")
        ),
    )
    .unwrap();
    let v = app.wait_status(Duration::from_secs(30), "the added stream to report", |v| {
        v.get("remove-me").is_none() && v["added"]["status"] == "ok"
    });
    assert_eq!(v["added"]["codec"], "h265");
    assert!(
        v["keep"]["probes_total"].as_u64().unwrap() >= probes_before,
        "an unchanged stream must keep its state across a reload: {v:#}"
    );
    assert_eq!(v["keep"]["state"], "up");

    // A broken edit: reported with its line, the running config stays.
    std::fs::write(
        &config,
        format!("heartbeat_seconds: 5\nstreams:\n{keep}- name: added\n  url: [oops\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let health = loop {
        let (_, h) = app.get("/healthz");
        if h["config_error"].is_string() || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let err = health["config_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no config error shown: {health}"));
    assert!(
        err.contains("config.yaml:6:"),
        "error should name line 6 (the bad url): {err}"
    );
    let (_, v) = app.get("/api/status");
    assert!(
        v.get("added").is_some() && v.get("keep").is_some(),
        "last good config keeps running: {v:#}"
    );
}

/// SIGKILL in the middle of writing: the database passes integrity_check,
/// committed heartbeats survive, and the next start is clean.
#[test]
fn sigkill_mid_run_keeps_the_database_intact() {
    let dir = temp_dir("sigkill");
    let config = dir.path().join("config.yaml");
    let data = dir.path().join("data");
    // 40 fast-failing streams at 5 s: 8 heartbeats/s, committed every second.
    let port = closed_port();
    let mut text = String::from("heartbeat_seconds: 5\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\nstreams:\n");
    for i in 0..40 {
        text.push_str(&format!(
            "- name: s{i}\n  url: rtsp://127.0.0.1:{port}/s{i}\n"
        ));
    }
    std::fs::write(&config, &text).unwrap();
    let mut committed_before = 0;
    for round in 0..3 {
        let app = App::start(&config, &data);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, h) = app.get("/healthz");
            let n = h["recorder"]["heartbeats_committed"].as_u64().unwrap_or(0);
            if n >= 40 || Instant::now() > deadline {
                assert!(n >= 40, "round {round}: only {n} heartbeats committed");
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Kill at a different moment relative to the 1 s commit cycle each round.
        std::thread::sleep(Duration::from_millis(150 + 370 * round));
        app.kill9();
        let db = rusqlite::Connection::open(data.join("streampulse.db")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let rows = super::util::stored_heartbeats(&db).len() as u64;
        assert!(
            rows >= committed_before + 40,
            "round {round}: {rows} rows, expected ≥ {}",
            committed_before + 40
        );
        committed_before = rows;
    }
}

/// A harmless camera quirk (a trailing `;` in the SDP's fmtp) makes retina
/// warn at every session; the log has it once per stream, naming the
/// stream, however many heartbeats pass.
#[test]
fn camera_quirk_warning_is_logged_once_per_stream() {
    let cam = FakeRtspCamera::start(RtspFault::TrailingSemicolonFmtp);
    let dir = temp_dir("quirk_once");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nstreams:\n- name: door\n  url: {0}\n- name: yard\n  url: {0}\n",
            cam.url("/live")
        ),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    app.wait_status(Duration::from_secs(60), "three ok probes of each", |v| {
        ["door", "yard"]
            .iter()
            .all(|n| v[*n]["status"] == "ok" && v[*n]["probes_total"].as_u64().unwrap_or(0) >= 3)
    });
    let log = app.log_text();
    let quirk: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("format-specific-params"))
        .collect();
    assert_eq!(quirk.len(), 2, "once per stream:\n{log}");
    for name in ["door", "yard"] {
        assert!(
            quirk.iter().any(|l| l.contains(&format!("stream={name}"))),
            "the line names the stream {name}: {quirk:#?}"
        );
    }
}

/// The monitor measures the key-frame interval on a stream's second probe
/// (and every tenth after): about 1 s on the GStreamer camera; on the
/// 10 s-GOP mount with a 3 s timeout, a lower bound, while the stream stays
/// up.
#[test]
fn monitor_measures_the_keyframe_interval_now_and_then() {
    let rtsp = RtspServer::start();
    let dir = temp_dir("gop");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nstreams:\n- name: short\n  url: {}\n- name: long\n  url: {}\n  timeout: 3\n",
            rtsp.url("/h264"),
            rtsp.url("/longgop")
        ),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    let v = app.wait_status(Duration::from_secs(40), "both intervals measured", |v| {
        ["short", "long"]
            .iter()
            .all(|n| v[*n]["keyframe_interval_ms"].is_u64())
    });
    let short = &v["short"];
    let ms = short["keyframe_interval_ms"].as_u64().unwrap();
    assert!((800..=1300).contains(&ms), "{v:#}");
    assert!(short["bitrate_kbps"].as_u64().unwrap() > 0, "{v:#}");
    let long = &v["long"];
    assert_eq!(long["keyframe_interval_over"], true, "{v:#}");
    assert_eq!(
        (&long["status"], &long["state"]),
        (&"ok".into(), &"up".into()),
        "{v:#}"
    );
    // Kept by the probes that do not measure.
    let v = app.wait_status(Duration::from_secs(20), "a later probe", |v| {
        v["short"]["probes_total"].as_u64().unwrap_or(0) >= 3
    });
    assert!(v["short"]["keyframe_interval_ms"].is_u64(), "{v:#}");
}

/// `--health-file` (what an update's health gate waits for): a stale marker
/// goes at start, and the new one (the version) is written only once the
/// recorder holds a heartbeat, a failing camera's too (a camera that is down
/// during an update must not roll the update back), and a commit succeeded;
/// with no stream enabled (or none at all) the bound port is the proof.
#[test]
fn health_file_is_written_after_the_first_recorded_heartbeat() {
    let silent = FakeSilentServer::start();
    let dir = temp_dir("health_file");
    let marker = dir.path().join("healthy");
    std::fs::write(&marker, "stale from an earlier run\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nstreams:\n- name: silent\n  url: {}\n  timeout: 3\n",
            silent.url("rtsp", "/stream"),
        ),
    )
    .unwrap();
    let marker_arg = marker.to_str().unwrap();
    let app = App::start_with_args(
        &config,
        &dir.path().join("data"),
        &["--health-file", marker_arg],
        &[],
    );
    let recorder = |app: &App| app.get("/healthz").1["recorder"].clone();
    let recorded = |app: &App| {
        let r = recorder(app);
        r["heartbeats_committed"].as_u64().unwrap() + r["heartbeats_unwritten"].as_u64().unwrap()
    };
    // The probe of the silent camera takes its 3 s timeout: the stale
    // marker must be gone and no new one written before that heartbeat.
    assert_eq!(recorded(&app), 0, "{}", app.log_tail(20));
    assert!(!marker.exists(), "the stale marker survived the start");
    let start = Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no health file: {} {}",
            recorder(&app),
            app.log_tail(5)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Read the marker first, then the count: the count only grows.
    let text = std::fs::read_to_string(&marker).unwrap();
    assert!(
        recorded(&app) > 0,
        "marker written before any heartbeat was committed"
    );
    assert_eq!(text.trim(), env!("CARGO_PKG_VERSION"));
    drop(app);

    // No stream enabled, or none at all: written as soon as the daemon runs.
    for streams in [
        "streams:\n- name: off\n  url: rtsp://127.0.0.1:9/x\n  enabled: false\n",
        "streams: []\n",
    ] {
        std::fs::remove_file(&marker).unwrap();
        std::fs::write(&config, streams).unwrap();
        let app = App::start_with_args(
            &config,
            &dir.path().join("data"),
            &["--health-file", marker_arg],
            &[],
        );
        super::util::wait_until(Duration::from_secs(10), "the health file", || {
            marker.exists()
        });
        assert_eq!(recorded(&app), 0, "{streams}");
    }
}
