//! Issue 18, the daemon's side of updates on a host, where there is no RAUC
//! (the real install, reboot and rollback run in the QEMU test,
//! tests/it/qemu/update.rs): `GET /system/update` says why updates cannot
//! be installed here, an upload is refused with that reason and leaves
//! nothing behind, the System page says so; the health gate's rollback note
//! is shown (escaped) on every page to a session, not to anyone else, and
//! goes once dismissed.

use std::time::Duration;

use serde_json::Value;

use super::app::TEST_TOKEN;
use super::web::logged_in;

/// POST `body` to `/system/update` of `addr` with the admin test token.
fn post_bundle(addr: &str, ctype: &str, body: &[u8]) -> (u16, Value) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let mut r = agent
        .post(&format!("http://{addr}/system/update"))
        .header("Authorization", &format!("Bearer {TEST_TOKEN}"))
        .header("Content-Type", ctype)
        .send(body)
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    (
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn updates_on_a_host_are_refused_with_the_reason() {
    let (bx, mut b) = logged_in("update_host", "heartbeat_seconds: 5\n");
    let data = bx._dir.path().join("data");
    let addr = bx.app.addr.to_string();

    let (code, st) = bx.app.get("/system/update");
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["available"], false, "{st}");
    assert!(
        st["unavailable_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no updater") && r.contains("/etc/rauc/system.conf")),
        "{st}"
    );
    assert_eq!(st["progress"]["phase"], "idle", "{st}");
    assert_eq!(st["running"]["version"], env!("CARGO_PKG_VERSION"), "{st}");
    assert!(st["rolled_back"].is_null(), "{st}");

    let (code, v) = post_bundle(&addr, "application/octet-stream", b"not a bundle");
    assert_eq!(code, 503, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be installed here")),
        "{v}"
    );
    let (code, v) = post_bundle(&addr, "application/x-www-form-urlencoded", b"a=b");
    assert_eq!(code, 415, "{v}");
    let left: Vec<String> = std::fs::read_dir(data.join("update"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !left.iter().any(|n| n.contains("raucb")),
        "left behind: {left:?}"
    );

    let page = b.get("/system");
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains("Updates cannot be installed here: no updater"),
        "{}",
        page.text()
    );
    // Nothing installed: nothing to reboot into.
    let csrf = b.csrf("/system");
    let r = b.post("/system/update/reboot", &[("csrf", &csrf)]);
    assert_eq!(r.status, 409, "{}", r.text());
}

#[test]
fn a_rolled_back_update_is_said_until_dismissed() {
    let (bx, mut b) = logged_in("update_rolled_back", "heartbeat_seconds: 5\n");
    let dir = bx._dir.path().join("data/update");
    std::fs::create_dir_all(&dir).unwrap();
    // As the health gate writes it (overlay/usr/libexec/streampulse/mark-good).
    std::fs::write(
        dir.join("last-failure"),
        r#"{"slot":"A","version":"9.9.9","reason":"streampulse.service restarted 3 times without becoming healthy <script>x</script>","time":"2026-12-05T19:42:13Z"}"#,
    )
    .unwrap();
    let said = format!(
        "The update to 9.9.9 failed and was rolled back to StreamPulse {}",
        env!("CARGO_PKG_VERSION")
    );
    for path in ["/", "/system", "/settings"] {
        let p = b.get(path);
        let text = p.text();
        assert!(p.status == 200 && text.contains(&said), "{path}: {}", text);
        assert!(
            text.contains("&#60;script&#62;x") && !text.contains("<script>x"),
            "{path}: the reason is not escaped"
        );
    }
    let (_, st) = bx.app.get("/system/update");
    assert_eq!(st["rolled_back"]["version"], "9.9.9", "{st}");
    assert_eq!(st["rolled_back"]["slot"], "A", "{st}");
    // Not for anyone without a session.
    let mut anon = super::web::Browser::new(&bx.app);
    let login = anon.get("/login");
    assert!(!login.text().contains("rolled back"), "{}", login.text());

    let csrf = b.csrf("/system");
    let r = b.post("/system/update/dismiss", &[("csrf", "wrong")]);
    assert_eq!(r.status, 403, "dismissed without the CSRF token");
    assert!(dir.join("last-failure").exists());
    let r = b.post("/system/update/dismiss", &[("csrf", &csrf)]);
    assert_eq!((r.status, r.location()), (303, "/system"), "{}", r.text());
    assert!(!dir.join("last-failure").exists());
    assert!(!b.get("/").text().contains("rolled back"));
    let (_, st) = bx.app.get("/system/update");
    assert!(st["rolled_back"].is_null(), "{st}");
}
