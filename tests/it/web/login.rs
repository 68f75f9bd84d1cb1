//! Login and sessions: a wrong password refused, the session cookie's
//! flags, `next`, forged cookies, logout, the per-address lockout, and a
//! password change ending the other sessions.

use super::{log_in, logged_in, set_up, start, Browser, PASSWORD};
use crate::app::App;

/// Login: wrong password refused, the session cookie's flags, `next`,
/// forged cookies, logout, and sessions ending with a restart.
#[test]
fn login_sessions_logout_and_forged_cookies() {
    let bx = start("web_login", "heartbeat_seconds: 5\n");
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);

    let r = log_in(&mut b, "wrong password!", "/");
    assert_eq!(r.status, 401);
    assert!(r.by_id("err-form").unwrap().contains("Wrong password"));
    assert!(!b.jar.contains_key("sp_session"));

    let r = log_in(&mut b, PASSWORD, "/settings");
    assert_eq!((r.status, r.location()), (303, "/settings"));
    let cookie = r
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("sp_session="))
        .expect("a session cookie")
        .to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=86400"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let p = b.get("/");
    assert_eq!(p.status, 200);
    assert!(p.header("content-type").unwrap().starts_with("text/html"));
    // A logged-in visit to /login goes straight on.
    assert_eq!(b.get("/login").status, 303);

    // Only local `next` targets are followed.
    let mut other = Browser::new(&bx.app);
    let r = log_in(&mut other, PASSWORD, "//evil.example/x");
    assert_eq!((r.status, r.location()), (303, "/"));

    // A forged or unknown cookie is a visitor without a session.
    let mut forged = Browser::new(&bx.app);
    forged.jar.insert(
        "sp_session".into(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    );
    let p = forged.get("/streams/x?range=7d");
    assert_eq!(p.status, 303);
    assert_eq!(p.location(), "/login?next=%2Fstreams%2Fx%3Frange%3D7d");
    assert_eq!(forged.get("/api/streams").status, 401);

    // Logout needs the CSRF token, then ends the session.
    let old = b.jar.get("sp_session").cloned().unwrap();
    assert_eq!(b.post("/logout", &[]).status, 403);
    let csrf = b.csrf("/");
    let r = b.post("/logout", &[("csrf", &csrf)]);
    assert_eq!((r.status, r.location()), (303, "/login?msg=logout"));
    assert!(!b.jar.contains_key("sp_session"), "the cookie is cleared");
    b.jar.insert("sp_session".into(), old);
    assert_eq!(b.get("/").status, 303, "the old cookie no longer works");

    // Sessions live in memory: a restart ends them all.
    let mut other = Browser::new(&bx.app);
    let r = log_in(&mut other, PASSWORD, "/");
    assert_eq!(r.status, 303);
    assert_eq!(other.get("/").status, 200);
    let dir = bx._dir;
    let config = bx.config;
    drop(bx.app);
    let app = App::start(&config, &dir.path().join("data"));
    other.base = format!("http://{}", app.addr);
    let p = other.get("/");
    assert_eq!(p.status, 303);
    assert!(p.location().starts_with("/login"));
}

/// Five wrong passwords from one address lock it out for a while, even for
/// the right password.
#[test]
fn login_rate_limit() {
    let bx = start("web_ratelimit", "heartbeat_seconds: 5\n");
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
    for i in 0..5 {
        let r = log_in(&mut b, &format!("wrong password {i}"), "/");
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = log_in(&mut b, PASSWORD, "/");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r
        .by_id("err-form")
        .unwrap()
        .contains("Too many failed logins"));
    assert!(!b.jar.contains_key("sp_session"));
}

/// Changing the password ends the other sessions; this browser stays in,
/// and only the new password works afterwards.
#[test]
fn password_change_ends_other_sessions() {
    let (bx, mut b) = logged_in("web_password", "heartbeat_seconds: 5\n");
    let mut other = Browser::new(&bx.app);
    assert_eq!(log_in(&mut other, PASSWORD, "/").status, 303);
    assert_eq!(other.get("/").status, 200);
    let csrf = b.csrf("/settings/access");
    let new = "a much better passphrase";
    let r = b.post(
        "/settings/access",
        &[
            ("csrf", &csrf),
            ("action", "password"),
            ("current_password", "wrong one!!"),
            ("new_password", new),
            ("new_password2", new),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.by_id("err-current_password").is_some());
    let r = b.post(
        "/settings/access",
        &[
            ("csrf", &csrf),
            ("action", "password"),
            ("current_password", PASSWORD),
            ("new_password", new),
            ("new_password2", new),
        ],
    );
    assert_eq!(
        (r.status, r.location()),
        (303, "/settings/access?msg=password"),
        "{}",
        r.text()
    );
    assert_eq!(b.get("/").status, 200, "this browser stays logged in");
    assert_eq!(other.get("/").status, 303, "the other session ended");
    let mut third = Browser::new(&bx.app);
    assert_eq!(log_in(&mut third, PASSWORD, "/").status, 401);
    assert_eq!(log_in(&mut third, new, "/").status, 303);
}
