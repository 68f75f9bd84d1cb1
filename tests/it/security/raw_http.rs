//! HTTP spoken by hand over a plain socket, for what the security tests
//! send that a client library will not: paths exactly as written (ureq
//! normalises them), a source address picked among 127.0.0.x (the login
//! limit counts addresses), heads and bodies of any size, and answers read
//! only as far as the server sends them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What came back from [`raw`].
#[derive(Debug)]
pub(super) struct Raw {
    /// 0 if no status line arrived (connection closed or reset first).
    pub(super) status: u16,
    /// Status line and headers.
    pub(super) head: String,
    pub(super) body: Vec<u8>,
}

impl Raw {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A TCP connection to `addr` from loopback address `from` (any 127.x.y.z
/// works on Linux without configuration).
pub(super) fn connect_from(addr: &str, from: Option<Ipv4Addr>) -> TcpStream {
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
pub(super) fn raw(addr: &str, from: Option<Ipv4Addr>, request: &[u8]) -> Raw {
    let mut s = connect_from(addr, from);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The server may refuse before reading everything (413, 431): a failed
    // write is part of the answer, not an error of the test.
    let _ = s.write_all(request);
    read_answer(&mut s, Duration::from_secs(15))
}

/// Reads one HTTP answer (up to its Content-Length, or EOF) within `limit`.
pub(super) fn read_answer(s: &mut TcpStream, limit: Duration) -> Raw {
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

/// Where `needle` first occurs in `hay`.
pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A GET request with optional cookies.
pub(super) fn get_req(path: &str, cookie: &str) -> Vec<u8> {
    let c = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    get_as(path, "127.0.0.1", &c)
}

/// A GET with `Host: host` (and extra header lines).
pub(super) fn get_as(path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

/// A form POST as a browser on `host` sends it (`Host` and `Origin` name
/// `host`), with `headers` (each line ending in CRLF) and the URL-encoded
/// `body`; the connection closes after the answer.
pub(super) fn form_post(path: &str, host: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n{headers}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `pairs` URL-encoded as a form body.
pub(super) fn urlencoded<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `GET /healthz` answers 200 within `limit`.
pub(super) fn healthy_within(addr: &str, limit: Duration) -> Result<Duration, String> {
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
