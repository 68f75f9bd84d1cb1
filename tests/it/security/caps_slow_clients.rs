//! Request size caps and slow clients (issue 8): heads and bodies are
//! capped before they are buffered, and clients that trickle a head or a
//! body cannot hold the web workers; memory and threads stay bounded.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    connect_from, get_req, healthy_within, raw, read_answer, rss_kib, set_up, start, threads,
    Browser,
};

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
