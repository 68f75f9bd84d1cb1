//! Path handling (issue 8): no route reads a file by its path, in any
//! spelling of traversal; only the compiled-in static files exist; methods
//! that could reflect or write are refused.

use std::time::Duration;

use super::{get_req, healthy_within, logged_in, raw, session_cookie};
use crate::util::between;

/// No route reads a file by its path: traversal in every spelling (raw,
/// percent-encoded, double-encoded, backslashes, NUL, absolute-form request
/// targets, stream names that look like paths) gets 404/400, never
/// `/etc/passwd`, config.yaml, the database or the token file. Only the
/// compiled-in static files exist. TRACE/PUT/DELETE/OPTIONS are 405.
#[test]
fn no_route_reads_an_arbitrary_file() {
    let (bx, mut b) = logged_in(
        "sec_paths",
        "heartbeat_seconds: 60\nstreams:\n- name: cam\n  url: rtsp://127.0.0.1:9/x\n  timeout: 2\n",
    );
    let addr = bx.app.addr.clone();
    let cookie = session_cookie(&b);
    let config = std::fs::read_to_string(&bx.config).unwrap();
    let hash_line = config
        .lines()
        .find(|l| l.contains("admin_password_hash"))
        .unwrap()
        .to_owned();
    let tokens =
        std::fs::read_to_string(bx.config.with_file_name("data").join("api-tokens.json")).unwrap();
    let token_digest = between(&tokens, "\"sha256\": \"", "\"").unwrap().to_owned();
    let targets = [
        "/static/../../../../etc/passwd",
        "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "/static/..\\..\\..\\etc\\passwd",
        "/static/..%5c..%5c..%5cetc%5cpasswd",
        "/static/app.css%00../../etc/passwd",
        "/static/app.css/../../../etc/passwd",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/config.yaml",
        "/static/../config.yaml",
        "/static/..%2fconfig.yaml",
        "/static/..%2fdata%2fstreampulse.db",
        "/static/..%2fdata%2fapi-tokens.json",
        "//etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/etc/passwd",
        "/config.yaml",
        "/data/config.yaml",
        "/streampulse.db",
        "/api-tokens.json",
        "/streams/..%2F..%2F..%2Fetc%2Fpasswd",
        "/streams/..%2F..%2F..%2Fetc%2Fpasswd/frame.jpg",
        "/streams/cam/..%2F..%2Fconfig.yaml",
        "/streams/cam/frame.jpg/../../../etc/passwd",
        "/api/streams/..%2F..%2Fconfig.yaml/history",
        "/live/..%2F..%2Fetc%2Fpasswd/thumb.jpg",
        "/live/cam/..%2F..%2Fetc%2Fpasswd",
        "http://127.0.0.1/../../../etc/passwd",
        "http://127.0.0.1/static/../../../../etc/passwd",
        "file:///etc/passwd",
        "*",
    ];
    for t in targets {
        let r = raw(&addr, None, &get_req(t, &cookie));
        let body = r.text();
        let ctx = format!("GET {t}: {}\n{body:.300}", r.head);
        assert!(r.status != 0, "{ctx}: no answer");
        assert!([400, 404].contains(&r.status), "{ctx}");
        assert!(!body.contains("root:x:0:0"), "{ctx}: /etc/passwd");
        assert!(!body.contains(&hash_line), "{ctx}: config.yaml");
        assert!(!body.contains("SQLite format 3"), "{ctx}: the database");
        assert!(!body.contains(&token_digest), "{ctx}: the token file");
    }
    // The static files are exactly the compiled-in ones.
    for f in streampulse::web::routes::STATIC_FILES {
        assert_eq!(b.get(&format!("/static/{f}")).status, 200, "{f}");
    }
    // Methods that could reflect or write.
    for m in ["TRACE", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT"] {
        let req = format!(
            "{m} /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let r = raw(&addr, None, req.as_bytes());
        assert!(
            [400, 405, 501].contains(&r.status),
            "{m}: {} {}",
            r.head,
            r.text()
        );
        assert!(!r.text().contains("sp_session"), "{m} reflects the cookie");
    }
    assert!(healthy_within(&addr, Duration::from_secs(2)).is_ok());
}
