//! Streams whose names differ only in punctuation stay four streams
//! (issue 8; the Python original merged `a-b` and `a_b`): in the database,
//! the history, the pages, the metrics and MQTT.

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use super::{
    closed_port, ha_state_topics, last_state, logged_in, manifest_dir, Broker, SnapshotServer,
    Spec, Sub,
};

/// Streams whose names differ only in punctuation (`a-b`, `a_b`, `a.b`,
/// `a b`: the Python original put `a-b` and `a_b` into one table) are four
/// streams: four rows in the one `streams` table, four histories that do
/// not mix (two cameras up, two down), four stream pages, four sets of
/// metrics, four MQTT state topics. No table is made per stream.
#[test]
fn streams_differing_in_punctuation_stay_apart() {
    let snap = SnapshotServer::start();
    let broker = Broker::start(Spec::default());
    let sub = Sub::start(&broker, "#");
    let dead = closed_port();
    let config = format!(
        "heartbeat_seconds: 5\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n\
         mqtt:\n  host: 127.0.0.1\n  port: {}\n  interval: 5\n  discovery: true\n\
         streams:\n\
         - name: a-b\n  url: {}\n\
         - name: a_b\n  url: http://127.0.0.1:{dead}/a_b.jpg\n  kind: snapshot\n  timeout: 2\n\
         - name: a.b\n  url: {}\n\
         - name: a b\n  url: rtsp://127.0.0.1:{dead}/ab\n  timeout: 2\n",
        broker.tcp_port,
        snap.url("snap.jpg"),
        snap.url("snap.jpg"),
    );
    let (bx, mut b) = logged_in("sec_ab", &config);
    let up = ["a-b", "a.b"];
    let down = ["a_b", "a b"];
    let app = &bx.app;
    app.wait_status(Duration::from_secs(60), "two up, two down", |v| {
        up.iter().all(|n| v[n]["state"] == "up") && down.iter().all(|n| v[n]["state"] == "down")
    });
    // Let each stream record a few heartbeats.
    thread::sleep(Duration::from_secs(6));
    let enc = |n: &str| n.replace(' ', "%20");
    for n in up.iter().chain(&down) {
        let (st, h) = app.get(&format!("/api/streams/{}/history", enc(n)));
        assert_eq!(st, 200, "{n}: {h}");
        assert_eq!(h["stream"], *n);
        let hb = h["heartbeats"].as_array().unwrap();
        assert!(hb.len() >= 2, "{n}: {h}");
        let want = if up.contains(n) { "ok" } else { "fail" };
        assert!(
            hb.iter().all(|x| x["status"] == want),
            "{n}: another stream's heartbeats are mixed in: {h}"
        );
        let page = b.get(&format!("/streams/{}", enc(n)));
        assert_eq!(page.status, 200);
        let label = if up.contains(n) { "UP" } else { "DOWN" };
        assert!(page.text().contains(label), "{n} page should say {label}");
    }
    // The database: one row each, distinct ids, one shared heartbeat table.
    let db = rusqlite::Connection::open_with_flags(
        bx.config.with_file_name("data").join("streampulse.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut ids = std::collections::BTreeMap::new();
    for n in up.iter().chain(&down) {
        let id: i64 = db
            .query_row("SELECT id FROM streams WHERE name = ?1", [n], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{n}: {e}"));
        let (all, ok): (i64, i64) = db
            .query_row(
                "SELECT coalesce(sum(probes), 0), coalesce(sum(ok), 0) FROM heartbeat_blocks WHERE stream_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(all >= 2, "{n}: {all} heartbeats");
        assert_eq!(ok, if up.contains(n) { all } else { 0 }, "{n}");
        ids.insert(id, n);
    }
    assert_eq!(ids.len(), 4, "four streams, four ids: {ids:?}");
    let schema = std::fs::read_to_string(manifest_dir().join("src/store/schema.sql")).unwrap();
    let declared = schema.matches("CREATE TABLE ").count() as i64;
    let tables: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, declared, "a table per stream?");
    // Metrics: four label sets with their own values.
    let metrics = app.get_text("/metrics");
    for n in up.iter().chain(&down) {
        let line = format!("streampulse_stream_up{{stream=\"{n}\"}} ");
        let v = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in /metrics"));
        assert_eq!(v.trim(), if up.contains(n) { "1" } else { "0" }, "{n}");
    }
    // MQTT: four retained state topics, each with its own stream's state.
    // Each stream's state topic, as its Home Assistant discovery config
    // names it, carries that stream's own state.
    sub.wait_all(Duration::from_secs(30), "four state topics", |all| {
        let topics = ha_state_topics(all);
        up.iter().chain(&down).all(|n| {
            let want = if up.contains(n) { "up" } else { "down" };
            topics
                .get(*n)
                .is_some_and(|t| last_state(all, t).as_deref() == Some(want))
        })
    });
    let topics = ha_state_topics(&sub.all());
    let distinct: BTreeSet<&String> = up.iter().chain(&down).map(|n| &topics[*n]).collect();
    assert_eq!(
        distinct.len(),
        4,
        "four streams, four state topics: {topics:?}"
    );
}
