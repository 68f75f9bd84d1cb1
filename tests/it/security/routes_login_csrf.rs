//! Who may use which route (issue 8): every route from the route table,
//! without a session, with forged, expired and another box's sessions, and
//! every POST without the session's CSRF token or from another site.

use std::collections::BTreeSet;
use std::path::Path;
use std::thread;
use std::time::Duration;

use super::route_table::{route_variants, Class, ROUTES};
use super::{
    form_post, get_req, log_in, raw, session_cookie, set_up, temp_dir, App, Browser, Page,
    PASSWORD, TEST_TOKEN,
};

/// The route table covers every variant of `Route`, and each sample path
/// decodes to its variant with the access class the table expects.
#[test]
fn route_table_covers_every_route() {
    use streampulse::web::routes::{Access, Route};
    let variants = route_variants();
    assert!(
        variants.len() >= 20,
        "parsed too few variants: {variants:?}"
    );
    let table: BTreeSet<String> = ROUTES.iter().map(|(v, _, _)| (*v).to_owned()).collect();
    let missing: Vec<_> = variants.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "Route variants without a security case in tests/it/security/route_table.rs ROUTES: {missing:?}; \
         add one (path + class) so the new route is checked for login, CSRF and escaping"
    );
    let stale: Vec<_> = table.difference(&variants).collect();
    assert!(stale.is_empty(), "ROUTES names unknown variants: {stale:?}");
    for (variant, path, class) in ROUTES {
        let route = Route::decode(path);
        let dbg = format!("{route:?}");
        assert!(
            dbg == *variant || dbg.starts_with(&format!("{variant}(")),
            "{path} decodes to {dbg}, not {variant}"
        );
        let want = match class {
            Class::Page => Access::Page,
            Class::Api => Access::Api,
            Class::Live => Access::Live,
            Class::Admin => Access::Admin,
            Class::PublicStatus => Access::PublicStatus,
            _ => Access::Public,
        };
        assert_eq!(route.access(), want, "{path}");
    }
}

/// Asserts that a visitor sending `cookie` (none, forged, expired, another
/// box's) is treated as anonymous on every route, GET and POST, and sees
/// neither `stream_marker` nor `hidden_marker`.
fn anon_expectations(
    addr: &str,
    cookie: &str,
    who: &str,
    stream_marker: &str,
    hidden_marker: &str,
) {
    for (variant, path, class) in ROUTES {
        let r = raw(addr, None, &get_req(path, cookie));
        let loc = r
            .head
            .lines()
            .find_map(|l| {
                l.strip_prefix("Location: ")
                    .or(l.strip_prefix("location: "))
            })
            .unwrap_or("")
            .to_owned();
        let ctx = format!("{who}: GET {path} ({variant}): {}\n{}", r.head, r.text());
        match class {
            Class::Page => {
                assert_eq!(r.status, 303, "{ctx}");
                assert!(loc.starts_with("/login?next="), "{ctx}");
            }
            Class::Api | Class::Live | Class::Admin | Class::PublicStatus => {
                assert_eq!(r.status, 401, "{ctx}");
                assert!(r.head.contains("application/json"), "{ctx}");
                assert!(r.head.contains("WWW-Authenticate"), "{ctx}");
            }
            Class::Static | Class::Healthz => assert_eq!(r.status, 200, "{ctx}"),
            Class::Login => assert_eq!(r.status, 200, "{ctx}"),
            Class::Setup | Class::NotFound => assert_eq!(r.status, 404, "{ctx}"),
        }
        if !matches!(class, Class::Static | Class::Healthz) {
            let t = r.text();
            assert!(
                !t.contains(stream_marker) && !t.contains(hidden_marker),
                "{ctx}: shows data to a visitor without a session"
            );
        }
        // POST as a browser on this site would, with a made-up CSRF token.
        let body = "csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&enabled=0&action=create_token&token_name=x";
        let c = if cookie.is_empty() {
            String::new()
        } else {
            format!("Cookie: {cookie}\r\n")
        };
        let r = raw(addr, None, &form_post(path, addr, &c, body));
        let ctx = format!("{who}: POST {path} ({variant}): {}\n{}", r.head, r.text());
        match class {
            Class::Page => {
                assert_eq!(r.status, 303, "{ctx}");
                assert!(r.head.contains("/login?msg=expired"), "{ctx}");
            }
            Class::Api | Class::Live | Class::Admin | Class::PublicStatus => {
                assert_eq!(r.status, 401, "{ctx}")
            }
            Class::Static => assert_eq!(r.status, 200, "{ctx}"),
            Class::Healthz => assert_eq!(r.status, 405, "{ctx}"),
            Class::Login => assert_eq!(r.status, 403, "{ctx}"),
            Class::Setup | Class::NotFound => assert_eq!(r.status, 404, "{ctx}"),
        }
    }
}

/// POSTs the form `body` to `path` with one extra `header` (and this
/// site's `Origin` if `same_origin`).
fn post_with_header(
    b: &mut Browser,
    path: &str,
    body: &str,
    header: (&str, &str),
    same_origin: bool,
) -> Page {
    b.extra = vec![(header.0.into(), header.1.into())];
    let r = b.post_raw(path, "application/x-www-form-urlencoded", body, same_origin);
    b.extra.clear();
    r
}

/// The files whose content a refused request must not change.
fn state_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    ["config.yaml", "data/api-tokens.json"]
        .iter()
        .map(|f| {
            (
                (*f).to_owned(),
                std::fs::read(dir.join(f)).unwrap_or_default(),
            )
        })
        .collect()
}

/// Every route, enumerated from `routes.rs`: without a session, with a
/// forged cookie, with a session of another daemon instance (same admin
/// password hash!) and with an expired session, pages lead to the login and
/// the API answers 401, and POSTs change nothing. With a valid session,
/// every POST without the session's CSRF token — none, a wrong one, another
/// session's, or the right one from another site — is refused with 403
/// and changes nothing; API tokens cannot POST. The right token works.
#[test]
fn every_route_needs_a_login_and_every_post_a_csrf_token() {
    // The daemon runs under libfaketime so that its clock can jump past the
    // session lifetime (24 h) at the end.
    let faketime = Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1");
    assert!(
        faketime.exists(),
        "libfaketime is missing: apt-get install faketime (make deps)"
    );
    let dir = temp_dir("sec_routes");
    let offset_file = dir.path().join("faketime");
    std::fs::write(&offset_file, "+0\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "heartbeat_seconds: 60\nstreams:\n- name: cam x\n  url: rtsp://127.0.0.1:9/x\n  timeout: 2\n",
    )
    .unwrap();
    let env = [
        ("LD_PRELOAD", faketime.to_str().unwrap()),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.to_str().unwrap()),
        ("FAKETIME_CACHE_DURATION", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let app = App::start_with_env(&config, &dir.path().join("data"), &env);
    let addr = app.addr.clone();
    let mut b = Browser::new(&app);
    set_up(&mut b);
    assert_eq!(log_in(&mut b, PASSWORD, "/").status, 303);
    // Something only a logged-in visitor sees: the access page's token list.
    let csrf = b.csrf("/settings/access");
    let r = b.create_token(&csrf, "hidden-token-name-7f3a", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let marker = "cam x";
    let hidden = "hidden-token-name-7f3a";
    assert!(b.get("/settings/access").text().contains(hidden));

    // 1. No cookie at all.
    anon_expectations(&addr, "", "no cookie", marker, hidden);

    // 2. Forged cookies: random, empty, long, the CSRF token, a pre-session
    //    token, the real token with one character changed.
    let real = b.jar.get("sp_session").unwrap().clone();
    let mut flipped = real.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // A pre-session token comes with the login page, shown only when logged out.
    let pre = Browser::new(&app).get("/login").hidden("pre");
    let forged = [
        "sp_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "sp_session=".to_owned(),
        format!("sp_session={}", "x".repeat(4000)),
        format!("sp_session={csrf}"),
        format!("sp_session={pre}; sp_pre={pre}"),
        format!("sp_session={flipped}"),
        format!("sp_session=\"{flipped}\""),
        format!("SP_SESSION={real}"),
    ];
    for c in &forged {
        anon_expectations(&addr, c, &format!("forged cookie {c:.60}"), marker, hidden);
    }

    // 3. A session of another instance with the very same config (and so
    //    the same admin password hash).
    let dir_b = temp_dir("sec_routes_b");
    std::fs::copy(&config, dir_b.path().join("config.yaml")).unwrap();
    let app_b = App::start(
        &dir_b.path().join("config.yaml"),
        &dir_b.path().join("data"),
    );
    let mut other = Browser::new(&app_b);
    assert_eq!(log_in(&mut other, PASSWORD, "/").status, 303);
    assert_eq!(other.get("/").status, 200, "logged in on the other box");
    let other_cookie = session_cookie(&other);
    anon_expectations(
        &addr,
        &other_cookie,
        "other instance's session",
        marker,
        hidden,
    );

    // 4. With our session: every POST without the right CSRF token is 403.
    let before = state_files(dir.path());
    let mut second = Browser::new(&app);
    assert_eq!(log_in(&mut second, PASSWORD, "/").status, 303);
    let second_csrf = second.csrf("/");
    let other_csrf = other.csrf("/");
    let my_csrf = b.csrf("/");
    assert_ne!(second_csrf, my_csrf, "every session has its own CSRF token");
    let fields = |tok: Option<&str>| -> Vec<(String, String)> {
        let mut v = vec![
            ("enabled".to_owned(), "0".to_owned()),
            ("action".to_owned(), "create_token".to_owned()),
            ("token_name".to_owned(), "csrf-victim".to_owned()),
            ("name".to_owned(), "csrf cam".to_owned()),
            ("url".to_owned(), "rtsp://127.0.0.1:9/y".to_owned()),
        ];
        if let Some(t) = tok {
            v.push(("csrf".to_owned(), t.to_owned()));
        }
        v
    };
    let form = |v: &[(String, String)]| -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(v)
            .finish()
    };
    let no_token = fields(None);
    let wrong = fields(Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    let empty = fields(Some(""));
    let seconds = fields(Some(&second_csrf));
    let others = fields(Some(&other_csrf));
    let right = fields(Some(&my_csrf));
    for (variant, path, class) in ROUTES {
        let expect = match class {
            Class::Static => 200,
            Class::Healthz => 405,
            Class::Setup | Class::NotFound => 404,
            Class::Login => 403, // no pre-session token
            Class::Page | Class::Api | Class::Live | Class::Admin | Class::PublicStatus => 403,
        };
        let cases: [(&str, &Vec<(String, String)>); 6] = [
            ("no token", &vec![]),
            ("no csrf field", &no_token),
            ("wrong token", &wrong),
            ("empty token", &empty),
            ("another session's token", &seconds),
            ("another instance's token", &others),
        ];
        for (what, v) in cases {
            let r = b.post_raw(path, "application/x-www-form-urlencoded", &form(v), true);
            assert_eq!(
                r.status,
                expect,
                "POST {path} ({variant}) with {what}: {}",
                r.text()
            );
        }
        // The right token from another site: refused before anything else.
        let origin = ("Origin", "http://evil.example");
        let r = post_with_header(&mut b, path, &form(&right), origin, false);
        assert_eq!(r.status, 403, "POST {path} ({variant}) from another origin");
        // A wrong token in the header counts like one in the form.
        let header = (
            "X-CSRF-Token",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        );
        let r = post_with_header(&mut b, path, &form(&right), header, true);
        if matches!(
            class,
            Class::Page | Class::Api | Class::Live | Class::Admin | Class::PublicStatus
        ) {
            assert_eq!(r.status, 403, "POST {path} with a wrong X-CSRF-Token");
        }
        // Cross-site by Fetch Metadata, right token.
        let fetch_site = ("Sec-Fetch-Site", "cross-site");
        let r = post_with_header(&mut b, path, &form(&right), fetch_site, false);
        assert_eq!(r.status, 403, "POST {path} ({variant}) cross-site");
        // An API token cannot change anything (no CSRF token to go with it).
        let mut script = Browser::new(&app);
        let bearer = format!("Bearer {TEST_TOKEN}");
        let r = post_with_header(
            &mut script,
            path,
            &form(&right),
            ("Authorization", &bearer),
            true,
        );
        if matches!(*variant, "SystemRestore" | "SystemUpdate") {
            // The exceptions: fleets restore a backup or install an update
            // with an admin token (not sent by a browser on its own, so no
            // CSRF risk); past the gate, a form is not a file.
            assert_eq!(r.status, 415, "POST {path} with an API token: {}", r.text());
        } else if matches!(
            class,
            Class::Page | Class::Api | Class::Live | Class::Admin | Class::PublicStatus
        ) {
            assert!(
                r.status == 403 || r.status == 303,
                "POST {path} with an API token: {} {}",
                r.status,
                r.text()
            );
        }
    }
    assert_eq!(
        state_files(dir.path()),
        before,
        "a refused POST changed config.yaml or the API tokens"
    );
    assert_eq!(
        b.get("/").status,
        200,
        "still logged in (logout was refused)"
    );
    assert_eq!(second.get("/").status, 200);

    // The right token does work (so the 403s above are the CSRF check).
    let r = b.post(
        "/streams/cam%20x/enable",
        &[("csrf", &my_csrf), ("enabled", "0")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(!streampulse::config::load(&config).unwrap().streams[0].enabled);

    // 5. Expired: the box's clock jumps past the session lifetime (24 h).
    std::fs::write(&offset_file, "+2d\n").unwrap();
    thread::sleep(Duration::from_millis(2500));
    let expired = session_cookie(&b);
    anon_expectations(&addr, &expired, "expired session", marker, hidden);
    let r = b.post("/logout", &[("csrf", &my_csrf)]);
    assert_eq!(r.status, 303);
    assert!(r.location().starts_with("/login"), "{}", r.location());
    // The box itself still works: a fresh login does.
    let mut fresh = Browser::new(&app);
    assert_eq!(log_in(&mut fresh, PASSWORD, "/").status, 303);
    assert_eq!(fresh.get("/").status, 200);
    drop(app_b);
}
