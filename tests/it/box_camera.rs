//! Issue 21 (first slice): the box's own camera, `url: libcamera:`, against
//! a stand-in for the Pi's `rpicam-vid` (`tests/servers/rpicam-vid-standin`:
//! the same options, real ffmpeg/x264 writing H.264 Annex B to standard
//! output). No camera, Pi or libcamera is involved: what the real
//! `rpicam-vid` does on a board is not tested here (docs/APPLIANCE.md).
//! The live view of it is in `live/box_camera.rs`. USB webcams
//! (`v4l2://`): this host has no V4L2 device, so only their failures are
//! tested here (a real device is the `vivid` driver in a QEMU guest).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use streampulse::probe::capture::Source;
use streampulse::probe::{self, Capture, Kind, Reason, Target, Transport};

use crate::app::App;
use crate::util::{manifest_dir, temp_dir};

/// The stand-in script.
pub(crate) fn standin() -> PathBuf {
    manifest_dir().join("tests/servers/rpicam-vid-standin")
}

/// A config whose stream `Box camera` runs the stand-in at 320×240, 15 fps,
/// with rpicam-vid's options as the default command passes them.
pub(crate) fn config(heartbeat_secs: u32, live: &str) -> String {
    format!(
        "heartbeat_seconds: {heartbeat_secs}\nlive:\n{live}streams:\n\
         - name: Box camera\n  url: libcamera:0\n  fail_threshold: 1\n  capture:\n    \
         width: 320\n    height: 240\n    framerate: 15\n    command: {} -t 0 --camera {{camera}} \
         --codec h264 --inline --intra {{framerate}} --nopreview --width {{width}} \
         --height {{height}} --framerate {{framerate}} -o -\n",
        standin().display()
    )
}

/// Writes `config` into a fresh temp dir and starts the daemon with `env`,
/// the stand-in allowed as a capture program (`STREAMPULSE_CAPTURE_PROGRAMS`).
pub(crate) fn start(name: &str, config: &str, env: &[(&str, &str)]) -> (App, tempfile::TempDir) {
    let dir = temp_dir(name);
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let standin = standin();
    let mut env = env.to_vec();
    env.push(("STREAMPULSE_CAPTURE_PROGRAMS", standin.to_str().unwrap()));
    let app = App::start_with_env(&path, &dir.path().join("data"), &env);
    (app, dir)
}

/// The stream goes `ok` with what the SPS says (h264, 320×240); a camera
/// that is gone (the stand-in exits like rpicam-vid with no camera) fails
/// with reason `capture`, the exit status and the command's own words;
/// it recovers when the camera is back.
#[test]
fn box_camera_is_ok_fails_when_unplugged_and_recovers() {
    let tmp = temp_dir("box_camera_unplug");
    let unplugged = tmp.path().join("unplugged");
    let flag = unplugged.to_str().unwrap();
    let (app, _dir) = start(
        "box_camera_ok",
        &config(5, "  max_viewers: 4\n"),
        &[("STANDIN_FAIL_IF", flag)],
    );
    let v = app.wait_status(Duration::from_secs(30), "the box camera up", |v| {
        v["Box camera"]["status"] == "ok"
    });
    let s = &v["Box camera"];
    assert_eq!(s["codec"], "h264", "{s:#}");
    assert_eq!(s["width"], 320, "{s:#}");
    assert_eq!(s["height"], 240, "{s:#}");

    std::fs::write(&unplugged, "").unwrap();
    let v = app.wait_status(Duration::from_secs(30), "the unplugged camera", |v| {
        v["Box camera"]["reason"] == "capture"
    });
    let msg = v["Box camera"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("exited with status 1") && msg.contains("no cameras available"),
        "the message says how the command ended and what it said: {msg}"
    );

    std::fs::remove_file(&unplugged).unwrap();
    app.wait_status(Duration::from_secs(30), "the camera back", |v| {
        v["Box camera"]["status"] == "ok"
    });
}

/// The picture checks apply to a box camera as to any: its picture is ok
/// over several checks (each probe's own capture starts elsewhere in the
/// pattern, like a live sensor), frozen when every capture shows the same
/// picture (reason `frozen`, the stream fails), ok again after.
#[test]
fn box_camera_picture_checks_apply() {
    let tmp = temp_dir("box_camera_still");
    let still = tmp.path().join("still");
    let cfg = config(5, "  max_viewers: 2\n").replace(
        "  fail_threshold: 1\n",
        "  fail_threshold: 1\n  picture: {every: 5, frozen_after: 2}\n",
    );
    let (app, _dir) = start(
        "box_camera_picture",
        &cfg,
        &[("STANDIN_STILL_IF", still.to_str().unwrap())],
    );
    // Three checks, at least two after the first: never the same picture.
    app.wait_status(Duration::from_secs(30), "the picture checked", |v| {
        v["Box camera"]["picture"] == "ok"
    });
    std::thread::sleep(Duration::from_secs(11));
    let (_, v) = app.get("/api/status");
    assert_eq!(v["Box camera"]["picture"], "ok", "{v:#}");

    std::fs::write(&still, "").unwrap();
    let v = app.wait_status(Duration::from_secs(40), "a frozen picture", |v| {
        v["Box camera"]["picture"] == "frozen"
    });
    assert_eq!(v["Box camera"]["reason"], "frozen", "{v:#}");

    std::fs::remove_file(&still).unwrap();
    app.wait_status(Duration::from_secs(40), "the picture moving again", |v| {
        v["Box camera"]["picture"] == "ok" && v["Box camera"]["status"] == "ok"
    });
}

fn target(argv: &[&str], timeout: Duration) -> Target {
    Target {
        url: url::Url::parse("libcamera:0").unwrap(),
        kind: Kind::Local,
        creds: None,
        timeout,
        transport: Transport::Auto,
        max_frame_bytes: probe::DEFAULT_MAX_FRAME_BYTES,
        measure_keyframe_interval: false,
        capture: Some(Capture {
            source: Source::Command(argv.iter().map(|s| s.to_string()).collect()),
            width: 320,
            height: 240,
            framerate: 15,
        }),
    }
}

fn run(t: &Target) -> (probe::Outcome, Option<probe::Frame>, Duration) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = Instant::now();
    let (o, f) = rt.block_on(probe::run_keeping_frame(t));
    (o, f, start.elapsed())
}

/// The probe itself: a key frame (SPS, PPS, IDR in Annex B) that the
/// picture checks' decoder reads, the size from the SPS.
#[test]
fn probe_returns_a_decodable_key_frame() {
    let s = standin();
    let t = target(
        &[
            s.to_str().unwrap(),
            "--codec",
            "h264",
            "--width",
            "320",
            "--height",
            "240",
            "-o",
            "-",
        ],
        Duration::from_secs(10),
    );
    let (o, frame, _) = run(&t);
    assert!(o.is_ok(), "{o:?}");
    assert_eq!((o.media.width, o.media.height), (Some(320), Some(240)));
    assert!(
        o.media
            .rfc6381
            .as_deref()
            .is_some_and(|c| c.starts_with("avc1.")),
        "{o:?}"
    );
    let f = frame.expect("the proving frame is kept on request");
    assert_eq!(f.codec, "h264");
    let sig = streampulse::picture::decode(&f, Some((320, 240)))
        .expect("the bundled decoder reads the key frame")
        .expect("H.264 is decoded on the box");
    assert!(sig.contrast > 1.0, "testsrc2 is not flat: {sig:?}");
}

/// Each way a capture command fails has its own clear message.
#[test]
fn capture_failures_are_named() {
    let missing = target(
        &["/nonexistent/rpicam-vid", "-o", "-"],
        Duration::from_secs(5),
    );
    let (o, _, took) = run(&missing);
    let f = o.result.unwrap_err();
    assert_eq!(f.reason, Reason::Capture, "{f:?}");
    assert!(f.message.contains("not found"), "{f:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    let exits = target(
        &["sh", "-c", "echo 'Device or resource busy' >&2; exit 3"],
        Duration::from_secs(5),
    );
    let (o, _, _) = run(&exits);
    let f = o.result.unwrap_err();
    assert_eq!(f.reason, Reason::Capture, "{f:?}");
    assert!(
        f.message.contains("exited with status 3") && f.message.contains("resource busy"),
        "{f:?}"
    );

    // Runs, writes nothing: no key frame within the timeout, said in time.
    let silent = target(&["sleep", "30"], Duration::from_secs(2));
    let (o, _, took) = run(&silent);
    let f = o.result.unwrap_err();
    assert_eq!(f.reason, Reason::NoFrame, "{f:?}");
    assert!(f.message.contains("no complete key frame"), "{f:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

fn v4l2_target(path: &str) -> Target {
    Target {
        url: url::Url::parse(&format!("v4l2://{path}")).unwrap(),
        capture: Some(Capture {
            source: Source::V4l2(path.into()),
            width: 640,
            height: 480,
            framerate: 5,
        }),
        ..target(&["unused"], Duration::from_secs(5))
    }
}

/// A V4L2 camera that is not there, or a node that is no camera, fails at
/// once with reason `capture` and words that say which.
#[test]
fn v4l2_failures_are_named() {
    let (o, _, took) = run(&v4l2_target("/dev/video99"));
    let f = o.result.unwrap_err();
    assert_eq!(f.reason, Reason::Capture, "{f:?}");
    assert!(
        f.message.contains("no such device /dev/video99")
            && f.message.contains("is the camera plugged in?"),
        "{f:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");

    // /dev/null opens, but answers VIDIOC_QUERYCAP with ENOTTY.
    let (o, _, _) = run(&v4l2_target("/dev/null"));
    let f = o.result.unwrap_err();
    assert_eq!(f.reason, Reason::Capture, "{f:?}");
    assert!(
        f.message.contains("/dev/null is not a V4L2 device"),
        "{f:?}"
    );
}

/// The daemon monitors a `v4l2://` camera like any: one that is not
/// plugged in fails with reason `capture`, the message naming the
/// device.
#[test]
fn missing_v4l2_camera_fails_with_reason_capture() {
    let (app, _dir) = start(
        "v4l2_missing",
        "heartbeat_seconds: 5\nstreams:\n- name: Webcam\n  url: v4l2:///dev/video99\n  \
         fail_threshold: 1\n  capture: {width: 640, height: 480, framerate: 5}\n",
        &[],
    );
    let v = app.wait_status(Duration::from_secs(30), "the webcam failing", |v| {
        v["Webcam"]["status"] == "fail"
    });
    let s = &v["Webcam"];
    assert_eq!(s["reason"], "capture", "{s:#}");
    let msg = s["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("/dev/video99") && msg.contains("no such device"),
        "{s:#}"
    );
}
