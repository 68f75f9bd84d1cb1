//! The live grid in Debian's headless Chromium (`tests/e2e/live.mjs`).

use super::{start, wait_up};
use crate::util::{chromium, RtspServer, SingleClientMjpeg};
use crate::web::PASSWORD;

/// The browser flow (`tests/e2e/live.mjs`) in Debian's headless
/// Chromium, on an insecure origin (a non-localhost name): the grid with
/// thumbnails, H.264 over MSE and MJPEG playing (canvas not blank, frame
/// counters advancing, latency shown), pause and stop, the viewer cap, and
/// the camera connections closed after the page is closed (counted on the
/// camera side by the script). Screenshots go to `test-output/live/`.
#[test]
fn e2e_chromium_live_grid() {
    let e2e = chromium::e2e_dir();
    let rtsp = RtspServer::start();
    let cam = SingleClientMjpeg::start();
    let hash = streampulse::credentials::hash_password(PASSWORD).unwrap();
    let bx = start(
        "live_e2e",
        &format!(
            "device_name: Lab box\nheartbeat_seconds: 5\nadmin_password_hash: '{hash}'\n\
             web:\n  allowed_hosts: [streampulse.test]\n\
             live:\n  max_viewers: 3\n  max_viewers_per_stream: 2\n  thumbnail_seconds: 5\n\
             streams:\n- name: Lobby (H.264)\n  url: {}\n- name: Garage (MJPEG)\n  url: {}\n\
             - name: Yard (H.265)\n  url: {}\n",
            rtsp.url("/h264"),
            cam.url(),
            rtsp.url("/h265"),
        ),
    );
    let app = &bx.app;
    wait_up(app, &["Lobby (H.264)", "Garage (MJPEG)", "Yard (H.265)"]);
    let port = app.addr.rsplit(':').next().unwrap().to_owned();
    let out = chromium::output_dir("live");
    let flow = chromium::run(
        &e2e,
        "live.mjs",
        &[
            ("SP_BASE", format!("http://streampulse.test:{port}")),
            ("SP_OUT", out.display().to_string()),
            ("SP_PASSWORD", PASSWORD.to_owned()),
            ("SP_RTSP_PORT", rtsp.port.to_string()),
            ("SP_MJPEG_PORT", cam.port.to_string()),
        ],
    );
    let (status, stdout, stderr) = (flow.status, &flow.stdout, &flow.stderr);
    println!("{stdout}");
    assert!(
        status.success() && stdout.contains("E2E LIVE OK"),
        "the Chromium live flow failed ({status}):\n{stdout}\n{stderr}\ndaemon log tail:\n{}",
        app.log_tail(40)
    );
    chromium::assert_screenshots(
        &out,
        &[
            "live-grid.png",
            "live-playing.png",
            "live-tile.png",
            "live-cap.png",
        ],
        5_000,
    );
}
