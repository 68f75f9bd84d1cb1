//! First boot: everything leads to `/setup`, setup validates each field,
//! and once done `/setup` is gone for good.

use super::{start, Browser, CAM_SECRET, PASSWORD};

/// First boot: everything leads to /setup, the API answers 401, setup
/// validates each field, and once done /setup is gone for good.
#[test]
fn first_boot_setup_then_setup_is_gone() {
    let bx = start("web_first_boot", "heartbeat_seconds: 5\n");
    let mut b = Browser::new(&bx.app);
    for path in ["/", "/streams/x", "/settings", "/login", "/add"] {
        let p = b.get(path);
        assert_eq!((p.status, p.location()), (303, "/setup"), "GET {path}");
    }
    for path in ["/api/status", "/api/streams", "/metrics"] {
        let p = b.get(path);
        assert_eq!(p.status, 401, "GET {path}: {}", p.text());
        assert!(p.text().contains("/setup"), "{path}: {}", p.text());
    }
    assert_eq!(b.get("/healthz").status, 200);
    let css = b.get("/static/app.css");
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));

    let p = b.get("/setup");
    assert_eq!(p.status, 200);
    let pre_cookie = p
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("sp_pre="))
        .expect("a pre-session CSRF cookie")
        .to_owned();
    assert!(
        pre_cookie.contains("HttpOnly") && pre_cookie.contains("SameSite=Strict"),
        "{pre_cookie}"
    );
    assert!(p.header("content-security-policy").is_some());
    assert!(
        !p.text()
            .contains("value=\"admin\" autocomplete=\"current-password\""),
        "no default password anywhere"
    );
    let pre = p.hidden("pre");

    // Without the pre-session token (or with another one): refused.
    let r = b.post(
        "/setup",
        &[
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("timezone", "UTC"),
            ("device_name", "x"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = b.post(
        "/setup",
        &[
            ("pre", "forged"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("timezone", "UTC"),
            ("device_name", "x"),
        ],
    );
    assert_eq!(r.status, 403);

    // Each mistake is shown next to its field, and nothing is written.
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Fields, &str, &str); 4] = [
        (
            &[("password", "short"), ("password2", "short")],
            "err-password",
            "at least 10",
        ),
        (
            &[("password", PASSWORD), ("password2", "other password!")],
            "err-password2",
            "differ",
        ),
        (
            &[
                ("password", PASSWORD),
                ("password2", PASSWORD),
                ("timezone", "Mars/Olympus"),
            ],
            "err-timezone",
            "unknown time zone",
        ),
        (
            &[
                ("password", PASSWORD),
                ("password2", PASSWORD),
                ("stream_name", "cam"),
                ("stream_url", "ftp://x/y"),
            ],
            "err-stream_url",
            "unsupported scheme",
        ),
    ];
    for (fields, id, want) in cases {
        let mut all = vec![
            ("pre", pre.as_str()),
            ("device_name", "box"),
            ("timezone", "UTC"),
        ];
        all.extend_from_slice(fields);
        // Later fields win (last value of a name), like a browser's form.
        let r = b.post("/setup", &all);
        assert_eq!(r.status, 400, "{fields:?}: {}", r.text());
        let msg = r
            .by_id(id)
            .unwrap_or_else(|| panic!("no #{id}: {}", r.text()));
        assert!(msg.contains(want), "{id}: {msg}");
        assert!(!r.text().contains(PASSWORD), "a password is echoed back");
    }
    assert!(!std::fs::read_to_string(&bx.config)
        .unwrap()
        .contains("admin_password_hash"));

    // Setup with a first camera.
    let r = b.post(
        "/setup",
        &[
            ("pre", &pre),
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("device_name", "Lab <b>box</b>"),
            ("timezone", "Europe/Berlin"),
            ("stream_name", "first cam"),
            ("stream_url", "rtsp://127.0.0.1:9/x"),
            ("stream_username", "admin"),
            ("stream_password", CAM_SECRET),
        ],
    );
    assert_eq!(
        (r.status, r.location()),
        (303, "/login?msg=setup"),
        "{}",
        r.text()
    );
    let cfg = std::fs::read_to_string(&bx.config).unwrap();
    assert!(cfg.contains("admin_password_hash: $argon2id$"), "{cfg}");
    assert!(
        !cfg.contains(PASSWORD),
        "the admin password itself is never stored"
    );
    assert!(
        cfg.contains("first cam") && cfg.contains("Europe/Berlin"),
        "{cfg}"
    );
    let cfg_parsed = streampulse::config::parse(&cfg, "c").unwrap();
    assert_eq!(
        cfg_parsed.streams[0]
            .target
            .creds
            .as_ref()
            .unwrap()
            .password,
        CAM_SECRET
    );

    // Gone for good.
    assert_eq!(b.get("/setup").status, 404);
    let r = b.post(
        "/setup",
        &[
            ("pre", &pre),
            ("password", "another password"),
            ("password2", "another password"),
            ("timezone", "UTC"),
            ("device_name", "x"),
        ],
    );
    assert_eq!(r.status, 404);
    assert_eq!(std::fs::read_to_string(&bx.config).unwrap(), cfg);
    let p = b.get("/");
    assert_eq!(p.status, 303);
    assert!(p.location().starts_with("/login"), "{}", p.location());
    let login = b.get("/login?msg=setup");
    assert!(login.text().contains("The admin password is set"));
    assert!(
        login.text().contains("Lab &#60;b&#62;box&#60;/b&#62;"),
        "the device name is escaped"
    );
}
