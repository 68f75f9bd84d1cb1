//! A single-session MJPEG camera in the live view: viewers and the
//! monitor's probes share the one camera session.

use std::thread;
use std::time::Duration;

use super::{live_of, start, wait_up, Viewer};
use crate::util::procfs::established;
use crate::util::{wait_until, SingleClientMjpeg};

/// A single-session MJPEG camera (ffmpeg `-listen 1`): two viewers share
/// one connection (a second one would be refused); while they watch, the
/// monitor's probes are answered from the live session, so the camera stays
/// up without a second session; the connection closes after the viewers.
#[test]
fn mjpeg_relay_shares_the_single_camera_session_with_the_monitor() {
    let cam = SingleClientMjpeg::start();
    let bx = start(
        "live_mjpeg",
        &format!(
            "heartbeat_seconds: 5\nstreams:\n- name: door\n  url: {}\n  fail_threshold: 1\n",
            cam.url()
        ),
    );
    let app = &bx.app;
    wait_up(app, &["door"]);

    let a = Viewer::open(app, "door");
    let b = Viewer::open(app, "door");
    a.wait_frames(5, Duration::from_secs(20));
    b.wait_frames(5, Duration::from_secs(20));
    wait_until(Duration::from_secs(10), "the live session to play", || {
        live_of(app, "door")["live"]["state"] == "playing"
    });
    let runs = cam.runs();
    let (_, before) = app.get("/api/status");
    let probes_before = before["door"]["ts"].clone();
    // Two heartbeats (5 s apart) while watching.
    thread::sleep(Duration::from_secs(12));
    assert_eq!(
        cam.runs(),
        runs,
        "no second camera session while the stream is watched"
    );
    assert_eq!(established(cam.port), 1, "one session for two viewers");
    let (_, after) = app.get("/api/status");
    assert_eq!(after["door"]["status"], "ok", "{after}");
    assert_ne!(
        after["door"]["ts"], probes_before,
        "the monitor kept probing"
    );
    assert!(app
        .log_text()
        .contains("monitor probe answered by the live session"));
    let fa = a.frames();
    assert!(fa >= 60, "10 fps for 12 s reached the viewer: {fa}");
    a.seen(|s| assert_eq!(s.jpeg_dims, Some((320, 240))));

    drop(a);
    drop(b);
    wait_until(
        Duration::from_secs(15),
        "the camera session to close",
        || established(cam.port) == 0 && cam.runs() > runs,
    );
}
