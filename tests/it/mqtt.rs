//! MQTT end to end: the real `streampulse run` against real Mosquitto brokers
//! (plain TCP, password file, WebSockets, TLS and WebSockets over TLS with a
//! CA made by openssl), read back with `mosquitto_sub`. Streams point at a
//! real snapshot server (up) and at closed ports (down) so that state
//! changes really happen. Every wait is bounded.

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

fn state_is(m: &super::mosquitto::Msg, topic: &str, state: &str) -> bool {
    m.topic == topic && serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| v["state"] == state)
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
    write_config(
        &config,
        &format!(
            "device_name: Test Box\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  \
             interval: 5\n{}",
            broker.tcp_port,
            streams(&snap, closed_port())
        ),
    );
    let sub = Sub::start(&broker, "#");
    let app = App::start(&config, &dir.path().join("data"));

    let avail = "streampulse/test-box/availability";
    sub.wait(WAIT, "online", |m| {
        m.topic == avail && m.payload == "online"
    });
    sub.wait(WAIT, "Lobby Cam up", |m| {
        state_is(m, "streampulse/test-box/lobby-cam/state", "up")
    });
    let dead = sub.wait(WAIT, "Dead Cam down", |m| {
        state_is(m, "streampulse/test-box/dead-cam/state", "down")
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
    assert!(
        kept.contains_key("streampulse/test-box/lobby-cam/state"),
        "{kept:?}"
    );
    assert!(
        kept.contains_key("streampulse/test-box/dead-cam/state"),
        "{kept:?}"
    );
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
        state_is(m, "streampulse/pw-box/lobby-cam/state", "up")
    });
    assert_eq!(count(&app, "mqtt: settings changed; reconnecting"), 1);
    assert_eq!(count(&app, "mqtt: connected to"), 1);

    // Streams only: same connection, new stream announced.
    write_config(
        &config,
        &cfg(
            MQTT_SECRET,
            &format!(
                "- name: Dead Cam\n  url: http://127.0.0.1:{}/x.jpg\n  kind: snapshot\n  fail_threshold: 1\n",
                closed_port()
            ),
        ),
    );
    sub.wait(WAIT, "the new stream's state", |m| {
        state_is(m, "streampulse/pw-box/dead-cam/state", "down")
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
        state_is(m, "streampulse/ws/lobby-cam/state", "up")
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
        state_is(m, "streampulse/tls/lobby-cam/state", "up")
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
    write_config(
        &config,
        &format!(
            "device_name: rs\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  interval: 5\n\
             streams:\n- name: Lobby Cam\n  url: {}\n  kind: snapshot\n  fail_threshold: 1\n\
             - name: Dead Cam\n  url: http://127.0.0.1:{}/x.jpg\n  kind: snapshot\n  fail_threshold: 1\n",
            broker.tcp_port,
            snap.url("snap.jpg"),
            closed_port()
        ),
    );
    let app = App::start(&config, &dir.path().join("data"));
    {
        let sub = Sub::start(&broker, "#");
        sub.wait(WAIT, "Lobby Cam up", |m| {
            state_is(m, "streampulse/rs/lobby-cam/state", "up")
        });
        sub.wait(WAIT, "Dead Cam down", |m| {
            state_is(m, "streampulse/rs/dead-cam/state", "down")
        });
    }
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
            .get("streampulse/rs/lobby-cam/state")
            .and_then(|p| serde_json::from_str::<Value>(p).ok());
        // Dead Cam did not change while the broker was away: only a full
        // republish on reconnect brings its retained state back.
        let unchanged = kept
            .get("streampulse/rs/dead-cam/state")
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

/// Home Assistant discovery, field by field; a rename keeps the entity
/// (same topic and unique_id), a deleted stream's entity and state are
/// removed, and stale entities left from an earlier run are cleared.
#[test]
fn mqtt_home_assistant_discovery() {
    let broker = Broker::start(Spec::default());
    let snap = SnapshotServer::start();
    let dead_port = closed_port();
    let dir = temp_dir("mqtt_ha");
    let config = dir.path().join("config.yaml");
    let cfg = |lobby_name: &str, with_dead: bool| {
        let mut s = format!(
            "device_name: HA Box\nheartbeat_seconds: 5\nmqtt:\n  host: 127.0.0.1\n  port: {}\n  \
             interval: 5\n  discovery: true\nstreams:\n- name: {lobby_name}\n  url: {}\n  kind: snapshot\n",
            broker.tcp_port,
            snap.url("snap.jpg")
        );
        if with_dead {
            s.push_str(&format!(
                "- name: Dead Cam\n  url: http://admin:{CAM_SECRET}@127.0.0.1:{dead_port}/x.jpg\n  \
                 kind: snapshot\n  fail_threshold: 1\n"
            ));
        }
        s
    };
    write_config(&config, &cfg("Lobby Cam", true));
    let sub = Sub::start(&broker, "#");
    let app = App::start(&config, &dir.path().join("data"));
    let node = "homeassistant/binary_sensor/streampulse_ha_box/";
    let config_for = |name: &str| {
        let name = name.to_owned();
        sub.wait(WAIT, &format!("discovery of {name}"), move |m| {
            m.topic.starts_with(node)
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
        .strip_prefix(node)
        .and_then(|t| t.strip_suffix("/config"))
        .unwrap();
    assert!(
        object_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{object_id}"
    );
    assert_eq!(p["unique_id"], format!("streampulse_ha_box_{object_id}"));
    assert_eq!(p["device_class"], "connectivity");
    assert_eq!(p["state_topic"], "streampulse/ha-box/lobby-cam/state");
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
    assert_eq!(p["qos"], 0);
    assert_eq!(
        p["device"]["identifiers"],
        serde_json::json!(["streampulse_ha_box"])
    );
    assert_eq!(p["device"]["name"], "HA Box");
    assert_eq!(p["device"]["manufacturer"], "StreamPulse");
    assert_eq!(p["device"]["sw_version"], health["version"]);
    assert_eq!(p["origin"]["name"], "StreamPulse");
    assert!(lobby.retained || broker.retained(&lobby.topic).contains_key(&lobby.topic));
    assert_ne!(dead.json()["unique_id"], p["unique_id"]);
    assert_eq!(
        dead.json()["state_topic"],
        "streampulse/ha-box/dead-cam/state"
    );
    // The state the template reads.
    sub.wait(WAIT, "Lobby Cam up", |m| {
        state_is(m, "streampulse/ha-box/lobby-cam/state", "up")
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
        "streampulse/ha-box/front-hall/state"
    );
    sub.wait_after(n, WAIT, "Dead Cam's entity removed", |m| {
        m.topic == dead.topic && m.payload.is_empty()
    });
    sub.wait_after(n, WAIT, "Dead Cam's state removed", |m| {
        m.topic == "streampulse/ha-box/dead-cam/state" && m.payload.is_empty()
    });
    sub.wait_after(n, WAIT, "the old state topic removed", |m| {
        m.topic == "streampulse/ha-box/lobby-cam/state" && m.payload.is_empty()
    });
    let kept = broker.retained("homeassistant/#");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept.contains_key(&lobby.topic), "{kept:?}");
    assert_eq!(app.terminate(), Some(0));

    // Left over from an earlier run (e.g. deleted while streampulse was off).
    let stale_cfg = format!("{node}0123456789ab/config");
    broker.publish(&stale_cfg, "{\"name\":\"Old Cam\"}", true);
    broker.publish(
        "streampulse/ha-box/old-cam/state",
        "{\"state\":\"up\"}",
        true,
    );
    let app = App::start(&config, &dir.path().join("data2"));
    let deadline = Instant::now() + WAIT;
    loop {
        let kept = broker.retained("#");
        if !kept.contains_key(&stale_cfg)
            && !kept.contains_key("streampulse/ha-box/old-cam/state")
            && kept.contains_key(&lobby.topic)
        {
            break;
        }
        assert!(Instant::now() < deadline, "stale entities kept: {kept:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(app);
    assert_no_secrets(&[&all_payloads(&sub)]);
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
        state_is(m, "streampulse/sw/lobby-cam/state", "up")
    });
    assert!(sub_b.on("streampulse/sw/availability").is_empty());

    write_config(&config, &cfg(b.tcp_port));
    sub_b.wait(WAIT, "online on B", |m| {
        m.topic == "streampulse/sw/availability" && m.payload == "online"
    });
    sub_b.wait(WAIT, "state on B", |m| {
        state_is(m, "streampulse/sw/lobby-cam/state", "up")
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
