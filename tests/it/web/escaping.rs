//! Escaping and redaction in the GUI: a stream named like a script is
//! shown as text, and no page, JSON answer or log shows a password.

use std::time::Duration;

use super::{logged_in, CAM_SECRET, XSS};
use crate::util::RtspServer;

/// A stream called `<script>alert(1)</script>` is shown as text on every
/// page, and no page, JSON answer or log shows a camera or MQTT password.
#[test]
fn escaping_and_secret_redaction() {
    let rtsp = RtspServer::start();
    let config = format!(
        "heartbeat_seconds: 5\nmqtt:\n  enabled: false\n  host: broker.invalid\n  username: u\n  password: {CAM_SECRET}-mqtt\n\
         streams:\n- name: '{XSS}'\n  url: {}\n- name: plain\n  url: {}\n  username: admin\n  password: {CAM_SECRET}\n",
        rtsp.url_with_credentials("/digest", "admin", CAM_SECRET),
        rtsp.url("/basic"),
    );
    let (bx, mut b) = logged_in("web_escaping", &config);
    bx.app
        .wait_status(Duration::from_secs(30), "both probed", |v| {
            v[XSS]["status"] != "" && v["plain"]["status"] != ""
        });
    let enc = "%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
    let csrf = b.csrf("/");
    assert_eq!(
        b.post(&format!("/streams/{enc}/preview"), &[("csrf", &csrf)])
            .status,
        303
    );
    let pages = [
        "/".to_owned(),
        format!("/streams/{enc}"),
        format!("/streams/{enc}/edit"),
        format!("/streams/{enc}/delete"),
        format!("/streams/{enc}/preview"),
        "/streams/plain".into(),
        "/streams/plain/edit".into(),
        "/settings".into(),
        "/settings/mqtt".into(),
        "/settings/access".into(),
    ];
    for path in &pages {
        let p = b.get(path);
        assert_eq!(p.status, 200, "{path}");
        let t = p.text();
        assert!(!t.contains(XSS), "{path} has the raw script tag");
        assert!(!t.contains(CAM_SECRET), "{path} shows a password");
        if !path.starts_with("/settings") && !path.contains("plain") {
            assert!(
                t.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
                "{path} should show the name as text"
            );
        }
    }
    for path in ["/api/status", "/api/streams", "/metrics", "/healthz"] {
        let t = b.get(path).text();
        assert!(!t.contains(CAM_SECRET), "{path} shows a password");
    }
    // An error page that echoes a name escapes it too.
    let p = b.get("/streams/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
    assert_eq!(p.status, 404);
    assert!(!p.text().contains("<img src=x"));
    assert!(
        !bx.app.log_text().contains(CAM_SECRET),
        "a password in the log"
    );
}
