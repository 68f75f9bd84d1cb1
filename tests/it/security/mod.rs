//! Security, as tests (issue 8, "Security"): who may use which route,
//! CSRF on every state-changing route, sessions that cannot be forged,
//! expired or carried over from another box, first-boot setup that cannot
//! be replayed or raced, the login rate limit, no default password, streams
//! whose names differ only in punctuation kept apart, escaping of everything
//! a camera or a config controls, secrets that never leave the box, path
//! handling, request size caps, slow clients, and the systemd unit.
//!
//! Everything runs against the real `streampulse run` daemon with real
//! peers (GStreamer RTSP, lighttpd, mosquitto). Two *named fakes* stand in
//! for cameras that put markup in what they tell us (no real server does so
//! on demand): [`FakeMarkupHttpCamera`] and [`FakeMarkupRtspCamera`].
//! [`raw`] speaks HTTP over a plain socket, optionally from another loopback
//! address (127.0.0.x), because ureq normalises paths and cannot pick its
//! source address.
//!
//! The route table [`ROUTES`] is checked against the `Route` enum in
//! `src/web/routes.rs`: a new route without a security case fails
//! [`every_route_needs_a_login_and_every_post_a_csrf_token`].

// The outside audit's findings (issue 14), one file per concern.
mod access; // Host check (DNS rebinding), login redirect, token scopes, live-view headers, login lock
mod boot_import; // boot-partition import merges, factory/password reset, redacted .applied, file modes and owners
mod secrets; // kept passwords dropped on a changed URL, config errors that quote no secret

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;

use super::app::{App, TEST_TOKEN};
use super::mosquitto::{Broker, Spec, Sub};
use super::util::{manifest_dir, streampulse, temp_dir, LighttpdServer, RtspServer};
use super::web::{log_in, logged_in, set_up, start, Browser, Page, PASSWORD, XSS};

// ------------------------------------------------------------------ helpers

/// Waits until `pred` holds for all messages `sub` has received. (Not
/// `Sub::wait`: it holds the message lock while its predicate runs, so a
/// predicate that looks at every message would deadlock.)
fn wait_all(
    sub: &Sub,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&[super::mosquitto::Msg]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let all = sub.all();
        if pred(&all) {
            return;
        }
        if Instant::now() >= deadline {
            let seen: Vec<String> = all
                .iter()
                .map(|m| format!("{} {:.160}", m.topic, m.payload))
                .collect();
            panic!(
                "timed out waiting for {what}; received:\n{}",
                seen.join("\n")
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// What came back from [`raw`].
#[derive(Debug)]
struct Raw {
    /// 0 if no status line arrived (connection closed or reset first).
    status: u16,
    /// Status line and headers.
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A TCP connection to `addr` from loopback address `from` (any 127.x.y.z
/// works on Linux without configuration).
fn connect_from(addr: &str, from: Option<Ipv4Addr>) -> TcpStream {
    let addr: SocketAddr = addr.parse().expect("the daemon's address is ip:port");
    let Some(src) = from else {
        return TcpStream::connect(addr).expect("connecting to the daemon should succeed");
    };
    let SocketAddr::V4(dst) = addr else {
        panic!("IPv4 only")
    };
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr_in
    // values live across the calls and `len` is their size. The descriptor
    // is handed to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let local = sin(src, 0);
        let rc = libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "bind {src}: {}", std::io::Error::last_os_error());
        let remote = sin(*dst.ip(), dst.port());
        let rc = libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        use std::os::fd::FromRawFd;
        TcpStream::from_raw_fd(fd)
    }
}

/// Sends `request` as is over a new connection (from `from`) and reads the
/// answer until the server closes the connection, the answer is complete,
/// or 15 s pass.
fn raw(addr: &str, from: Option<Ipv4Addr>, request: &[u8]) -> Raw {
    let mut s = connect_from(addr, from);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The server may refuse before reading everything (413, 431): a failed
    // write is part of the answer, not an error of the test.
    let _ = s.write_all(request);
    read_answer(&mut s, Duration::from_secs(15))
}

/// Reads one HTTP answer (up to its Content-Length, or EOF) within `limit`.
fn read_answer(s: &mut TcpStream, limit: Duration) -> Raw {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break, // reset
        }
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|n| buf.len() >= i + 4 + n) {
                break;
            }
        }
    }
    let split = find(&buf, b"\r\n\r\n").unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Raw { status, head, body }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A GET request with optional cookies.
fn get_req(path: &str, cookie: &str) -> Vec<u8> {
    let c = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{c}Connection: close\r\n\r\n").into_bytes()
}

/// The daemon's resident set in KiB.
fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Threads of the daemon.
fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `GET /healthz` answers 200 within `limit`.
fn healthy_within(addr: &str, limit: Duration) -> Result<Duration, String> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s.write_all(&get_req("/healthz", ""))
        .map_err(|e| e.to_string())?;
    let r = read_answer(&mut s, limit);
    if r.status == 200 {
        Ok(t.elapsed())
    } else {
        Err(format!(
            "/healthz: status {} after {:?}",
            r.status,
            t.elapsed()
        ))
    }
}

/// Everything a session cookie header needs (`sp_session=...`).
fn session_cookie(b: &Browser) -> String {
    format!(
        "sp_session={}",
        b.jar.get("sp_session").expect("a logged-in browser")
    )
}

// ------------------------------------------------------------- route table

/// Who may use a route, as the security tests expect it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// HTML pages and forms: a session, else `303 /login?next=`.
    Page,
    /// JSON for programs: a session or a `read`/`admin` API token, else 401.
    Api,
    /// The live view's streams, thumbnails and JSON: a session or a
    /// `live`/`admin` API token, else 401.
    Live,
    /// The diagnostics download: a session or an `admin` API token, else 401.
    Admin,
    /// `/api/status`, `/metrics`: like `Api` unless `web.public_status`.
    PublicStatus,
    /// `/static/*`: public, GET only in effect (a POST changes nothing).
    Static,
    /// `/healthz`: public, GET only.
    Healthz,
    /// `/login`: public form with the pre-session token.
    Login,
    /// `/setup`: gone (404) once the box is set up.
    Setup,
    /// Unknown paths: 404.
    NotFound,
}

/// One case per `Route` variant: the variant's name (as in `routes.rs`), a
/// path decoding to it (streams: the configured `cam x`) and its class.
const ROUTES: &[(&str, &str, Class)] = &[
    ("Dashboard", "/", Class::Page),
    ("Setup", "/setup", Class::Setup),
    ("Login", "/login", Class::Login),
    ("Logout", "/logout", Class::Page),
    ("AddStream", "/add", Class::Page),
    ("Stream", "/streams/cam%20x", Class::Page),
    ("EditStream", "/streams/cam%20x/edit", Class::Page),
    ("DeleteStream", "/streams/cam%20x/delete", Class::Page),
    ("EnableStream", "/streams/cam%20x/enable", Class::Page),
    ("Preview", "/streams/cam%20x/preview", Class::Page),
    ("Frame", "/streams/cam%20x/frame.jpg", Class::Page),
    ("Settings", "/settings", Class::Page),
    ("SettingsMqtt", "/settings/mqtt", Class::Page),
    ("SettingsAccess", "/settings/access", Class::Page),
    ("Static", "/static/app.css", Class::Static),
    ("ApiStatus", "/api/status", Class::PublicStatus),
    ("ApiStreams", "/api/streams", Class::Api),
    (
        "ApiStreamHistory",
        "/api/streams/cam%20x/history",
        Class::Api,
    ),
    ("Healthz", "/healthz", Class::Healthz),
    ("Metrics", "/metrics", Class::PublicStatus),
    ("Live", "/live", Class::Page),
    ("ApiLive", "/api/live", Class::Live),
    ("LiveStream", "/live/cam%20x/stream", Class::Live),
    ("LiveThumb", "/live/cam%20x/thumb.jpg", Class::Live),
    ("System", "/system", Class::Page),
    ("SystemDiagnostics", "/system/diagnostics.txt", Class::Admin),
    ("NotFound", "/nope", Class::NotFound),
];

/// The variants of `enum Route` in `src/web/routes.rs`, read from the source.
fn route_variants() -> BTreeSet<String> {
    let src = std::fs::read_to_string(manifest_dir().join("src/web/routes.rs")).unwrap();
    let body = src
        .split("pub enum Route {")
        .nth(1)
        .and_then(|r| r.split("\n}").next())
        .expect("routes.rs defines `pub enum Route { ... }`");
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'))
        .map(|l| {
            l.split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

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
        "Route variants without a security case in tests/it/security.rs ROUTES: {missing:?}; \
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
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n{c}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let r = raw(addr, None, req.as_bytes());
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
    let r = b.post(
        "/settings/access",
        &[
            ("csrf", &csrf),
            ("action", "create_token"),
            ("token_name", "hidden-token-name-7f3a"),
        ],
    );
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
        b.extra = vec![("Origin".into(), "http://evil.example".into())];
        let r = b.post_raw(
            path,
            "application/x-www-form-urlencoded",
            &form(&right),
            false,
        );
        b.extra.clear();
        assert_eq!(r.status, 403, "POST {path} ({variant}) from another origin");
        // A wrong token in the header counts like one in the form.
        b.extra = vec![(
            "X-CSRF-Token".into(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        )];
        let r = b.post_raw(
            path,
            "application/x-www-form-urlencoded",
            &form(&right),
            true,
        );
        b.extra.clear();
        if matches!(
            class,
            Class::Page | Class::Api | Class::Live | Class::Admin | Class::PublicStatus
        ) {
            assert_eq!(r.status, 403, "POST {path} with a wrong X-CSRF-Token");
        }
        // Cross-site by Fetch Metadata, right token.
        b.extra = vec![("Sec-Fetch-Site".into(), "cross-site".into())];
        let r = b.post_raw(
            path,
            "application/x-www-form-urlencoded",
            &form(&right),
            false,
        );
        b.extra.clear();
        assert_eq!(r.status, 403, "POST {path} ({variant}) cross-site");
        // An API token cannot change anything (no CSRF token to go with it).
        let mut script = Browser::new(&app);
        script.extra = vec![("Authorization".into(), format!("Bearer {TEST_TOKEN}"))];
        let r = script.post_raw(
            path,
            "application/x-www-form-urlencoded",
            &form(&right),
            true,
        );
        if matches!(
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

// ------------------------------------------------------------------- setup

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
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("pre", pre.as_str()),
                ("password", &pw),
                ("password2", &pw),
                ("device_name", "race box"),
                ("timezone", "UTC"),
            ])
            .finish();
        let req = format!(
            "POST /setup HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: sp_pre={pre}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
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
                (pw, raw(&addr, None, req.as_bytes()))
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
        let r = raw(&addr, None, req.as_bytes());
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

// -------------------------------------------------------------- rate limit

/// A raw login attempt from `from` with `password`; extra headers as given.
fn login_from(addr: &str, from: Ipv4Addr, password: &str, extra: &str) -> u16 {
    let pre = "P".repeat(43);
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("pre", pre.as_str()), ("password", password), ("next", "/")])
        .finish();
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: sp_pre={pre}\r\n{extra}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    raw(addr, Some(from), req.as_bytes()).status
}

/// The login limit counts the socket's address, not what a client claims in
/// `X-Forwarded-For`/`X-Real-IP`/`Forwarded`; and failures from many
/// addresses together (30) lock every address out, the right password
/// included, without any password being checked.
#[test]
fn login_rate_limit_ignores_forwarding_headers_and_caps_all_addresses() {
    let bx = start("sec_ratelimit", "heartbeat_seconds: 60\n");
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
    let addr = bx.app.addr.clone();
    let me = Ipv4Addr::new(127, 0, 0, 1);
    assert_eq!(
        login_from(&addr, Ipv4Addr::new(127, 0, 0, 20), PASSWORD, ""),
        303,
        "the raw login works (positive control)"
    );
    for i in 0..5 {
        let spoof = format!(
            "X-Forwarded-For: 10.9.{i}.1\r\nX-Real-IP: 10.9.{i}.2\r\nForwarded: for=10.9.{i}.3\r\n"
        );
        assert_eq!(login_from(&addr, me, "wrong password!", &spoof), 401);
    }
    let spoof = "X-Forwarded-For: 10.200.0.1\r\nX-Real-IP: 10.200.0.2\r\n";
    assert_eq!(
        login_from(&addr, me, PASSWORD, spoof),
        429,
        "a new X-Forwarded-For does not reset the limit"
    );
    // 25 more failures from five other addresses: 30 in all.
    for host in 2..7u8 {
        let from = Ipv4Addr::new(127, 0, 0, host);
        for _ in 0..5 {
            assert_eq!(login_from(&addr, from, "wrong password!", ""), 401);
        }
    }
    let t = Instant::now();
    for host in [9u8, 10, 20] {
        assert_eq!(
            login_from(&addr, Ipv4Addr::new(127, 0, 0, host), PASSWORD, ""),
            429,
            "127.0.0.{host}: the global cap holds for everyone"
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "refused attempts must not verify the password ({:?})",
        t.elapsed()
    );
}

// --------------------------------------------------------- default password

/// A PHC Argon2 hash (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`) in `bytes`.
fn phc_hashes(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for (i, _) in text.match_indices("$argon2") {
        let rest: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "$=,+/.-".contains(*c))
            .collect();
        let parts: Vec<&str> = rest.split('$').collect();
        // "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
        if parts.len() >= 6
            && parts[3].starts_with("m=")
            && parts[4].len() >= 16
            && parts[5].len() >= 20
        {
            out.push(rest);
        }
    }
    out
}

/// No default password anywhere: a fresh box logs nobody in, whatever the
/// password, and neither the binary nor any file that ships (config.yaml,
/// the image overlay, the Buildroot tree) carries an admin password hash.
#[test]
fn no_default_password_anywhere() {
    let bx = start("sec_nodefault", "heartbeat_seconds: 60\n");
    let addr = bx.app.addr.clone();
    for pw in [
        "",
        "admin",
        "admin123",
        "password",
        "streampulse",
        "1234",
        "root",
        "changeme",
    ] {
        let mut b = Browser::new(&bx.app);
        let pre = "P".repeat(43);
        b.jar.insert("sp_pre".into(), pre.clone());
        let r = b.post(
            "/login",
            &[("pre", &pre), ("password", pw), ("username", "admin")],
        );
        assert_eq!((r.status, r.location()), (303, "/setup"), "password {pw:?}");
        assert!(!b.jar.contains_key("sp_session"), "password {pw:?}");
        assert_eq!(b.get("/").location(), "/setup");
        // HTTP Basic is not a way in either.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{pw}"));
        let r = raw(
            &addr,
            None,
            format!(
                "GET /api/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 401, "Basic admin:{pw}");
    }
    // The sanity of the scanner: it finds a real hash.
    let h = streampulse::credentials::hash_password("scanner self test").unwrap();
    assert_eq!(phc_hashes(format!("x: '{h}'\n").as_bytes()), vec![h]);
    let bin = std::fs::read(env!("CARGO_BIN_EXE_streampulse")).unwrap();
    assert_eq!(phc_hashes(&bin), Vec::<String>::new(), "a hash compiled in");
    let mut files = vec![manifest_dir().join("config.yaml")];
    for d in ["overlay", "buildroot", "docs"] {
        collect_files(&manifest_dir().join(d), &mut files);
    }
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert_eq!(
            phc_hashes(&bytes),
            Vec::<String>::new(),
            "{} ships an admin password hash",
            f.display()
        );
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            let l = line.trim_start();
            if let Some(v) = l.strip_prefix("admin_password_hash:") {
                let v = v.trim().trim_matches(|c| c == '\'' || c == '"');
                assert!(
                    v.is_empty() || v.starts_with('<') || v.starts_with('#'),
                    "{}: {line}",
                    f.display()
                );
            }
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

// ------------------------------------------------------ a-b is not a_b

/// Streams whose names differ only in punctuation (`a-b`, `a_b`, `a.b`,
/// `a b`: the Python original put `a-b` and `a_b` into one table) are four
/// streams: four rows in the one `streams` table, four histories that do
/// not mix (two cameras up, two down), four stream pages, four sets of
/// metrics, four MQTT state topics. No table is made per stream.
#[test]
fn streams_differing_in_punctuation_stay_apart() {
    let snap = super::util::SnapshotServer::start();
    let broker = Broker::start(Spec::default());
    let sub = Sub::start(&broker, "#");
    let dead = super::util::closed_port();
    let config = format!(
        "heartbeat_seconds: 5\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n\
         mqtt:\n  host: 127.0.0.1\n  port: {}\n  interval: 5\n  discovery: true\n\
         streams:\n\
         - name: a-b\n  url: {}\n\
         - name: a_b\n  url: http://127.0.0.1:{dead}/a_b.jpg\n  kind: snapshot\n  timeout: 2\n\
         - name: a.b\n  url: {}\n\
         - name: a b\n  url: rtsp://127.0.0.1:{dead}/ab\n  timeout: 2\n",
        broker.tcp_port,
        snap.url("snap.jpg"),
        snap.url("snap.jpg"),
    );
    let (bx, mut b) = logged_in("sec_ab", &config);
    let up = ["a-b", "a.b"];
    let down = ["a_b", "a b"];
    let app = &bx.app;
    app.wait_status(Duration::from_secs(60), "two up, two down", |v| {
        up.iter().all(|n| v[n]["state"] == "up") && down.iter().all(|n| v[n]["state"] == "down")
    });
    // Let each stream record a few heartbeats.
    thread::sleep(Duration::from_secs(6));
    let enc = |n: &str| n.replace(' ', "%20");
    for n in up.iter().chain(&down) {
        let (st, h) = app.get(&format!("/api/streams/{}/history", enc(n)));
        assert_eq!(st, 200, "{n}: {h}");
        assert_eq!(h["stream"], *n);
        let hb = h["heartbeats"].as_array().unwrap();
        assert!(hb.len() >= 2, "{n}: {h}");
        let want = if up.contains(n) { "ok" } else { "fail" };
        assert!(
            hb.iter().all(|x| x["status"] == want),
            "{n}: another stream's heartbeats are mixed in: {h}"
        );
        let page = b.get(&format!("/streams/{}", enc(n)));
        assert_eq!(page.status, 200);
        let label = if up.contains(n) { "UP" } else { "DOWN" };
        assert!(page.text().contains(label), "{n} page should say {label}");
    }
    // The database: one row each, distinct ids, one shared heartbeat table.
    let db = rusqlite::Connection::open_with_flags(
        bx.config.with_file_name("data").join("streampulse.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut ids = std::collections::BTreeMap::new();
    for n in up.iter().chain(&down) {
        let id: i64 = db
            .query_row("SELECT id FROM streams WHERE name = ?1", [n], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{n}: {e}"));
        let (all, ok): (i64, i64) = db
            .query_row(
                "SELECT coalesce(sum(probes), 0), coalesce(sum(ok), 0) FROM heartbeat_blocks WHERE stream_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(all >= 2, "{n}: {all} heartbeats");
        assert_eq!(ok, if up.contains(n) { all } else { 0 }, "{n}");
        ids.insert(id, n);
    }
    assert_eq!(ids.len(), 4, "four streams, four ids: {ids:?}");
    let schema = std::fs::read_to_string(manifest_dir().join("src/store/schema.sql")).unwrap();
    let declared = schema.matches("CREATE TABLE ").count() as i64;
    let tables: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, declared, "a table per stream?");
    // Metrics: four label sets with their own values.
    let metrics = app.get_text("/metrics");
    for n in up.iter().chain(&down) {
        let line = format!("streampulse_stream_up{{stream=\"{n}\"}} ");
        let v = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in /metrics"));
        assert_eq!(v.trim(), if up.contains(n) { "1" } else { "0" }, "{n}");
    }
    // MQTT: four retained state topics, each with its own stream's state.
    // Each stream's state topic, as its Home Assistant discovery config
    // names it, carries that stream's own state.
    wait_all(&sub, Duration::from_secs(30), "four state topics", |all| {
        let topics = ha_state_topics(all);
        up.iter().chain(&down).all(|n| {
            let want = if up.contains(n) { "up" } else { "down" };
            topics
                .get(*n)
                .is_some_and(|t| last_state(all, t).as_deref() == Some(want))
        })
    });
    let topics = ha_state_topics(&sub.all());
    let distinct: BTreeSet<&String> = up.iter().chain(&down).map(|n| &topics[*n]).collect();
    assert_eq!(
        distinct.len(),
        4,
        "four streams, four state topics: {topics:?}"
    );
}

/// Stream name → state topic, from the Home Assistant discovery configs
/// received (the latest config of a name wins).
fn ha_state_topics(all: &[super::mosquitto::Msg]) -> std::collections::BTreeMap<String, String> {
    let mut topics = std::collections::BTreeMap::new();
    for m in all
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/") && m.topic.ends_with("/config"))
    {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&m.payload) else {
            continue; // an empty payload removes an entity
        };
        if let (Some(name), Some(topic)) = (v["name"].as_str(), v["state_topic"].as_str()) {
            topics.insert(name.to_owned(), topic.to_owned());
        }
    }
    topics
}

/// The `state` field of the last message on `topic`.
fn last_state(all: &[super::mosquitto::Msg], topic: &str) -> Option<String> {
    let m = all.iter().rev().find(|m| m.topic == topic)?;
    let v: serde_json::Value = serde_json::from_str(&m.payload).ok()?;
    v["state"].as_str().map(str::to_owned)
}

// --------------------------------------------------------------------- XSS

/// A camera that answers every HTTP request with `200 OK`, a `Content-Type`
/// and a body full of markup (a named fake: no real camera does this on
/// demand). The probe reports the content type in its message.
struct FakeMarkupHttpCamera {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeMarkupHttpCamera {
    const CONTENT_TYPE: &'static str = "text/html; <script>alert(81)</script>";

    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = l.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                thread::spawn(move || {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while find(&head, b"\r\n\r\n").is_none() && head.len() < 65536 {
                        match c.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                    let body = "<script>alert(82)</script><img src=x onerror=alert(83)>";
                    let _ = write!(
                        c,
                        "HTTP/1.1 200 <b>OK</b>\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        Self::CONTENT_TYPE,
                        body.len()
                    );
                });
            }
        });
        FakeMarkupHttpCamera { port, stop }
    }
}

impl Drop for FakeMarkupHttpCamera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An RTSP camera whose DESCRIBE answer (status reason, session name and
/// the video track's encoding name) carries markup; the probe reports the
/// encoding name it could not use (a named fake).
struct FakeMarkupRtspCamera {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeMarkupRtspCamera {
    const ENCODING: &'static str = "<img src=x onerror=alert(91)>";

    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((c, _)) = l.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                thread::spawn(move || Self::serve(c, port));
            }
        });
        FakeMarkupRtspCamera { port, stop }
    }

    fn serve(mut c: TcpStream, port: u16) {
        let _ = c.set_nonblocking(false);
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(i) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                buf.drain(..i + 4);
                let cseq = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("cseq").then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default();
                let answer = if head.starts_with("DESCRIBE") {
                    let sdp = format!(
                        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=<script>alert(92)</script>\r\n\
                         c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
                         a=rtpmap:96 {}/90000\r\na=control:track1\r\n",
                        Self::ENCODING
                    );
                    format!(
                        "RTSP/1.0 200 <b>OK</b>\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n\
                         Content-Base: rtsp://127.0.0.1:{port}/x/\r\nContent-Length: {}\r\n\r\n{sdp}",
                        sdp.len()
                    )
                } else {
                    format!(
                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n"
                    )
                };
                if c.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

impl Drop for FakeMarkupRtspCamera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Markup that must never reach a page unescaped.
const HOSTILE_NAMES: [&str; 3] = [
    XSS,
    "\"><svg onload=alert(2)>",
    "'><img src=x onerror=alert(3)>",
];
const HOSTILE_DEVICE: &str = "<img src=x onerror=alert(4)>";
const HOSTILE_USER: &str = "<b onmouseover=alert(5)>u";
const HOSTILE_TOKEN: &str = "<img src=x onerror=alert(7)>";
const HOSTILE_TOPIC: &str = "sp/<script>alert(12)</script>";
const HOSTILE_QUERY: &str = "<script>alert(13)</script>";

/// Every raw payload that would run or inject if a page printed it as is.
fn hostile_payloads() -> Vec<&'static str> {
    let mut v: Vec<&str> = HOSTILE_NAMES.to_vec();
    v.extend([
        HOSTILE_DEVICE,
        HOSTILE_USER,
        HOSTILE_TOKEN,
        HOSTILE_TOPIC,
        HOSTILE_QUERY,
        FakeMarkupHttpCamera::CONTENT_TYPE,
        "<script>alert(81)</script>",
        "<script>alert(82)</script>",
        "<img src=x onerror=alert(83)>",
        FakeMarkupRtspCamera::ENCODING,
        "<script>alert(92)</script>",
        "<b>OK</b>",
        "<svg onload",
        "<img src=x",
        "<script>alert",
        "onerror=alert(", // raw `"`/`'` breakouts below cover attributes
        "' onmouseover=",
        "\" onmouseover=",
    ]);
    v
}

/// Asserts that `body` (a page at `path`) holds no hostile markup as is.
fn assert_escaped(path: &str, body: &str) {
    for h in hostile_payloads() {
        if h == "onerror=alert(" {
            // As text, escaped, it is harmless; only inside a raw tag it is not.
            assert!(
                !body.contains("<img src=x onerror=alert("),
                "{path} contains raw {h:?}"
            );
            continue;
        }
        assert!(
            !body.contains(h),
            "{path} contains raw {h:?}:\n{}",
            &body[body.find(h).map(|i| i.saturating_sub(200)).unwrap_or(0)..]
                .chars()
                .take(500)
                .collect::<String>()
        );
    }
}

/// askama's escaping of `s` (`<` → `&#60;`, `"` → `&#34;`, ...).
fn escaped(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            '&' => out.push_str("&#38;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Stream names, camera-controlled messages (an HTTP camera's content type,
/// an RTSP camera's SDP), and config values (device name, camera user name,
/// MQTT topic, API token name, a query parameter) full of markup: every
/// page, error page and the SVG chart show them as text. The hostile text
/// does reach the app (the JSON status carries it raw, as JSON), so the
/// test is not passing on empty pages.
#[test]
fn markup_from_names_cameras_and_config_is_escaped_everywhere() {
    let http_cam = FakeMarkupHttpCamera::start();
    let rtsp_cam = FakeMarkupRtspCamera::start();
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut config = format!(
        "heartbeat_seconds: 5\ndevice_name: {}\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n\
         mqtt:\n  enabled: false\n  host: broker.invalid\n  username: {}\n  password: x\n  topic: {}\n\
         streams:\n\
         - name: cam-ct\n  url: http://127.0.0.1:{}/snap.jpg\n  kind: snapshot\n  timeout: 3\n\
         - name: cam-sdp\n  url: rtsp://127.0.0.1:{}/x\n  timeout: 3\n",
        q(HOSTILE_DEVICE),
        q(HOSTILE_USER),
        q(HOSTILE_TOPIC),
        http_cam.port,
        rtsp_cam.port,
    );
    for n in HOSTILE_NAMES {
        config.push_str(&format!(
            "- name: {}\n  url: http://127.0.0.1:{}/snap.jpg\n  kind: snapshot\n  username: {}\n  password: pw\n  timeout: 3\n",
            q(n),
            http_cam.port,
            q(HOSTILE_USER)
        ));
    }
    // Set up by hand: the setup form's device name (markup too) replaces
    // the one in the file.
    let bx = start("sec_xss", &config);
    let app = &bx.app;
    let mut b = Browser::new(app);
    let pre = b.get("/setup").hidden("pre");
    let r = b.post(
        "/setup",
        &[
            ("pre", &pre),
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("device_name", HOSTILE_DEVICE),
            ("timezone", "UTC"),
        ],
    );
    assert_eq!(r.status, 303, "setup: {}", r.text());
    assert_eq!(log_in(&mut b, PASSWORD, "/").status, 303);
    let status = app.wait_status(Duration::from_secs(60), "hostile messages", |v| {
        v["cam-ct"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("<script>"))
            && v["cam-sdp"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(FakeMarkupRtspCamera::ENCODING))
            && v[XSS]["status"] == "fail"
    });
    let msg_ct = status["cam-ct"]["message"].as_str().unwrap().to_owned();
    let msg_sdp = status["cam-sdp"]["message"].as_str().unwrap().to_owned();
    // Wait until both are DOWN, with a few heartbeats in the chart.
    app.wait_status(Duration::from_secs(30), "down", |v| {
        v["cam-ct"]["state"] == "down" && v["cam-sdp"]["state"] == "down"
    });
    let csrf = b.csrf("/settings/access");
    let r = b.post(
        "/settings/access",
        &[
            ("csrf", &csrf),
            ("action", "create_token"),
            ("token_name", HOSTILE_TOKEN),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let enc = |n: &str| -> String {
        url::form_urlencoded::byte_serialize(n.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    let mut names: Vec<String> = HOSTILE_NAMES.iter().map(|s| s.to_string()).collect();
    names.extend(["cam-ct".into(), "cam-sdp".into()]);
    for n in &names {
        let r = b.post(&format!("/streams/{}/preview", enc(n)), &[("csrf", &csrf)]);
        assert_eq!(r.status, 303, "check {n}: {}", r.text());
    }
    let mut pages: Vec<String> = vec![
        "/".into(),
        "/add".into(),
        "/settings".into(),
        "/settings/mqtt".into(),
        "/settings/access".into(),
        "/live".into(),
        format!("/nope?x={}", enc(HOSTILE_QUERY)),
    ];
    for n in &names {
        let e = enc(n);
        pages.extend([
            format!("/streams/{e}"),
            format!("/streams/{e}?range=7d"),
            format!("/streams/{e}?range={}", enc(HOSTILE_QUERY)),
            format!("/streams/{e}/edit"),
            format!("/streams/{e}/delete"),
            format!("/streams/{e}/preview"),
            format!("/streams/{e}/nope"),
            format!("/streams/{e}x"),
        ]);
    }
    let mut seen_msg_ct = false;
    let mut seen_msg_sdp = false;
    let mut seen = BTreeSet::new();
    for path in &pages {
        let p = b.get(path);
        assert!(
            [200, 404].contains(&p.status),
            "GET {path}: {} {}",
            p.status,
            p.text()
        );
        let t = p.text();
        assert_escaped(path, &t);
        seen_msg_ct |= t.contains(&escaped(&msg_ct));
        seen_msg_sdp |= t.contains(&escaped(&msg_sdp));
        for h in [HOSTILE_DEVICE, HOSTILE_USER, HOSTILE_TOKEN, HOSTILE_TOPIC] {
            if t.contains(&escaped(h)) {
                seen.insert(h);
            }
        }
        for n in HOSTILE_NAMES {
            if t.contains(&escaped(n)) {
                seen.insert(n);
            }
        }
        if p.status == 200 && path.starts_with("/streams/") && !path.ends_with("/edit") {
            if let (Some(a), Some(z)) = (t.find("<svg"), t.find("</svg>")) {
                assert_escaped(&format!("{path} (chart)"), &t[a..z]);
            }
        }
    }
    assert!(
        seen_msg_ct,
        "the HTTP camera's message is shown (escaped) somewhere"
    );
    assert!(
        seen_msg_sdp,
        "the RTSP camera's message is shown (escaped) somewhere"
    );
    for h in [HOSTILE_DEVICE, HOSTILE_USER, HOSTILE_TOKEN, HOSTILE_TOPIC]
        .into_iter()
        .chain(HOSTILE_NAMES)
    {
        assert!(seen.contains(h), "{h:?} is shown (escaped) on some page");
    }
    // A stream page has a chart.
    assert!(b.get("/streams/cam-ct").text().contains("<svg"));
    // The login page (device name) and forms re-shown with errors.
    let mut anon = Browser::new(app);
    let p = anon.get("/login");
    assert_escaped("/login", &p.text());
    assert!(p.text().contains(&escaped(HOSTILE_DEVICE)));
    let r = b.post(
        "/add",
        &[
            ("csrf", &csrf),
            ("name", HOSTILE_NAMES[1]),
            ("url", "rtsp://127.0.0.1:9/<script>alert(14)</script>"),
            ("username", HOSTILE_USER),
            ("interval", "<script>alert(15)</script>"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_escaped("POST /add (errors)", &r.text());
    assert!(!r.text().contains("<script>alert(1"));
    let r = b.post(
        "/settings",
        &[
            ("csrf", &csrf),
            ("device_name", HOSTILE_DEVICE),
            ("timezone", "<script>alert(16)</script>"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_escaped("POST /settings (errors)", &r.text());
    assert!(!r.text().contains("<script>alert(16)"));
    let r = b.post(
        "/settings/mqtt",
        &[
            ("csrf", &csrf),
            ("enabled", "1"),
            ("host", "<script>alert(17)</script>"),
            ("topic", HOSTILE_TOPIC),
            ("interval", "x<b>"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_escaped("POST /settings/mqtt (errors)", &r.text());
    assert!(!r.text().contains("<script>alert(17)"));
    // Answers that are not HTML say so (and browsers must not sniff).
    for path in [
        "/api/status",
        "/api/streams",
        "/metrics",
        "/healthz",
        "/api/live",
    ] {
        let p = b.get(path);
        assert_eq!(p.status, 200, "{path}");
        let ct = p.header("content-type").unwrap_or("");
        assert!(!ct.contains("html"), "{path}: {ct}");
        assert_eq!(
            p.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
}

// ----------------------------------------------------------------- secrets

/// A webhook receiver: answers every request `200` and keeps what came.
struct HookReceiver {
    port: u16,
    got: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
}

impl HookReceiver {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (got2, stop2) = (got.clone(), stop.clone());
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = l.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    if let Some(i) = find(&buf, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                        let len = head
                            .to_ascii_lowercase()
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(str::to_owned))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= i + 4 + len {
                            break (head, String::from_utf8_lossy(&buf[i + 4..]).into_owned());
                        }
                    }
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => break (String::new(), String::new()),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if !head.is_empty() {
                    got2.lock().unwrap().push((head, body));
                }
            }
        });
        HookReceiver { port, got, stop }
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Where a secret turned up.
#[derive(Default)]
struct Leaks {
    searched: Vec<String>,
    hits: Vec<String>,
    bytes: usize,
}

impl Leaks {
    /// Searches `text` (from `source`) for every form of every secret.
    fn scan(&mut self, source: &str, text: &[u8], secrets: &[(String, String)]) {
        self.searched.push(source.to_owned());
        self.bytes += text.len();
        for (what, s) in secrets {
            if find(text, s.as_bytes()).is_some() {
                let t = String::from_utf8_lossy(text);
                let i = t.find(s.as_str()).unwrap_or(0);
                let ctx: String = t[i.saturating_sub(120)..].chars().take(300).collect();
                self.hits.push(format!("{source}: {what} in …{ctx}…"));
            }
        }
    }
}

/// The forms a secret may take on the way out: as is, percent-encoded, in
/// an HTTP Basic header, as a Digest HA1.
fn secret_forms(label: &str, user: &str, pw: &str) -> Vec<(String, String)> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let pct: String = url::form_urlencoded::byte_serialize(pw.as_bytes()).collect();
    let mut v = vec![
        (format!("{label} password"), pw.to_owned()),
        (format!("{label} Basic header"), b64(format!("{user}:{pw}"))),
    ];
    if pct != pw {
        v.push((format!("{label} password, percent-encoded"), pct));
    }
    v
}

/// The big one: a full daemon with password-protected cameras (RTSP Basic
/// and Digest on GStreamer, HTTP Digest snapshot and MJPEG on lighttpd, and
/// two cameras with wrong passwords, one with URL-special characters),
/// MQTT to a mosquitto that wants a password, a webhook URL with
/// credentials, and a config edit that breaks the file on a password line.
/// Every page, error page, JSON answer, `/metrics`, every MQTT payload
/// (`mosquitto_sub -t '#'`), every webhook body, the whole debug log, the CLI
/// (`probe`, `check-config`) and every file in the data directory but the
/// config itself are searched for every password (as is, percent-encoded,
/// as a Basic header): zero hits. The right passwords are in use (cameras
/// up, broker connected, webhook authenticated), and the scanner finds them
/// in config.yaml, so zero means zero.
#[test]
fn secrets_never_leave_the_box() {
    use super::util::{PASSWORD as CAM_PW, USER as CAM_USER};
    const MQTT_USER: &str = "sp-mqtt";
    const MQTT_PW: &str = "Mq77-Br0ker-Pw";
    const HOOK_USER: &str = "hookuser";
    const HOOK_PW: &str = "Wh-T0ken-5xQ";
    const WRONG_RTSP: &str = "Wr0ng@Pw:1/x%";
    const WRONG_HTTP: &str = "Wr0ng-Http-Pw-2";
    const TYPED_PW: &str = "Typed-In-Form-Pw-3";
    let rtsp = RtspServer::start();
    let web = LighttpdServer::start();
    let broker = Broker::start(Spec {
        login: Some((MQTT_USER, MQTT_PW)),
        ..Spec::default()
    });
    let sub = Sub::start(&broker, "#");
    let hook = HookReceiver::start();
    let wrong_enc: String = url::form_urlencoded::byte_serialize(WRONG_RTSP.as_bytes()).collect();
    let config = format!(
        "heartbeat_seconds: 5\ndevice_name: secret box\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n\
         mqtt:\n  host: 127.0.0.1\n  port: {mqtt_port}\n  username: {MQTT_USER}\n  password: '{MQTT_PW}'\n  \
         interval: 5\n  discovery: true\n\
         notify:\n- http://{HOOK_USER}:{HOOK_PW}@127.0.0.1:{hook_port}/hook\n\
         streams:\n\
         - name: rtsp basic\n  url: {rtsp_basic}\n\
         - name: rtsp digest\n  url: {rtsp_digest}\n  username: {CAM_USER}\n  password: '{CAM_PW}'\n\
         - name: http digest snap\n  url: http://{CAM_USER}:{CAM_PW}@127.0.0.1:{wp}/digest/snap.jpg\n  kind: snapshot\n\
         - name: http digest mjpeg\n  url: {mjpeg}\n  username: {CAM_USER}\n  password: '{CAM_PW}'\n  kind: mjpeg\n\
         - name: rtsp wrong\n  url: rtsp://{CAM_USER}:{wrong_enc}@127.0.0.1:{rp}/basic\n\
         - name: http wrong\n  url: http://127.0.0.1:{wp}/digest/snap.jpg\n  username: {CAM_USER}\n  password: '{WRONG_HTTP}'\n  kind: snapshot\n",
        mqtt_port = broker.tcp_port,
        hook_port = hook.port,
        rtsp_basic = rtsp.url_with_credentials("/basic", CAM_USER, CAM_PW),
        rtsp_digest = rtsp.url("/digest"),
        wp = web.port,
        mjpeg = web.url("/digest-stream/stream.mjpg"),
        rp = rtsp.port,
    );
    let mut secrets = Vec::new();
    secrets.extend(secret_forms("camera", CAM_USER, CAM_PW));
    secrets.extend(secret_forms("mqtt", MQTT_USER, MQTT_PW));
    secrets.extend(secret_forms("webhook", HOOK_USER, HOOK_PW));
    secrets.extend(secret_forms("wrong rtsp", CAM_USER, WRONG_RTSP));
    secrets.extend(secret_forms("wrong http", CAM_USER, WRONG_HTTP));
    secrets.extend(secret_forms("typed", CAM_USER, TYPED_PW));
    let (bx, mut b) = logged_in("sec_secrets", &config);
    let app = &bx.app;
    let up = [
        "rtsp basic",
        "rtsp digest",
        "http digest snap",
        "http digest mjpeg",
    ];
    let down = ["rtsp wrong", "http wrong"];
    let status = app.wait_status(
        Duration::from_secs(90),
        "cameras up, wrong ones down",
        |v| {
            up.iter().all(|n| v[n]["state"] == "up") && down.iter().all(|n| v[n]["state"] == "down")
        },
    );
    for n in down {
        assert_eq!(status[n]["reason"], "auth", "{n}: {}", status[n]);
    }
    wait_all(
        &sub,
        Duration::from_secs(30),
        "every stream's state",
        |all| {
            let topics = ha_state_topics(all);
            up.iter().chain(&down).all(|n| {
                let want = if up.contains(n) { "up" } else { "down" };
                topics
                    .get(*n)
                    .is_some_and(|t| last_state(all, t).as_deref() == Some(want))
            })
        },
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.got.lock().unwrap().len() < up.len() + down.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    let hooks = hook.got.lock().unwrap().clone();
    assert!(hooks.len() >= 6, "webhooks: {hooks:?}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{HOOK_USER}:{HOOK_PW}"));
    assert!(
        hooks.iter().all(
            |(h, _)| h.contains(&format!("Authorization: Basic {basic}"))
                || h.contains(&format!("authorization: Basic {basic}"))
        ),
        "the webhook's credentials are used: {hooks:?}"
    );

    let mut leaks = Leaks::default();
    let enc = |n: &str| n.replace(' ', "%20");
    let csrf = b.csrf("/");
    for n in up.iter().chain(&down) {
        let r = b.post(&format!("/streams/{}/preview", enc(n)), &[("csrf", &csrf)]);
        assert_eq!(r.status, 303, "check {n}");
    }
    let mut pages: Vec<String> = [
        "/",
        "/add",
        "/settings",
        "/settings/mqtt",
        "/settings/access",
        "/live",
        "/api/status",
        "/api/streams",
        "/api/live",
        "/metrics",
        "/healthz",
        "/nope",
        "/streams/nope",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in up.iter().chain(&down) {
        let e = enc(n);
        pages.extend([
            format!("/streams/{e}"),
            format!("/streams/{e}?range=7d"),
            format!("/streams/{e}/edit"),
            format!("/streams/{e}/delete"),
            format!("/streams/{e}/preview"),
            format!("/streams/{e}/frame.jpg"),
            format!("/api/streams/{e}/history"),
            format!("/live/{e}/thumb.jpg"),
        ]);
    }
    for p in &pages {
        let r = b.get(p);
        leaks.scan(&format!("GET {p} ({})", r.status), &r.body, &secrets);
    }
    // Error pages: 405, 413, 403 (no CSRF), 401 (no login), and forms
    // re-shown with errors after a password was typed into them.
    let anon_pages = ["/api/status", "/api/streams", "/metrics", "/", "/login"];
    let mut anon = Browser::new(app);
    for p in anon_pages {
        let r = anon.get(p);
        leaks.scan(
            &format!("anonymous GET {p} ({})", r.status),
            &r.body,
            &secrets,
        );
    }
    let r = b.get("/logout");
    leaks.scan("GET /logout (405)", &r.body, &secrets);
    let r = b.post_raw(
        "/add",
        "application/x-www-form-urlencoded",
        &format!("x={}", "a".repeat(70_000)),
        true,
    );
    assert_eq!(r.status, 413);
    leaks.scan("POST /add (413)", &r.body, &secrets);
    let r = b.post("/streams/rtsp%20basic/edit", &[("name", "x")]);
    assert_eq!(r.status, 403);
    leaks.scan("POST edit without CSRF (403)", &r.body, &secrets);
    let typed_url = format!("rtsp://{CAM_USER}:{TYPED_PW}@127.0.0.1:{}/basic", rtsp.port);
    for (path, fields) in [
        (
            "/streams/rtsp%20basic/edit",
            vec![
                ("name", "rtsp basic"),
                ("url", typed_url.as_str()),
                ("interval", "2"),
                ("enabled", "1"),
            ],
        ),
        (
            "/streams/rtsp%20digest/edit",
            vec![
                ("name", "rtsp digest"),
                ("url", "not a url"),
                ("username", CAM_USER),
                ("password", TYPED_PW),
            ],
        ),
        (
            "/add",
            vec![
                ("name", ""),
                ("url", typed_url.as_str()),
                ("password", TYPED_PW),
            ],
        ),
        (
            "/settings/mqtt",
            vec![
                ("enabled", "1"),
                ("host", "127.0.0.1"),
                ("username", MQTT_USER),
                ("password", TYPED_PW),
                ("interval", "1"),
            ],
        ),
    ] {
        let mut f = fields.clone();
        f.push(("csrf", &csrf));
        let r = b.post(path, &f);
        assert_eq!(
            r.status,
            400,
            "POST {path} should fail validation: {}",
            r.text()
        );
        leaks.scan(
            &format!("POST {path} (400, re-shown form)"),
            &r.body,
            &secrets,
        );
    }

    // A config edit that breaks the file on a line with a password: the
    // error is shown on the (public) /healthz and on every page.
    let good = std::fs::read_to_string(&bx.config).unwrap();
    // (The GUI has rewritten the file by now, so lines are matched loosely.)
    let edit_line = |find: &dyn Fn(&str) -> bool, to: &dyn Fn(&str) -> String| -> String {
        let mut done = false;
        let mut out = String::new();
        for l in good.lines() {
            if !done && find(l) {
                out.push_str(&to(l));
                done = true;
            } else {
                out.push_str(l);
            }
            out.push('\n');
        }
        out
    };
    let indent = |l: &str| l[..l.len() - l.trim_start().len()].to_owned();
    for broken in [
        // A password that is a list.
        edit_line(&|l| l.contains(CAM_PW), &|l| {
            format!("{}password: ['{CAM_PW}']", indent(l))
        }),
        // A URL with a password and a port out of range.
        edit_line(&|l| l.trim_start().starts_with("url: rtsp://"), &|l| {
            format!(
                "{}url: rtsp://{CAM_USER}:{CAM_PW}@127.0.0.1:99999/basic",
                indent(l)
            )
        }),
        // An unknown key next to the broker password.
        edit_line(&|l| l.contains(MQTT_PW), &|l| {
            format!("{l}\n{}password2: '{MQTT_PW}'", indent(l))
        }),
    ] {
        assert_ne!(broken, good);
        std::fs::write(&bx.config, &broken).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = loop {
            let (_, h) = app.get("/healthz");
            if !h["config_error"].is_null() || Instant::now() > deadline {
                break h;
            }
            thread::sleep(Duration::from_millis(300));
        };
        assert!(
            !health["config_error"].is_null(),
            "no config error shown: {health}"
        );
        leaks.scan(
            "/healthz with a config error",
            health.to_string().as_bytes(),
            &secrets,
        );
        let r = anon.get("/healthz");
        leaks.scan("anonymous /healthz with a config error", &r.body, &secrets);
        let r = b.get("/");
        leaks.scan("dashboard with a config error", &r.body, &secrets);
        let cc = super::util::run_with_timeout(
            {
                let mut c = streampulse();
                c.arg("check-config").arg(&bx.config);
                c
            },
            Duration::from_secs(30),
        );
        assert_ne!(cc.code, 0, "check-config accepts the broken file");
        leaks.scan("check-config stdout", cc.stdout.as_bytes(), &secrets);
        leaks.scan("check-config stderr", cc.stderr.as_bytes(), &secrets);
    }
    std::fs::write(&bx.config, &good).unwrap();
    app.wait_status(Duration::from_secs(30), "config back", |v| {
        v["rtsp basic"]["state"] == "up"
    });

    // The CLI: a probe with a wrong password in the URL, and one with the
    // right password as an option.
    for args in [
        vec![
            "probe".to_owned(),
            format!(
                "rtsp://{CAM_USER}:{wrong_enc}@127.0.0.1:{}/basic",
                rtsp.port
            ),
        ],
        vec![
            "probe".to_owned(),
            "--json".to_owned(),
            format!(
                "rtsp://{CAM_USER}:{wrong_enc}@127.0.0.1:{}/basic",
                rtsp.port
            ),
        ],
        vec![
            "probe".to_owned(),
            "--username".to_owned(),
            CAM_USER.to_owned(),
            "--password".to_owned(),
            CAM_PW.to_owned(),
            rtsp.url("/digest"),
        ],
        vec![
            "probe".to_owned(),
            "--json".to_owned(),
            format!(
                "http://{CAM_USER}:{WRONG_HTTP}@127.0.0.1:{}/digest/snap.jpg",
                web.port
            ),
        ],
    ] {
        let mut c = streampulse();
        c.args(&args).env("RUST_LOG", "debug");
        let run = super::util::run_with_timeout(c, Duration::from_secs(60));
        let label = args.join(" ").replace(CAM_PW, "<pw>");
        leaks.scan(
            &format!("`{label}` stdout"),
            run.stdout.as_bytes(),
            &secrets,
        );
        leaks.scan(
            &format!("`{label}` stderr"),
            run.stderr.as_bytes(),
            &secrets,
        );
    }

    // Stop the daemon (its shutdown is logged too), then the log, MQTT,
    // webhooks and the data directory.
    let data = bx.config.with_file_name("data");
    let log = {
        let log = app.log.clone();
        let dir = bx._dir;
        let config = bx.config;
        let code = bx.app.terminate();
        assert_eq!(code, Some(0), "clean stop");
        let text = log.lock().unwrap().join("\n");
        (text, dir, config)
    };
    let (log_text, _dir, config_path) = log;
    assert!(log_text.lines().count() > 100, "the debug log is there");
    leaks.scan("daemon log (RUST_LOG=debug)", log_text.as_bytes(), &secrets);
    let msgs = sub.all();
    assert!(msgs.len() >= 10, "MQTT messages: {}", msgs.len());
    for m in &msgs {
        leaks.scan(&format!("MQTT {}", m.topic), m.payload.as_bytes(), &secrets);
        leaks.scan("MQTT topic", m.topic.as_bytes(), &secrets);
    }
    for (h, body) in hook.got.lock().unwrap().iter() {
        leaks.scan("webhook body", body.as_bytes(), &secrets);
        let head_without_auth: String = h
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("authorization:"))
            .collect::<Vec<_>>()
            .join("\n");
        leaks.scan("webhook headers", head_without_auth.as_bytes(), &secrets);
    }
    let mut files = Vec::new();
    collect_files(&data, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("streampulse.db")),
        "{files:?}"
    );
    for f in &files {
        leaks.scan(
            &f.display().to_string(),
            &std::fs::read(f).unwrap(),
            &secrets,
        );
    }
    // The scanner works: config.yaml (and only it) holds the passwords.
    let mut control = Leaks::default();
    control.scan(
        "config.yaml",
        &std::fs::read(&config_path).unwrap(),
        &secrets,
    );
    for (what, _) in [&secrets[0], &secrets[2], &secrets[4]] {
        assert!(
            control.hits.iter().any(|h| h.contains(what.as_str())),
            "the scanner does not find {what} in config.yaml: {:?}",
            control.hits
        );
    }
    eprintln!(
        "secret scan: {} sources, {} bytes, {} secret forms, {} hits",
        leaks.searched.len(),
        leaks.bytes,
        secrets.len(),
        leaks.hits.len()
    );
    assert!(
        leaks.hits.is_empty(),
        "secrets left the box:\n{}",
        leaks.hits.join("\n")
    );
}

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

// ------------------------------------------------------------------- paths

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
    let token_digest = tokens
        .split("\"sha256\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
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

// ------------------------------------------------------------------- limits

/// Request heads and bodies are capped: a 10 MB header, 10,000 headers and
/// a 1 MB request line get 431 (before: the head was buffered whole — 200 MB
/// took 200 MB of RAM); a claimed 100 TB body gets 413 (before: the daemon
/// aborted, allocating the claimed size to skip it); chunked bodies 411,
/// `Expect: 100-continue` 417; a body of exactly 64 KiB is accepted and one
/// byte more is not. The daemon's RSS stays bounded and it answers at once.
#[test]
fn request_heads_and_bodies_are_capped() {
    let bx = start("sec_caps", "heartbeat_seconds: 60\n");
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
    let addr = bx.app.addr.clone();
    let pid = bx.app.pid();
    let rss0 = rss_kib(pid);

    // A 10 MB header, sent until the server stops reading.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ");
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < 10 << 20 {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let r = read_answer(&mut s, Duration::from_secs(10));
    assert_eq!(
        r.status, 431,
        "10 MB header ({sent} bytes sent): {}",
        r.head
    );
    drop(s);

    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = raw(
        &addr,
        None,
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 431, "10,000 headers");
    let r = raw(
        &addr,
        None,
        format!(
            "GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "a".repeat(1 << 20)
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 431, "1 MB request line");

    // A body claimed to be 100 TB, to a public and a logged-in route.
    for path in ["/login", "/add"] {
        let r = raw(
            &addr,
            None,
            format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 100000000000000\r\nConnection: close\r\n\r\nx=1"
            )
            .as_bytes(),
        );
        assert_eq!(
            r.status, 413,
            "POST {path} with a 100 TB Content-Length: {}",
            r.head
        );
        assert!(
            healthy_within(&addr, Duration::from_secs(2)).is_ok(),
            "alive after 100 TB"
        );
    }
    // Also on a GET (whose body nobody reads).
    let r = raw(
        &addr,
        None,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000000000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(healthy_within(&addr, Duration::from_secs(2)).is_ok());

    // Chunked and Expect: refused before a worker reads anything.
    let r = raw(
        &addr,
        None,
        format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nx=123\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 411, "chunked: {}", r.head);
    let r = raw(
        &addr,
        None,
        format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 5000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 417, "Expect: {}", r.head);

    // 64 KiB is fine (the login form says the token is missing), one more byte is not.
    let max = streampulse::web::handler::MAX_BODY_BYTES;
    for (len, want) in [(max, 403), (max + 1, 413)] {
        let body = format!("x={}", "a".repeat(len - 2));
        let r = raw(
            &addr,
            None,
            format!(
                "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(r.status, want, "body of {len} bytes: {}", r.head);
    }
    // Keep-alive after a refused body: the next request on the connection
    // is answered (the 100-byte leftover is skipped), not parsed from the body.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let body = format!("x={}", "GET /api/streams HTTP/1.1\r\n\r\n".repeat(2500));
    s.write_all(
        format!(
            "POST /setup HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("HTTP/1.1 413"), "{all:.200}");
    assert_eq!(all.matches("HTTP/1.1 ").count(), 2, "{all}");
    let statuses: Vec<&str> = all
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|r| r.get(..3).unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["413", "200"],
        "the body must be skipped, not parsed as requests: {all}"
    );

    let rss1 = rss_kib(pid);
    assert!(
        rss1 < rss0 + 20 * 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB"
    );
    let t = healthy_within(&addr, Duration::from_secs(2)).expect("answers at once");
    eprintln!("caps: RSS {rss0} -> {rss1} KiB, /healthz in {t:?}");
}

/// Slow clients (tiny_http has no timeouts of its own): with `web.workers:
/// 2`, four clients trickling a body and forty trickling a head used to hold
/// the workers until they gave up (measured: 4 slow bodies with 4 workers —
/// `/healthz` did not answer within 10 s). Now bodies arrive on each
/// connection's own thread, so the workers stay free: `/healthz` answers in
/// well under a second throughout, the slow connections are cut after the
/// request timeout (408), one address cannot hold more than 64 connections
/// (503 beyond) and the thread count stays bounded.
#[test]
fn slow_clients_do_not_starve_the_workers() {
    use streampulse::web::{MAX_CONNECTIONS_PER_IP, REQUEST_TIMEOUT};
    let bx = start("sec_slow", "heartbeat_seconds: 60\nweb:\n  workers: 2\n");
    let mut b = Browser::new(&bx.app);
    set_up(&mut b);
    let addr = bx.app.addr.clone();
    let pid = bx.app.pid();
    let threads0 = threads(pid);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut slow = Vec::new();
    for i in 0..44u32 {
        let (addr, stop) = (addr.clone(), stop.clone());
        slow.push(thread::spawn(move || {
            let from = Ipv4Addr::new(127, 0, 1, 1 + (i % 4) as u8);
            let mut s = connect_from(&addr, Some(from));
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let (head, trickle): (String, &[u8]) = if i < 4 {
                (
                    format!(
                        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                         Content-Length: 5000\r\n\r\n"
                    ),
                    b"a",
                )
            } else {
                ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n".into(), b"X: y\r\n")
            };
            let _ = s.write_all(head.as_bytes());
            let t = Instant::now();
            let mut answer = Vec::new();
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(60) {
                if s.write_all(trickle).is_err() {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
                thread::sleep(Duration::from_millis(950));
            }
            (t.elapsed(), String::from_utf8_lossy(&answer).into_owned())
        }));
    }
    thread::sleep(Duration::from_secs(2));
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = healthy_within(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("with 44 slow clients: {e}"));
        worst = worst.max(t);
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        worst < Duration::from_secs(1),
        "slowest /healthz: {worst:?}"
    );
    let during = threads(pid);
    let results: Vec<(Duration, String)> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, (held, answer)) in results.iter().enumerate() {
        assert!(
            *held <= REQUEST_TIMEOUT + Duration::from_secs(5),
            "slow client {i} was held for {held:?}"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "slow client {i}: {answer:.100}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);

    // One address holds at most MAX_CONNECTIONS_PER_IP connections; others
    // still get in.
    let from = Some(Ipv4Addr::new(127, 0, 2, 1));
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS_PER_IP)
        .map(|_| connect_from(&addr, from))
        .collect();
    thread::sleep(Duration::from_millis(300));
    let r = raw(&addr, from, &get_req("/healthz", ""));
    assert_eq!(
        r.status,
        503,
        "connection {} from one address",
        idle.len() + 1
    );
    assert!(
        healthy_within(&addr, Duration::from_secs(2)).is_ok(),
        "others get in"
    );
    let peak = threads(pid);
    drop(idle);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        raw(&addr, from, &get_req("/healthz", "")).status,
        200,
        "freed"
    );
    eprintln!(
        "slow clients: threads {threads0} idle, {during} with 44 slow clients, {peak} with \
         {MAX_CONNECTIONS_PER_IP} idle connections; slowest /healthz {worst:?}"
    );
    assert!(
        peak < threads0 + MAX_CONNECTIONS_PER_IP + 20,
        "{peak} threads"
    );
}

// ------------------------------------------------------------------- systemd

/// The appliance's unit: `systemd-analyze security --offline=true` scores it
/// (lower is better; 1.9 when written) and the service runs as the
/// unprivileged `streampulse` user that the Buildroot package creates with
/// a fixed uid that is not 0.
#[test]
fn systemd_unit_is_hardened_and_not_root() {
    let unit = manifest_dir().join("overlay/etc/systemd/system/streampulse.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("User="))
        .expect("the unit sets User=");
    assert_ne!(user, "root");
    assert!(!text.contains("DynamicUser="), "a fixed user owns /data");
    let mk = std::fs::read_to_string(
        manifest_dir().join("buildroot/package/streampulse/streampulse.mk"),
    )
    .unwrap();
    let users = mk
        .split("define STREAMPULSE_USERS")
        .nth(1)
        .and_then(|r| r.split("endef").next())
        .expect("the package defines STREAMPULSE_USERS");
    let fields: Vec<&str> = users.split_whitespace().collect();
    assert_eq!(
        fields[0], user,
        "the unit's user is the one the package creates"
    );
    let uid: i64 = fields[1].parse().unwrap();
    assert!(uid > 0, "uid {uid}");
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze is missing: apt-get install systemd (make deps)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for streampulse.service:")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{report}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("systemd-analyze security: {score}");
    assert!(score <= 2.0, "exposure {score} (was 1.9):\n{report}");
    for must in [
        "✓ User=/DynamicUser=",
        "✓ NoNewPrivileges=",
        "✓ CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "✓ ProtectSystem=",
        "✓ ProtectHome=",
        "✓ PrivateDevices=",
        "✓ RestrictNamespaces=~user",
    ] {
        assert!(report.contains(must), "missing {must:?}:\n{report}");
    }
}
