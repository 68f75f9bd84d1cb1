//! Faults that need their own network: a DNS server that never answers, and
//! the box's own link going down.
//!
//! The tests make network namespaces (root only; CI runs as root): the DNS
//! test points its `/etc/netns/<ns>/resolv.conf` at a silent UDP port 53
//! inside it and runs the RTSP test server, a snapshot server and
//! `streampulse run` in it; the link test joins a "box" and a "camera"
//! namespace with a veth pair. Nothing leaves the namespaces the tests made.
//! Results are read from the daemon's log and SQLite file, and (inside the
//! box's namespace) from its API.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{manifest_dir, temp_dir};

/// A network namespace with only `lo`, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test needs root (ip netns); CI runs as root"
        );
        let name = format!("sp-{tag}-{}", std::process::id());
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?} failed");
        ok(Command::new("ip").args(["netns", "add", &name]));
        ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns { name }
    }

    /// Runs `ip -n <ns> <args>` (asserting success).
    fn ip(&self, args: &[&str]) {
        let mut c = Command::new("ip");
        c.arg("-n").arg(&self.name).args(args);
        assert!(c.status().unwrap().success(), "{c:?} failed");
    }

    /// An interface that is up, with a carrier and an address: the
    /// namespace counts as a box on a network (`monitor::link`), with
    /// nothing to reach (a veth pair with both ends inside; this kernel may
    /// have no `dummy` driver).
    fn add_dummy_uplink(&self) {
        self.ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
        self.ip(&["addr", "add", "192.0.2.10/24", "dev", "up0"]);
        self.ip(&["link", "set", "up1", "up"]);
        self.ip(&["link", "set", "up0", "up"]);
    }

    /// GStreamer's RTSP test server in this namespace (`args`: its own,
    /// e.g. `--address`); stopped when the first value drops.
    fn rtsp_server(&self, args: &[&str]) -> (Killed, u16) {
        let mut rtsp = self
            .cmd("/usr/bin/python3")
            .arg(manifest_dir().join("tests/servers/rtsp_server.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(rtsp.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the RTSP server said {line:?}"));
        (Killed(rtsp), port)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With a DNS server that swallows every query, streams that need a lookup
/// fail on their own (reason dns/timeout), while streams addressed by IP —
/// RTSP and HTTP, whose probe shares the blocking pool with lookups — keep
/// their 5 s cadence.
#[test]
fn hung_dns_does_not_delay_other_streams() {
    let ns = Netns::new("dns");
    // With only `lo` the box would be offline, and the names' failures its
    // own (box_offline); this test is about the resolver.
    ns.add_dummy_uplink();
    std::fs::create_dir_all(format!("/etc/netns/{}", ns.name)).unwrap();
    std::fs::write(
        format!("/etc/netns/{}/resolv.conf", ns.name),
        "nameserver 127.0.0.1\noptions timeout:5 attempts:3\n",
    )
    .unwrap();

    // The silent DNS server: a real UDP socket on :53 that reads and never answers.
    let _dns = Killed(
        ns.cmd("/usr/bin/python3")
            .args([
                "-c",
                "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('127.0.0.1',53))\nwhile True: s.recvfrom(4096)",
            ])
            .spawn()
            .unwrap(),
    );
    let (_rtsp, rtsp_port) = ns.rtsp_server(&[]);

    let dir = temp_dir("hung_dns");
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("snap.jpg"), super::util::sample_jpeg()).unwrap();
    // Port 0: the server prints "Serving HTTP on 127.0.0.1 port N".
    let mut http = ns
        .cmd("/usr/bin/python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&www)
        .arg("0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(http.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _http = Killed(http);
    let http_port: u16 = line
        .split(" port ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("http.server said {line:?}"));

    let mut config = format!(
        "heartbeat_seconds: 5\nmonitor:\n  max_concurrent_probes: 32\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\nstreams:\n\
         - name: healthy-rtsp\n  url: rtsp://127.0.0.1:{rtsp_port}/mjpeg\n\
         - name: healthy-http\n  url: http://127.0.0.1:{http_port}/snap.jpg\n"
    );
    for i in 0..16 {
        let scheme = if i % 2 == 0 { "rtsp" } else { "http" };
        config.push_str(&format!(
            "- name: by-name-{i}\n  url: {scheme}://cam-{i}.streampulse-test.lan/x\n  timeout: 3\n"
        ));
    }
    let cfg_path = dir.path().join("config.yaml");
    std::fs::write(&cfg_path, config).unwrap();
    let data = dir.path().join("data");
    let mut sp = ns.cmd(env!("CARGO_BIN_EXE_streampulse"));
    sp.args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg_path)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let sp = Killed(sp.spawn().unwrap());

    // Run for 35 s: several resolver timeouts (15 s each) pile up meanwhile.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(35) {
        std::thread::sleep(Duration::from_millis(500));
    }
    unsafe { libc::kill(sp.0.id() as i32, libc::SIGTERM) };
    drop(sp);

    let db = rusqlite::Connection::open(data.join("streampulse.db")).unwrap();
    let stored = super::util::stored_heartbeats(&db);
    let ts = |name: &str| -> Vec<(i64, i64)> {
        stored
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, h)| (h.ts_ms, i64::from(h.ok)))
            .collect()
    };
    for healthy in ["healthy-rtsp", "healthy-http"] {
        let rows = ts(healthy);
        assert!(
            rows.len() >= 6,
            "{healthy}: only {} heartbeats in 35 s",
            rows.len()
        );
        assert!(
            rows.iter().all(|(_, ok)| *ok == 1),
            "{healthy} failed: {rows:?}"
        );
        let gaps: Vec<i64> = rows.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(
            gaps.iter().all(|g| *g < 7_500),
            "{healthy} was delayed by the hung DNS: gaps {gaps:?} ms"
        );
    }
    let reasons: Vec<(String, i64)> = stored
        .iter()
        .filter(|(n, _)| n.starts_with("by-name-"))
        .map(|(n, h)| (n.clone(), h.reason.map_or(0, |r| i64::from(r.code()))))
        .collect();
    assert!(
        !reasons.is_empty(),
        "streams behind the dead DNS were never probed"
    );
    // Reason codes: 1 = dns, 3 = timeout (probe::Reason::code, stable).
    assert!(
        reasons.iter().all(|(_, r)| *r == 1 || *r == 3),
        "unexpected reasons: {reasons:?}"
    );
}

/// The daemon and its RTSP camera in two namespaces joined by a veth pair.
/// With the box's end of the link down, the failing camera is the box's
/// fault: `unknown` with reason `box_offline`, the red strip, no `down`
/// event; with the link back, the stream is up again without any transition
/// having been stored or logged.
#[test]
fn box_link_down_is_not_every_camera_down() {
    let bx = Netns::new("box");
    let cam = Netns::new("cam");
    // Interface names are per namespace; a unique name for the pair while
    // both ends are still in ours.
    let (a, b) = (
        format!("spb{}", std::process::id() % 100_000),
        format!("spc{}", std::process::id() % 100_000),
    );
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?} failed");
    ok(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
    ok(Command::new("ip").args(["link", "set", &a, "netns", &bx.name]));
    ok(Command::new("ip").args(["link", "set", &b, "netns", &cam.name]));
    bx.ip(&["addr", "add", "10.77.0.2/24", "dev", &a]);
    bx.ip(&["link", "set", &a, "up"]);
    cam.ip(&["addr", "add", "10.77.0.1/24", "dev", &b]);
    cam.ip(&["link", "set", &b, "up"]);

    let (_rtsp, port) = cam.rtsp_server(&["--address", "10.77.0.1"]);

    let dir = temp_dir("box_offline");
    let cfg_path = dir.path().join("config.yaml");
    std::fs::write(
        &cfg_path,
        format!(
            "heartbeat_seconds: 5\nweb:\n  public_status: true\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n\
             streams:\n- name: porch\n  url: rtsp://10.77.0.1:{port}/h264\n  timeout: 3\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    crate::app::seed_test_token(&data);
    let log_path = dir.path().join("streampulse.log");
    let mut sp = bx.cmd(env!("CARGO_BIN_EXE_streampulse"));
    sp.args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg_path)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let sp = Killed(sp.spawn().unwrap());
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let wait_log = |what: &str, needle: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {what} in {secs} s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_log("up over the veth", "unknown → up", 40);
    let port_line = log();
    let api_port: u16 = port_line
        .split("listening on http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .expect("the listening line");
    // Reads a path of the daemon's API from inside the box's namespace.
    let get = |path: &str| -> String {
        let token = crate::app::TEST_TOKEN;
        let out = bx
            .cmd("/usr/bin/python3")
            .args([
                "-c",
                &format!(
                    "import urllib.request;print(urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:{api_port}{path}',\
                     headers={{'Authorization':'Bearer {token}'}}),timeout=5).read().decode())"
                ),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "GET {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    // The box's cable is pulled: four heartbeats (fail_threshold is 2).
    bx.ip(&["link", "set", &a, "down"]);
    wait_log("the box-offline warning", "the box has no network", 30);
    std::thread::sleep(Duration::from_secs(16));
    let status: serde_json::Value = serde_json::from_str(&get("/api/status")).unwrap();
    assert_eq!(status["porch"]["state"], "unknown", "{status:#}");
    assert_eq!(status["porch"]["reason"], "box_offline", "{status:#}");
    let health: serde_json::Value = serde_json::from_str(&get("/healthz")).unwrap();
    assert_eq!(health["network"]["online"], false, "{health:#}");
    assert!(
        get("/login").contains("This box has no network"),
        "the red strip on every page"
    );

    // The cable is back.
    bx.ip(&["link", "set", &a, "up"]);
    wait_log("the network-back line", "the box's network is back", 30);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = serde_json::from_str(&get("/api/status")).unwrap();
        if status["porch"]["status"] == "ok" && status["porch"]["state"] == "up" {
            break;
        }
        assert!(Instant::now() < deadline, "not up again: {status:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Issue 19: the box-offline spell is not monitored time: every stored
    // heartbeat got a frame, so the uptime is 100 %, over fewer heartbeats
    // than the run's probes.
    let avail: serde_json::Value =
        serde_json::from_str(&get("/api/streams/porch/availability")).unwrap();
    assert_eq!(avail["availability"], 1.0, "{avail:#}");
    assert_eq!(avail["failed"], 0, "{avail:#}");
    let probes_total = status_probes(&get("/api/status"));
    assert!(
        avail["probes"].as_u64().unwrap() + 3 <= probes_total,
        "the box-offline probes are not counted: {avail:#}, {probes_total} probes"
    );
    unsafe { libc::kill(sp.0.id() as i32, libc::SIGTERM) };
    drop(sp);

    let text = log();
    assert!(
        !text.contains("→ down"),
        "no down while the box was offline:\n{text}"
    );
    assert_eq!(
        text.matches("unknown → up").count(),
        1,
        "one transition in all:\n{text}"
    );
    let db = rusqlite::Connection::open(data.join("streampulse.db")).unwrap();
    let events: i64 = db
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 1, "only the first unknown → up is stored");
}

/// `probes_total` of `porch` in an `/api/status` answer.
fn status_probes(status: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(status).unwrap();
    v["porch"]["probes_total"].as_u64().unwrap()
}
