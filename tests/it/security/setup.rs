//! First-boot setup (issue 8): browsers racing to set the admin password,
//! and the winning request replayed.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::thread;

use super::{form_post, log_in, login_from, raw, start, urlencoded, Browser, Raw};

/// First boot: six browsers race to set the admin password; exactly one
/// wins, the file holds that one's password, the others are told to log
/// in, and the winner's request replayed (same cookies, same form) is 404.
#[test]
fn setup_cannot_be_raced_or_replayed() {
    let bx = start("sec_setup", "heartbeat_seconds: 60\n");
    let addr = bx.app.addr.clone();
    let n = 6;
    let mut forms = Vec::new();
    for i in 0..n {
        let mut b = Browser::new(&bx.app);
        let pre = b.get("/setup").hidden("pre");
        let pw = format!("racer password {i}");
        let body = urlencoded([
            ("pre", pre.as_str()),
            ("password", &pw),
            ("password2", &pw),
            ("device_name", "race box"),
            ("timezone", "UTC"),
        ]);
        let req = form_post("/setup", &addr, &format!("Cookie: sp_pre={pre}\r\n"), &body);
        forms.push((pw, req));
    }
    let go = Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = forms
        .iter()
        .cloned()
        .map(|(pw, req)| {
            let (go, addr) = (go.clone(), addr.clone());
            thread::spawn(move || {
                go.wait();
                (pw, raw(&addr, None, &req))
            })
        })
        .collect();
    let results: Vec<(String, Raw)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.status == 303)
        .map(|(pw, _)| pw)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one setup may win: {:?}",
        results
            .iter()
            .map(|(p, r)| (p, r.status))
            .collect::<Vec<_>>()
    );
    for (pw, r) in &results {
        if r.status != 303 {
            assert!(
                r.status == 404 || r.status == 400,
                "{pw}: {} {}",
                r.status,
                r.text()
            );
        }
    }
    let winner = winners[0].clone();
    let cfg = std::fs::read_to_string(&bx.config).unwrap();
    // Each racer tries its password, from its own address (the login rate
    // limit counts per address).
    for (i, (pw, _)) in results.iter().enumerate() {
        let from = Ipv4Addr::new(127, 0, 3, 1 + i as u8);
        let want = if *pw == winner { 303 } else { 401 };
        assert_eq!(login_from(&addr, from, pw, ""), want, "login with {pw}");
    }
    // Replay every setup request, the winner's included: 404, nothing written.
    for (_, req) in &forms {
        let r = raw(&addr, None, req);
        assert_eq!(r.status, 404, "{}", r.text());
    }
    // Logged in, /setup is gone too.
    let mut admin = Browser::new(&bx.app);
    assert_eq!(log_in(&mut admin, &winner, "/").status, 303);
    assert_eq!(admin.get("/setup").status, 404);
    let csrf = admin.csrf("/");
    let r = admin.post(
        "/setup",
        &[
            ("csrf", &csrf),
            ("pre", &csrf),
            ("password", "replayed password"),
            ("password2", "replayed password"),
            ("device_name", "x"),
            ("timezone", "UTC"),
        ],
    );
    assert_eq!(r.status, 404);
    assert_eq!(std::fs::read_to_string(&bx.config).unwrap(), cfg);
}
