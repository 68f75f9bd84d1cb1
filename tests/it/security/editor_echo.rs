//! The editors never echo a password (issue 8): not a stored one, not one
//! just typed into a form that is shown again because another field was
//! wrong, on the stream and MQTT editors and on `/setup`.

use super::{log_in, set_up, start, Browser, Page, PASSWORD};

/// The stream and MQTT editors never show a password: not a stored one
/// (in the URL or in the password field), not one just typed into a form
/// that is shown again because another field was wrong (also on `/setup`).
#[test]
fn editor_never_echoes_a_password() {
    let pw = |i: u32| format!("EchoPw-{i}-zq");
    let config = format!(
        "heartbeat_seconds: 60\n\
         mqtt:\n  enabled: false\n  host: broker.invalid\n  username: mq\n  password: '{}'\n\
         streams:\n\
         - name: cam url\n  url: rtsp://admin:{}@127.0.0.1:9/x\n  timeout: 2\n\
         - name: cam fields\n  url: http://127.0.0.1:9/snap.jpg\n  username: viewer\n  password: '{}'\n  timeout: 2\n",
        pw(3),
        pw(1),
        pw(2),
    );
    let bx = start("sec_echo", &config);
    let mut b = Browser::new(&bx.app);
    // First boot: the setup form with a first camera, shown again.
    let pre = b.get("/setup").hidden("pre");
    let r = b.post(
        "/setup",
        &[
            ("pre", &pre),
            ("password", PASSWORD),
            ("password2", "not the same password"),
            ("device_name", "echo box"),
            ("timezone", "UTC"),
            ("stream_name", "setup cam"),
            (
                "stream_url",
                &format!("rtsp://admin:{}@127.0.0.1:9/y", pw(8)),
            ),
            ("stream_username", "admin"),
            ("stream_password", &pw(9)),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let all: Vec<String> = (1..=12).map(pw).collect();
    let no_pw = |what: &str, p: &Page| {
        let t = p.text();
        for s in &all {
            assert!(!t.contains(s.as_str()), "{what} shows {s}");
        }
        let pct: String = "%40".into();
        assert!(!t.contains(&format!("EchoPw{pct}")));
    };
    no_pw("setup form shown again", &r);
    set_up(&mut b);
    assert_eq!(log_in(&mut b, PASSWORD, "/").status, 303);
    let before = std::fs::read_to_string(&bx.config).unwrap();

    for path in [
        "/streams/cam%20url/edit",
        "/streams/cam%20fields/edit",
        "/settings/mqtt",
    ] {
        let p = b.get(path);
        assert_eq!(p.status, 200);
        no_pw(path, &p);
        assert!(
            p.text().contains("A password is stored"),
            "{path}: says a password is kept"
        );
    }
    assert!(b
        .get("/streams/cam%20url/edit")
        .text()
        .contains("value=\"admin\""));
    let csrf = b.csrf("/");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "/streams/cam%20url/edit",
            vec![
                ("name", "cam url".into()),
                ("url", format!("rtsp://admin:{}@127.0.0.1:9/x", pw(4))),
                ("interval", "2".into()),
            ],
        ),
        (
            "/streams/cam%20fields/edit",
            vec![
                ("name", "cam fields".into()),
                ("url", "http://127.0.0.1:9/snap.jpg".into()),
                ("username", "viewer".into()),
                ("password", pw(5)),
                ("timeout", "999".into()),
            ],
        ),
        (
            "/add",
            vec![
                ("name", "".into()),
                ("url", format!("http://u:{}@127.0.0.1:9/a.jpg", pw(6))),
                ("password", pw(7)),
            ],
        ),
        (
            "/add",
            vec![
                ("name", "new cam".into()),
                ("url", format!("rtsp://u:{}@[::1", pw(10))),
            ],
        ),
        (
            "/settings/mqtt",
            vec![
                ("enabled", "1".into()),
                ("host", "broker.invalid".into()),
                ("username", "mq".into()),
                ("password", pw(11)),
                ("interval", "1".into()),
            ],
        ),
    ];
    for (path, fields) in cases {
        let mut f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        f.push(("csrf", &csrf));
        let r = b.post(path, &f);
        assert_eq!(r.status, 400, "POST {path} {fields:?}: {}", r.text());
        assert!(r.text().contains("id=\"err-"), "{path}: an error is shown");
        no_pw(&format!("POST {path} shown again"), &r);
    }
    assert_eq!(std::fs::read_to_string(&bx.config).unwrap(), before);

    // A valid edit with the password in the URL stores it, and the form
    // afterwards still does not show it.
    let r = b.post(
        "/streams/cam%20url/edit",
        &[
            ("csrf", &csrf),
            ("name", "cam url"),
            ("url", &format!("rtsp://admin:{}@127.0.0.1:9/z", pw(12))),
            ("enabled", "1"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let c = streampulse::config::load(&bx.config).unwrap();
    let s = c.streams.iter().find(|s| s.name == "cam url").unwrap();
    assert_eq!(s.target.creds.as_ref().unwrap().password, pw(12));
    no_pw("edit form after saving", &b.get("/streams/cam%20url/edit"));
}
