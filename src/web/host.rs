//! The `Host` check against DNS rebinding: a page on `rebind.evil.example`
//! whose name is made to resolve to the box would otherwise be same-origin
//! with it (its `Origin` matches its `Host`) and could claim an unconfigured
//! box through `/setup` or read what a visitor's browser may read.
//!
//! So every request, GET or POST, on every route (the live streams too),
//! must name the box before it is routed:
//!
//! * an IP literal (`192.168.1.23`, `[fe80::1]`, any port): an address
//!   cannot be rebound, and the box's own addresses change with DHCP;
//! * `localhost`, the box's hostname and `<hostname>.local` (mDNS): read at
//!   start, and again before a name is refused, since `network.hostname`
//!   renames the box without a restart;
//! * a name listed in `web.allowed_hosts`.
//!
//! Anything else is answered `421 Misdirected Request` with a short text
//! saying which name to use or how to allow one; an HTTP/1.1 request without
//! `Host` is a `400`. (HTTP/1.0 clients may omit `Host`; browsers never do.)

use std::net::{Ipv4Addr, Ipv6Addr};

use super::handler::Resp;

/// The box's own names, besides IP literals and configured ones.
#[derive(Clone, Debug)]
pub struct BoxNames {
    /// The hostname, lowercase; None if it could not be read.
    hostname: Option<String>,
}

impl BoxNames {
    /// Reads the kernel's hostname now, with uname(2): the appliance's
    /// sandbox (`ProcSubset=pid`) hides /proc/sys/kernel/hostname.
    pub fn read() -> BoxNames {
        let name = kernel_hostname().unwrap_or_else(|e| {
            tracing::warn!("cannot read the hostname (uname): {e}");
            String::new()
        });
        BoxNames::new(&name)
    }

    /// Names for hostname `hostname` ("" for none).
    pub fn new(hostname: &str) -> BoxNames {
        let h = hostname.trim_end_matches('.').to_ascii_lowercase();
        BoxNames {
            hostname: (!h.is_empty()).then_some(h),
        }
    }

    /// The name to bookmark: `<hostname>.local`, if the hostname is known.
    pub fn mdns_name(&self) -> Option<String> {
        self.hostname.as_ref().map(|h| format!("{h}.local"))
    }

    /// True if a request with `Host: host` is meant for this box; `extra`
    /// holds `web.allowed_hosts` (lowercase, as the config keeps them).
    pub fn allows(&self, host: &str, extra: &[String]) -> bool {
        let Some(name) = name_of(host) else {
            return false;
        };
        let Some(name) = name else {
            return true; // an IP literal
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost"
            || self
                .hostname
                .as_deref()
                .is_some_and(|h| name == h || name.strip_suffix(".local").is_some_and(|n| n == h))
            || extra.contains(&name)
    }

    /// `421` or `400` unless the request names this box; see the module docs.
    /// `host` is the `Host` header ("" when absent).
    ///
    /// # Errors
    /// The answer to send instead of routing the request.
    pub fn check(&self, host: &str, http11: bool, extra: &[String]) -> Result<(), Box<Resp>> {
        self.check_renamed(host, http11, extra, BoxNames::read)
    }

    /// [`BoxNames::check`], with `now` giving the names as they are now (the
    /// box may have been renamed since `self` was read).
    fn check_renamed(
        &self,
        host: &str,
        http11: bool,
        extra: &[String],
        now: impl FnOnce() -> BoxNames,
    ) -> Result<(), Box<Resp>> {
        if host.is_empty() {
            if !http11 {
                return Ok(());
            }
            return Err(Box::new(text(
                400,
                "400 Bad Request\n\nAn HTTP/1.1 request needs a Host header.\n".into(),
            )));
        }
        if self.allows(host, extra) {
            return Ok(());
        }
        // Renamed since start? One procfs read, only for a refused name.
        let now = now();
        if now.allows(host, extra) {
            return Ok(());
        }
        let port = host
            .rsplit_once(':')
            .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .map(|(_, p)| format!(":{p}"))
            .unwrap_or_default();
        let by_name = match &now.hostname {
            Some(h) => format!(", or by name as http://{h}.local{port}/ or http://{h}{port}/"),
            None => String::new(),
        };
        let shown: String = host.chars().take(100).collect();
        Err(Box::new(text(
            421,
            format!(
                "421 Misdirected Request\n\n\
                 This box does not answer to the name {shown:?} (a protection against DNS \
                 rebinding).\n\n\
                 Open it by its IP address, e.g. http://192.168.1.23{port}/{by_name}.\n\
                 To reach it under another name, add that name to config.yaml:\n\n\
                 web:\n  allowed_hosts: [camera-monitor.example.lan]\n"
            ),
        )))
    }
}

/// The kernel's hostname (`nodename` of uname(2)).
fn kernel_hostname() -> std::io::Result<String> {
    // SAFETY: uname fills the zeroed struct it is given; nodename is
    // NUL-terminated within its array.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let name = unsafe { std::ffi::CStr::from_ptr(u.nodename.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

fn text(status: u16, body: String) -> Resp {
    Resp::new(status, "text/plain; charset=utf-8", body.into_bytes())
}

/// The name in a `Host` value: `Some(None)` for an IP literal,
/// `Some(Some(name))` for a name, None if the value is malformed (a port
/// that is not a number, an unbracketed IPv6 address, junk).
fn name_of(host: &str) -> Option<Option<&str>> {
    let port_ok = |p: &str| p.is_empty() || (p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        let port = after.strip_prefix(':').filter(|p| !p.is_empty());
        return (after.is_empty() || port.is_some_and(port_ok)).then_some(None);
    }
    let (name, port) = host.split_once(':').unwrap_or((host, ""));
    if !port_ok(port) || host.ends_with(':') || name.is_empty() {
        return None;
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Some(None);
    }
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        .then_some(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_hostname_is_the_kernels() {
        let proc = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(kernel_hostname().unwrap(), proc.trim());
    }

    #[test]
    fn host_table() {
        let names = BoxNames::new("StreamPulse");
        let extra = vec!["camera-monitor.example.lan".to_owned()];
        for ok in [
            "192.168.1.23",
            "192.168.1.23:8000",
            "127.0.0.1:34567",
            "[::1]",
            "[::1]:8000",
            "[fe80::1]:80",
            "localhost",
            "localhost:8000",
            "LOCALHOST.",
            "streampulse",
            "streampulse:8000",
            "streampulse.local",
            "StreamPulse.Local.:8000",
            "camera-monitor.example.lan",
            "camera-monitor.example.lan:80",
        ] {
            assert!(names.allows(ok, &extra), "{ok}");
        }
        for bad in [
            "rebind.evil.example",
            "rebind.evil.example:8000",
            "streampulse.evil.example",
            "evil-streampulse.local",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "example.lan",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[evil.example]",
            "127.0.0.1:",
            "127.0.0.1:80:80",
            "127.0.0.1:http",
            "127.0.0.1:999999",
            ":8000",
            "evil.example@127.0.0.1",
            "evil example",
        ] {
            assert!(!names.allows(bad, &extra), "{bad}");
        }
        assert!(!BoxNames::new("").allows(".local", &[]));
        assert!(!BoxNames::new("").allows("local", &[]));
    }

    #[test]
    fn answers_name_the_way_in() {
        let names = BoxNames::new("streampulse");
        assert!(names.check("127.0.0.1:8000", true, &[]).is_ok());
        assert!(
            names.check("", false, &[]).is_ok(),
            "HTTP/1.0 may omit Host"
        );
        assert_eq!(names.check("", true, &[]).unwrap_err().status, 400);
        let r = names
            .check_renamed("rebind.evil.example:8000", true, &[], || names.clone())
            .unwrap_err();
        assert_eq!(r.status, 421);
        let t = String::from_utf8(r.body).unwrap();
        assert!(t.contains("\"rebind.evil.example:8000\""), "{t}");
        assert!(t.contains("http://streampulse.local:8000/"), "{t}");
        assert!(t.contains("allowed_hosts"), "{t}");
    }
}
