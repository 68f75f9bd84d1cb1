//! Issue 14 (outside audit), who reaches what: the login redirect stays on
//! the box (finding 5), requests must name the box in `Host` (6, DNS
//! rebinding), API tokens open only their scope (8), the live viewers'
//! raw answers carry the security headers, and the login page says when a
//! lockout ends.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::route_table::{Class, ROUTES};
use super::{form_post, get_as, get_req, login_from, raw, urlencoded, Raw};
use crate::app::TEST_TOKEN;
use crate::util::between;
use crate::web::{log_in, set_up, start, Browser, PASSWORD};

/// The value of header `name` in a raw answer's head.
fn header<'a>(r: &'a Raw, name: &str) -> Option<&'a str> {
    r.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// See: issue 14, finding 5. Browsers drop a tab from a `Location`, so a
/// login link with `next=/%09/evil.example/x` used to end on
/// `http://evil.example/x`. Now the login (POST) and an already logged-in
/// visit (GET) both redirect to a path on the box.
#[test]
fn login_redirect_stays_on_the_box() {
    let bx = start("acc_next", "heartbeat_seconds: 60\n");
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
    let on_box = |loc: &str| {
        let seen: String = loc
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect();
        loc.starts_with('/')
            && !seen.starts_with("//")
            && !seen.starts_with("/\\")
            && !loc.chars().any(|c| c.is_control() || c.is_whitespace())
    };
    let r = log_in(&mut b, PASSWORD, "/\t/evil.example/x");
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(
        on_box(r.location()),
        "login redirected to {:?}",
        r.location()
    );
    assert_eq!(r.location(), "/");
    for next in [
        "%2F%09%2Fevil.example%2Fx",
        "/%09/evil.example/x",
        "%2F%2Fevil",
        "/%5Cevil",
    ] {
        let r = b.get(&format!("/login?next={next}"));
        assert_eq!(r.status, 303, "{next}: {}", r.text());
        assert!(on_box(r.location()), "{next}: to {:?}", r.location());
        assert_eq!(r.location(), "/", "{next}");
    }
    // A real local destination is still followed.
    let r = b.get("/login?next=%2Fsettings%2Faccess");
    assert_eq!(r.location(), "/settings/access");
}

/// See: issue 14, finding 6. A page on `rebind.evil.example`, rebound to
/// the box, is same-origin with it: it could claim an unconfigured box
/// through `/setup`. Every request must name the box, so `GET` and `POST
/// /setup` (and any other route) under that name get 421 and the box stays
/// unconfigured; its IP literals, `localhost`, its hostname (and `.local`)
/// and a configured name work; HTTP/1.1 without `Host` is a 400.
#[test]
fn host_must_name_the_box() {
    let bx = start(
        "acc_host",
        "heartbeat_seconds: 60\nweb:\n  allowed_hosts: [camera-monitor.example.lan]\n",
    );
    let addr = bx.app.addr.clone();
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let evil = format!("rebind.evil.example:{port}");

    let r = raw(&addr, None, &get_as("/setup", &evil, ""));
    assert_eq!(
        r.status,
        421,
        "GET /setup as {evil}: {}\n{}",
        r.head,
        r.text()
    );
    assert!(r.text().contains("allowed_hosts"), "{}", r.text());
    assert!(!r.text().contains("name=\"pre\""), "no setup form");
    for path in [
        "/",
        "/login",
        "/healthz",
        "/api/status",
        "/live/x/stream",
        "/static/app.css",
    ] {
        let r = raw(&addr, None, &get_as(path, &evil, ""));
        assert_eq!(r.status, 421, "GET {path} as {evil}");
    }
    // The rebound page's POST: its Origin matches its Host, its pre-session
    // token is its own (double submit).
    let pre = "P".repeat(43);
    let body = urlencoded([
        ("pre", pre.as_str()),
        ("password", "attacker password"),
        ("password2", "attacker password"),
        ("device_name", "pwned"),
        ("timezone", "UTC"),
    ]);
    let post = form_post("/setup", &evil, &format!("Cookie: sp_pre={pre}\r\n"), &body);
    let r = raw(&addr, None, &post);
    assert_eq!(
        r.status,
        421,
        "POST /setup as {evil}: {}\n{}",
        r.head,
        r.text()
    );
    let cfg = streampulse::config::load(&bx.config).unwrap();
    assert!(
        cfg.admin_password_hash.is_none(),
        "the box was claimed through a rebound name"
    );

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    for host in [
        addr.clone(),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
        format!("{hostname}:{port}"),
        format!("{hostname}.local:{port}"),
        format!("camera-monitor.example.lan:{port}"),
        "192.0.2.7".to_owned(),
    ] {
        let r = raw(&addr, None, &get_as("/setup", &host, ""));
        assert_eq!(r.status, 200, "GET /setup as {host}: {}", r.text());
    }
    let r = raw(
        &addr,
        None,
        b"GET /setup HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400, "HTTP/1.1 without Host: {}", r.text());
    let r = raw(&addr, None, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "HTTP/1.0 without Host: {}", r.text());

    // The box is still unconfigured: setup by its own address works.
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
}

/// Creates a token with `scope` on the Access page; returns it and checks
/// the list shows its scope.
fn create_token(b: &mut Browser, name: &str, scope: &str) -> String {
    let csrf = b.csrf("/settings/access");
    let r = b.create_token(&csrf, name, Some(scope));
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    assert!(t.contains(&format!("(scope {scope})")), "{t}");
    let row = &t[t.find(&format!("<td>{name}</td>")).expect("listed")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(&format!(">{scope}</td>")),
        "scope listed: {row}"
    );
    r.by_id("new-token").expect("the new token is shown")
}

/// See: issue 14, finding 8. Route by route (the table in `security/route_table.rs`):
/// a `read` token opens every status/JSON/metrics route and no live route,
/// a `live` token the live routes and nothing else, `admin` both; a token
/// from a file written before scopes reads only; no token opens a page.
#[test]
fn token_scopes_are_enforced_per_route() {
    let old = "sp_old-format-token-0123456789abcdefghijklmnop";
    let dir = crate::util::temp_dir("acc_scopes");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(old.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    std::fs::write(
        data.join("api-tokens.json"),
        format!(
            "[{{\"id\": \"{}\", \"name\": \"from before\", \"sha256\": \"{digest}\", \"created_ms\": 1}}]",
            &digest[..12]
        ),
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "heartbeat_seconds: 60\nstreams:\n- name: cam x\n  url: rtsp://127.0.0.1:9/x\n  timeout: 2\n",
    )
    .unwrap();
    let app = crate::app::App::start(&config, &data);
    let mut b = Browser::new(&app);
    set_up(&mut b);
    assert_eq!(log_in(&mut b, PASSWORD, "/").status, 303);
    let read = create_token(&mut b, "reader", "read");
    let live = create_token(&mut b, "watcher", "live");
    let admin = create_token(&mut b, "boss", "admin");
    let list = b.get("/settings/access").text();
    assert!(list.contains("from before"), "{list}");

    let addr = app.addr.clone();
    // The history route answers 404 until the stream's first heartbeat
    // (unreachable camera, 2 s timeout): wait for it, so every 404 below
    // would be the gate's.
    let history = "/api/streams/cam%20x/history";
    let deadline = Instant::now() + Duration::from_secs(30);
    while raw(
        &addr,
        None,
        format!(
            "GET {history} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TEST_TOKEN}\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .status
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "no first heartbeat of cam x in 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let tokens = [
        ("read", read.as_str(), true, false),
        ("live", live.as_str(), false, true),
        ("admin", admin.as_str(), true, true),
        ("old-format", old, true, false),
        ("seeded admin", TEST_TOKEN, true, true),
    ];
    let mut checked = 0;
    for (variant, path, class) in ROUTES {
        for (scope, token, reads, watches) in tokens {
            let want = match class {
                Class::Api | Class::PublicStatus => reads,
                Class::Live => watches,
                // Diagnostics: admin tokens only.
                Class::Admin => scope.contains("admin"),
                Class::Page => false,
                _ => continue,
            };
            // HEAD: the gate decides as for GET, and a live stream is not
            // started (the camera is down).
            let method = if path.ends_with("/stream") {
                "HEAD"
            } else {
                "GET"
            };
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Connection: close\r\n\r\n"
            );
            let r = raw(&addr, None, req.as_bytes());
            let ctx = format!(
                "{method} {path} ({variant}) with a {scope} token: {}",
                r.head
            );
            if want && *variant == "Evidence" {
                // Past the gate; the stream has had no outage to show.
                assert_eq!(r.status, 404, "{ctx}\n{}", r.text());
                assert!(r.text().contains("no picture kept"), "{ctx}: {}", r.text());
            } else if want && *variant == "SystemRestore" {
                // Past the gate: the handler wants a POSTed file.
                assert_eq!(r.status, 405, "{ctx}\n{}", r.text());
                assert!(
                    r.text().contains("POST the backup file"),
                    "{ctx}: {}",
                    r.text()
                );
            } else if want
                && matches!(
                    *variant,
                    "SystemUpdateReboot" | "SystemUpdateDismiss" | "ApiStreamCheck"
                )
            {
                // Past the gate: forms (a check: JSON), POST only.
                assert_eq!(r.status, 405, "{ctx}\n{}", r.text());
            } else if want {
                assert_eq!(r.status, 200, "{ctx}\n{}", r.text());
            } else if *class == Class::Page {
                assert_eq!(r.status, 303, "{ctx}");
            } else {
                assert!(r.status == 401 || r.status == 403, "{ctx}\n{}", r.text());
                if method == "GET" {
                    assert!(r.text().contains("scope"), "{ctx}: says why: {}", r.text());
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 5 * 8, "too few routes checked: {checked}");
    let file = std::fs::read_to_string(data.join("api-tokens.json")).unwrap();
    for t in [&read, &live, &admin] {
        assert!(!file.contains(t.as_str()), "only digests are stored");
    }
    assert!(file.contains("\"scope\": \"live\""), "{file}");
    // A made-up scope is refused, nothing is created.
    let csrf = b.csrf("/settings/access");
    let r = b.create_token(&csrf, "root", Some("root"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!b.get("/settings/access").text().contains("<td>root</td>"));
}

/// The live viewer threads write their own response heads: every one of
/// them (here the 502 of a camera that is down) carries the same security
/// headers as the web handler's answers, as do thumbnails.
#[test]
fn live_view_answers_carry_the_security_headers() {
    let bx = start(
        "acc_live_headers",
        "heartbeat_seconds: 60\nstreams:\n- name: cam x\n  url: rtsp://127.0.0.1:9/x\n  timeout: 1\n",
    );
    let addr = bx.app.addr.clone();
    let auth = format!("Authorization: Bearer {TEST_TOKEN}\r\n");
    let reference = raw(&addr, None, &get_as("/api/status", &addr, &auth));
    assert_eq!(reference.status, 200);
    let names = [
        "X-Content-Type-Options",
        "Referrer-Policy",
        "X-Frame-Options",
    ];
    for n in names {
        assert!(header(&reference, n).is_some(), "/api/status lacks {n}");
    }
    for path in ["/live/cam%20x/thumb.jpg", "/live/cam%20x/stream"] {
        let r = raw(&addr, None, &get_as(path, &addr, &auth));
        assert!(r.status == 200 || r.status == 502, "{path}: {}", r.head);
        for n in names {
            assert_eq!(
                header(&r, n),
                header(&reference, n),
                "{path} ({}) header {n}:\n{}",
                r.status,
                r.head
            );
        }
    }
    let r = raw(&addr, None, &get_as("/live/cam%20x/stream", &addr, &auth));
    assert_eq!(r.status, 502, "the camera is down: {}", r.head);
}

/// The global cap on failed logins (30 from all addresses in 15 minutes)
/// lets one LAN host lock the admin out: the login page says so before a
/// password is typed, and when the lock ends, in the configured time zone.
#[test]
fn login_page_says_when_the_lock_ends() {
    let bx = start(
        "acc_lock",
        "heartbeat_seconds: 60\ntimezone: Asia/Kolkata\n",
    );
    let mut b = Browser::new(&bx.app);
    set_up(&mut b); // sets Asia/Kolkata too
    let addr = bx.app.addr.clone();
    let before = jiff::Timestamp::now();
    for host in 2..8u8 {
        let from = Ipv4Addr::new(127, 0, 0, host);
        for _ in 0..5 {
            assert_eq!(login_from(&addr, from, "wrong password!", ""), 401);
        }
    }
    let after = jiff::Timestamp::now();
    // The admin, from an address that never failed, just opens the page.
    let r = raw(
        &addr,
        Some(Ipv4Addr::new(127, 0, 0, 42)),
        &get_req("/login", ""),
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let t = r.text();
    let msg = between(&t, "id=\"err-form\">", "</div>")
        .unwrap_or_else(|| panic!("no lockout message on the login page:\n{t}"));
    let when = between(msg, "until ", " (in ").unwrap_or_else(|| panic!("no end time: {msg}"));
    let end = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", when)
        .unwrap_or_else(|e| panic!("{when:?}: {e}"))
        .in_tz("Asia/Kolkata")
        .unwrap()
        .timestamp();
    let window = jiff::SignedDuration::from_mins(15);
    let slack = jiff::SignedDuration::from_secs(2);
    assert!(
        end >= before + window - slack && end <= after + window + slack,
        "the lock ends at {end}, not 15 minutes after the failures ({before} … {after}): {msg}"
    );
    assert!(
        msg.contains("(in 14 min)") || msg.contains("(in 15 min)"),
        "{msg}"
    );
    // The right password is still refused, with the same message.
    assert_eq!(
        login_from(&addr, Ipv4Addr::new(127, 0, 0, 42), PASSWORD, ""),
        429
    );
}

/// `network.hostname` renames the box without a restart: the Host check
/// follows the kernel's hostname (re-read before a name is refused), and the
/// first-boot page offers `<hostname>.local` to bookmark beside the address
/// in use. The daemon runs in a UTS namespace of its own (root), renamed
/// under it as the hostname unit does on the box.
#[test]
fn a_renamed_box_answers_to_its_new_name() {
    let dir = crate::util::temp_dir("acc_rename");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "heartbeat_seconds: 60\n").unwrap();
    let app = crate::app::App::start_with_hostname(&config, &data, "box-before");
    let addr = app.addr.clone();
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let get = |host: &str, path: &str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        raw(&addr, None, req.as_bytes())
    };
    assert_ne!(
        get(&format!("box-before.local:{port}"), "/healthz").status,
        421
    );
    assert_eq!(
        get(&format!("box-after.local:{port}"), "/healthz").status,
        421
    );
    app.rename("box-after");
    assert_eq!(
        get(&format!("box-after.local:{port}"), "/healthz").status,
        200,
        "the new name is refused until a restart"
    );
    let setup = get(&addr, "/setup");
    assert_eq!(setup.status, 200);
    let page = setup.text();
    for want in [
        format!("http://{addr}/"),
        format!("http://box-after.local:{port}/"),
    ] {
        assert!(
            page.contains(&want),
            "setup page lacks {want} to bookmark:\n{page}"
        );
    }
}
