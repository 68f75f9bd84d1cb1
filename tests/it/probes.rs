//! `streampulse probe --json`, end to end, against real and fake peers.
//!
//! One test per case. Each starts its own peers (see `util`), runs the built binary
//! under a hard timeout and checks the contract: exit code (0 ok, 1 failed), `status`,
//! `reason`, and what the probe learnt (codec, size, transport). Real servers cover
//! everything they can produce; the `Fake*` peers cover the faults they cannot
//! (silence, garbage, an endless or truncated JPEG).

use std::time::Duration;

use serde_json::Value;

use crate::fakes::{
    FakeEndlessJpegServer, FakeGarbageServer, FakeSilentServer, FakeStallMidFrameServer,
};
use crate::util::{
    probe_json, probe_json_run, run_with_timeout, streampulse, LighttpdServer, MjpegServer,
    RtspServer, SnapshotServer, COMMAND_TIMEOUT, HTTP_PASSWORD, PASSWORD, USER,
};

/// A wrong password, also checked to never be printed.
const WRONG_PASSWORD: &str = "wr0ng-Pa55";

/// Slack allowed on top of `--timeout` before a probe counts as hanging.
const DEADLINE_SLACK: Duration = Duration::from_secs(5);

/// Checks that the fields of the JSON contract are present with the right type
/// (`name` is checked once, in `json_has_every_contract_field`).
#[track_caller]
fn assert_shape(v: &Value) {
    assert!(v.is_object(), "not an object: {v:#}");
    for key in ["url", "kind", "status", "message"] {
        assert!(v[key].is_string(), "`{key}` should be a string: {v:#}");
    }
    assert!(
        v.get("reason").is_some(),
        "`reason` missing (null when ok): {v:#}"
    );
    assert!(
        v["latency_ms"].is_u64(),
        "`latency_ms` should be a non-negative integer: {v:#}"
    );
    for key in [
        "dns_ms",
        "connect_ms",
        "describe_ms",
        "setup_ms",
        "play_ms",
        "first_frame_ms",
    ] {
        let s = &v["stages"][key];
        assert!(
            v["stages"].get(key).is_some() && (s.is_null() || s.is_u64()),
            "`stages.{key}` should be an integer or null: {v:#}"
        );
    }
    let m = &v["media"];
    for key in [
        "codec",
        "rfc6381",
        "width",
        "height",
        "fps",
        "transport",
        "frame_bytes",
    ] {
        assert!(
            m.get(key).is_some(),
            "`media.{key}` missing (null when unknown): {v:#}"
        );
    }
}

/// Asserts a successful probe of `kind` that decoded a `codec` frame.
#[track_caller]
pub(crate) fn assert_ok(code: i32, v: &Value, kind: &str, codec: &str) {
    assert_shape(v);
    assert_eq!(v["status"], "ok", "status: {v:#}");
    assert_eq!(code, 0, "exit code of an ok probe: {v:#}");
    assert!(
        v["reason"].is_null(),
        "reason should be null when ok: {v:#}"
    );
    assert_eq!(v["kind"], kind, "kind: {v:#}");
    assert_eq!(v["media"]["codec"], codec, "codec: {v:#}");
    assert!(
        v["stages"]["first_frame_ms"].is_u64(),
        "an ok probe has seen a first frame: {v:#}"
    );
    assert!(
        v["media"]["frame_bytes"].as_u64().is_some_and(|n| n > 0),
        "frame_bytes of the first frame: {v:#}"
    );
}

/// Asserts the 320x240 every test source produces.
#[track_caller]
pub(crate) fn assert_size(v: &Value) {
    assert_eq!(v["media"]["width"], 320, "width: {v:#}");
    assert_eq!(v["media"]["height"], 240, "height: {v:#}");
}

/// Asserts the RTSP stages all ran and the transport used.
#[track_caller]
pub(crate) fn assert_rtsp_stages(v: &Value, transport: &str) {
    for key in ["describe_ms", "setup_ms", "play_ms"] {
        assert!(
            v["stages"][key].is_u64(),
            "`stages.{key}` of an ok RTSP probe: {v:#}"
        );
    }
    assert_eq!(v["media"]["transport"], transport, "transport: {v:#}");
}

/// `fps` is optional (null when the stream does not say), but if given it must be right.
#[track_caller]
fn assert_fps_15_or_unknown(v: &Value) {
    let fps = &v["media"]["fps"];
    assert!(
        fps.is_null() || fps.as_f64().is_some_and(|f| (f - 15.0).abs() < 0.5),
        "fps should be null or 15: {v:#}"
    );
}

/// Asserts a failed probe with `reason`, where nothing about the media was learnt.
#[track_caller]
pub(crate) fn assert_fail(code: i32, v: &Value, reason: &str) {
    assert_shape(v);
    assert_eq!(v["status"], "fail", "status: {v:#}");
    assert_eq!(v["reason"], reason, "reason: {v:#}");
    assert_eq!(code, 1, "exit code of a failed probe: {v:#}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.trim().is_empty()),
        "a failure explains itself in `message`: {v:#}"
    );
}

/// For HTTP probes `stages.describe_ms` is the time to the response headers (as in an ok
/// probe). The fakes send headers and the start of the frame in one segment: a timeout
/// after that happened while waiting for the frame, and the stages must say so.
#[track_caller]
fn assert_http_headers_arrived(v: &Value) {
    assert!(
        v["stages"]["describe_ms"].is_u64(),
        "the response headers arrived, so `stages.describe_ms` should be set: {v:#}"
    );
}

/// Asserts `--timeout secs` was honoured: the run ended within `secs` + slack.
#[track_caller]
fn assert_within_deadline(elapsed: Duration, secs: u64, v: &Value) {
    assert!(
        elapsed < Duration::from_secs(secs) + DEADLINE_SLACK,
        "probe with --timeout {secs} took {elapsed:?}: {v:#}"
    );
}

// ---------------------------------------------------------------- RTSP, real server

#[test]
fn rtsp_h264_reports_codec_size_and_stages() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url("/h264")]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_size(&v);
    assert_rtsp_stages(&v, "tcp");
    assert_fps_15_or_unknown(&v);
    let rfc6381 = &v["media"]["rfc6381"];
    assert!(
        rfc6381.is_null() || rfc6381.as_str().is_some_and(|s| s.starts_with("avc1.")),
        "rfc6381 of H.264 is avc1.*: {v:#}"
    );
}

#[test]
fn rtsp_h265_reports_codec_and_size() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url("/h265")]);
    assert_ok(code, &v, "rtsp", "h265");
    assert_size(&v);
    assert_rtsp_stages(&v, "tcp");
    assert_fps_15_or_unknown(&v);
    let rfc6381 = &v["media"]["rfc6381"];
    assert!(
        rfc6381.is_null()
            || rfc6381
                .as_str()
                .is_some_and(|s| s.starts_with("hvc1.") || s.starts_with("hev1.")),
        "rfc6381 of H.265 is hvc1.*/hev1.*: {v:#}"
    );
}

#[test]
fn rtsp_mjpeg_reports_jpeg_and_size() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url("/mjpeg")]);
    assert_ok(code, &v, "rtsp", "jpeg");
    assert_size(&v); // known only from the first frame's SOF header
    assert_rtsp_stages(&v, "tcp");
}

#[test]
fn rtsp_solid_picture_is_still_ok() {
    // A frozen (solid grey) picture is still video arriving: one probe can't call it down.
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url("/solid")]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_size(&v);
}

#[test]
fn rtsp_video_with_opus_audio_track_is_ok() {
    // retina cannot depacketize Opus: the probe must skip that track, not fail on it.
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url("/h264opus")]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_size(&v);
}

#[test]
fn rtsp_basic_auth_with_credentials_in_url_is_ok() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url_with_credentials("/basic", USER, PASSWORD)]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_size(&v);
    let url = v["url"].as_str().unwrap_or_default();
    assert!(
        url.contains("***") && !url.contains(PASSWORD),
        "url must be redacted: {v:#}"
    );
}

#[test]
fn rtsp_digest_auth_with_credential_flags_is_ok() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[
        "--username",
        USER,
        "--password",
        PASSWORD,
        &server.url("/digest"),
    ]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_size(&v);
}

#[test]
fn rtsp_digest_auth_with_credentials_in_url_is_ok() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url_with_credentials("/digest", USER, PASSWORD)]);
    assert_ok(code, &v, "rtsp", "h264");
}

#[test]
fn rtsp_wrong_password_is_auth() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url_with_credentials("/basic", USER, WRONG_PASSWORD)]);
    assert_fail(code, &v, "auth");
    assert!(
        v["media"]["codec"].is_null(),
        "nothing learnt before auth: {v:#}"
    );
}

#[test]
fn rtsp_digest_wrong_password_is_auth() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[
        "--username",
        USER,
        "--password",
        WRONG_PASSWORD,
        &server.url("/digest"),
    ]);
    assert_fail(code, &v, "auth");
}

#[test]
fn rtsp_no_credentials_on_auth_mount_is_auth() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url("/basic")]);
    assert_fail(code, &v, "auth");
}

#[test]
fn rtsp_unknown_path_is_not_found() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&[&server.url("/no-such-mount")]);
    assert_fail(code, &v, "not_found");
}

#[test]
fn rtsp_closed_port_is_connect() {
    let port = crate::util::closed_port();
    let (code, v) = probe_json(&[&format!("rtsp://127.0.0.1:{port}/h264")]);
    assert_fail(code, &v, "connect");
}

#[test]
fn rtsp_stream_that_ends_still_delivered_its_first_frame() {
    // `/ends` sends 8 frames (~0.5 s) and then EOS (RTCP BYE). Media are not shared, so
    // every probe gets a fresh pipeline whose first frame is a key frame: the probe
    // sees it before the end, and the honest answer is ok.
    let server = RtspServer::start();
    let (code, v) = probe_json(&["--timeout", "5", &server.url("/ends")]);
    assert_ok(code, &v, "rtsp", "h264");
    assert_size(&v);
}

#[test]
fn rtsp_audio_only_is_no_video() {
    let server = RtspServer::start();
    let (code, v) = probe_json(&["--timeout", "5", &server.url("/audioonly")]);
    assert_fail(code, &v, "no_video");
    assert!(v["media"]["codec"].is_null(), "no video codec: {v:#}");
}

// ---------------------------------------------------------------- RTSP, fakes

#[test]
fn rtsp_silent_server_times_out_on_time() {
    let fake = FakeSilentServer::start();
    let (run, v) = probe_json_run(&["--timeout", "3", &fake.url("rtsp", "/h264")]);
    assert_fail(run.code, &v, "timeout");
    assert_within_deadline(run.elapsed, 3, &v);
}

/// With the default 10 s timeout, a camera that accepts and never answers
/// DESCRIBE (or the HTTP request) fails at the 3 s first-answer stage deadline,
/// naming the stage: it must not hold a monitor permit for the whole timeout.
#[test]
fn silent_server_fails_at_the_stage_deadline_not_the_timeout() {
    let fake = FakeSilentServer::start();
    for (args, stage) in [
        (vec![fake.url("rtsp", "/h264")], "DESCRIBE"),
        (
            vec![
                "--kind".into(),
                "mjpeg".into(),
                fake.url("http", "/stream.mjpg"),
            ],
            "response headers",
        ),
    ] {
        let mut full = vec!["--timeout", "10"];
        full.extend(args.iter().map(String::as_str));
        let (run, v) = probe_json_run(&full);
        assert_fail(run.code, &v, "timeout");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(stage) && message.contains("3.0 s"),
            "the message names the stage and its 3 s deadline: {v:#}"
        );
        let latency = v["latency_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(
            // Well before the 10 s timeout (generous: a loaded CI box).
            (2_900..8_000).contains(&latency),
            "verdict after {latency} ms, not at the 3 s stage deadline: {v:#}"
        );
        assert_within_deadline(run.elapsed, 3, &v);
    }
}

#[test]
fn rtsp_garbage_answer_is_protocol() {
    let fake = FakeGarbageServer::start();
    let (run, v) = probe_json_run(&["--timeout", "5", &fake.url("rtsp", "/h264")]);
    assert_fail(run.code, &v, "protocol");
    assert_within_deadline(run.elapsed, 5, &v);
}

#[test]
fn unresolvable_host_is_dns() {
    let (run, v) = probe_json_run(&["--timeout", "5", "rtsp://nonexistent.invalid/x"]);
    assert_fail(run.code, &v, "dns");
    assert_within_deadline(run.elapsed, 5, &v);
}

// ---------------------------------------------------------------- MJPEG / snapshot over HTTP

#[test]
fn mjpeg_stream_reports_jpeg_and_size() {
    let server = MjpegServer::start();
    let (code, v) = probe_json(&["--kind", "mjpeg", &server.url()]);
    assert_ok(code, &v, "mjpeg", "jpeg");
    assert_size(&v);
}

#[test]
fn mjpeg_closed_port_is_connect() {
    let port = crate::util::closed_port();
    let (code, v) = probe_json(&[
        "--kind",
        "mjpeg",
        &format!("http://127.0.0.1:{port}/stream.mjpg"),
    ]);
    assert_fail(code, &v, "connect");
}

#[test]
fn mjpeg_silent_server_times_out_on_time() {
    let fake = FakeSilentServer::start();
    let (run, v) = probe_json_run(&[
        "--timeout",
        "3",
        "--kind",
        "mjpeg",
        &fake.url("http", "/stream.mjpg"),
    ]);
    assert_fail(run.code, &v, "timeout");
    assert_within_deadline(run.elapsed, 3, &v);
}

#[test]
fn mjpeg_endless_jpeg_hits_deadline_or_byte_cap() {
    let fake = FakeEndlessJpegServer::start();
    let (run, v) = probe_json_run(&["--timeout", "3", "--kind", "mjpeg", &fake.url()]);
    assert_shape(&v);
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(
        reason == "timeout" || reason == "too_large",
        "reason should be timeout or too_large: {v:#}"
    );
    assert_fail(run.code, &v, reason);
    assert_within_deadline(run.elapsed, 3, &v);
    assert_http_headers_arrived(&v);
}

#[test]
fn mjpeg_stall_mid_frame_times_out() {
    let fake = FakeStallMidFrameServer::start();
    let (run, v) = probe_json_run(&["--timeout", "3", "--kind", "mjpeg", &fake.url()]);
    assert_fail(run.code, &v, "timeout");
    assert_within_deadline(run.elapsed, 3, &v);
    assert_http_headers_arrived(&v);
}

#[test]
fn snapshot_reports_jpeg_and_size() {
    let server = SnapshotServer::start();
    let (code, v) = probe_json(&["--kind", "snapshot", &server.url("snap.jpg")]);
    assert_ok(code, &v, "snapshot", "jpeg");
    assert_size(&v);
}

#[test]
fn snapshot_of_garbage_is_bad_frame() {
    let server = SnapshotServer::start();
    let (code, v) = probe_json(&["--kind", "snapshot", &server.url("not-a-jpeg.jpg")]);
    assert_fail(code, &v, "bad_frame");
}

#[test]
fn snapshot_of_undecodable_jpeg_is_bad_frame() {
    // Complete and well-formed (SOI ... EOI) but zero-sized: found, yet no picture.
    let server = SnapshotServer::start();
    let (code, v) = probe_json(&["--kind", "snapshot", &server.url("corrupt.jpg")]);
    assert_fail(code, &v, "bad_frame");
}

#[test]
fn http_404_is_not_found() {
    let server = SnapshotServer::start();
    let (code, v) = probe_json(&["--kind", "snapshot", &server.url("missing.jpg")]);
    assert_fail(code, &v, "not_found");
}

// ---------------------------------------------------------------- contract

#[test]
fn json_has_every_contract_field() {
    // `name` is part of the contract even for a one-off probe (null there).
    let server = SnapshotServer::start();
    for url in [server.url("snap.jpg"), server.url("missing.jpg")] {
        let (_, v) = probe_json(&["--kind", "snapshot", &url]);
        assert_shape(&v);
        assert!(
            v.get("name").is_some(),
            "`name` missing (null for a one-off probe): {v:#}"
        );
    }
}

// ---------------------------------------------------------------- secrets

#[test]
fn passwords_never_appear_in_output_or_logs() {
    let server = RtspServer::start();
    // What a leak could look like: the passwords, and Basic's base64 of user:password.
    let b64 = |p: &str| base64_encode(format!("{USER}:{p}").as_bytes());
    let secrets = [
        PASSWORD.to_owned(),
        WRONG_PASSWORD.to_owned(),
        b64(PASSWORD),
        b64(WRONG_PASSWORD),
    ];
    for mount in ["/basic", "/digest"] {
        for (password, want_code) in [(PASSWORD, 0), (WRONG_PASSWORD, 1)] {
            for in_url in [true, false] {
                for json in [true, false] {
                    let mut cmd = streampulse();
                    cmd.env("RUST_LOG", "debug").arg("probe");
                    if json {
                        cmd.arg("--json");
                    }
                    if in_url {
                        cmd.arg(server.url_with_credentials(mount, USER, password));
                    } else {
                        cmd.args([
                            "--username",
                            USER,
                            "--password",
                            password,
                            &server.url(mount),
                        ]);
                    }
                    let run = run_with_timeout(cmd, COMMAND_TIMEOUT);
                    let what = format!("{mount} password={password} in_url={in_url} json={json}");
                    assert_eq!(
                        run.code, want_code,
                        "{what}: exit code; stderr:\n{}",
                        run.stderr
                    );
                    for secret in &secrets {
                        assert!(
                            !run.stdout.contains(secret.as_str()),
                            "{what}: stdout leaks {secret:?}:\n{}",
                            run.stdout
                        );
                        assert!(
                            !run.stderr.contains(secret.as_str()),
                            "{what}: stderr leaks {secret:?}:\n{}",
                            run.stderr
                        );
                    }
                }
            }
        }
    }
}

/// Standard base64 with padding (to recognise a leaked Basic `Authorization` value).
fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_encode_matches_rfc4648() {
    assert_eq!(
        base64_encode(b"admin:s3cret-Pa55"),
        "YWRtaW46czNjcmV0LVBhNTU="
    );
    assert_eq!(base64_encode(b"f"), "Zg==");
    assert_eq!(base64_encode(b"fo"), "Zm8=");
    assert_eq!(base64_encode(b"foo"), "Zm9v");
}

// HTTP auth against a real web server (lighttpd), as MotionEye and many
// cameras do it: the challenge decides Basic or Digest.

#[test]
fn http_basic_auth_snapshot_is_ok() {
    let lt = LighttpdServer::start();
    let (code, v) = probe_json(&[
        "--username",
        "admin",
        "--password",
        HTTP_PASSWORD,
        &lt.url("/basic/snap.jpg"),
    ]);
    assert_ok(code, &v, "snapshot", "jpeg");
    assert_size(&v);
}

#[test]
fn http_digest_auth_snapshot_is_ok_and_wrong_password_is_auth() {
    let lt = LighttpdServer::start();
    let url = lt
        .url("/digest/snap.jpg")
        .replace("http://", &format!("http://admin:{HTTP_PASSWORD}@"));
    let (code, v) = probe_json(&[&url]);
    assert_ok(code, &v, "snapshot", "jpeg");
    let (code, v) = probe_json(&[
        "--username",
        "admin",
        "--password",
        "wrong-one",
        &lt.url("/digest/snap.jpg"),
    ]);
    assert_fail(code, &v, "auth");
    let (code, v) = probe_json(&[&lt.url("/digest/snap.jpg")]);
    assert_fail(code, &v, "auth");
}

#[test]
fn http_digest_auth_mjpeg_stream_through_a_proxy_is_ok() {
    let lt = LighttpdServer::start();
    let (code, v) = probe_json(&[
        "--kind",
        "mjpeg",
        "--username",
        "admin",
        "--password",
        HTTP_PASSWORD,
        &lt.url("/digest-stream/stream.mjpg"),
    ]);
    assert_ok(code, &v, "mjpeg", "jpeg");
    assert_eq!(v["media"]["width"], 320, "{v:#}");
}
