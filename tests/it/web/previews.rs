//! "Check now" previews from real cameras: decoded H.264, MJPEG over RTSP
//! and snapshots shown as JPEGs with stage timings, H.265 without a
//! picture, a dead camera's failure.

use super::logged_in;
use crate::util::{sample_jpeg, RtspServer, SnapshotServer};

fn decode_stats(jpeg: &[u8]) -> (u32, u32, f64) {
    let img = image::load_from_memory(jpeg)
        .expect("the preview is a decodable JPEG")
        .to_luma8();
    let n = img.pixels().len() as f64;
    let mean = img.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / n;
    let var = img
        .pixels()
        .map(|p| (f64::from(p.0[0]) - mean).powi(2))
        .sum::<f64>()
        / n;
    (img.width(), img.height(), var.sqrt())
}

/// "Check now": H.264 decoded on the box, MJPEG over RTSP and a snapshot
/// shown as JPEGs with stage timings; H.265 says honestly that there is no
/// preview; a dead camera shows the failure.
#[test]
fn check_now_previews() {
    let rtsp = RtspServer::start();
    let snap = SnapshotServer::start();
    let config = format!(
        "heartbeat_seconds: 60\nstreams:\n\
         - name: h264\n  url: {}\n- name: mjpeg\n  url: {}\n- name: h265\n  url: {}\n\
         - name: snap\n  url: {}\n- name: dead\n  url: rtsp://127.0.0.1:9/x\n  timeout: 2\n",
        rtsp.url("/h264"),
        rtsp.url("/mjpeg"),
        rtsp.url("/h265"),
        snap.url("snap.jpg"),
    );
    let (_bx, mut b) = logged_in("web_preview", &config);
    let csrf = b.csrf("/");
    for name in ["h264", "mjpeg", "snap"] {
        let r = b.post(&format!("/streams/{name}/preview"), &[("csrf", &csrf)]);
        assert_eq!(
            (r.status, r.location()),
            (303, format!("/streams/{name}/preview").as_str())
        );
        let p = b.get(&format!("/streams/{name}/preview"));
        let t = p.text();
        assert!(t.contains("Video arrives"), "{name}: {t}");
        assert!(t.contains("First frame"), "{name}: stage timings missing");
        assert!(t.contains("id=\"preview-img\""), "{name}: no picture");
        let f = b.get(&format!("/streams/{name}/frame.jpg"));
        assert_eq!(f.status, 200);
        assert_eq!(f.header("content-type"), Some("image/jpeg"));
        let (w, h, sd) = decode_stats(&f.body);
        assert_eq!((w, h), (320, 240), "{name}");
        // The test cameras show a ball on slate blue (sd 15-30); blank is ~0.
        assert!(sd > 8.0, "{name}: the picture looks blank (sd {sd:.1})");
        // The stream page shows the kept picture.
        assert!(b
            .get(&format!("/streams/{name}"))
            .text()
            .contains("frame.jpg?t="));
    }
    assert_eq!(
        b.get("/streams/snap/frame.jpg").body,
        sample_jpeg(),
        "a small camera JPEG is shown as it is"
    );

    let r = b.post("/streams/h265/preview", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    let t = b.get("/streams/h265/preview").text();
    assert!(
        t.contains("Video arrives"),
        "the H.265 stream itself is fine: {t}"
    );
    assert!(t.contains("no preview for H.265"), "{t}");
    assert_eq!(b.get("/streams/h265/frame.jpg").status, 404);

    let r = b.post("/streams/dead/preview", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    let t = b.get("/streams/dead/preview").text();
    assert!(t.contains("No video: connect"), "{t}");
}
