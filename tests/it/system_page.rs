//! The System page (`/system`) and the diagnostics download
//! (`/system/diagnostics.txt`): who may open them, what the file holds
//! (version, `/healthz`, the config, the recent log, the previous boot's
//! journal or why not) and that no secret of the config, nor a password typed
//! into a failed login, appears in either, as typed or percent-encoded.

use super::app::TEST_TOKEN;
use super::web::{log_in, logged_in, Browser, PASSWORD};

const CAM_URL_PW: &str = "Cam-S3cret-9f2";
const CAM_FIELD_PW: &str = "P@ss word+Two";
const MQTT_PW: &str = "Mq77 s3cret!pw";
const HOOK_PW: &str = "Wh00k-pa55";
const TYPED: &str = "Typed-N0t-The-Pa55word";
/// Short and unquoted in the file: a text scrub that only replaces secrets
/// of 4 bytes or more would let it through.
const SHORT_PW: &str = "z!9";

fn config() -> String {
    format!(
        "heartbeat_seconds: 5\nstreams:\n\
         - name: front door\n  url: rtsp://admin:{CAM_URL_PW}@127.0.0.1:9/x\n  timeout: 2\n\
         - name: yard\n  url: rtsp://127.0.0.1:9/y\n  username: viewer\n  password: '{CAM_FIELD_PW}'\n  timeout: 2\n\
         - name: gate\n  url: rtsp://127.0.0.1:9/g\n  username: gatekeeper\n  password: {SHORT_PW}\n  timeout: 2\n\
         mqtt:\n  host: 127.0.0.1\n  port: 9\n  username: box\n  password: '{MQTT_PW}'\n\
         notify:\n- http://hook:{HOOK_PW}@127.0.0.1:9/h\n"
    )
}

/// Each secret as typed and percent-encoded (form and path style).
fn forms(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let path = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    vec![secret.to_owned(), form, path]
}

fn assert_no_secret(what: &str, text: &str) {
    for s in [
        CAM_URL_PW,
        CAM_FIELD_PW,
        MQTT_PW,
        HOOK_PW,
        TYPED,
        PASSWORD,
        SHORT_PW,
    ] {
        for f in forms(s) {
            assert!(!text.contains(&f), "{what} shows {f:?}:\n{text}");
        }
    }
    assert!(
        !text.contains("$argon2"),
        "{what} shows the admin hash:\n{text}"
    );
}

#[test]
fn system_page_and_diagnostics_need_an_admin() {
    let (bx, _b) = logged_in("system_access", "heartbeat_seconds: 5\n");
    let mut anon = Browser::new(&bx.app);
    let p = anon.get("/system");
    assert_eq!(p.status, 303, "{}", p.text());
    assert_eq!(p.location(), "/login?next=%2Fsystem");
    let d = anon.get("/system/diagnostics.txt");
    assert_eq!(d.status, 401, "{}", d.text());
    // An admin-scope API token may download it (a script filing a report).
    let mut script = Browser::new(&bx.app);
    script.extra = vec![("Authorization".into(), format!("Bearer {TEST_TOKEN}"))];
    let d = script.get("/system/diagnostics.txt");
    assert_eq!(d.status, 200, "{}", d.text());
    // The page itself is for a browser session.
    assert_eq!(script.get("/system").status, 303);
}

#[test]
fn diagnostics_hold_config_health_and_log_but_no_secret() {
    let (bx, mut b) = logged_in("system_diag", &config());
    // A failed login with a password-like string.
    let mut other = Browser::new(&bx.app);
    let r = log_in(&mut other, TYPED, "/");
    assert_eq!(r.status, 401, "{}", r.text());
    // Let the camera and MQTT errors reach the log.
    std::thread::sleep(std::time::Duration::from_secs(3));

    let page = b.get("/system");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains(env!("CARGO_PKG_VERSION")), "{html}");
    assert!(html.contains("listening on http://"), "recent log: {html}");
    assert!(html.contains("/system/diagnostics.txt"), "{html}");
    assert_no_secret("the System page", &html);

    let d = b.get("/system/diagnostics.txt");
    assert_eq!(d.status, 200, "{}", d.text());
    assert!(
        d.header("content-disposition")
            .is_some_and(|v| v.starts_with("attachment; filename=\"streampulse-diagnostics-")),
        "{:?}",
        d.headers
    );
    assert!(d
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let t = d.text();
    assert!(
        t.contains(&format!("version: {}", env!("CARGO_PKG_VERSION"))),
        "{t}"
    );
    for want in [
        "== /healthz ==",
        "\"uptime_s\"",
        "front door",
        "yard",
        "username: viewer",
        "rtsp://admin:***@127.0.0.1:9/x",
        "listening on http://",
    ] {
        assert!(t.contains(want), "diagnostics lack {want:?}:\n{t}");
    }
    // On this test machine the service's journal is not ours: the file
    // says what happened instead of failing.
    let journal = t
        .split("== previous boot: journalctl -b -1 -u streampulse ==\n")
        .nth(1)
        .expect("a journal section");
    assert!(!journal.trim().is_empty(), "{t}");
    assert_no_secret("the diagnostics file", &t);
}
