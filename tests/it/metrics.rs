//! `/metrics` end to end, parsed by a real exposition-format parser
//! (Python's `prometheus_client.parser`, Debian's python3-prometheus-client).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::app::{App, TEST_TOKEN};
use super::util::{closed_port, temp_dir, SnapshotServer};

const SECRET: &str = "metrics-S3cret";

/// Parses exposition text into `[{family, type, name, labels, value}]`.
const PARSER: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        v = s.value
        out.append({"family": f.name, "type": f.type, "name": s.name,
                    "labels": s.labels, "value": None if math.isinf(v) or math.isnan(v) else v})
print(json.dumps(out))
"#;

pub(super) fn parse(text: &str) -> Vec<Value> {
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 should start");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics:\n{}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn sample<'a>(all: &'a [Value], name: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    all.iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
}

fn value(all: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(all, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))["value"]
        .as_f64()
        .unwrap()
}

/// The exposition parses, has the documented families with the right types,
/// reflects real probe results (an up stream, a down one with its reason, a
/// latency histogram), escapes label values, and shows no password.
#[test]
fn metrics_parse_and_reflect_probes() {
    let snap = SnapshotServer::start();
    let dir = temp_dir("metrics");
    let config = dir.path().join("config.yaml");
    // A name with a quote and a backslash before an `n` tests label escaping.
    let lobby = r#"Lobby "east" \new cam"#;
    std::fs::write(
        &config,
        format!(
            "heartbeat_seconds: 5\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\nstreams:\n\
             - name: 'Lobby \"east\" \\new cam'\n  url: {}\n  kind: snapshot\n\
             - name: Dead Cam\n  url: http://admin:{SECRET}@127.0.0.1:{}/x.jpg\n  kind: snapshot\n  \
             fail_threshold: 1\n",
            snap.url("snap.jpg"),
            closed_port()
        ),
    )
    .unwrap();
    let app = App::start(&config, &dir.path().join("data"));
    app.wait_status(Duration::from_secs(40), "both results", |v| {
        v[lobby]["state"] == "up" && v["Dead Cam"]["state"] == "down"
    });

    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    );
    let wait_for_commit = std::time::Instant::now() + Duration::from_secs(20);
    let (ctype, text) = loop {
        let mut resp = agent
            .get(&format!("http://{}/metrics", app.addr))
            .header("Authorization", &format!("Bearer {TEST_TOKEN}"))
            .call()
            .expect("GET /metrics");
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.body_mut().read_to_string().unwrap();
        // The recorder commits every second; wait until the DB has rows.
        if text.contains("streampulse_heartbeats_committed_total 0\n")
            && std::time::Instant::now() < wait_for_commit
        {
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        break (ctype, text);
    };
    assert!(
        ctype.starts_with("text/plain; version=0.0.4"),
        "content type {ctype:?}"
    );
    assert!(!text.contains(SECRET), "a password in /metrics:\n{text}");
    let all = parse(&text);

    let family_type = |family: &str| {
        all.iter()
            .find(|s| s["family"] == family)
            .unwrap_or_else(|| panic!("no family {family}:\n{text}"))["type"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        family_type("streampulse_probe_latency_seconds"),
        "histogram"
    );
    assert_eq!(family_type("streampulse_probe_failures"), "counter");
    assert_eq!(family_type("streampulse_heartbeats"), "counter");
    assert_eq!(family_type("streampulse_stream_up"), "gauge");
    // Availability (issue 19), from the real probes' heartbeats.
    assert_eq!(
        family_type("streampulse_stream_availability_ratio"),
        "gauge"
    );
    let ratio = |stream: &str, window: &str| {
        value(
            &all,
            "streampulse_stream_availability_ratio",
            &[("stream", stream), ("window", window)],
        )
    };
    assert!(ratio(lobby, "24h") > 0.5, "{text}");
    assert_eq!(ratio("Dead Cam", "30d"), 0.0, "{text}");
    let streak = value(
        &all,
        "streampulse_stream_streak_seconds",
        &[("stream", "Dead Cam"), ("state", "down")],
    );
    assert!((0.0..120.0).contains(&streak), "{streak}");
    let age = value(
        &all,
        "streampulse_stream_last_ok_age_seconds",
        &[("stream", lobby)],
    );
    assert!((0.0..60.0).contains(&age), "{age}");
    let box_wide = value(&all, "streampulse_availability_ratio", &[("window", "7d")]);
    assert!(box_wide > 0.0 && box_wide < 1.0, "{box_wide}");

    let (_, health) = app.get("/healthz");
    let version = health["version"].as_str().unwrap();
    assert_eq!(
        value(&all, "streampulse_build_info", &[("version", version)]),
        1.0
    );
    assert_eq!(
        value(&all, "streampulse_stream_up", &[("stream", lobby)]),
        1.0
    );
    assert_eq!(
        value(&all, "streampulse_stream_up", &[("stream", "Dead Cam")]),
        0.0
    );
    assert_eq!(
        value(
            &all,
            "streampulse_stream_state",
            &[("stream", "Dead Cam"), ("state", "down")]
        ),
        1.0
    );
    assert!(
        value(
            &all,
            "streampulse_probe_failures_total",
            &[("stream", "Dead Cam"), ("reason", "connect")]
        ) >= 1.0
    );
    assert!(
        sample(
            &all,
            "streampulse_probe_failures_total",
            &[("stream", lobby)]
        )
        .is_none(),
        "no failures for the good stream"
    );

    // The histogram: cumulative buckets ending in +Inf == count, sum > 0.
    let count = value(
        &all,
        "streampulse_probe_latency_seconds_count",
        &[("stream", lobby)],
    );
    assert!(count >= 1.0);
    let buckets: Vec<(String, f64)> = all
        .iter()
        .filter(|s| {
            s["name"] == "streampulse_probe_latency_seconds_bucket"
                && s["labels"]["stream"] == lobby
        })
        .map(|s| {
            (
                s["labels"]["le"].as_str().unwrap().to_owned(),
                s["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(buckets.last().unwrap(), &("+Inf".to_owned(), count));
    assert!(
        value(
            &all,
            "streampulse_probe_latency_seconds_sum",
            &[("stream", lobby)]
        ) > 0.0
    );

    let probes = value(&all, "streampulse_probes_total", &[("stream", "Dead Cam")]);
    assert!(probes >= 1.0);
    assert!(value(&all, "streampulse_heartbeats_total", &[]) >= 2.0);
    assert!(value(&all, "streampulse_heartbeats_committed_total", &[]) >= 1.0);
    assert!(value(&all, "streampulse_db_size_bytes", &[]) > 0.0);
    assert!(value(&all, "process_resident_memory_bytes", &[]) > 1e6);
    let synced = value(&all, "streampulse_clock_synced", &[]);
    assert!(synced == 0.0 || synced == 1.0);
    assert_eq!(value(&all, "streampulse_config_error", &[]), 0.0);
    let start = value(&all, "process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start <= now && start > now - 3600.0, "{start} vs {now}");
}
