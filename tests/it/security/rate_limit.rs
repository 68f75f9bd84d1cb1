//! The login rate limit (issue 8): counted per socket address whatever a
//! client claims in forwarding headers, and capped over all addresses.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{login_from, set_up, start, Browser, PASSWORD};

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
