//! The stream editor and the settings pages write config.yaml atomically
//! (with a backup) and the running daemon applies the change at once.

use std::time::Duration;

use super::logged_in;
use crate::util::RtspServer;

/// The editor writes config.yaml atomically (with a backup) and the daemon
/// applies it at once: add, validation errors, edit with the password kept,
/// disable/enable, settings, MQTT settings, delete.
#[test]
fn editor_changes_config_and_monitor_hot_reloads() {
    let rtsp = RtspServer::start();
    let (bx, mut b) = logged_in("web_editor", "heartbeat_seconds: 5\n");
    let app = &bx.app;
    let csrf = b.csrf("/add");

    // Validation errors next to the field; nothing written.
    let before = std::fs::read_to_string(&bx.config).unwrap();
    for (fields, id, want) in [
        (
            vec![("name", "a"), ("url", "not a url")],
            "err-url",
            "not a valid URL",
        ),
        (
            vec![("name", ""), ("url", "rtsp://h/x")],
            "err-name",
            "must not be empty",
        ),
        (
            vec![("name", "a"), ("url", "rtsp://h/x"), ("interval", "2")],
            "err-interval",
            "at least 5",
        ),
        (
            vec![("name", "a"), ("url", "rtsp://h/x"), ("interval", "soon")],
            "err-interval",
            "whole number",
        ),
        (
            vec![
                ("name", "a"),
                ("url", "http://h/x"),
                ("transport", "udp"),
                ("kind", "rtsp"),
            ],
            "err-url",
            "does not fit kind",
        ),
    ] {
        let mut f = fields.clone();
        f.push(("csrf", &csrf));
        f.push(("enabled", "1"));
        let r = b.post("/add", &f);
        assert_eq!(r.status, 400, "{fields:?}");
        let msg = r
            .by_id(id)
            .unwrap_or_else(|| panic!("no #{id} in {}", r.text()));
        assert!(msg.contains(want), "{id}: {msg}");
    }
    assert_eq!(std::fs::read_to_string(&bx.config).unwrap(), before);

    // Add: credentials typed into the URL are moved to the fields.
    let url = rtsp.url_with_credentials("/digest", "admin", "s3cret-Pa55");
    let r = b.post(
        "/add",
        &[
            ("csrf", &csrf),
            ("name", "Door cam"),
            ("url", &url),
            ("enabled", "1"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), "/streams/Door%20cam?msg=added");
    let cfg = std::fs::read_to_string(&bx.config).unwrap();
    assert!(
        cfg.contains("username: admin") && cfg.contains("password: s3cret-Pa55"),
        "{cfg}"
    );
    assert!(bx.config.with_file_name("config.yaml.bak").exists());
    // Hot reload: already on the board when the redirect arrives.
    let (_, status) = app.get("/api/status");
    assert!(status.get("Door cam").is_some(), "{status}");
    app.wait_status(Duration::from_secs(30), "Door cam up", |v| {
        v["Door cam"]["state"] == "up"
    });

    // Duplicate names are refused (ignoring case).
    let r = b.post(
        "/add",
        &[
            ("csrf", &csrf),
            ("name", "door CAM"),
            ("url", &rtsp.url("/h264")),
            ("enabled", "1"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.by_id("err-name").unwrap().contains("already"));

    // The edit form never shows the password; blank keeps it.
    let p = b.get("/streams/Door%20cam/edit");
    assert!(
        !p.text().contains("s3cret-Pa55"),
        "password in the edit form"
    );
    assert!(p.text().contains("A password is stored"));
    assert!(p.text().contains(&rtsp.url("/digest")));
    let r = b.post(
        "/streams/Door%20cam/edit",
        &[
            ("csrf", &csrf),
            ("name", "Door cam"),
            ("url", &rtsp.url("/digest")),
            ("username", "admin"),
            ("password", ""),
            ("interval", "6"),
            ("enabled", "1"),
            ("transport", "tcp"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let c = streampulse::config::load(&bx.config).unwrap();
    assert_eq!(
        c.streams[0].target.creds.as_ref().unwrap().password,
        "s3cret-Pa55"
    );
    assert_eq!(c.streams[0].interval, Duration::from_secs(6));
    let (_, streams) = app.get("/api/streams");
    assert_eq!(streams[0]["interval_s"], 6, "{streams}");

    // Disable and enable.
    let r = b.post(
        "/streams/Door%20cam/enable",
        &[("csrf", &csrf), ("enabled", "0")],
    );
    assert_eq!(r.location(), "/streams/Door%20cam?msg=disabled");
    let (_, status) = app.get("/api/status");
    assert_eq!(status["Door cam"]["enabled"], false, "{status}");
    let r = b.post(
        "/streams/Door%20cam/enable",
        &[("csrf", &csrf), ("enabled", "1")],
    );
    assert_eq!(r.location(), "/streams/Door%20cam?msg=enabled");
    let (_, status) = app.get("/api/status");
    assert_eq!(status["Door cam"]["enabled"], true);

    // General settings: errors by field, then a time zone change shows in the API.
    let r = b.post(
        "/settings",
        &[
            ("csrf", &csrf),
            ("device_name", "box"),
            ("timezone", "Nowhere/Special"),
            ("heartbeat_seconds", "3"),
            ("heartbeat_days", "7"),
            ("rollup_days", "730"),
            ("session_hours", "24"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.by_id("err-timezone").is_some() && r.by_id("err-heartbeat_seconds").is_some());
    let r = b.post(
        "/settings",
        &[
            ("csrf", &csrf),
            ("device_name", "box"),
            ("timezone", "America/New_York"),
            ("heartbeat_seconds", "30"),
            ("heartbeat_days", "3"),
            ("rollup_days", "365"),
            ("session_hours", "24"),
        ],
    );
    assert_eq!(
        (r.status, r.location()),
        (303, "/settings?msg=saved"),
        "{}",
        r.text()
    );
    let c = streampulse::config::load(&bx.config).unwrap();
    assert_eq!(
        (c.timezone.as_str(), c.heartbeat_retention_days),
        ("America/New_York", 3)
    );
    let (_, h) = app.get("/healthz");
    assert_eq!(h["timezone"], "America/New_York", "{h}");

    // MQTT settings: validation, then a disabled block is written; the stream survives.
    let r = b.post(
        "/settings/mqtt",
        &[
            ("csrf", &csrf),
            ("enabled", "1"),
            ("host", "mqtt://x"),
            ("transport", "tcp"),
            ("topic", "a/b"),
            ("prefix", "sp"),
            ("interval", "30"),
            ("qos", "0"),
            ("tls_verify", "1"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.by_id("err-host").is_some(), "{}", r.text());
    let r = b.post(
        "/settings/mqtt",
        &[
            ("csrf", &csrf),
            ("host", "broker.invalid"),
            ("transport", "tls"),
            ("username", "u"),
            ("password", "mqtt-pw-1"),
            ("topic", "home/cams"),
            ("prefix", "sp"),
            ("interval", "15"),
            ("qos", "1"),
            ("tls_verify", "1"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let c = streampulse::config::load(&bx.config).unwrap();
    let m = c.mqtt.clone().unwrap();
    assert!(!m.enabled);
    assert_eq!((m.topic.as_str(), m.qos, m.port), ("home/cams", 1, 8883));
    assert_eq!(c.streams.len(), 1);
    let p = b.get("/settings/mqtt");
    assert!(!p.text().contains("mqtt-pw-1"), "MQTT password shown");
    assert!(p.text().contains("A password is stored"));

    // Network settings: the config's own checks next to their field (the
    // key never echoed), then Wi-Fi and a static address are written; the
    // key is write-only.
    let r = b.post(
        "/settings/network",
        &[
            ("csrf", &csrf),
            ("wifi", "1"),
            ("ssid", "Home"),
            ("password", "short"),
            ("country", "GB"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.by_id("err-password").is_some(), "{}", r.text());
    assert!(!r.text().contains("value=\"short\""), "the key is echoed");
    let r = b.post(
        "/settings/network",
        &[
            ("csrf", &csrf),
            ("hostname", "porch-box"),
            ("ethernet_address", "192.168.1.50/24"),
            ("ethernet_gateway", "192.168.1.1"),
            ("wifi", "1"),
            ("ssid", "Home"),
            ("password", "wifi-key-123"),
            ("country", "gb"),
        ],
    );
    assert_eq!(
        (r.status, r.location()),
        (303, "/settings/network?msg=saved"),
        "{}",
        r.text()
    );
    let c = streampulse::config::load(&bx.config).unwrap();
    assert_eq!(c.network.hostname.as_deref(), Some("porch-box"));
    let w = c.network.wifi.clone().unwrap();
    assert_eq!((w.ssid.as_str(), w.country.as_str()), ("Home", "GB"));
    assert!(w.psk.is_some());
    assert!(c.network.ethernet.is_some());
    assert_eq!(c.streams.len(), 1);
    let p = b.get("/settings/network");
    assert!(!p.text().contains("wifi-key-123"), "Wi-Fi key shown");
    assert!(p.text().contains("A password is stored"));
    assert!(p.text().contains("192.168.1.50/24"));

    // Delete.
    let p = b.get("/streams/Door%20cam/delete");
    assert!(p.text().contains("Delete Door cam?"));
    let r = b.post("/streams/Door%20cam/delete", &[("csrf", &csrf)]);
    assert_eq!((r.status, r.location()), (303, "/?msg=deleted"));
    assert!(streampulse::config::load(&bx.config)
        .unwrap()
        .streams
        .is_empty());
    let (_, status) = app.get("/api/status");
    assert!(status.get("Door cam").is_none(), "{status}");
    assert_eq!(b.get("/streams/Door%20cam").status, 404);
}
