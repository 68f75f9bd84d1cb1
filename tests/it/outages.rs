//! Issue 8, long faults: the wall clock jumping under a running daemon
//! (libfaketime), peers (MQTT broker, webhook receiver, NTP server) gone for
//! a long while, and config.yaml edited into every kind of wrong. Real
//! cameras on loopback throughout; memory is read from /proc/<pid>/status.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::App;
use super::mosquitto::{Broker, Spec, Sub};
use super::util::{sample_jpeg, temp_dir, RtspServer, SnapshotServer};

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// 2100-01-01: an `until` past any clock the tests set.
const FAR_FUTURE_MS: i64 = 4_102_444_800_000;

/// Every heartbeat stored for `stream`, whatever the clock says now.
fn history(app: &App, stream: &str) -> Vec<Value> {
    let (code, v) = app.get(&format!(
        "/api/streams/{stream}/history?since=-1&until={FAR_FUTURE_MS}&limit=100000"
    ));
    assert_eq!(code, 200, "history of {stream}: {v}");
    v["heartbeats"]
        .as_array()
        .unwrap_or_else(|| panic!("no heartbeats array: {v}"))
        .clone()
}

fn probes(v: &Value, stream: &str) -> u64 {
    v[stream]["probes_total"].as_u64().unwrap_or(0)
}

/// Latency of a heartbeat must be a plausible number of ms: never negative,
/// never beyond the probe deadline (a wall-clock difference would be).
fn assert_sane_latency(what: &str, v: &Value, max_ms: u64) {
    let l = v["latency"]
        .as_i64()
        .unwrap_or_else(|| panic!("{what}: latency is not an integer: {v}"));
    assert!(
        (0..=max_ms as i64).contains(&l),
        "{what}: latency {l} ms out of 0..={max_ms}: {v}"
    );
}

/// The daemon's wall clock jumps +2 days, then back to −1 day, then to a
/// 1970 boot, then back to the truth, while it probes a real RTSP camera and
/// a real snapshot camera every 5 s with `heartbeat_days: 1`. Each phase: the
/// daemon keeps probing (≥ 2 new ok heartbeats per stream), latencies in
/// /api/status and the history are within 0..timeout. At the end the
/// history is strictly ordered by time, holds every heartbeat taken (the
/// newest last: taken in this order, filed in this order) and every
/// heartbeat from before the jumps. Here the jumps start after retention's
/// first pass (30 s after start); the next test jumps before it.
#[test]
fn clock_jumps_keep_probing_and_keep_history() {
    clock_jumps(false);
}

/// As above, but the +2 days jump comes before retention's first pass, as an
/// NTP step soon after boot would, and that pass runs under it: with
/// `heartbeat_days: 1` it must not prune the heartbeats taken before the
/// jump (retention's SteadyClock is anchored when the recorder starts; when
/// it was anchored at the first pass, this pruned every one of them).
#[test]
fn forward_jump_before_the_first_retention_pass_keeps_history() {
    clock_jumps(true);
}

fn clock_jumps(jump_before_first_retention: bool) {
    assert!(
        Path::new(FAKETIME).exists(),
        "libfaketime is missing: apt-get install faketime (make deps)"
    );
    let rtsp = RtspServer::start();
    let snap = SnapshotServer::start();
    let dir = temp_dir("clock_jumps");
    let offset_file = dir.path().join("faketime");
    std::fs::write(&offset_file, "+0\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nretention:\n  heartbeat_days: 1\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n\
             streams:\n- name: rtsp\n  url: {}\n  timeout: 5\n- name: snap\n  url: {}\n  kind: snapshot\n  timeout: 5\n",
            rtsp.url("/h264"),
            snap.url("snap.jpg")
        ),
    )
    .unwrap();
    let env = [
        ("LD_PRELOAD", FAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.to_str().unwrap()),
        ("FAKETIME_CACHE_DURATION", "1"),
        // Deadlines and intervals stay on the real monotonic clock, as on a
        // box whose NTP daemon steps CLOCK_REALTIME.
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let app = App::start_with_env(&config, &dir.path().join("data"), &env);
    let streams = ["rtsp", "snap"];

    let v = app.wait_status(Duration::from_secs(60), "both streams ok twice", |v| {
        streams
            .iter()
            .all(|s| v[*s]["status"] == "ok" && probes(v, s) >= 2)
    });
    // Heartbeats committed (commit_seconds: 1) before any jump.
    std::thread::sleep(Duration::from_secs(2));
    let before: Vec<Vec<Value>> = streams.iter().map(|s| history(&app, s)).collect();
    for (s, h) in streams.iter().zip(&before) {
        assert!(h.len() >= 2, "{s}: {h:?}; {v}");
    }

    if !jump_before_first_retention {
        wait_log(&app, "retention: rolled up");
    }
    let phases = [
        ("+2 days", "+2d"),
        ("-1 day", "-1d"),
        ("1970 boot", "@1970-01-01 00:00:00"),
        ("back to the truth", "+0"),
    ];
    for (what, spec) in phases {
        let (_, v0) = app.get("/api/status");
        std::fs::write(&offset_file, format!("{spec}\n")).unwrap();
        let v = app.wait_status(
            Duration::from_secs(60),
            &format!("two ok heartbeats per stream after the jump to {what}"),
            |v| {
                streams
                    .iter()
                    .all(|s| probes(v, s) >= probes(&v0, s) + 2 && v[*s]["status"] == "ok")
            },
        );
        for s in streams {
            assert_sane_latency(&format!("{what}: /api/status {s}"), &v[s], 5_000);
        }
        if spec == "+2d" && jump_before_first_retention {
            // Retention's first pass runs 30 s after start: let it see the
            // forward jump (with heartbeat_days: 1, a pass that believed the
            // clock would prune every heartbeat taken before it).
            wait_log(&app, "retention: rolled up");
        }
    }

    let (_, v) = app.get("/api/status");
    std::thread::sleep(Duration::from_secs(2)); // commit_seconds: 1
    for (s, old) in streams.iter().zip(&before) {
        let h = history(&app, s);
        let ts: Vec<i64> = h.iter().map(|hb| hb["ts_ms"].as_i64().unwrap()).collect();
        let shown: Vec<String> = h
            .iter()
            .map(|hb| format!("{} {} {} ms", hb["ts"], hb["status"], hb["latency"]))
            .collect();
        for hb in &h {
            assert_sane_latency(&format!("{s} history"), hb, 5_000);
        }
        assert!(
            ts.windows(2).all(|w| w[0] < w[1]),
            "{s}: history not strictly ordered by time: {shown:#?}"
        );
        for hb in old {
            assert!(
                ts.contains(&hb["ts_ms"].as_i64().unwrap()),
                "{s}: heartbeat {hb} from before the jumps is gone: {shown:#?}"
            );
        }
        // Taken in this order, filed in this order: the newest heartbeat
        // (as /api/status shows it) is the last one in the history, and
        // every heartbeat taken under the jumps is there.
        assert!(
            ts.len() as u64 >= probes(&v, s),
            "{s}: {} heartbeats stored, {} taken: {shown:#?}",
            ts.len(),
            probes(&v, s)
        );
        assert!(
            ts.iter()
                .rev()
                .take(2)
                .any(|t| Some(*t) == v[*s]["ts_ms"].as_i64()),
            "{s}: the newest heartbeat ({}) is not at the end of the history: {shown:#?}",
            v[*s]["ts"]
        );
    }
}

/// Waits (generously) for a daemon log line containing `needle`.
fn wait_log(app: &App, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !app.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?}; log tail:\n{}",
            app.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// VmRSS and VmHWM of `pid`, kB.
fn rss_kb(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[s.len() / 2]
}

/// A webhook receiver (tiny_http) on a given port, counting POSTs; dropping
/// it closes the port (connections are then refused), and it can be started
/// again on the same port (std sets SO_REUSEADDR).
struct Hook {
    port: u16,
    server: Arc<tiny_http::Server>,
    got: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hook {
    fn start(port: u16) -> Hook {
        let server = Arc::new(
            tiny_http::Server::http(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("webhook receiver on port {port}: {e}")),
        );
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let got = Arc::new(AtomicU64::new(0));
        let (s2, g2) = (server.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            while let Ok(mut rq) = s2.recv() {
                let mut body = String::new();
                let _ = rq.as_reader().read_to_string(&mut body);
                if body.contains("\"stream\"") {
                    g2.fetch_add(1, Ordering::Relaxed);
                }
                let _ = rq.respond(tiny_http::Response::empty(200));
            }
        });
        Hook {
            port,
            server,
            got,
            thread: Some(thread),
        }
    }

    fn count(&self) -> u64 {
        self.got.load(Ordering::Relaxed)
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The path to an NTP server (the SNTP test server of `system::sntp`) that
/// can be cut: while down, requests are swallowed, as by a dead server
/// behind a firewall; while up they are relayed and answered.
struct NtpLink {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NtpLink {
    fn start(up: bool) -> NtpLink {
        let server = streampulse::clock::sntp::fake::serve(
            streampulse::clock::sntp::fake::Behaviour::Skewed(0),
        );
        let sock = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP port");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let upstream = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP port");
        upstream.connect(server).unwrap();
        upstream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let up = Arc::new(AtomicBool::new(up));
        let stop = Arc::new(AtomicBool::new(false));
        let (up2, stop2) = (up.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue; // read timeout: look at the stop flag
                };
                if !up2.load(Ordering::Relaxed) || upstream.send(&buf[..n]).is_err() {
                    continue;
                }
                let mut reply = [0u8; 512];
                if let Ok(m) = upstream.recv(&mut reply) {
                    let _ = sock.send_to(&reply[..m], from);
                }
            }
        });
        NtpLink {
            addr,
            up,
            stop,
            thread: Some(thread),
        }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }
}

impl Drop for NtpLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long the peers stay down: compressed "hours" (about 1,000 heartbeats
/// and several hundred state changes, each one an MQTT publish and a webhook
/// that cannot be delivered).
const OUTAGE: Duration = Duration::from_secs(80);
/// VmHWM ceiling for the debug build with 50 streams: measured ≈ 30–40 MB here;
/// an unbounded queue of several hundred publishes/POSTs (each with its
/// retries) would not show in that, but one that kept every heartbeat would
/// keep growing, which the second check catches.
const HWM_CEILING_KB: u64 = 96 * 1024;
/// Allowed growth of the median VmRSS from the first to the second half of
/// the outage.
const GROWTH_LIMIT_KB: u64 = 2 * 1024;

/// The MQTT broker (real mosquitto, killed), the webhook receiver (gone:
/// connection refused) and the NTP server (silent) are all down while the
/// daemon probes 50 streams every 5 s, 40 of them flapping (fail/ok
/// threshold 1, the camera's picture toggled every 2 s), for [`OUTAGE`].
/// Memory, sampled every second: VmHWM stays under [`HWM_CEILING_KB`] and
/// the median VmRSS of the second half exceeds the first half's by at most
/// [`GROWTH_LIMIT_KB`]; probing goes on. When the peers come back: MQTT
/// state is published again, webhooks are delivered again, and /healthz
/// shows an NTP offset instead of the error.
#[test]
fn peers_down_for_long_memory_stays_bounded_and_they_recover() {
    let mut broker = Broker::start(Spec::default());
    let snap = SnapshotServer::start();
    let hook = Hook::start(0);
    let hook_port = hook.port;
    let ntp = NtpLink::start(false);
    let dir = temp_dir("peers_down");
    let config = dir.path().join("config.yaml");
    let flap = snap.dir().join("flap.jpg");
    std::fs::write(&flap, sample_jpeg()).unwrap();
    let mut text = format!(
        "device_name: out\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  interval: 5\n\
         notify:\n- http://127.0.0.1:{hook_port}/hook\ntime:\n  ntp_servers: ['{}']\nstreams:\n",
        broker.tcp_port, ntp.addr
    );
    for i in 0..50 {
        if i < 10 {
            text.push_str(&format!(
                "- name: s{i:02}\n  url: {}?cam={i}\n  kind: snapshot\n  timeout: 3\n",
                snap.url("snap.jpg")
            ));
        } else {
            text.push_str(&format!(
                "- name: f{i:02}\n  url: {}?cam={i}\n  kind: snapshot\n  timeout: 3\n  \
                 fail_threshold: 1\n  ok_threshold: 1\n",
                snap.url("flap.jpg")
            ));
        }
    }
    std::fs::write(&config, text).unwrap();
    let app = App::start(&config, &dir.path().join("data"));

    // Everything works before the outage.
    {
        let sub = Sub::start(&broker, "streampulse/#");
        sub.wait(Duration::from_secs(60), "s00 up over MQTT", |m| {
            // State topics are named by an id made from the URL.
            m.topic.starts_with("streampulse/out/")
                && m.topic.ends_with("/state")
                && m.payload.contains("cam=0\"")
                && m.payload.contains("\"state\":\"up\"")
        });
    }
    wait_for("a webhook POST", Duration::from_secs(60), || {
        hook.count() > 0
    });
    wait_for(
        "/healthz to show the NTP error",
        Duration::from_secs(30),
        || app.get("/healthz").1["ntp"]["error"].is_string(),
    );

    // The cameras flap for the whole test: state changes to publish and post.
    let stop_flap = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (stop, flap) = (stop_flap.clone(), flap.clone());
        std::thread::spawn(move || {
            let mut on = true;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(2));
                on = !on;
                let _ = if on {
                    std::fs::write(&flap, sample_jpeg())
                } else {
                    std::fs::remove_file(&flap)
                };
            }
        })
    };

    broker.kill9();
    drop(hook);
    let (_, v0) = app.get("/api/status");
    let probes0 = app.get("/healthz").1["probes_done"].as_u64().unwrap();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut hwm = 0;
    while t0.elapsed() < OUTAGE {
        std::thread::sleep(Duration::from_secs(1));
        let (rss, h) = rss_kb(app.pid());
        samples.push(rss);
        hwm = h;
    }
    let (_, v1) = app.get("/api/status");
    let probes1 = app.get("/healthz").1["probes_done"].as_u64().unwrap();
    let changes: u64 = (10..50)
        .map(|i| {
            let s = format!("f{i:02}");
            v1[&s]["failures_total"].as_u64().unwrap_or(0)
                - v0[&s]["failures_total"].as_u64().unwrap_or(0)
        })
        .sum();
    let half = samples.len() / 2;
    let (first, second) = (median(&samples[..half]), median(&samples[half..]));
    eprintln!(
        "outage {:?}: {} probes, {changes} failed flapping probes (≈ as many state changes); \
         VmRSS median {first} → {second} kB, min {} max {} kB, VmHWM {hwm} kB; \
         webhooks dropped (queue of 32 full): {}",
        OUTAGE,
        probes1 - probes0,
        samples.iter().min().unwrap(),
        samples.iter().max().unwrap(),
        app.log_text().matches("already waiting; dropping").count()
    );
    assert!(
        probes1 - probes0 >= 50 * OUTAGE.as_secs() / 5 / 4,
        "probing (nearly) stopped during the outage: {} probes of {} scheduled",
        probes1 - probes0,
        50 * OUTAGE.as_secs() / 5
    );
    assert!(
        changes >= 100,
        "too few state changes to test anything: {changes}"
    );
    assert!(
        hwm <= HWM_CEILING_KB,
        "VmHWM {hwm} kB over the ceiling {HWM_CEILING_KB} kB"
    );
    assert!(
        second <= first + GROWTH_LIMIT_KB,
        "VmRSS kept growing during the outage: median {first} kB in the first half, \
         {second} kB in the second: {samples:?}"
    );

    // The peers come back.
    broker.restart();
    let hook = Hook::start(hook_port);
    ntp.set_up(true);
    let sub = Sub::start(&broker, "streampulse/#");
    sub.wait(Duration::from_secs(90), "MQTT state again", |m| {
        m.topic.starts_with("streampulse/out/")
            && m.topic.ends_with("/state")
            && m.payload.contains("flap.jpg")
    });
    sub.wait(Duration::from_secs(30), "availability online", |m| {
        m.topic == "streampulse/out/availability" && m.payload == "online"
    });
    wait_for(
        "a webhook POST after the outage",
        Duration::from_secs(60),
        || hook.count() > 0,
    );
    wait_for("an NTP offset in /healthz", Duration::from_secs(60), || {
        app.get("/healthz").1["ntp"]["offset_ms"].is_i64()
    });
    stop_flap.store(true, Ordering::Relaxed);
    flapper.join().unwrap();
    let (rss, hwm) = rss_kb(app.pid());
    eprintln!("after recovery: VmRSS {rss} kB, VmHWM {hwm} kB");
    assert!(hwm <= HWM_CEILING_KB, "VmHWM {hwm} kB after recovery");
}

/// Polls `cond` every 250 ms; panics naming `what` after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// config.yaml edited into every kind of wrong, one after the other, under a
/// running daemon: truncated mid-entry, emptied, binary, huge (past the
/// 4 MiB limit), duplicate keys, wrong types, and 10,000 streams with one
/// bad entry at the end. Each time /healthz and the dashboard (logged in)
/// show the error with its file and line (the huge file, refused before
/// parsing, names the file and the limit), and the last good config keeps
/// running: both real cameras keep being probed, still ok, no stream added
/// or lost. A good edit at the end is applied and clears the error.
#[test]
fn broken_config_edits_keep_the_last_good_config_running() {
    let snap = SnapshotServer::start();
    let dir = temp_dir("broken_edits");
    let config = dir.path().join("config.yaml");
    let password = "outages-admin-pw-1";
    let hash = streampulse::credentials::hash_password(password).unwrap();
    let good = format!(
        "admin_password_hash: '{hash}'\nheartbeat_seconds: 5\nstreams:\n\
         - name: one\n  url: {u}?cam=1\n  kind: snapshot\n\
         - name: two\n  url: {u}?cam=2\n  kind: snapshot\n",
        u = snap.url("snap.jpg")
    );
    // Lines of `good`; an edit appended to it starts on line `n + 1`.
    let n = good.lines().count();
    // Atomic, as an editor that renames would: the reloader never sees half a file.
    let write = |bytes: &[u8]| {
        let tmp = dir.path().join("config.yaml.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &config).unwrap();
    };
    write(good.as_bytes());
    let app = App::start(&config, &dir.path().join("data"));
    app.wait_status(Duration::from_secs(60), "both streams ok", |v| {
        v["one"]["status"] == "ok" && v["two"]["status"] == "ok"
    });
    let mut b = super::web::Browser::new(&app);
    let r = super::web::log_in(&mut b, password, "/");
    assert_eq!(r.status, 303, "log in: {}", r.text());

    let mut huge = good.clone().into_bytes();
    while huge.len() <= 5 << 20 {
        huge.extend_from_slice(b"# padding padding padding padding padding padding padding\n");
    }
    let mut ten_k = format!("admin_password_hash: '{hash}'\nheartbeat_seconds: 5\nstreams:\n");
    for i in 0..10_000 {
        ten_k.push_str(&format!("- name: cam{i}\n  url: rtsp://127.0.0.1:9/s{i}\n"));
    }
    ten_k.push_str("- name: cam9999\n  url: rtsp://127.0.0.1:9/dup\n");
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "truncated mid-entry",
            format!("{good}- name: three\n  url: [rtsp://127.0.0.1:9/x").into_bytes(),
            format!("config.yaml:{}:", n + 2),
        ),
        ("emptied", Vec::new(), "config.yaml: file is empty".into()),
        (
            "binary",
            [good.as_bytes(), b"\x00\xff\xfe\x89PNG\r\n\x1a\n\x00\x00"].concat(),
            format!("config.yaml:{}:", n + 1),
        ),
        ("huge", huge, "limit is".into()),
        (
            "duplicate key",
            format!("{good}heartbeat_seconds: 10\n").into_bytes(),
            format!("config.yaml:{}:", n + 1),
        ),
        (
            "wrong type",
            good.replace("heartbeat_seconds: 5", "heartbeat_seconds: five")
                .into_bytes(),
            "config.yaml:2:".into(),
        ),
        (
            "streams not a list",
            format!("admin_password_hash: '{hash}'\nheartbeat_seconds: 5\nstreams: 7\n")
                .into_bytes(),
            "config.yaml:3:".into(),
        ),
        (
            "10,000 streams, the last a duplicate",
            ten_k.into_bytes(),
            format!("config.yaml:{}:", 3 + 2 * 10_000 + 1),
        ),
    ];
    let mut prev_err = String::new();
    for (what, bytes, expected) in cases {
        let (_, before) = app.get("/api/status");
        write(&bytes);
        let mut last = Value::Null;
        wait_for(
            &format!("the {what} edit's error ({expected}) in /healthz"),
            Duration::from_secs(30),
            || {
                last = app.get("/healthz").1;
                last["config_error"]
                    .as_str()
                    .is_some_and(|e| e.contains(&expected) && e != prev_err)
            },
        );
        let err = last["config_error"].as_str().unwrap().to_owned();
        assert!(err.len() < 2_000, "{what}: error is {} bytes", err.len());
        assert!(
            !err.contains("DuplicateKeyPolicy"),
            "{what}: the parser's advice to its caller is no use to the user: {err}"
        );
        let page = b.get("/");
        assert_eq!(page.status, 200, "{what}: dashboard");
        let shown = page.text();
        let first_words: String = err.chars().take(40).collect();
        assert!(
            shown.contains(&expected) || shown.contains(&first_words),
            "{what}: the dashboard does not show {err:?}"
        );
        // The last good config keeps running: two more ok probes each.
        let v = app.wait_status(
            Duration::from_secs(40),
            &format!("streams probed on after the {what} edit"),
            |v| {
                ["one", "two"]
                    .iter()
                    .all(|s| probes(v, s) >= probes(&before, s) + 2 && v[*s]["status"] == "ok")
            },
        );
        assert_eq!(
            v.as_object().unwrap().len(),
            2,
            "{what}: streams added or lost: {v:#}"
        );
        eprintln!("{what}: {err:.160}");
        prev_err = err;
    }

    write(
        format!(
            "{good}- name: three\n  url: {}?cam=3\n  kind: snapshot\n",
            snap.url("snap.jpg")
        )
        .as_bytes(),
    );
    app.wait_status(Duration::from_secs(40), "the good edit applied", |v| {
        v["three"]["status"] == "ok"
    });
    assert!(
        app.get("/healthz").1["config_error"].is_null(),
        "a good edit clears the error"
    );
}
