//! A minimal SNTP client (RFC 4330): how far is our clock from an NTP server?
//!
//! The appliance's clock is *set* by systemd-timesyncd; this only *measures*,
//! so `/healthz` can show the offset and an operator can see a box whose NTP
//! is blocked by the network. One UDP request per server with a short timeout,
//! from the system thread, never on the probe path.
//!
//! Offset = ((T2 − T1) + (T3 − T4)) / 2, positive when our clock is behind.
//! The reply must echo our transmit time (T1) as its origin, come from the
//! server we asked, and not be a kiss-o'-death (stratum 0) or unsynchronised
//! (leap indicator 3) answer.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use crate::clock::Clock;

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET_S: i64 = 2_208_988_800;
/// Length of one NTP era (2^32 s).
const ERA_S: i64 = 1 << 32;

/// One successful measurement.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Measurement {
    /// The server as configured (`host` or `host:port`).
    pub server: String,
    /// Server time minus our time, ms: positive = our clock is behind.
    pub offset_ms: i64,
    /// Round-trip delay, ms, minus the server's processing time.
    pub delay_ms: i64,
    /// The server's stratum (1 = has a reference clock).
    pub stratum: u8,
    /// Our clock's reading (epoch ms) when the answer arrived.
    pub at_ms: i64,
}

/// Why a query failed; the message names the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{server}: cannot resolve: {message}")]
    Resolve { server: String, message: String },
    #[error("{server}: {message}")]
    Io { server: String, message: String },
    #[error("{server}: no answer within {timeout_ms} ms")]
    Timeout { server: String, timeout_ms: u128 },
    #[error("{server}: bad answer: {message}")]
    BadAnswer { server: String, message: String },
}

/// Epoch ms → 64-bit NTP timestamp (seconds since 1900 in the high half).
fn to_ntp(ms: i64) -> u64 {
    let secs = ms.div_euclid(1000) + NTP_UNIX_OFFSET_S;
    let frac_ms = ms.rem_euclid(1000) as u64;
    ((secs as u64 & 0xffff_ffff) << 32) | ((frac_ms << 32) / 1000)
}

/// 64-bit NTP timestamp → epoch ms. Era by RFC 4330's rule: a set top bit
/// means 1968–2036 (era 0), a clear one 2036–2104 (era 1).
fn from_ntp(ts: u64) -> i64 {
    let secs = (ts >> 32) as i64;
    let secs = if secs & 0x8000_0000 != 0 {
        secs
    } else {
        secs + ERA_S
    };
    // Rounded: to_ntp truncates, so truncating here too could lose 1 ms.
    let frac_ms = (((ts & 0xffff_ffff) * 1000 + (1 << 31)) >> 32) as i64;
    (secs - NTP_UNIX_OFFSET_S) * 1000 + frac_ms
}

fn read_ts(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

/// Builds a client request carrying `t1` as its transmit timestamp.
fn request(t1: u64) -> [u8; 48] {
    let mut p = [0u8; 48];
    p[0] = 0b00_100_011; // LI 0, version 4, mode 3 (client)
    p[40..48].copy_from_slice(&t1.to_be_bytes());
    p
}

/// Checks a reply and computes the measurement (pure: tests feed it bytes).
fn parse_reply(
    server: &str,
    reply: &[u8],
    t1: u64,
    t1_ms: i64,
    t4_ms: i64,
) -> Result<Measurement, Error> {
    let bad = |message: &str| Error::BadAnswer {
        server: server.to_owned(),
        message: message.to_owned(),
    };
    if reply.len() < 48 {
        return Err(bad(&format!("{} bytes, expected 48", reply.len())));
    }
    let (li, mode, stratum) = (reply[0] >> 6, reply[0] & 7, reply[1]);
    if mode != 4 {
        return Err(bad(&format!("mode {mode}, expected 4 (server)")));
    }
    if stratum == 0 {
        let code = String::from_utf8_lossy(&reply[12..16]).into_owned();
        return Err(bad(&format!("kiss-o'-death {code:?}")));
    }
    if li == 3 {
        return Err(bad("server clock not synchronised (leap indicator 3)"));
    }
    if read_ts(reply, 24) != t1 {
        return Err(bad("origin timestamp does not match our request"));
    }
    let (t2, t3) = (from_ntp(read_ts(reply, 32)), from_ntp(read_ts(reply, 40)));
    Ok(Measurement {
        server: server.to_owned(),
        offset_ms: ((t2 - t1_ms) + (t3 - t4_ms)) / 2,
        delay_ms: ((t4_ms - t1_ms) - (t3 - t2)).max(0),
        stratum,
        at_ms: t4_ms,
    })
}

/// `host`, `host:port`, `ip` or `[v6]:port` (default port 123) → socket addresses.
fn resolve(server: &str) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(sa) = server.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 123)]);
    }
    let found = match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse::<u16>() {
            Ok(port) => (host, port).to_socket_addrs(),
            Err(_) => {
                return Err(Error::Resolve {
                    server: server.to_owned(),
                    message: format!("bad port {port:?}"),
                })
            }
        },
        _ => (server, 123).to_socket_addrs(),
    };
    found.map(|a| a.collect()).map_err(|e| Error::Resolve {
        server: server.to_owned(),
        message: e.to_string(),
    })
}

/// Asks `server` once, waiting at most `timeout` for the answer.
///
/// Our side of the exchange is read from `clock`, so tests can pretend the
/// box booted in 1970.
///
/// # Errors
/// Resolution, socket, timeout, or a reply that fails the checks above.
pub fn query(server: &str, timeout: Duration, clock: &dyn Clock) -> Result<Measurement, Error> {
    let io = |e: std::io::Error| Error::Io {
        server: server.to_owned(),
        message: e.to_string(),
    };
    let addr = *resolve(server)?.first().ok_or_else(|| Error::Resolve {
        server: server.to_owned(),
        message: "no addresses".into(),
    })?;
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let sock = UdpSocket::bind(bind).map_err(io)?;
    // connect(): the kernel then drops datagrams from anyone but the server.
    sock.connect(addr).map_err(io)?;
    let t1_ms = clock.now_ms();
    // The low bits of the fraction are noise to the server but make the
    // origin check meaningful (a stale or forged reply will not match).
    let t1 = to_ntp(t1_ms) ^ u64::from(fastrand::u16(..));
    let started = Instant::now();
    sock.send(&request(t1)).map_err(io)?;
    let mut buf = [0u8; 512];
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::Timeout {
                server: server.to_owned(),
                timeout_ms: timeout.as_millis(),
            });
        }
        sock.set_read_timeout(Some(left)).map_err(io)?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                // Our elapsed monotonic time, not a second wall-clock read:
                // a clock step during the exchange must not skew the result.
                let t4_ms = t1_ms + started.elapsed().as_millis() as i64;
                match parse_reply(server, &buf[..n], t1, t1_ms, t4_ms) {
                    // A reply to some other request: keep waiting for ours.
                    Err(Error::BadAnswer { message, .. }) if message.starts_with("origin") => {
                        continue
                    }
                    r => return r,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(io(e)),
        }
    }
}

/// Tries `servers` in order; the first good measurement wins.
///
/// # Errors
/// The last server's error when none answered (or `servers` is empty).
pub fn query_any(
    servers: &[String],
    timeout: Duration,
    clock: &dyn Clock,
) -> Result<Measurement, Error> {
    let mut last = Error::Io {
        server: "-".into(),
        message: "no NTP servers configured".into(),
    };
    for s in servers {
        match query(s, timeout, clock) {
            Ok(m) => return Ok(m),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A minimal SNTP server for tests: answers from `clock_ms() + skew_ms`.
#[doc(hidden)]
pub mod fake {
    use super::*;

    /// What the fake server puts in its replies.
    #[derive(Clone, Copy, Debug)]
    pub enum Behaviour {
        /// A correct answer, `skew_ms` ahead of the real clock.
        Skewed(i64),
        /// Stratum 0 with code "RATE".
        KissOfDeath,
        /// Never answers.
        Silent,
    }

    /// Serves on 127.0.0.1 (a free port) until the process ends; returns the address.
    pub fn serve(behaviour: Behaviour) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP port should succeed");
        let addr = sock.local_addr().expect("bound socket has an address");
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                if n < 48 {
                    continue;
                }
                let now = crate::clock::RealClock.now_ms();
                let mut r = [0u8; 48];
                r[0] = 0b00_100_100; // LI 0, v4, mode 4
                r[1] = 2;
                r[24..32].copy_from_slice(&buf[40..48]);
                match behaviour {
                    Behaviour::Silent => continue,
                    Behaviour::KissOfDeath => {
                        r[1] = 0;
                        r[12..16].copy_from_slice(b"RATE");
                    }
                    Behaviour::Skewed(skew) => {
                        let t = to_ntp(now + skew);
                        r[32..40].copy_from_slice(&t.to_be_bytes());
                        r[40..48].copy_from_slice(&t.to_be_bytes());
                    }
                }
                let _ = sock.send_to(&r, from);
            }
        });
        addr
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{serve, Behaviour};
    use super::*;
    use crate::clock::{RealClock, SimulatedClock};

    #[test]
    fn ntp_timestamps_round_trip_across_eras() {
        for ms in [
            0i64,
            1_577_836_800_123,
            2_085_978_495_999, // 2036-02-07, just before era 1
            2_085_978_496_000,
            2_200_000_000_500,
        ] {
            assert_eq!(from_ntp(to_ntp(ms)), ms, "{ms}");
        }
    }

    #[test]
    fn offset_from_a_skewed_server() {
        let addr = serve(Behaviour::Skewed(5_000));
        let m = query(&addr.to_string(), Duration::from_secs(5), &RealClock).unwrap();
        // Exact up to half the loopback round trip.
        assert!(
            (m.offset_ms - 5_000).abs() <= m.delay_ms / 2 + 2,
            "offset {} ms, delay {} ms",
            m.offset_ms,
            m.delay_ms
        );
        assert_eq!(m.stratum, 2);
    }

    /// A Pi without RTC boots in 1970: the measured offset shows how far off.
    #[test]
    fn offset_of_a_box_that_booted_in_1970() {
        let addr = serve(Behaviour::Skewed(0));
        let clock = SimulatedClock::new(60_000);
        let real = RealClock.now_ms();
        let m = query(&addr.to_string(), Duration::from_secs(5), &clock).unwrap();
        let expected = real - 60_000;
        assert!(
            (m.offset_ms - expected).abs() < 10_000,
            "offset {} vs ≈{expected}",
            m.offset_ms
        );
    }

    #[test]
    fn kiss_of_death_and_silence_are_errors() {
        let kod = serve(Behaviour::KissOfDeath);
        let e = query(&kod.to_string(), Duration::from_secs(5), &RealClock).unwrap_err();
        assert!(e.to_string().contains("RATE"), "{e}");
        let silent = serve(Behaviour::Silent);
        let e = query(&silent.to_string(), Duration::from_millis(300), &RealClock).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(e.to_string().contains(&silent.to_string()), "{e}");
    }

    #[test]
    fn query_any_falls_through_to_a_good_server() {
        let silent = serve(Behaviour::Silent).to_string();
        let good = serve(Behaviour::Skewed(-2_000)).to_string();
        let m = query_any(
            &[silent, good.clone()],
            Duration::from_millis(300),
            &RealClock,
        )
        .unwrap();
        assert_eq!(m.server, good);
        assert!(m.offset_ms < 0);
        assert!(query_any(&[], Duration::from_millis(10), &RealClock).is_err());
    }

    #[test]
    fn replies_are_checked() {
        let t1 = to_ntp(1_000_000);
        let mut r = [0u8; 48];
        r[0] = 0b00_100_100;
        r[1] = 1;
        r[24..32].copy_from_slice(&t1.to_be_bytes());
        r[32..40].copy_from_slice(&to_ntp(1_000_500).to_be_bytes());
        r[40..48].copy_from_slice(&to_ntp(1_000_500).to_be_bytes());
        let m = parse_reply("s", &r, t1, 1_000_000, 1_000_020).unwrap();
        assert_eq!((m.offset_ms, m.delay_ms), (490, 20));
        let mut wrong_origin = r;
        wrong_origin[31] ^= 1;
        assert!(parse_reply("s", &wrong_origin, t1, 0, 0).is_err());
        let mut unsynced = r;
        unsynced[0] |= 0b11 << 6;
        assert!(parse_reply("s", &unsynced, t1, 0, 0).is_err());
        let mut client = r;
        client[0] = 0b00_100_011;
        assert!(parse_reply("s", &client, t1, 0, 0).is_err());
        assert!(parse_reply("s", &r[..40], t1, 0, 0).is_err());
    }

    #[test]
    fn server_names_get_the_default_port() {
        assert_eq!(
            resolve("127.0.0.1").unwrap(),
            vec!["127.0.0.1:123".parse().unwrap()]
        );
        assert_eq!(
            resolve("127.0.0.1:1234").unwrap(),
            vec!["127.0.0.1:1234".parse().unwrap()]
        );
        assert_eq!(resolve("::1").unwrap(), vec!["[::1]:123".parse().unwrap()]);
    }
}
