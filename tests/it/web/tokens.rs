//! API tokens made on the Access page, used as Bearer tokens and revoked;
//! `web.public_status` opening `/api/status` and `/metrics`.

use super::{logged_in, Browser};
use crate::app::TEST_TOKEN;
use crate::util::between;

/// API tokens: made on the Access page and shown once, accepted as Bearer
/// tokens by the JSON API and /metrics, refused once revoked. With
/// `web.public_status: true`, /api/status and /metrics need nothing.
#[test]
fn api_tokens_and_public_status() {
    let (bx, mut b) = logged_in("web_tokens", "heartbeat_seconds: 5\n");
    let csrf = b.csrf("/settings/access");
    let r = b.create_token(&csrf, "Home Assistant", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.by_id("new-token").expect("the new token is shown");
    assert!(token.starts_with("sp_"), "{token}");
    let listed = b.get("/settings/access");
    assert!(listed.text().contains("Home Assistant"));
    assert!(
        !listed.text().contains(&token),
        "a token is shown only once"
    );
    let data = bx.config.with_file_name("data");
    assert!(!std::fs::read_to_string(data.join("api-tokens.json"))
        .unwrap()
        .contains(&token));

    let mut script = Browser::new(&bx.app);
    for path in ["/api/status", "/api/streams", "/metrics"] {
        assert_eq!(script.get(path).status, 401, "{path} without a token");
    }
    script.extra = vec![("Authorization".into(), format!("Bearer {token}"))];
    for path in ["/api/status", "/api/streams", "/metrics"] {
        assert_eq!(script.get(path).status, 200, "{path} with the token");
    }
    assert!(script.get("/api/streams").json().is_array());
    assert_eq!(
        script.get("/").status,
        303,
        "tokens are for the API, not pages"
    );
    script.extra = vec![("Authorization".into(), format!("Bearer {token}x"))];
    assert_eq!(script.get("/api/status").status, 401);

    let t = r.text();
    let row = &t[t
        .find("<td>Home Assistant</td>")
        .expect("the token is listed")..];
    let id = between(row, "name=\"id\" value=\"", "\"")
        .unwrap()
        .to_owned();
    let r = b.post(
        "/settings/access",
        &[("csrf", &csrf), ("action", "revoke"), ("id", &id)],
    );
    assert_eq!(r.status, 303);
    script.extra = vec![("Authorization".into(), format!("Bearer {token}"))];
    assert_eq!(script.get("/api/status").status, 401, "revoked");

    // public_status, through the settings page.
    let r = b.post(
        "/settings",
        &[
            ("csrf", &csrf),
            ("device_name", "box"),
            ("timezone", "UTC"),
            ("heartbeat_seconds", "5"),
            ("heartbeat_days", "7"),
            ("rollup_days", "730"),
            ("public_status", "1"),
            ("session_hours", "24"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let mut anon = Browser::new(&bx.app);
    assert_eq!(anon.get("/api/status").status, 200);
    assert_eq!(anon.get("/metrics").status, 200);
    assert_eq!(
        anon.get("/api/streams").status,
        401,
        "only status and metrics are public"
    );
    assert_eq!(anon.get("/").status, 303);

    // The integration tests' seeded token works too (App::get uses it).
    let mut seeded = Browser::new(&bx.app);
    seeded.extra = vec![("Authorization".into(), format!("Bearer {TEST_TOKEN}"))];
    assert_eq!(seeded.get("/api/streams").status, 200);
}
