//! Issue 21: the box's own camera (`libcamera:`, the rpicam-vid stand-in)
//! in the live view: its H.264 wrapped into fMP4 like an RTSP camera's, one
//! capture command for all viewers, restarted when it dies while someone
//! watches, stopped after the last viewer left.

use std::time::Duration;

use super::viewer::Seen;
use super::{live_of, Viewer};
use crate::box_camera::{config, start};
use crate::util::{chromium, temp_dir, wait_until};
use crate::web::PASSWORD;

/// Two viewers, one capture process: a complete fMP4 (avc1 init segment,
/// a key frame first, decode times rising). Killing the process (a camera
/// whose capture dies) is logged with the signal, the capture restarts and
/// the same viewers go on, decode times still rising; no process is left
/// once the viewers are gone.
#[test]
fn box_camera_plays_live_and_survives_its_capture_dying() {
    let tmp = temp_dir("box_camera_live");
    let pidfile = tmp.path().join("pid");
    let (app, _dir) = start(
        "box_camera_live",
        &config(3600, "  max_viewers_per_stream: 2\n"),
        &[("STANDIN_PIDFILE", pidfile.to_str().unwrap())],
    );
    app.wait_status(Duration::from_secs(30), "the box camera up", |v| {
        v["Box camera"]["status"] == "ok"
    });
    // The probe's own process is gone before a viewer starts one.
    let pid_of = || {
        std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    };
    let alive = |pid: i32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    let probe_pid = pid_of().expect("the probe ran the stand-in");
    wait_until(
        Duration::from_secs(10),
        "the probe's capture to end",
        || !alive(probe_pid),
    );

    let a = Viewer::open(&app, "Box camera");
    assert_eq!(a.wait_status(), 200);
    let b = Viewer::open(&app, "Box camera");
    a.wait_frames(20, Duration::from_secs(20));
    b.wait_frames(20, Duration::from_secs(20));
    let pid = pid_of().expect("the live capture ran the stand-in");
    assert_ne!(pid, probe_pid);
    for v in [&a, &b] {
        v.seen(Seen::assert_h264_fmp4_start);
    }
    let st = live_of(&app, "Box camera");
    assert_eq!(st["live"]["sessions"], 1, "two viewers, one capture: {st}");

    // The capture dies under the viewers.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), "the death in the log", || {
        app.log_text().contains("was killed by signal 9")
    });
    let before = a.frames();
    a.wait_frames(before + 20, Duration::from_secs(20));
    let st = live_of(&app, "Box camera");
    assert_eq!(st["live"]["sessions"], 2, "restarted once: {st}");
    assert_eq!(st["live"]["state"], "playing", "{st}");
    a.seen(|s| {
        assert!(
            s.decode_times.windows(2).all(|w| w[1] > w[0]),
            "decode times rise across the restart: {:?}",
            s.decode_times
        );
    });

    let live_pid = pid_of().unwrap();
    drop(a);
    drop(b);
    wait_until(
        Duration::from_secs(15),
        "the capture to stop after the viewers",
        || !alive(live_pid),
    );
}

/// The browser check: the box camera plays in the live grid of
/// Debian's headless Chromium on an insecure origin (MSE), 320×240, frames
/// advancing, not blank (`tests/e2e/box_camera.mjs`).
#[test]
fn e2e_chromium_box_camera_in_the_grid() {
    let e2e = chromium::e2e_dir();
    let hash = streampulse::credentials::hash_password(PASSWORD).unwrap();
    let cfg = format!(
        "admin_password_hash: '{hash}'\nweb:\n  allowed_hosts: [streampulse.test]\n{}",
        config(3600, "  max_viewers: 2\n")
    );
    let (app, _dir) = start("box_camera_e2e", &cfg, &[]);
    app.wait_status(Duration::from_secs(30), "the box camera up", |v| {
        v["Box camera"]["status"] == "ok"
    });
    let port = app.addr.rsplit(':').next().unwrap().to_owned();
    let out = chromium::output_dir("box-camera");
    let flow = chromium::run(
        &e2e,
        "box_camera.mjs",
        &[
            ("SP_BASE", format!("http://streampulse.test:{port}")),
            ("SP_OUT", out.display().to_string()),
            ("SP_PASSWORD", PASSWORD.to_owned()),
        ],
    );
    println!("{}", flow.stdout);
    assert!(
        flow.status.success() && flow.stdout.contains("E2E BOX CAMERA OK"),
        "the Chromium flow failed ({}):\n{}\n{}\ndaemon log tail:\n{}",
        flow.status,
        flow.stdout,
        flow.stderr,
        app.log_tail(40)
    );
    chromium::assert_screenshots(&out, &["box-camera-tile.png"], 2_000);
}

/// While the box camera plays live, the monitor's probes are answered
/// from the live capture: no second capture command runs (a real camera
/// device has one reader), and the stream stays ok.
#[test]
fn box_camera_probes_use_the_live_capture() {
    let tmp = temp_dir("box_camera_shared");
    let pidfile = tmp.path().join("pid");
    let (app, _dir) = start(
        "box_camera_shared",
        &config(5, "  max_viewers: 2\n"),
        &[("STANDIN_PIDFILE", pidfile.to_str().unwrap())],
    );
    app.wait_status(Duration::from_secs(30), "the box camera up", |v| {
        v["Box camera"]["status"] == "ok"
    });
    let v = Viewer::open(&app, "Box camera");
    assert_eq!(v.wait_status(), 200);
    v.wait_frames(10, Duration::from_secs(20));
    let live_pid = std::fs::read_to_string(&pidfile).unwrap();
    let probes_before = app
        .log_text()
        .matches("answered by the live session")
        .count();
    // Two heartbeats (5 s apart) while watched.
    wait_until(Duration::from_secs(20), "two probes answered live", || {
        app.log_text()
            .matches("answered by the live session")
            .count()
            >= probes_before + 2
    });
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        live_pid,
        "no capture command started besides the live one"
    );
    let (_, st) = app.get("/api/status");
    assert_eq!(st["Box camera"]["status"], "ok", "{st:#}");
}

/// Another LAN client (an NVR built on ffmpeg, VLC) can record the box
/// camera from the live view's URL with a token: ffmpeg reads the fMP4
/// stream, finds H.264 at 320×240 and copies two seconds of it into a file
/// without re-encoding. It counts as a viewer like a browser tab.
#[test]
fn box_camera_live_stream_records_with_ffmpeg() {
    let (app, dir) = start(
        "box_camera_ffmpeg",
        &config(3600, "  max_viewers: 2\n"),
        &[],
    );
    app.wait_status(Duration::from_secs(30), "the box camera up", |v| {
        v["Box camera"]["status"] == "ok"
    });
    let url = format!(
        "http://{}{}",
        app.addr,
        streampulse::web::routes::live_path("Box camera", "/stream")
    );
    let out = dir.path().join("recording.mp4");
    let run = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-headers"])
        .arg(format!(
            "Authorization: Bearer {}\r\n",
            crate::app::TEST_TOKEN
        ))
        .args(["-i", &url, "-t", "2", "-c", "copy", "-y"])
        .arg(&out)
        .output()
        .expect("ffmpeg should run");
    assert!(
        run.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&out)
        .output()
        .expect("ffprobe should run");
    let facts = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    assert_eq!(facts, "h264,320,240", "the recording: {facts}");
}

/// A USB webcam (`v4l2://`) that is not plugged in: a viewer starts its
/// live capture, which fails with the device's own message, as the probe
/// does: in `/api/live` while it retries, in the viewer's answer once it
/// gave up (3 starts, which can come before the first poll here). This host has no V4L2 device; a real
/// one is the `vivid` driver in a QEMU guest.
#[test]
fn missing_v4l2_camera_live_capture_names_the_device() {
    let (app, _dir) = start(
        "v4l2_live_missing",
        "heartbeat_seconds: 3600\nlive:\n  max_viewers: 2\nstreams:\n- name: Webcam\n  \
         url: v4l2:///dev/video99\n",
        &[],
    );
    let viewer = Viewer::open(&app, "Webcam");
    let mut last = serde_json::Value::Null;
    let named = |v: &serde_json::Value| {
        v.as_str()
            .is_some_and(|m| m.contains("no such device /dev/video99"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        last = live_of(&app, "Webcam");
        if named(&last["message"]) || viewer.seen(|s| named(&s.error.clone().into())) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the device is not named: /api/live {last:#}, viewer {}",
        viewer.seen(|s| format!("{} {}", s.status, s.error))
    );
}
