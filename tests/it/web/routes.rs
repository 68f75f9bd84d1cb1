//! Every route: status and content type logged in and not; CSRF, same-site
//! origin, body limits and methods on every state-changing request.

use super::{logged_in, Browser};

/// Every state-changing request needs the session's CSRF token and a
/// same-site origin; bodies are capped; methods are checked.
#[test]
fn csrf_origin_methods_and_body_limits() {
    let (bx, mut b) = logged_in("web_csrf", "heartbeat_seconds: 5\n");
    let before = std::fs::read_to_string(&bx.config).unwrap();
    let form = [
        ("name", "cam"),
        ("url", "rtsp://127.0.0.1:9/x"),
        ("enabled", "1"),
    ];

    let r = b.post("/add", &form);
    assert_eq!(r.status, 403, "no token: {}", r.text());
    let mut with_wrong = form.to_vec();
    with_wrong.push(("csrf", "not-the-token"));
    assert_eq!(b.post("/add", &with_wrong).status, 403);

    let csrf = b.csrf("/add");
    let mut good = form.to_vec();
    good.push(("csrf", &csrf));
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&good)
        .finish();
    // Right token, but from another site.
    b.extra = vec![("Origin".into(), "http://evil.example".into())];
    let r = b.post_raw("/add", "application/x-www-form-urlencoded", &body, false);
    assert_eq!(r.status, 403, "{}", r.text());
    b.extra = vec![("Sec-Fetch-Site".into(), "cross-site".into())];
    assert_eq!(
        b.post_raw("/add", "application/x-www-form-urlencoded", &body, false)
            .status,
        403
    );
    b.extra.clear();
    assert_eq!(
        b.post_raw("/add", "text/plain", &body, true).status,
        415,
        "only urlencoded forms"
    );
    // A session cookie alone (no token) is not enough even for logout.
    assert_eq!(b.post("/logout", &[]).status, 403);
    assert_eq!(
        std::fs::read_to_string(&bx.config).unwrap(),
        before,
        "nothing written"
    );

    // Oversized bodies: 413 before anything else.
    let big = "x=".to_owned() + &"a".repeat(100_000);
    let r = b.post_raw("/add", "application/x-www-form-urlencoded", &big, true);
    assert_eq!(r.status, 413);

    // Methods.
    assert_eq!(b.get("/logout").status, 405);
    let csrf2 = b.csrf("/");
    assert_eq!(b.post("/api/status", &[("csrf", &csrf2)]).status, 405);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let r = agent
        .put(&format!("http://{}/api/status", bx.app.addr))
        .send("")
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // And the right request works.
    let r = b.post_raw("/add", "application/x-www-form-urlencoded", &body, true);
    assert_eq!(r.status, 303, "{}", r.text());
}

/// Every route, logged in and not: status and content type.
#[test]
fn every_route_answers() {
    let (bx, mut b) = logged_in(
        "web_routes",
        "heartbeat_seconds: 5\nstreams:\n- name: cam x\n  url: rtsp://127.0.0.1:9/x\n",
    );
    let html = "text/html; charset=utf-8";
    let json = "application/json";
    let table: &[(&str, u16, &str)] = &[
        ("/", 200, html),
        ("/add", 200, html),
        ("/settings", 200, html),
        ("/settings/mqtt", 200, html),
        ("/settings/network", 200, html),
        ("/settings/access", 200, html),
        ("/streams/cam%20x", 200, html),
        ("/streams/cam%20x?range=7d", 200, html),
        ("/streams/cam%20x/edit", 200, html),
        ("/streams/cam%20x/delete", 200, html),
        ("/streams/cam%20x/preview", 200, html),
        ("/streams/cam%20x/frame.jpg", 404, html),
        ("/streams/cam%20x/enable", 405, html),
        ("/streams/nope", 404, html),
        ("/streams/nope/edit", 404, html),
        ("/streams/cam%20x/nope", 404, html),
        ("/static/app.js", 200, "text/javascript; charset=utf-8"),
        ("/static/icon.svg", 200, "image/svg+xml"),
        ("/favicon.ico", 200, "image/svg+xml"),
        ("/static/nope.js", 404, html),
        ("/setup", 404, html),
        ("/login", 303, "text/plain; charset=utf-8"),
        ("/logout", 405, html),
        ("/api/status", 200, json),
        ("/api/streams", 200, json),
        ("/api/streams/nope/history", 404, json),
        ("/api/streams/cam%20x/availability", 200, json),
        ("/api/streams/nope/availability", 404, json),
        ("/api/streams/nope/history.csv", 404, json),
        ("/api/history.csv", 200, "text/csv; charset=utf-8"),
        ("/healthz", 200, json),
        ("/metrics", 200, "text/plain; version=0.0.4; charset=utf-8"),
        ("/nope", 404, html),
    ];
    for (path, status, ctype) in table {
        let p = b.get(path);
        assert_eq!(p.status, *status, "GET {path}: {}", p.text());
        assert_eq!(p.header("content-type"), Some(*ctype), "GET {path}");
        assert_eq!(p.header("x-content-type-options"), Some("nosniff"));
        if ctype.starts_with("text/html") {
            let csp = p.header("content-security-policy").unwrap_or("");
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
            assert_eq!(p.header("x-frame-options"), Some("DENY"));
        }
    }
    // HEAD answers like GET without a body.
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let r = agent
        .head(&format!("http://{}/healthz", bx.app.addr))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Without a session: pages go to the login, the API answers 401.
    let mut anon = Browser::new(&bx.app);
    for (path, status, _) in table {
        let p = anon.get(path);
        let public = path.starts_with("/static/")
            || *path == "/favicon.ico"
            || *path == "/healthz"
            || *path == "/setup"
            || *path == "/nope"
            || *path == "/streams/cam%20x/nope";
        if public {
            assert_eq!(p.status, *status, "anonymous GET {path}");
        } else if path.starts_with("/api/") || *path == "/metrics" {
            assert_eq!(p.status, 401, "anonymous GET {path}");
            assert!(p.header("www-authenticate").is_some());
        } else if *path == "/login" {
            assert_eq!(p.status, 200);
        } else {
            assert_eq!(p.status, 303, "anonymous GET {path}");
            assert!(
                p.location().starts_with("/login?next="),
                "{path}: {}",
                p.location()
            );
        }
    }
}
