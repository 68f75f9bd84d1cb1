//! MQTT end to end: the real `streampulse run` against real Mosquitto brokers
//! (plain TCP, password file, WebSockets, TLS and WebSockets over TLS with a
//! CA made by openssl), read back with `mosquitto_sub`. Streams point at a
//! real snapshot server (up) and at closed ports (down) so that state
//! changes really happen. Every wait is bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::App;
use super::mosquitto::{Broker, Spec, Sub, TestCa};
use super::util::{closed_port, run_with_timeout, streampulse, temp_dir, SnapshotServer};

/// A camera password that must never reach a broker or a log.
const CAM_SECRET: &str = "cam-S3cret-9x";
/// The broker password of the password-file tests.
const MQTT_SECRET: &str = "mqtt-Pa55-w0rd";

const WAIT: Duration = Duration::from_secs(40);

/// Replaces the config atomically (the reloader never sees half a file).
fn write_config(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Two streams: `Lobby Cam` (a real snapshot, up) and `Dead Cam` (closed
/// port, with a password in its URL; down after one failure).
fn streams(snap: &SnapshotServer, dead_port: u16) -> String {
    format!(
        "streams:\n\
         - name: Lobby Cam\n  url: {}\n  kind: snapshot\n\
         - name: Dead Cam\n  url: http://admin:{CAM_SECRET}@127.0.0.1:{dead_port}/snap.jpg\n  \
         kind: snapshot\n  fail_threshold: 1\n",
        snap.url("snap.jpg")
    )
}

fn count(app: &App, needle: &str) -> usize {
    app.log_text()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

fn wait_log(app: &App, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred(&app.log_text()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log tail:\n{}",
            app.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A stream's state topic of `device` (`streampulse/<device>/<id>/state`,
/// the id made from the stream's URL), not the box's.
fn is_state_topic(topic: &str, device: &str) -> bool {
    topic
        .strip_prefix(&format!("streampulse/{device}/"))
        .and_then(|t| t.strip_suffix("/state"))
        .is_some_and(|id| id != "box" && !id.contains('/'))
}

/// A state message of `device` for the stream whose (redacted) URL
/// contains `url_part`, in `state`. State topics are named by an id made
/// from the URL, so tests find a stream by its URL, not its name.
fn state_is(m: &super::mosquitto::Msg, device: &str, url_part: &str, state: &str) -> bool {
    is_state_topic(&m.topic, device)
        && serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| {
            v["state"] == state && v["url"].as_str().is_some_and(|u| u.contains(url_part))
        })
}

fn assert_no_secrets(texts: &[&str]) {
    for t in texts {
        for s in [CAM_SECRET, MQTT_SECRET] {
            assert!(!t.contains(s), "a password leaked: {s} in\n{t}");
        }
    }
}

fn all_payloads(sub: &Sub) -> String {
    sub.all()
        .iter()
        .map(|m| format!("{} {}\n", m.topic, m.payload))
        .collect()
}

/// Plain TCP: the aggregate status has `/api/status`'s shape and repeats on
/// the interval, per-stream states are retained and follow the debounced
/// state, availability is `online` while running and `offline` (retained)
/// after a clean stop; no password anywhere.
#[test]
fn mqtt_tcp_publishes_status_states_and_availability() {
    let broker = Broker::start(Spec::default());
    let snap = SnapshotServer::start();
    let dir = temp_dir("mqtt_tcp");
    let config = dir.path().join("config.yaml");
    let dead_port = closed_port();
    let (lobby_url, dead_url) = (snap.url("snap.jpg"), format!(":{dead_port}/"));
    write_config(
        &config,
        &format!(
            "device_name: Test Box\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  \
             interval: 5\n{}",
            broker.tcp_port,
            streams(&snap, dead_port)
        ),
    );
    let sub = Sub::start(&broker, "#");
    let app = App::start(&config, &dir.path().join("data"));

    let avail = "streampulse/test-box/availability";
    sub.wait(WAIT, "online", |m| {
        m.topic == avail && m.payload == "online"
    });
    let lobby = sub.wait(WAIT, "Lobby Cam up", |m| {
        state_is(m, "test-box", &lobby_url, "up")
    });
    let dead = sub.wait(WAIT, "Dead Cam down", |m| {
        state_is(m, "test-box", &dead_url, "down")
    });
    assert_eq!(dead.json()["reason"], "connect", "{}", dead.payload);
    assert_eq!(dead.json()["status"], "fail");

    // The aggregate: every stream, same keys per stream as /api/status.
    let agg = sub.wait(WAIT, "an aggregate with both results", |m| {
        m.topic == "streampulse/status"
            && serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| {
                v["Lobby Cam"]["status"] == "ok" && v["Dead Cam"]["status"] == "fail"
            })
    });
    let agg = agg.json();
    let (_, api) = app.get("/api/status");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&agg), keys(&api), "same streams as /api/status");
    assert_eq!(
        keys(&agg["Lobby Cam"]),
        keys(&api["Lobby Cam"]),
        "same fields as /api/status"
    );
    assert!(!agg["Dead Cam"]["url"]
        .as_str()
        .unwrap()
        .contains(CAM_SECRET));
    // ...and it repeats on the interval.
    let n = sub.on("streampulse/status").len();
    sub.wait_after(
        sub.count(),
        Duration::from_secs(20),
        "another aggregate",
        |m| m.topic == "streampulse/status",
    );
    assert!(sub.on("streampulse/status").len() > n);

    // Retained: availability and states yes; the aggregate not (retain: false).
    let kept = broker.retained("streampulse/#");
    assert_eq!(
        kept.get(avail).map(String::as_str),
        Some("online"),
        "{kept:?}"
    );
    assert!(kept.contains_key(&lobby.topic), "{kept:?}");
    assert!(kept.contains_key(&dead.topic), "{kept:?}");
    assert!(!kept.contains_key("streampulse/status"), "{kept:?}");

    let before = sub.count();
    let log = app.log_text();
    assert_eq!(app.terminate(), Some(0));
    sub.wait_after(before, WAIT, "offline at stop", |m| {
        m.topic == avail && m.payload == "offline"
    });
    assert_eq!(
        broker.retained(avail).get(avail).map(String::as_str),
        Some("offline")
    );
    assert_no_secrets(&[&all_payloads(&sub), &log]);
}

/// Password file: a wrong password is refused with a clear message and
/// retried with backoff (never logging the password); a hot reload with the
/// right one reconnects; a later reload that only touches streams keeps the
/// connection and publishes the new stream's state.
#[test]
fn mqtt_password_file_wrong_then_right_and_reload_without_reconnect() {
    let broker = Broker::start(Spec {
        login: Some(("streampulse", MQTT_SECRET)),
        ..Spec::default()
    });
    let snap = SnapshotServer::start();
    let dir = temp_dir("mqtt_passwd");
    let config = dir.path().join("config.yaml");
    let cfg = |password: &str, extra_stream: &str| {
        format!(
            "device_name: pw box\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  \
             username: streampulse\n  password: {password}\n  interval: 5\n\
             streams:\n- name: Lobby Cam\n  url: {}\n  kind: snapshot\n{extra_stream}",
            broker.tcp_port,
            snap.url("snap.jpg")
        )
    };
    let wrong = "wrong-Pa55-w0rd";
    write_config(&config, &cfg(wrong, ""));
    let sub = Sub::start(&broker, "#");
    let app = App::start(&config, &dir.path().join("data"));

    wait_log(&app, WAIT, "two refused logins", |l| {
        l.matches("refused the login (not authorized)").count() >= 2
    });
    assert!(
        app.log_text().contains("retrying in"),
        "{}",
        app.log_tail(20)
    );
    assert!(
        sub.on("streampulse/pw-box/availability").is_empty(),
        "nothing may be published without a login"
    );
    assert!(
        !app.log_text().contains(wrong),
        "the wrong password was logged"
    );

    write_config(&config, &cfg(MQTT_SECRET, ""));
    sub.wait(WAIT, "online after the fix", |m| {
        m.topic == "streampulse/pw-box/availability" && m.payload == "online"
    });
    sub.wait(WAIT, "Lobby Cam up", |m| {
        state_is(m, "pw-box", &snap.url("snap.jpg"), "up")
    });
    assert_eq!(count(&app, "mqtt: settings changed; reconnecting"), 1);
    assert_eq!(count(&app, "mqtt: connected to"), 1);

    // Streams only: same connection, new stream announced.
    let dead_port = closed_port();
    write_config(
        &config,
        &cfg(
            MQTT_SECRET,
            &format!(
                "- name: Dead Cam\n  url: http://127.0.0.1:{dead_port}/x.jpg\n  kind: snapshot\n  fail_threshold: 1\n"
            ),
        ),
    );
    sub.wait(WAIT, "the new stream's state", |m| {
        state_is(m, "pw-box", &format!(":{dead_port}/"), "down")
    });
    assert_eq!(
        count(&app, "mqtt: connected to"),
        1,
        "a reload without mqtt changes must not reconnect:\n{}",
        app.log_tail(30)
    );
    let ours = broker
        .log()
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(" as streampulse-"))
        .count();
    assert_eq!(ours, 1, "broker log:\n{}", broker.log());
    assert_no_secrets(&[&app.log_text(), &all_payloads(&sub)]);
}

/// WebSockets: only the broker's WebSocket port is configured, and the
/// broker's log shows the connection arriving there.
#[test]
fn mqtt_over_websockets() {
    let broker = Broker::start(Spec {
        websockets: true,
        ..Spec::default()
    });
    let ws_port = broker.ws_port.unwrap();
    let snap = SnapshotServer::start();
    let dir = temp_dir("mqtt_ws");
    let config = dir.path().join("config.yaml");
    write_config(
        &config,
        &format!(
            "device_name: ws\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  transport: ws\n  \
             port: {ws_port}\n  interval: 5\nstreams:\n- name: Lobby Cam\n  url: {}\n  kind: snapshot\n",
            snap.url("snap.jpg")
        ),
    );
    let sub = Sub::start(&broker, "#");
    let app = App::start(&config, &dir.path().join("data"));
    sub.wait(WAIT, "state over websockets", |m| {
        state_is(m, "ws", &snap.url("snap.jpg"), "up")
    });
    sub.wait(WAIT, "aggregate over websockets", |m| {
        m.topic == "streampulse/status"
    });
    assert!(
        app.log_text()
            .contains(&format!("connected to ws://127.0.0.1:{ws_port}/mqtt")),
        "{}",
        app.log_tail(20)
    );
    assert!(
        broker.log().contains(&format!("on port {ws_port}")),
        "broker log:\n{}",
        broker.log()
    );
}

/// TLS with a CA made by the test: `tls` with `ca_file` works; a hot reload
/// to `wss` reconnects over WebSockets-over-TLS; without the CA the broker's
/// certificate is rejected with a TLS error and nothing is published.
#[test]
fn mqtt_over_tls_and_wss_with_test_ca() {
    let ca = TestCa::make();
    let broker = Broker::start(Spec {
        tls: Some(&ca),
        ..Spec::default()
    });
    let (tls_port, wss_port) = (broker.tls_port.unwrap(), broker.wss_port.unwrap());
    let snap = SnapshotServer::start();
    let dir = temp_dir("mqtt_tls");
    let config = dir.path().join("config.yaml");
    let cfg = |transport: &str, port: u16, ca_line: &str| {
        format!(
            "device_name: tls\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  transport: {transport}\n  \
             port: {port}\n  interval: 5\n{ca_line}streams:\n- name: Lobby Cam\n  url: {}\n  kind: snapshot\n",
            snap.url("snap.jpg")
        )
    };
    let ca_line = format!("  ca_file: {}\n", ca.ca_cert.display());
    write_config(&config, &cfg("tls", tls_port, &ca_line));
    let sub = Sub::start(&broker, "#");
    let app = App::start(&config, &dir.path().join("data"));
    sub.wait(WAIT, "state over TLS", |m| {
        state_is(m, "tls", &snap.url("snap.jpg"), "up")
    });
    assert!(
        broker.log().contains(&format!("on port {tls_port}")),
        "{}",
        broker.log()
    );

    write_config(&config, &cfg("wss", wss_port, &ca_line));
    wait_log(&app, WAIT, "a wss connection", |l| {
        l.contains(&format!("connected to wss://127.0.0.1:{wss_port}/mqtt"))
    });
    let n = sub.count();
    sub.wait_after(n, WAIT, "aggregate over wss", |m| {
        m.topic == "streampulse/status"
    });
    assert!(
        broker.log().contains(&format!("on port {wss_port}")),
        "{}",
        broker.log()
    );

    // Without ca_file the built-in web roots do not know the test CA.
    write_config(&config, &cfg("tls", tls_port, ""));
    wait_log(&app, WAIT, "a certificate error", |l| {
        l.contains("TLS:") && l.contains("UnknownIssuer")
    });
    let connects = count(&app, "mqtt: connected to");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        count(&app, "mqtt: connected to"),
        connects,
        "an unverified broker must not be used"
    );
}

/// The broker is killed mid-run and restarted empty (no persistence): the
/// client reconnects with backoff and republishes, so the retained states are
/// right (including one that changed while the broker was away); then the
/// daemon is killed and the broker publishes its LWT.
#[test]
fn mqtt_broker_killed_and_restarted() {
    let mut broker = Broker::start(Spec::default());
    let snap = SnapshotServer::start();
    let dir = temp_dir("mqtt_restart");
    let config = dir.path().join("config.yaml");
    let dead_port = closed_port();
    let (lobby_url, dead_url) = (snap.url("snap.jpg"), format!(":{dead_port}/"));
    write_config(
        &config,
        &format!(
            "device_name: rs\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  interval: 5\n\
             streams:\n- name: Lobby Cam\n  url: {}\n  kind: snapshot\n  fail_threshold: 1\n\
             - name: Dead Cam\n  url: http://127.0.0.1:{dead_port}/x.jpg\n  kind: snapshot\n  fail_threshold: 1\n",
            broker.tcp_port,
            snap.url("snap.jpg"),
        ),
    );
    let app = App::start(&config, &dir.path().join("data"));
    let (lobby_topic, dead_topic) = {
        let sub = Sub::start(&broker, "#");
        let lobby = sub.wait(WAIT, "Lobby Cam up", |m| {
            state_is(m, "rs", &lobby_url, "up")
        });
        let dead = sub.wait(WAIT, "Dead Cam down", |m| {
            state_is(m, "rs", &dead_url, "down")
        });
        (lobby.topic, dead.topic)
    };
    broker.kill9();
    // While the broker is away the camera loses its picture.
    std::fs::remove_file(snap.dir().join("snap.jpg")).unwrap();
    app.wait_status(WAIT, "Lobby Cam down", |v| {
        v["Lobby Cam"]["state"] == "down"
    });
    wait_log(&app, WAIT, "the loss being noticed", |l| {
        l.contains("mqtt: tcp://127.0.0.1")
    });
    broker.restart();
    wait_log(&app, Duration::from_secs(90), "a reconnect", |l| {
        l.matches("mqtt: connected to").count() >= 2
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let kept = broker.retained("streampulse/#");
        let state = kept
            .get(&lobby_topic)
            .and_then(|p| serde_json::from_str::<Value>(p).ok());
        // Dead Cam did not change while the broker was away: only a full
        // republish on reconnect brings its retained state back.
        let unchanged = kept
            .get(&dead_topic)
            .and_then(|p| serde_json::from_str::<Value>(p).ok());
        if kept.get("streampulse/rs/availability").map(String::as_str) == Some("online")
            && state.as_ref().is_some_and(|s| s["state"] == "down")
            && unchanged.is_some_and(|s| s["state"] == "down")
        {
            assert_eq!(state.unwrap()["reason"], "not_found");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retained state after the restart: {kept:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The reconnected session carries the LWT too: a killed daemon (no
    // DISCONNECT) is announced `offline` by the broker itself.
    let sub = Sub::start(&broker, "streampulse/rs/availability");
    app.kill9();
    sub.wait(WAIT, "the LWT", |m| m.payload == "offline");
}

/// Discovery configs of `node` seen so far: topic → latest payload (an
/// empty payload removes the entity).
fn discovery_configs(sub: &Sub, node: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for m in sub.all() {
        if m.topic.starts_with("homeassistant/")
            && m.topic.contains(&format!("/{node}/"))
            && m.topic.ends_with("/config")
        {
            out.insert(m.topic, m.payload);
        }
    }
    out.retain(|_, p| !p.is_empty());
    out
}

/// What HA needs of every entity: a unique_id (distinct), a name, a
/// state topic, the one device, and per component the keys it reads.
fn check_entity(topic: &str, p: &Value, node: &str) {
    for k in ["name", "unique_id", "state_topic", "object_id"] {
        assert!(p[k].is_string(), "{topic}: no {k}: {p}");
    }
    assert_eq!(p["device"]["identifiers"], serde_json::json!([node]), "{p}");
    assert_eq!(p["origin"]["name"], "StreamPulse");
    if topic.contains("/binary_sensor/") {
        assert!(
            p["payload_on"].is_string() && p["payload_off"].is_string(),
            "{p}"
        );
    } else {
        assert!(topic.contains("/sensor/"), "{topic}");
        assert!(p.get("payload_on").is_none(), "{p}");
    }
    let online = p["unique_id"] == format!("{node}_online");
    let availability = p["availability_topic"]
        .as_str()
        .or(p["availability"][0]["topic"].as_str());
    assert_eq!(
        availability.is_some_and(|t| t.ends_with("/availability")),
        !online,
        "every entity but Online follows availability: {p}"
    );
    if !online {
        assert!(p["expire_after"].as_u64().is_some_and(|e| e >= 15), "{p}");
    }
}

/// Home Assistant discovery, field by field: three entities per enabled
/// stream (connectivity, latency, last OK) and five for the box, unique
/// ids stable and distinct, none for a disabled stream; a rename keeps
/// every topic and id and publishes the new config before any clear; a
/// deleted stream's entities are removed before its state; stale entities
/// and state topics named the old way (by stream name) are cleared.
#[test]
fn mqtt_home_assistant_discovery() {
    let broker = Broker::start(Spec::default());
    let snap = SnapshotServer::start();
    let dead_port = closed_port();
    let dir = temp_dir("mqtt_ha");
    let config = dir.path().join("config.yaml");
    let lobby_url = snap.url("snap.jpg");
    let cfg = |lobby_name: &str, with_dead: bool| {
        let mut s = format!(
            "device_name: HA Box\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  \
             interval: 5\n  discovery: true\nstreams:\n- name: {lobby_name}\n  url: {lobby_url}\n  kind: snapshot\n\
             - name: Spare Cam\n  url: http://127.0.0.1:{dead_port}/spare.jpg\n  kind: snapshot\n  enabled: false\n",
            broker.tcp_port,
        );
        if with_dead {
            s.push_str(&format!(
                "- name: Dead Cam\n  url: http://admin:{CAM_SECRET}@127.0.0.1:{dead_port}/x.jpg\n  \
                 kind: snapshot\n  fail_threshold: 1\n"
            ));
        }
        s
    };
    // Left over from an earlier version: the state topic named after the stream.
    broker.publish(
        "streampulse/ha-box/lobby-cam/state",
        "{\"state\":\"up\"}",
        true,
    );
    write_config(&config, &cfg("Lobby Cam", true));
    let sub = Sub::start(&broker, "#");
    let app = App::start(&config, &dir.path().join("data"));
    let node_id = "streampulse_ha_box";
    let node = format!("homeassistant/binary_sensor/{node_id}/");
    let config_for = |name: &str| {
        let name = name.to_owned();
        let node = node.clone();
        sub.wait(WAIT, &format!("discovery of {name}"), move |m| {
            m.topic.starts_with(&node)
                && m.topic.ends_with("/config")
                && serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| v["name"] == *name)
        })
    };
    let lobby = config_for("Lobby Cam");
    let dead = config_for("Dead Cam");
    let (_, health) = app.get("/healthz");
    let p = lobby.json();
    let object_id = lobby
        .topic
        .strip_prefix(&node)
        .and_then(|t| t.strip_suffix("/config"))
        .unwrap();
    assert!(
        object_id.len() == 12 && object_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{object_id}"
    );
    assert_eq!(p["unique_id"], format!("{node_id}_{object_id}"));
    assert_eq!(p["device_class"], "connectivity");
    let lobby_state = format!("streampulse/ha-box/{object_id}/state");
    assert_eq!(p["state_topic"], lobby_state);
    assert_eq!(p["json_attributes_topic"], p["state_topic"]);
    assert_eq!(p["availability_topic"], "streampulse/ha-box/availability");
    assert_eq!(p["payload_available"], "online");
    assert_eq!(p["payload_not_available"], "offline");
    assert_eq!(p["payload_on"], "ON");
    assert_eq!(p["payload_off"], "OFF");
    assert_eq!(
        p["value_template"],
        "{{ {'up': 'ON', 'down': 'OFF'}.get(value_json.state, 'None') }}"
    );
    // 3 × max(5 s MQTT interval, 5 s probes) + the timeout (min(10 s, interval)).
    assert_eq!(p["expire_after"], 20);
    assert_eq!(p["qos"], 0);
    assert_eq!(p["device"]["identifiers"], serde_json::json!([node_id]));
    assert_eq!(p["device"]["name"], "HA Box");
    assert_eq!(p["device"]["manufacturer"], "StreamPulse");
    assert_eq!(p["device"]["sw_version"], health["version"]);
    assert!(
        p["device"].get("configuration_url").is_none(),
        "no name a browser could use is configured: {p}"
    );
    assert_eq!(p["origin"]["name"], "StreamPulse");
    assert!(lobby.retained || broker.retained(&lobby.topic).contains_key(&lobby.topic));
    assert_ne!(dead.json()["unique_id"], p["unique_id"]);
    let dead_state = dead.json()["state_topic"].as_str().unwrap().to_owned();
    assert!(is_state_topic(&dead_state, "ha-box"), "{dead_state}");

    // Every entity: 3 per enabled stream, 5 for the box; the disabled one has none.
    sub.wait_all(WAIT, "11 discovery configs", |_| {
        discovery_configs(&sub, node_id).len() == 11
    });
    let configs = discovery_configs(&sub, node_id);
    let mut ids = std::collections::HashSet::new();
    for (topic, payload) in &configs {
        let v: Value = serde_json::from_str(payload).unwrap();
        check_entity(topic, &v, node_id);
        assert!(
            ids.insert(v["unique_id"].as_str().unwrap().to_owned()),
            "{v}"
        );
        assert!(
            !payload.contains("Spare Cam"),
            "a disabled stream has no entity: {payload}"
        );
    }
    let latency = &configs[&format!("homeassistant/sensor/{node_id}/{object_id}_latency/config")];
    let latency: Value = serde_json::from_str(latency).unwrap();
    assert_eq!(latency["unit_of_measurement"], "ms");
    assert_eq!(latency["state_class"], "measurement");
    assert_eq!(latency["device_class"], "duration");
    assert_eq!(latency["entity_category"], "diagnostic");
    assert_eq!(latency["state_topic"], lobby_state);
    let last_ok = &configs[&format!("homeassistant/sensor/{node_id}/{object_id}_last_ok/config")];
    let last_ok: Value = serde_json::from_str(last_ok).unwrap();
    assert_eq!(last_ok["device_class"], "timestamp");
    assert_eq!(last_ok["entity_category"], "diagnostic");
    for (component, id) in [
        ("binary_sensor", "online"),
        ("sensor", "streams_down"),
        ("binary_sensor", "clock_synced"),
        ("sensor", "disk_free"),
        ("binary_sensor", "config_error"),
    ] {
        let t = format!("homeassistant/{component}/{node_id}/{id}/config");
        let v: Value = serde_json::from_str(&configs[&t]).unwrap();
        assert_eq!(v["unique_id"], format!("{node_id}_{id}"), "{v}");
    }
    // The box entities' state: counted streams and the facts.
    let boxed = sub.wait(WAIT, "the box state with Dead Cam down", |m| {
        m.topic == "streampulse/ha-box/box/state"
            && serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| v["streams_down"] == 1)
    });
    let b = boxed.json();
    assert_eq!(b["streams"], 3);
    assert_eq!(b["streams_disabled"], 1);
    assert!(b["clock_synced"].is_boolean(), "{b}");
    assert!(b["disk_free_percent"].is_number(), "{b}");
    assert_eq!(b["config_error"], false);
    // The state the templates read; the disabled stream's too (no entity).
    sub.wait(WAIT, "Lobby Cam up", |m| {
        m.topic == lobby_state && state_is(m, "ha-box", &lobby_url, "up")
    });
    sub.wait(WAIT, "Spare Cam's state, disabled", |m| {
        is_state_topic(&m.topic, "ha-box")
            && serde_json::from_str::<Value>(&m.payload)
                .is_ok_and(|v| v["enabled"] == false && v["message"] == "disabled")
    });
    // The state topic named the old way is cleared.
    sub.wait(WAIT, "the old-style state topic cleared", |m| {
        m.topic == "streampulse/ha-box/lobby-cam/state" && m.payload.is_empty()
    });

    // Rename Lobby Cam, delete Dead Cam.
    let n = sub.count();
    write_config(&config, &cfg("Front Hall", false));
    let renamed = sub.wait_after(n, WAIT, "the renamed entity", |m| {
        m.topic == lobby.topic
            && serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| v["name"] == "Front Hall")
    });
    assert_eq!(
        renamed.json()["unique_id"],
        p["unique_id"],
        "a rename keeps unique_id"
    );
    assert_eq!(
        renamed.json()["state_topic"],
        lobby_state,
        "a rename keeps the state topic"
    );
    sub.wait_after(n, WAIT, "Dead Cam's entity removed", |m| {
        m.topic == dead.topic && m.payload.is_empty()
    });
    sub.wait_after(n, WAIT, "Dead Cam's state removed", |m| {
        m.topic == dead_state && m.payload.is_empty()
    });
    // A state of the renamed stream after the rename: still `up`, since
    // the same time (the state followed the rename), never `unknown`.
    let up_since = sub
        .on(&lobby_state)
        .iter()
        .rev()
        .find(|m| state_is(m, "ha-box", &lobby_url, "up"))
        .map(|m| m.json()["since"].clone())
        .unwrap();
    sub.wait_after(n, WAIT, "Front Hall's state", |m| {
        m.topic == lobby_state && state_is(m, "ha-box", &lobby_url, "up")
    });
    let after: Vec<_> = sub.all().into_iter().skip(n).collect();
    let pos = |pred: &dyn Fn(&super::mosquitto::Msg) -> bool| after.iter().position(pred);
    let first_config = pos(&|m| m.topic == lobby.topic && !m.payload.is_empty()).unwrap();
    let first_clear = pos(&|m| m.payload.is_empty()).unwrap();
    assert!(
        first_config < first_clear,
        "the new discovery config goes before any clear: {after:?}"
    );
    let dead_entity_cleared = pos(&|m| m.topic == dead.topic && m.payload.is_empty()).unwrap();
    let dead_state_cleared = pos(&|m| m.topic == dead_state && m.payload.is_empty()).unwrap();
    assert!(
        dead_entity_cleared < dead_state_cleared,
        "an entity goes before the state it reads: {after:?}"
    );
    assert!(
        !after
            .iter()
            .any(|m| m.topic == lobby_state && m.payload.is_empty()),
        "a rename clears no state topic: {after:?}"
    );
    for m in after.iter().filter(|m| m.topic == lobby_state) {
        let v = m.json();
        assert_eq!(v["state"], "up", "a rename is not a state change: {v}");
        assert_eq!(v["since"], up_since, "{v}");
    }
    let kept = broker.retained("homeassistant/#");
    assert_eq!(kept.len(), 3 + 5, "{kept:?}");
    assert!(kept.contains_key(&lobby.topic), "{kept:?}");
    assert_eq!(app.terminate(), Some(0));

    // Left over from an earlier run (e.g. deleted while streampulse was off).
    let stale_cfg = format!("{node}0123456789ab/config");
    let stale_sensor = format!("homeassistant/sensor/{node_id}/0123456789ab_latency/config");
    broker.publish(&stale_cfg, "{\"name\":\"Old Cam\"}", true);
    broker.publish(&stale_sensor, "{\"name\":\"Old Cam latency\"}", true);
    broker.publish(
        "streampulse/ha-box/0123456789ab/state",
        "{\"state\":\"up\"}",
        true,
    );
    let app = App::start(&config, &dir.path().join("data2"));
    let deadline = Instant::now() + WAIT;
    loop {
        let kept = broker.retained("#");
        if !kept.contains_key(&stale_cfg)
            && !kept.contains_key(&stale_sensor)
            && !kept.contains_key("streampulse/ha-box/0123456789ab/state")
            && kept.contains_key(&lobby.topic)
            && kept.contains_key("streampulse/ha-box/box/state")
        {
            break;
        }
        assert!(Instant::now() < deadline, "stale entities kept: {kept:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(app);
    assert_no_secrets(&[&all_payloads(&sub)]);
}

/// A restart is not a state change: the states are restored from the
/// database, so a camera already down is published `down` (never
/// `unknown` in between) with its `since` kept, and nothing else moves;
/// meanwhile each state is republished every interval with a fresh `ts`
/// (the heartbeat HA's `expire_after` waits for).
#[test]
fn mqtt_restart_keeps_states_and_republishes_them() {
    let broker = Broker::start(Spec::default());
    let snap = SnapshotServer::start();
    let dir = temp_dir("mqtt_restore");
    let config = dir.path().join("config.yaml");
    let data = dir.path().join("data");
    let dead_port = closed_port();
    let (lobby_url, dead_url) = (snap.url("snap.jpg"), format!(":{dead_port}/"));
    write_config(
        &config,
        &format!(
            "device_name: rb\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  \
             interval: 5\n  discovery: true\n{}",
            broker.tcp_port,
            streams(&snap, dead_port)
        ),
    );
    let sub = Sub::start(&broker, "streampulse/#");
    let app = App::start(&config, &data);
    let dead = sub.wait(WAIT, "Dead Cam down", |m| {
        state_is(m, "rb", &dead_url, "down")
    });
    let lobby = sub.wait(WAIT, "Lobby Cam up", |m| {
        state_is(m, "rb", &lobby_url, "up")
    });
    let (dead_since, lobby_since) = (dead.json()["since"].clone(), lobby.json()["since"].clone());
    assert!(dead_since.is_string() && lobby_since.is_string());

    // Republished on the interval with a fresh probe time, without a change.
    let n = sub.count();
    sub.wait_all(
        Duration::from_secs(30),
        "three more Dead Cam states",
        |all| all.iter().skip(n).filter(|m| m.topic == dead.topic).count() >= 3,
    );
    let ts: Vec<i64> = sub
        .all()
        .iter()
        .skip(n)
        .filter(|m| m.topic == dead.topic)
        .map(|m| m.json()["ts_ms"].as_i64().unwrap())
        .collect();
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "each republish carries a newer probe: {ts:?}"
    );
    assert_eq!(app.terminate(), Some(0));

    let n = sub.count();
    let app = App::start(&config, &data);
    // The first states after the restart, and a few fresh probes later.
    sub.wait_all(WAIT, "Dead Cam probed again after the restart", |all| {
        all.iter()
            .skip(n)
            .filter(|m| m.topic == dead.topic)
            .filter(|m| m.json()["ts_ms"].as_i64() > ts.last().copied())
            .count()
            >= 2
    });
    let after: Vec<_> = sub.all().into_iter().skip(n).collect();
    for (topic, state, since) in [
        (&dead.topic, "down", &dead_since),
        (&lobby.topic, "up", &lobby_since),
    ] {
        let seen: Vec<Value> = after
            .iter()
            .filter(|m| &m.topic == topic)
            .map(|m| m.json())
            .collect();
        assert!(!seen.is_empty(), "no state on {topic} after the restart");
        for v in &seen {
            assert_eq!(v["state"], state, "a restart is not a state change: {v}");
            assert_eq!(&v["since"], since, "since is kept: {v}");
        }
    }
    let first = after.iter().find(|m| m.topic == dead.topic).unwrap().json();
    assert_eq!(first["reason"], "connect", "{first}");
    assert!(first["last_failure"].is_object(), "{first}");
    // The box entities' state came too.
    assert!(after.iter().any(|m| m.topic == "streampulse/rb/box/state"));
    let (_, status) = app.get("/api/status");
    assert_eq!(status["Dead Cam"]["since"], dead_since);
    assert!(app
        .log_text()
        .contains("restored the last state of 2 of 2 streams"));
    assert_no_secrets(&[&all_payloads(&sub), &app.log_text()]);
}

/// Hot reload to another broker: the old one is told `offline` (retained),
/// the new one gets availability, states and the aggregate.
#[test]
fn mqtt_hot_reload_switches_brokers() {
    let a = Broker::start(Spec::default());
    let b = Broker::start(Spec::default());
    let snap = SnapshotServer::start();
    let dir = temp_dir("mqtt_switch");
    let config = dir.path().join("config.yaml");
    let cfg = |port: u16| {
        format!(
            "device_name: sw\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {port}\n  interval: 5\n\
             streams:\n- name: Lobby Cam\n  url: {}\n  kind: snapshot\n",
            snap.url("snap.jpg")
        )
    };
    write_config(&config, &cfg(a.tcp_port));
    let sub_a = Sub::start(&a, "#");
    let sub_b = Sub::start(&b, "#");
    let app = App::start(&config, &dir.path().join("data"));
    sub_a.wait(WAIT, "online on A", |m| {
        m.topic == "streampulse/sw/availability" && m.payload == "online"
    });
    sub_a.wait(WAIT, "state on A", |m| {
        state_is(m, "sw", &snap.url("snap.jpg"), "up")
    });
    assert!(sub_b.on("streampulse/sw/availability").is_empty());

    write_config(&config, &cfg(b.tcp_port));
    sub_b.wait(WAIT, "online on B", |m| {
        m.topic == "streampulse/sw/availability" && m.payload == "online"
    });
    sub_b.wait(WAIT, "state on B", |m| {
        state_is(m, "sw", &snap.url("snap.jpg"), "up")
    });
    sub_b.wait(WAIT, "aggregate on B", |m| m.topic == "streampulse/status");
    sub_a.wait(WAIT, "offline on A", |m| {
        m.topic == "streampulse/sw/availability" && m.payload == "offline"
    });
    assert_eq!(
        a.retained("streampulse/sw/availability")
            .get("streampulse/sw/availability")
            .map(String::as_str),
        Some("offline")
    );
    assert!(app
        .log_text()
        .contains("mqtt: settings changed; reconnecting"));
}

/// `check-config` refuses an MQTT interval under 5 s and names the line
/// (the validation itself is unit-tested in `config::mqtt`).
#[test]
fn mqtt_interval_below_5_is_rejected_by_check_config() {
    let dir = temp_dir("mqtt_interval");
    let p = dir.path().join("config.yaml");
    std::fs::write(
        &p,
        "heartbeat_seconds: 10\nmqtt:\n  host: 127.0.0.1\n  interval_seconds: 2\nstreams: []\n",
    )
    .unwrap();
    let mut cmd = streampulse();
    cmd.arg("check-config").arg(&p);
    let run = run_with_timeout(cmd, Duration::from_secs(30));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(":4:") && run.stderr.contains("mqtt.interval: must be at least 5"),
        "{}",
        run.stderr
    );
}

/// Sixty streams make an aggregate of tens of KB (rumqttc's default packet
/// limit is 10 KB): it is published whole, and the connection stays up.
#[test]
fn mqtt_large_aggregate_is_published() {
    let broker = Broker::start(Spec::default());
    let dir = temp_dir("mqtt_large");
    let config = dir.path().join("config.yaml");
    let port = closed_port();
    let mut text = format!(
        "device_name: big\nheartbeat_seconds: 30\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  interval: 5\nstreams:\n",
        broker.tcp_port
    );
    for i in 0..60 {
        text.push_str(&format!(
            "- name: camera number {i} with a rather long name\n  url: http://127.0.0.1:{port}/cam{i}/snapshot.jpg\n  kind: snapshot\n  fail_threshold: 1\n"
        ));
    }
    write_config(&config, &text);
    let sub = Sub::start(&broker, "streampulse/status");
    let app = App::start(&config, &dir.path().join("data"));
    let agg = sub.wait(WAIT, "an aggregate with every stream failed", |m| {
        serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| {
            v.as_object()
                .is_some_and(|o| o.len() == 60 && o.values().all(|s| s["status"] == "fail"))
        })
    });
    assert!(agg.payload.len() > 10 * 1024, "{} bytes", agg.payload.len());
    assert_eq!(count(&app, "mqtt: connected to"), 1, "{}", app.log_tail(20));
    assert!(
        !app.log_text().contains("retrying in"),
        "the connection must not drop: {}",
        app.log_tail(20)
    );
}
