//! `streampulse probe` on how an RTSP camera sends its video: which RTP
//! transport it takes (`transport: auto` asks for the other one on a 461)
//! and how far apart its key frames are (`--keyframe-interval`), against
//! GStreamer's RTSP server (`/tcponly`, `/udponly`, `/longgop`).

use crate::probes::{assert_fail, assert_ok, assert_rtsp_stages, assert_size};
use crate::util::{probe_json, RtspServer};

#[test]
fn rtsp_tcp_only_mount_works_with_default_transport() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url("/tcponly")]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_rtsp_stages(&v, "tcp");
}

#[test]
fn rtsp_udp_only_mount_works_with_udp_transport() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&["--transport", "udp", &server.url("/udponly")]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_size(&v);
    assert_rtsp_stages(&v, "udp");
}

/// `auto` (the default): GStreamer's server with `protocols` limited to UDP
/// answers the TCP SETUP with 461; the probe asks again over UDP, as
/// ffmpeg's client does.
#[test]
fn rtsp_udp_only_mount_with_default_transport_falls_back_to_udp() {
    let server = RtspServer::start();
    for args in [&[][..], &["--transport", "auto"][..]] {
        let url = server.url("/udponly");
        let (code, v) = probe_json(&[args, &[url.as_str()]].concat());
        assert_ok(code, &v, "rtsp", "h264");
        assert_rtsp_stages(&v, "udp");
    }
}

/// And the reverse: a TCP-only server under a forced `udp` fails naming the
/// 461; under `auto` it is simply TCP.
#[test]
fn rtsp_forced_transport_never_falls_back_and_names_the_461() {
    let server = RtspServer::start();
    for (forced, mount) in [("tcp", "/udponly"), ("udp", "/tcponly")] {
        let (code, v) = probe_json(&["--transport", forced, &server.url(mount)]);
        assert_fail(code, &v, "protocol");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("461") && message.contains("transport: auto"),
            "{forced} on {mount}: the message names the 461 and the way out: {v:#}"
        );
    }
}

/// `--keyframe-interval`: the GStreamer camera sends a key frame every 15
/// frames at 15 fps, so about 1 s apart; the latency is still the time to
/// the first key frame, not to the second.
#[test]
fn rtsp_keyframe_interval_and_bitrate_are_measured() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&["--keyframe-interval", &server.url("/h264")]);
    assert_ok(code, &v, "rtsp", "h264");
    let ms = v["media"]["keyframe_interval_ms"].as_u64().unwrap_or(0);
    assert!(
        (800..=1300).contains(&ms),
        "about 1 s between key frames: {v:#}"
    );
    assert!(
        v["media"]["bitrate_kbps"].as_u64().unwrap_or(0) > 0,
        "{v:#}"
    );
    assert!(v["media"].get("keyframe_interval_over").is_none(), "{v:#}");
    assert!(
        v["latency_ms"].as_u64().unwrap() < ms,
        "latency is to the first key frame: {v:#}"
    );
    // Without the flag nothing is measured (and nothing waited for).
    let (_, v) = probe_json(&[&server.url("/h264")]);
    assert!(v["media"]["keyframe_interval_ms"].is_null(), "{v:#}");
}

/// Key frames 10 s apart and a 3 s timeout: still ok (the first key frame
/// came), and the interval is reported as a lower bound.
#[test]
fn rtsp_keyframe_interval_longer_than_the_timeout_is_a_lower_bound() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[
        "--keyframe-interval",
        "--timeout",
        "3",
        &server.url("/longgop"),
    ]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_eq!(v["media"]["keyframe_interval_over"], true, "{v:#}");
    let ms = v["media"]["keyframe_interval_ms"].as_u64().unwrap_or(0);
    assert!(
        (1500..3000).contains(&ms),
        "waited until just before the deadline: {v:#}"
    );
}
