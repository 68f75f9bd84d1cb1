//! The GUI flow in Debian's headless Chromium (`tests/e2e/flow.mjs`).

use super::{start, PASSWORD};
use crate::util::{chromium, RtspServer};

/// The flow in Debian's headless Chromium, opened under a
/// non-localhost name (an insecure origin, as on a LAN): setup, login, add
/// the GStreamer RTSP stream, see it UP on the dashboard, a non-blank
/// preview, edit, delete. Screenshots go to `test-output/web/`.
#[test]
fn e2e_chromium_flow() {
    let e2e = chromium::e2e_dir();
    let rtsp = RtspServer::start();
    // The browser uses a name, which the box must be told it answers to.
    let bx = start(
        "web_e2e",
        "heartbeat_seconds: 5\nweb:\n  allowed_hosts: [streampulse.test]\n",
    );
    let port = bx.app.addr.rsplit(':').next().unwrap().to_owned();
    let out = chromium::output_dir("web");
    let flow = chromium::run(
        &e2e,
        "flow.mjs",
        &[
            ("SP_BASE", format!("http://streampulse.test:{port}")),
            ("SP_RTSP", rtsp.url("/h264")),
            ("SP_OUT", out.display().to_string()),
            ("SP_PASSWORD", PASSWORD.to_owned()),
        ],
    );
    let (status, stdout, stderr) = (flow.status, &flow.stdout, &flow.stderr);
    assert!(
        status.success() && stdout.contains("E2E OK"),
        "the Chromium flow failed ({status}):\n{stdout}\n{stderr}\ndaemon log tail:\n{}",
        bx.app.log_tail(40)
    );
    chromium::assert_screenshots(
        &out,
        &["setup.png", "dashboard.png", "stream.png", "preview.png"],
        10_000,
    );
    // The flow ends logged out with no streams; the file says the same.
    let c = streampulse::config::load(&bx.config).unwrap();
    assert!(c.streams.is_empty() && c.admin_password_hash.is_some());
}
