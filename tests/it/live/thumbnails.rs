//! Thumbnails of the live grid: made from the monitor's probes while the
//! grid is watched, versioned and cacheable.

use std::time::Duration;

use super::{live_json, live_of, start};
use crate::app::TEST_TOKEN;
use crate::util::{wait_until, RtspServer};

/// Thumbnails: a placeholder until the grid has been looked at, then the
/// next probe's frame (H.264 decoded on the box, JPEG as is), versioned and
/// cacheable; H.265 says why there is none.
#[test]
fn thumbnails_come_from_probes_while_the_grid_is_watched() {
    let rtsp = RtspServer::start();
    let bx = start(
        "live_thumbs",
        &format!(
            "heartbeat_seconds: 5\nlive:\n  thumbnail_seconds: 5\nstreams:\n\
             - name: h\n  url: {}\n- name: x\n  url: {}\n",
            rtsp.url("/h264"),
            rtsp.url("/h265")
        ),
    );
    let app = &bx.app;
    let get = |path: &str| {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let mut r = agent
            .get(&format!("http://{}{path}", app.addr))
            .header("Authorization", &format!("Bearer {TEST_TOKEN}"))
            .call()
            .unwrap();
        let h = |k: &str| {
            r.headers()
                .get(k)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let head = (
            r.status().as_u16(),
            h("content-type"),
            h("cache-control"),
            h("etag"),
        );
        (head, r.body_mut().read_to_vec().unwrap())
    };
    let ((status, ctype, _, _), body) = get("/live/h/thumb.jpg");
    assert_eq!((status, ctype.as_str()), (200, "image/svg+xml"));
    assert!(body.starts_with(b"<svg"));

    // Looking at the grid (its JSON) asks for thumbnails.
    let _ = live_json(app);
    let mut url = String::new();
    wait_until(Duration::from_secs(30), "an H.264 thumbnail", || {
        let s = live_of(app, "h");
        url = s["thumb"]["url"].as_str().unwrap_or("").to_owned();
        !url.is_empty()
    });
    let ((status, ctype, cache, etag), jpeg) = get(&url);
    assert_eq!((status, ctype.as_str()), (200, "image/jpeg"));
    assert!(cache.contains("immutable"), "{cache}");
    assert!(!etag.is_empty());
    let d = streampulse::probe::jpeg::decode(&jpeg).unwrap();
    assert_eq!((d.width, d.height), (320, 240));
    assert!(d.mean_luma > 20.0, "a picture, not black: {}", d.mean_luma);
    let ((_, _, cache, _), _) = get("/live/h/thumb.jpg");
    assert!(
        cache.contains("no-cache"),
        "the bare URL is revalidated: {cache}"
    );

    wait_until(Duration::from_secs(30), "the H.265 note", || {
        live_of(app, "x")["thumb"]["note"]
            .as_str()
            .unwrap_or("")
            .contains("H.265")
    });
}
