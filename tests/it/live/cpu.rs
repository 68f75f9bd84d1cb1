//! The box's CPU per live viewer, printed for the README (asserted only
//! loosely): `cargo test --test it -- live::cpu --nocapture`.

use std::thread;
use std::time::{Duration, Instant};

use super::{rtsp_config, start, wait_up, Viewer};
use crate::util::procfs::cpu_secs;
use crate::util::RtspServer;

/// The box's CPU per live viewer (printed for the README; asserted only
/// loosely): idle, then 1 and 4 H.264 viewers, then 1 MJPEG-over-RTSP viewer.
#[test]
fn cpu_per_live_viewer() {
    let rtsp = RtspServer::start();
    let bx = start(
        "live_cpu",
        &rtsp_config(
            &rtsp,
            &[("h", "/h264"), ("j", "/mjpeg")],
            "  max_viewers: 8\n  max_viewers_per_stream: 4\n",
        ),
    );
    let app = &bx.app;
    wait_up(app, &["h", "j"]);
    let pid = app.pid();
    let window = Duration::from_secs(8);
    let measure = |label: &str, viewers: &[&Viewer]| -> f64 {
        let f0: usize = viewers.iter().map(|v| v.frames()).sum();
        let (c0, t0) = (cpu_secs(pid), Instant::now());
        thread::sleep(window);
        let pct = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
        let f1: usize = viewers.iter().map(|v| v.frames()).sum();
        println!(
            "CPU {label}: {pct:.2} % of one core ({} frames relayed)",
            f1 - f0
        );
        assert!(viewers.is_empty() || f1 > f0, "{label}: frames flow");
        pct
    };
    let idle = measure("idle", &[]);
    let v1 = Viewer::open(app, "h");
    v1.wait_frames(10, Duration::from_secs(20));
    let one = measure("1 H.264 viewer (320x240, 15 fps)", &[&v1]);
    let more: Vec<Viewer> = (0..3).map(|_| Viewer::open(app, "h")).collect();
    for v in &more {
        v.wait_frames(5, Duration::from_secs(20));
    }
    let all: Vec<&Viewer> = std::iter::once(&v1).chain(more.iter()).collect();
    let four = measure("4 H.264 viewers, one camera session", &all);
    drop(more);
    drop(v1);
    let j = Viewer::open(app, "j");
    j.wait_frames(10, Duration::from_secs(20));
    let mj = measure("1 MJPEG-over-RTSP viewer (320x240, 15 fps)", &[&j]);
    println!(
        "CPU per live viewer: H.264 first {:.2} %, each further {:.2} %; MJPEG {:.2} % (idle {idle:.2} %)",
        one - idle,
        (four - one) / 3.0,
        mj - idle
    );
    assert!(
        one < 50.0,
        "relaying one small stream costs little: {one:.1} %"
    );
}
