//! The live view against the real daemon and real cameras: GStreamer's RTSP
//! server (H.264, H.265, MJPEG over RTSP) and ffmpeg's single-client MJPEG
//! server, restarted after every client so each camera session it serves is
//! counted. Connections are counted on the camera's side (`/proc/net/tcp`)
//! to prove one upstream per stream and that it closes after the viewers.
//! Latency and the box's CPU per viewer are measured and printed, not
//! asserted tightly. The Chromium flow (`tests/e2e/live.mjs`) is its own file.
//!
//! This file holds the module list and the helpers the live tests share.

mod viewer; // a live viewer over a raw socket: fMP4 boxes, JPEG parts, latencies

mod box_camera; // issue 21: the box's own camera (rpicam-vid stand-in) → fMP4, its capture killed and restarted, shared with probes, ffmpeg, Chromium
mod chromium; // the live grid in headless Chromium (tests/e2e/live.mjs)
mod cpu; // the box's CPU per live viewer, printed for the README
mod mjpeg; // a single-session MJPEG camera shared by viewers and the monitor
mod rtsp; // H.264 remuxed once for all viewers; H.265 and MJPEG over RTSP
mod thumbnails; // grid thumbnails from the monitor's probes
mod viewers; // viewer caps and login, a stalled viewer, a burst of connections

use std::time::Duration;

use crate::app::App;
use crate::util::RtspServer;
use crate::web::start;
use viewer::Viewer;

/// `/api/live` (answered 200).
fn live_json(app: &App) -> serde_json::Value {
    let (status, v) = app.get("/api/live");
    assert_eq!(status, 200, "{v}");
    v
}

/// The entry of stream `name` in `/api/live`.
fn live_of(app: &App, name: &str) -> serde_json::Value {
    live_json(app)["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in /api/live"))
        .clone()
}

/// The median of `v` (None if empty).
fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s.get(s.len() / 2).copied()
}

/// Config for an RTSP stream probed once at start (an hour apart after
/// that), so connections to the camera during a test are the live view's.
fn rtsp_config(rtsp: &RtspServer, streams: &[(&str, &str)], live: &str) -> String {
    let mut c = format!("heartbeat_seconds: 3600\nlive:\n{live}streams:\n");
    for (name, path) in streams {
        c.push_str(&format!("- name: {name}\n  url: {}\n", rtsp.url(path)));
    }
    c
}

/// Waits (30 s at most) until every stream in `names` probed ok.
fn wait_up(app: &App, names: &[&str]) {
    app.wait_status(Duration::from_secs(30), "streams up", |v| {
        names.iter().all(|n| v[n]["status"] == "ok")
    });
}
