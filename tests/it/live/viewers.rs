//! How many viewers, and what a bad one costs: caps per camera and in
//! total, no live view without a login, a stalled viewer that slows no one
//! and piles up nothing, and a burst of connections all served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{live_json, live_of, rtsp_config, start, wait_up, Viewer};
use crate::util::procfs::rss_kib;
use crate::util::{wait_until, RtspServer};

/// Caps per camera and in total, with the reason in the answer; places are
/// given back when viewers leave; no live view without a login.
#[test]
fn viewer_caps_and_login() {
    let rtsp = RtspServer::start();
    let bx = start(
        "live_caps",
        &rtsp_config(
            &rtsp,
            &[("a", "/h264?a"), ("b", "/mjpeg")],
            "  max_viewers: 3\n  max_viewers_per_stream: 2\n",
        ),
    );
    let app = &bx.app;
    wait_up(app, &["a", "b"]);

    let a1 = Viewer::open(app, "a");
    let a2 = Viewer::open(app, "a");
    assert_eq!((a1.wait_status(), a2.wait_status()), (200, 200));
    let a3 = Viewer::open(app, "a");
    assert_eq!(a3.wait_status(), 503);
    let e = a3.seen(|s| s.error.clone());
    assert!(e.contains("already has 2 live viewers"), "{e}");
    let b1 = Viewer::open(app, "b");
    assert_eq!(b1.wait_status(), 200);
    let b2 = Viewer::open(app, "b");
    assert_eq!(b2.wait_status(), 503);
    let e = b2.seen(|s| s.error.clone());
    assert!(e.contains("All 3 live views"), "{e}");
    assert_eq!(live_json(app)["viewers"], 3);

    drop(a1);
    wait_until(Duration::from_secs(10), "a place to free up", || {
        live_json(app)["viewers"] == 2
    });
    let b3 = Viewer::open(app, "b");
    assert_eq!(b3.wait_status(), 200, "{}", b3.seen(|s| s.error.clone()));
    b3.wait_frames(3, Duration::from_secs(15));

    // No token, no cookie.
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build(),
    );
    let base = format!("http://{}", app.addr);
    let r = agent.get(&format!("{base}/live/a/stream")).call().unwrap();
    assert_eq!(r.status(), 401);
    let r = agent.get(&format!("{base}/api/live")).call().unwrap();
    assert_eq!(r.status(), 401);
    let r = agent.get(&format!("{base}/live")).call().unwrap();
    assert_eq!(r.status(), 303, "the grid page leads to setup/login");
    let (status, v) = app.get("/live/nope/stream");
    assert_eq!(status, 404, "{v}");
    drop((a2, b1, b3));
}

/// A viewer that stops reading costs the box at most one waiting frame: the
/// other viewer keeps its full frame rate, the slow one's frames are dropped
/// and it is detached after the stall limit, and the box's memory stays flat.
#[test]
fn a_stalled_viewer_never_slows_others_or_piles_up_frames() {
    let rtsp = RtspServer::start();
    // Large frames, so the stalled viewer's socket buffers fill within seconds.
    let bx = start("live_slow", &rtsp_config(&rtsp, &[("j", "/mjpegbars")], ""));
    let app = &bx.app;
    wait_up(app, &["j"]);
    let fast = Viewer::open(app, "j");
    let slow = Viewer::open_with(app, "j", Some(4096));
    fast.wait_frames(10, Duration::from_secs(20));
    slow.wait_frames(3, Duration::from_secs(20));
    slow.pause.store(true, Ordering::SeqCst);
    let rss0 = rss_kib(app.pid());
    let (f0, t0) = (fast.frames(), Instant::now());
    wait_until(
        Duration::from_secs(120),
        "the stalled viewer to be detached",
        || {
            app.log_text()
                .contains("live viewer stopped reading: detached")
        },
    );
    let secs = t0.elapsed().as_secs_f64();
    let fps = (fast.frames() - f0) as f64 / secs;
    let rss1 = rss_kib(app.pid());
    println!(
        "stalled viewer detached after {secs:.1} s; the other viewer got {fps:.1} fps meanwhile; \
         RSS {rss0} → {rss1} kB"
    );
    assert!(
        fps > 7.0,
        "the camera's 15 fps kept reaching the other viewer: {fps:.1}"
    );
    assert!(
        rss1 < rss0 + 20_000,
        "no frames piling up: RSS {rss0} → {rss1} kB"
    );
    let st = live_of(app, "j");
    assert_eq!(st["live"]["viewers"], 1, "{st}");
    assert!(st["live"]["dropped"].as_u64().unwrap() > 10, "{st}");
    fast.wait_frames(fast.frames() + 10, Duration::from_secs(10));
}

/// Regression: tiny_http left some connections of a burst unread behind
/// keep-alive ones (vendor/tiny_http/PATCHED.md), so the live grid (a
/// stylesheet, a script and a thumbnail per camera) hung for 30 s.
#[test]
fn burst_of_connections_is_served() {
    let bx = start("live_burst", "heartbeat_seconds: 3600\nstreams: []\n");
    let addr = bx.app.addr.clone();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let socks: Vec<_> = (0..8)
        .map(|_| {
            let (addr, barrier) = (addr.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                write!(s, "GET /static/live.css HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
                let mut first = [0u8; 12];
                let t = Instant::now();
                s.read_exact(&mut first).expect("an answer within 10 s");
                assert_eq!(&first, b"HTTP/1.1 200");
                (s, t.elapsed())
            })
        })
        .collect();
    // Keep every connection open (keep-alive) until all have answered.
    let done: Vec<_> = socks.into_iter().map(|t| t.join().unwrap()).collect();
    let slowest = done.iter().map(|(_, d)| *d).max().unwrap();
    assert!(
        slowest < Duration::from_secs(5),
        "slowest answer {slowest:?}"
    );
}
