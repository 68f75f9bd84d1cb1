//! Issue 19, items 3 and 4: availability figures and CSV exports, end to
//! end. A known history is written into the database before the real
//! daemon opens it (rollups, packed heartbeats, state changes); one stream
//! is disabled (its figures are only the seeded ones), one probes a closed
//! port (down). Both URLs carry a password that must appear in no answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::params;
use serde_json::Value;
use streampulse::store::blocks::{self, Block, Heartbeat};

use super::app::{App, TEST_TOKEN};
use super::util::{closed_port, temp_dir};

const H: i64 = 3_600_000;
const M: i64 = 60_000;
const DAY: i64 = 24 * H;
const SECRETS: [&str; 2] = ["S3cret-cam-pw", "hunter2-dead-pw"];
/// A name that needs CSV quoting (and percent-encoding in a path).
const CAM: &str = "cam, \"east\"";
const CAM_PATH: &str = "cam%2C%20%22east%22";
/// A stored stream (no longer configured) whose name a spreadsheet would
/// run as a formula: the CSV must show it as text.
const FORMULA: &str = "=HYPERLINK(\"http://evil.test/\",\"cam\")";
const FORMULA_PATH: &str = "%3DHYPERLINK(%22http%3A%2F%2Fevil.test%2F%22%2C%22cam%22)";
/// `FORMULA` as a CSV cell: a leading `'`, RFC 4180 quoted.
const FORMULA_CELL: &str = "\"'=HYPERLINK(\"\"http://evil.test/\"\",\"\"cam\"\")\"";
/// A token of scope `live` (not `read`), seeded before the start.
const LIVE_TOKEN: &str = "sp_live-scope-token-0123456789abcdefghijklmn";

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn hb(ts_ms: i64, ok: bool) -> Heartbeat {
    Heartbeat {
        ts_ms,
        ok,
        latency_ms: if ok { 120 } else { 3000 },
        reason: (!ok).then_some(streampulse::probe::Reason::Timeout),
        flags: 0,
    }
}

/// Packs `hbs` (oldest first) into blocks of stream `id`.
fn store_heartbeats(db: &rusqlite::Connection, id: i64, hbs: &[Heartbeat]) {
    let mut cur: Option<Block> = None;
    for h in hbs {
        if let Some(b) = cur.as_mut() {
            if b.try_push(h) {
                continue;
            }
            blocks::insert(db, id, b).unwrap();
        }
        cur = Some(Block::new(h));
    }
    if let Some(b) = cur {
        blocks::insert(db, id, &b).unwrap();
    }
}

fn config(dir: &Path, dead_port: u16) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "heartbeat_seconds: 60\ntimezone: Asia/Kolkata\nstreams:\n\
             - name: '{CAM}'\n  url: rtsp://admin:{}@127.0.0.1:9/x\n  enabled: false\n  interval: 15\n\
             - name: dead\n  url: rtsp://root:{}@127.0.0.1:{dead_port}/x\n  interval: 5\n  timeout: 1\n  fail_threshold: 1\n",
            SECRETS[0], SECRETS[1]
        ),
    )
    .unwrap();
    path
}

/// The seeded history, relative to `now` (hours counted back from the
/// start of the current hour, away from every window's edge):
/// * `CAM`: hourly rollups of 240 probes at 3-20 h ago (5 h ago half OK),
///   4 failed hours 3 days ago, 2 good hours 10 days ago, 1 failed hour 40
///   days ago (outside every window); no rollup 21 h-3 d ago (not
///   monitored: must not lower the figure); raw heartbeats every minute
///   from 30 to 11 min ago, every fourth failed; it went up 5 days ago.
/// * `dead`: up 10 days ago, down 3 hours ago; no heartbeats.
struct Seeded {
    now: i64,
    /// The last OK heartbeat of `CAM`.
    last_ok: i64,
    down_since: i64,
}

fn seed(db_path: &Path) -> Seeded {
    let db = streampulse::store::open(db_path).unwrap();
    let now = now_ms();
    let hour = now - now.rem_euclid(H);
    for (id, name) in [(1, CAM), (2, "dead"), (3, FORMULA)] {
        db.execute(
            "INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (?1, ?2, 'rtsp', 'rtsp://127.0.0.1/x', ?3)",
            params![id, name, now - 60 * DAY],
        )
        .unwrap();
    }
    let rollup = |k: i64, probes: i64, ok: i64| {
        db.execute(
            "INSERT INTO rollups VALUES (1, ?1, ?2, ?3, ?4, 500)",
            params![hour - k * H, probes, ok, ok * 120],
        )
        .unwrap();
    };
    for k in 3..=20 {
        rollup(k, 240, if k == 5 { 120 } else { 240 });
    }
    for k in 72..=75 {
        rollup(k, 240, 0);
    }
    for k in 240..=241 {
        rollup(k, 240, 240);
    }
    rollup(960, 240, 0);
    // Hours before this are final; the raw minutes come after it.
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_watermark', ?1)",
        [hour - 2 * H],
    )
    .unwrap();
    let first = now - 30 * M;
    let raw: Vec<Heartbeat> = (0..20).map(|i| hb(first + i * M, i % 4 != 0)).collect();
    store_heartbeats(&db, 1, &raw);
    // FORMULA: three heartbeats in the last hour (not configured, so in the
    // CSV of all streams but in no figure).
    let formula: Vec<Heartbeat> = (0..3).map(|i| hb(first + 30_000 + i * M, true)).collect();
    store_heartbeats(&db, 3, &formula);
    let down_since = now - 3 * H;
    for (id, ts, from, to) in [
        (1, now - 5 * DAY, "unknown", "up"),
        (2, now - 10 * DAY, "unknown", "up"),
        (2, down_since, "up", "down"),
    ] {
        db.execute(
            "INSERT INTO events (stream_id, ts_ms, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, 'connect')",
            params![id, ts, from, to],
        )
        .unwrap();
    }
    Seeded {
        now,
        last_ok: first + 19 * M,
        down_since,
    }
}

/// An answer read off the socket: status, head, body (de-chunked).
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
    chunked: bool,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// GET `path` over HTTP/1.1 with `token` (None: none).
fn get(app: &App, path: &str, token: Option<&str>) -> Answer {
    let mut s = TcpStream::connect(&app.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
        app.addr
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = all[split + 4..].to_vec();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Answer {
        status,
        head,
        body,
        chunked,
    }
}

fn api(app: &App, path: &str) -> Answer {
    get(app, path, Some(TEST_TOKEN))
}

fn no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows a camera password:\n{text}");
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn start() -> (tempfile::TempDir, App, Seeded) {
    let dir = temp_dir("avail");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let seeded = seed(&data.join("streampulse.db"));
    streampulse::web::auth::seed_token(
        &data,
        "watcher",
        LIVE_TOKEN,
        streampulse::web::auth::Scope::Live,
    )
    .unwrap();
    let app = App::start(&config(dir.path(), closed_port()), &data);
    (dir, app, seeded)
}

/// Waits until `dead` is down on the board (a probe of the closed port).
fn wait_down(app: &App) {
    app.wait_status(Duration::from_secs(30), "dead to go down", |v| {
        v["dead"]["state"] == "down"
    });
}

/// The figures of the seeded stream, per window, in `/api/streams`, in
/// `/api/streams/{name}/availability` and in `/metrics`: rollups counted
/// by whole hours, the raw minutes since the watermark added, hours with
/// nothing stored (not monitored) not counted, the hour 40 days ago
/// outside; the last OK from the stored heartbeats (the stream is
/// disabled: the board never saw one); the down streak reaching back to
/// the stored state change, over the daemon's own `unknown → down`.
#[test]
fn figures_from_a_known_history() {
    let (_dir, app, s) = start();
    wait_down(&app);
    let (want24, want7, want30) = (
        (4340u64, 4215u64),
        (4340 + 960, 4215),
        (4340 + 960 + 480, 4215 + 480),
    );
    let r = api(&app, "/api/streams");
    assert_eq!(r.status, 200, "{}", r.text());
    no_secret("/api/streams", &r.text());
    let list = r.json();
    let cam = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == CAM)
        .expect("the seeded stream is listed")
        .clone();
    for (w, (p, ok)) in [("24h", want24), ("7d", want7), ("30d", want30)] {
        let a = &cam["availability"][w];
        assert_eq!(a["probes"], p, "{w}: {cam:#}");
        assert_eq!(a["failed"], p - ok, "{w}: {cam:#}");
        assert!(
            close(a["ratio"].as_f64().unwrap(), ok as f64 / p as f64),
            "{w}: {cam:#}"
        );
    }
    assert_eq!(cam["last_ok_ms"], s.last_ok, "{cam:#}");
    assert_eq!(cam["streak"]["state"], "unknown", "disabled: {cam:#}");
    let dead = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "dead")
        .unwrap();
    assert_eq!(dead["streak"]["state"], "down", "{dead:#}");
    assert_eq!(dead["streak"]["since_ms"], s.down_since, "{dead:#}");
    assert!(dead["streak"]["seconds"].as_i64().unwrap() >= 3 * 3600);
    assert_eq!(dead["last_ok_ms"], Value::Null, "never OK: {dead:#}");
    assert_eq!(dead["availability"]["24h"]["ratio"], 0.0, "{dead:#}");

    // The endpoint: the default window (24 h) and a chosen one, in epoch
    // ms and in RFC 3339.
    let r = api(&app, &format!("/api/streams/{CAM_PATH}/availability"));
    assert_eq!(r.status, 200, "{}", r.text());
    no_secret("availability", &r.text());
    let v = r.json();
    assert_eq!(
        (v["probes"].as_u64(), v["ok"].as_u64()),
        (Some(4340), Some(4215)),
        "{v:#}"
    );
    assert_eq!(v["stream"], CAM);
    assert_eq!(v["interval_s"], 15);
    // 4340 heartbeats × 15 s of 24 h: the rest was not monitored.
    assert_eq!(v["monitored_s_est"], 4340 * 15, "{v:#}");
    assert_eq!(v["unmonitored_s_est"], 86_400 - 4340 * 15, "{v:#}");
    assert_eq!(v["last_ok_ms"], s.last_ok);
    assert!(v["since"].as_str().unwrap().ends_with("+05:30"), "{v:#}");
    let hour = s.now - s.now.rem_euclid(H);
    // Exactly the hour 5 h ago (half OK): [start, start + 1 h).
    let (a, b) = (hour - 5 * H, hour - 4 * H);
    let v = api(
        &app,
        &format!("/api/streams/{CAM_PATH}/availability?since={a}&until={b}"),
    )
    .json();
    assert_eq!(
        (v["probes"].as_u64(), v["ok"].as_u64()),
        (Some(240), Some(120)),
        "{v:#}"
    );
    assert_eq!(v["availability"], 0.5);
    // One ms later it starts mid-hour: that hour's raw heartbeats were not
    // kept, so nothing is counted (the hour is not split by guesswork).
    let v = api(
        &app,
        &format!(
            "/api/streams/{CAM_PATH}/availability?since={}&until={b}",
            a + 1
        ),
    )
    .json();
    assert_eq!(v["probes"], 0, "{v:#}");
    assert_eq!(v["availability"], Value::Null, "{v:#}");
    // Only `until`: the 24 hours before it (the hours that start 5-20 h
    // ago; the one 4 h ago starts at `until`, outside).
    let v = api(
        &app,
        &format!(
            "/api/streams/{CAM_PATH}/availability?until={}",
            hour - 4 * H
        ),
    )
    .json();
    assert_eq!(v["probes"], 16 * 240, "{v:#}");
    assert_eq!(v["since_ms"], hour - 28 * H, "{v:#}");
    // RFC 3339 (UTC and an offset) for the last 30 days' window.
    let rfc = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .unwrap()
            .to_string()
            .replace('+', "%2B")
    };
    let v = api(
        &app,
        &format!(
            "/api/streams/{CAM_PATH}/availability?since={}&until={}",
            rfc(s.now - 30 * DAY),
            rfc(s.now)
        ),
    )
    .json();
    assert_eq!(v["probes"].as_u64(), Some(want30.0), "{v:#}");

    // /metrics: per stream and window, the streak, the last OK's age, box-wide.
    let r = api(&app, "/metrics");
    let text = r.text();
    no_secret("/metrics", &text);
    let sample = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    let label = r#"cam, \"east\""#;
    for (w, (p, ok)) in [("24h", want24), ("7d", want7), ("30d", want30)] {
        let got = sample(&format!(
            "streampulse_stream_availability_ratio{{stream=\"{label}\",window=\"{w}\"}} "
        ));
        assert!(close(got, ok as f64 / p as f64), "{w}: {got}");
        let all = sample(&format!(
            "streampulse_availability_ratio{{window=\"{w}\"}} "
        ));
        assert!(
            all < got && all > 0.0,
            "box-wide {w} ({all}) has dead's failures"
        );
    }
    let streak = sample("streampulse_stream_streak_seconds{stream=\"dead\",state=\"down\"} ");
    assert!(
        (streak - (now_ms() - s.down_since) as f64 / 1000.0).abs() < 30.0,
        "{streak}"
    );
    let age = sample(&format!(
        "streampulse_stream_last_ok_age_seconds{{stream=\"{label}\"}} "
    ));
    assert!(
        (age - (now_ms() - s.last_ok) as f64 / 1000.0).abs() < 30.0,
        "{age}"
    );
    assert!(
        !text.contains("streampulse_stream_last_ok_age_seconds{stream=\"dead\"}"),
        "never OK: no age"
    );
}

/// Bad input is a 400 with a JSON reason, an unknown stream a 404, no token
/// a 401, a `live` token a 403 (the scope is `read`).
#[test]
fn bad_requests_unknown_streams_and_scopes() {
    let (_dir, app, s) = start();
    let base = format!("/api/streams/{CAM_PATH}/availability");
    for (q, says) in [
        ("since=yesterday", "bad time"),
        ("until=2026-13-01T00:00:00Z", "bad time"),
        ("since=5&until=5", "before"),
        (&format!("since={}", s.now + H) as &str, "before"),
        ("since=0", "retention"),
        ("window=24h", "unknown parameter"),
        ("until=-9223372036854775808", "out of range"),
    ] {
        let r = api(&app, &format!("{base}?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.text().contains(says), "{q}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    for path in [
        "/api/history.csv?resolution=minute",
        "/api/history.csv?since=x",
        "/api/history.csv?since=10&until=5",
        "/api/history.csv?limit=5",
        "/api/history.csv?since=-9223372036854775808",
        "/api/history.csv?resolution=hour&until=9223372036854775807",
    ] {
        let r = api(&app, path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{path}");
    }
    for path in [
        "/api/streams/nope/availability",
        "/api/streams/nope/history.csv",
        "/api/streams/nope/history.csv?resolution=hour",
    ] {
        let r = api(&app, path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(r.text().contains("no such stream"), "{path}");
    }
    for path in [
        base.as_str(),
        "/api/history.csv",
        &format!("/api/streams/{CAM_PATH}/history.csv"),
    ] {
        let r = get(&app, path, None);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.text());
        let r = get(&app, path, Some(LIVE_TOKEN));
        assert!(
            r.status == 401 || r.status == 403,
            "{path} with a live token: {} {}",
            r.status,
            r.text()
        );
        assert!(r.text().contains("scope"), "{path}: {}", r.text());
        assert_eq!(api(&app, path).status, 200, "{path} with read/admin");
    }
}

/// The CSV of one stream and of all: header row, the name quoted (comma
/// and quotes), times in UTC and in the configured zone (Asia/Kolkata),
/// the seeded heartbeats and hourly rollups, a download (attachment),
/// chunked, linked from the stream page; no camera password anywhere.
#[test]
fn csv_exports_quote_names_and_write_both_times() {
    let (_dir, app, s) = start();
    wait_down(&app);
    let first = s.now - 30 * M;
    let r = api(
        &app,
        &format!("/api/streams/{CAM_PATH}/history.csv?since={}", s.now - H),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.chunked, "streamed, not sized: {}", r.head);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"streampulse-cam___east_-raw.csv\"")
    );
    let text = r.text();
    no_secret("CSV", &text);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "time_utc,time_local,stream,status,latency_ms,reason,clock_synced"
    );
    assert_eq!(lines.len(), 21, "header + 20 heartbeats:\n{text}");
    let utc = jiff::Timestamp::from_millisecond(first).unwrap();
    let kolkata = utc.to_zoned(jiff::tz::TimeZone::get("Asia/Kolkata").unwrap());
    let want = format!(
        "{}.{:03}Z,{}.{:03}+05:30,\"cam, \"\"east\"\"\",fail,3000,timeout,true",
        utc.strftime("%Y-%m-%dT%H:%M:%S"),
        first % 1000,
        kolkata.strftime("%Y-%m-%dT%H:%M:%S"),
        first % 1000,
    );
    assert_eq!(lines[1], want);
    assert!(
        lines[2].ends_with(",\"cam, \"\"east\"\"\",ok,120,,true"),
        "{}",
        lines[2]
    );

    // Hourly, the chosen window: the rollups 3-20 h ago, oldest first.
    let hour = s.now - s.now.rem_euclid(H);
    let r = api(
        &app,
        &format!(
            "/api/streams/{CAM_PATH}/history.csv?resolution=hour&since={}&until={}",
            hour - 20 * H,
            hour - 2 * H
        ),
    );
    let text = r.text();
    no_secret("hourly CSV", &text);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "hour_utc,hour_local,stream,probes,ok,failed,availability,latency_avg_ms,latency_max_ms"
    );
    assert_eq!(lines.len(), 1 + 18, "{text}");
    let five = jiff::Timestamp::from_millisecond(hour - 5 * H).unwrap();
    let row = lines
        .iter()
        .find(|l| l.starts_with(&five.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string()))
        .unwrap_or_else(|| panic!("the hour 5 h ago in\n{text}"));
    assert!(
        row.ends_with(",\"cam, \"\"east\"\"\",240,120,120,0.500000,120.0,500"),
        "{row}"
    );

    // All streams: both names, time order.
    let r = api(&app, &format!("/api/history.csv?since={}", s.now - H));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"streampulse-all-raw.csv\"")
    );
    let text = r.text();
    no_secret("all-streams CSV", &text);
    assert!(
        text.contains(",dead,fail,"),
        "the daemon's own heartbeats:\n{text}"
    );
    assert_eq!(text.matches("\"cam, \"\"east\"\"\",").count(), 20);
    // See: issue 19. A name that starts like a formula is text in a
    // spreadsheet: a leading `'`, still quoted; never a bare `=` cell.
    assert_eq!(
        text.matches(&format!(",{FORMULA_CELL},ok,120,,true\r\n"))
            .count(),
        3,
        "the formula stream's rows:\n{text}"
    );
    assert!(
        !text.contains(",=") && !text.contains(",\"="),
        "a cell starting with `=`:\n{text}"
    );
    let times: Vec<&str> = text
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "rows in time order");

    // The formula stream's own CSV: the same cell.
    let r = api(
        &app,
        &format!(
            "/api/streams/{FORMULA_PATH}/history.csv?since={}",
            s.now - H
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "header + 3 heartbeats:\n{text}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.ends_with(&format!(",{FORMULA_CELL},ok,120,,true"))),
        "{text}"
    );

    // The stream page links both downloads and shows the table.
    let mut b = super::web::Browser::new(&app);
    super::web::set_up(&mut b);
    let r = super::web::log_in(&mut b, super::web::PASSWORD, "/");
    assert_eq!(r.status, 303, "login: {}", r.text());
    let p = b.get(&format!("/streams/{CAM_PATH}"));
    assert_eq!(p.status, 200, "{}", p.text());
    let page = p.text();
    no_secret("stream page", &page);
    assert!(
        page.contains(&format!(
            "href=\"/api/streams/{CAM_PATH}/history.csv?resolution=raw\""
        )),
        "{page}"
    );
    assert!(page.contains("id=\"avail-30d\""), "{page}");
    assert!(page.contains("97.12 %"), "24 h: 4215 of 4340: {page}");
}

/// Peak resident memory of `pid` (kB).
fn vm_hwm_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Six days of heartbeats every 3 s (172,800 rows, ~15 MB of CSV) come out
/// complete, in order and chunked, while the daemon's peak memory grows by
/// far less than the answer: it is written as it is read.
#[test]
fn a_large_history_is_streamed_not_built_in_memory() {
    let dir = temp_dir("avail_big");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let now = now_ms();
    let start = now - 6 * DAY;
    let n = 6 * DAY / 3000;
    {
        let db = streampulse::store::open(&data.join("streampulse.db")).unwrap();
        db.execute(
            "INSERT INTO streams (id, name, kind, url_redacted, created_ms) VALUES (1, ?1, 'rtsp', 'x', 0)",
            [CAM],
        )
        .unwrap();
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('rollup_watermark', ?1)",
            [now - now.rem_euclid(H) - H],
        )
        .unwrap();
        let hbs: Vec<Heartbeat> = (0..n).map(|i| hb(start + i * 3000, i % 7 != 0)).collect();
        db.execute_batch("BEGIN").unwrap();
        store_heartbeats(&db, 1, &hbs);
        db.execute_batch("COMMIT").unwrap();
    }
    let app = App::start(&config(dir.path(), closed_port()), &data);
    // Warm up (pages, caches), then measure the peak around the download.
    assert_eq!(api(&app, "/api/streams").status, 200);
    let before = vm_hwm_kib(app.pid());
    let t = Instant::now();
    let r = api(
        &app,
        &format!("/api/streams/{CAM_PATH}/history.csv?since={}", start),
    );
    let took = t.elapsed();
    let after = vm_hwm_kib(app.pid());
    assert_eq!(r.status, 200);
    assert!(r.chunked, "{}", r.head);
    let text = r.text();
    let rows: Vec<&str> = text
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len() as i64, n, "every heartbeat once");
    assert_eq!(
        rows.iter().filter(|l| l.contains(",fail,")).count() as i64,
        (n + 6) / 7
    );
    let mut prev = "";
    for l in &rows {
        let t = l.split(',').next().unwrap();
        assert!(t > prev, "in order: {prev} then {t}");
        prev = t;
    }
    let grew = after.saturating_sub(before);
    eprintln!(
        "{} bytes of CSV in {took:?}; peak RSS {before} → {after} kB",
        r.body.len()
    );
    assert!(r.body.len() > 12_000_000, "{}", r.body.len());
    assert!(
        grew * 1024 < r.body.len() as u64 / 4,
        "peak RSS grew by {grew} kB for a {} byte answer",
        r.body.len()
    );

    // Two clients that stop reading hold both download slots, not web
    // workers: a third download waits its turn (503), the API answers.
    let path = format!("/api/streams/{CAM_PATH}/history.csv?since={start}");
    let stalled: Vec<TcpStream> = (0..2).map(|_| stalled_download(&app, &path)).collect();
    let r = api(&app, &path);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("downloads are running"), "{}", r.text());
    assert_eq!(api(&app, "/api/streams").status, 200, "workers are free");
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = api(&app, &format!("/api/history.csv?since={}", now - H));
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots not given back: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts a download of `path` and reads only the answer's head; the
/// socket is kept open and never read again.
fn stalled_download(app: &App, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(&app.addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TEST_TOKEN}\r\n\r\n",
        app.addr
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}
