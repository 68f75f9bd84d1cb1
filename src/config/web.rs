//! The `web:` section: the addresses the web server binds, its workers,
//! logins' lifetime, whether the status is public, and the extra host names
//! requests may carry (the Host check against DNS rebinding is
//! [`crate::web::host`]'s; the names are checked here).

use serde_saphyr::Spanned;

use super::{At, Error, Listen, RawWeb};

/// Default listen address of the appliance's web server.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8000";
/// Default idle lifetime of a web login, in hours.
pub const DEFAULT_SESSION_HOURS: u32 = 24;

/// Validated `web:` settings; [`super::Config`] keeps them as its `web_*` fields.
pub(super) struct WebSettings {
    pub listen: Vec<String>,
    pub workers: usize,
    pub public_status: bool,
    pub session_hours: u32,
    pub allowed_hosts: Vec<String>,
}

/// Validates `web:` (absent: the defaults).
pub(super) fn from_raw(raw: Option<&Spanned<RawWeb>>, at: &At) -> Result<WebSettings, Error> {
    let (web_public_status, web_session_hours) = match raw {
        None => (false, DEFAULT_SESSION_HOURS),
        Some(w) => {
            let hours = w.value.session_hours.unwrap_or(DEFAULT_SESSION_HOURS);
            if !(1..=8760).contains(&hours) {
                return Err(at.err(
                    &w.referenced,
                    "web.session_hours: must be between 1 and 8760",
                ));
            }
            (w.value.public_status.unwrap_or(false), hours)
        }
    };
    let (web_listen, web_workers) = match raw {
        None => (vec![DEFAULT_LISTEN.to_owned()], 4),
        Some(w) => {
            let mut addrs = Vec::new();
            if let Some(l) = &w.value.listen {
                let list = match &l.value {
                    Listen::One(a) => std::slice::from_ref(a),
                    Listen::Many(list) => list.as_slice(),
                };
                if list.is_empty() {
                    return Err(at.err(&l.referenced, "web.listen: give at least one address"));
                }
                for (i, a) in list.iter().enumerate() {
                    let addr = a.parse::<std::net::SocketAddr>().map_err(|_| {
                        at.err(
                            &l.referenced,
                            format!(
                                "web.listen[{i}]: {a:?} is not an address:port such as 0.0.0.0:8000"
                            ),
                        )
                    })?;
                    if addrs.iter().any(|b: &String| b.parse().ok() == Some(addr)) {
                        return Err(at.err(
                            &l.referenced,
                            format!("web.listen[{i}]: {a} is listed twice"),
                        ));
                    }
                    addrs.push(a.clone());
                }
            }
            if addrs.is_empty() {
                addrs.push(DEFAULT_LISTEN.to_owned());
            }
            let workers = w.value.workers.unwrap_or(4);
            if !(1..=64).contains(&workers) {
                return Err(at.err(&w.referenced, "web.workers: must be between 1 and 64"));
            }
            (addrs, workers)
        }
    };
    let mut web_allowed_hosts = Vec::new();
    let hosts = raw.and_then(|w| w.value.allowed_hosts.as_ref());
    for (i, h) in hosts.into_iter().flatten().enumerate() {
        let name = check_host_name(&h.value)
            .map_err(|m| at.err(&h.referenced, format!("web.allowed_hosts[{i}]: {m}")))?;
        if i >= MAX_ALLOWED_HOSTS {
            return Err(at.err(
                &h.referenced,
                format!("web.allowed_hosts: at most {MAX_ALLOWED_HOSTS} names"),
            ));
        }
        if !web_allowed_hosts.contains(&name) {
            web_allowed_hosts.push(name);
        }
    }
    Ok(WebSettings {
        listen: web_listen,
        workers: web_workers,
        public_status: web_public_status,
        session_hours: web_session_hours,
        allowed_hosts: web_allowed_hosts,
    })
}

/// Names `web.allowed_hosts` may list at most.
const MAX_ALLOWED_HOSTS: usize = 16;

/// A `web.allowed_hosts` entry as compared with `Host` (lowercase, no
/// trailing dot), or why it is not a DNS name.
fn check_host_name(name: &str) -> Result<String, String> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if n.contains("://") || n.contains('/') {
        return Err(format!(
            "{name:?} is not a host name: write the name only, without http:// or a path"
        ));
    }
    if n.contains(':') || n.contains('[') {
        return Err(format!(
            "{name:?} is not a host name: leave out the port (any port is accepted), and IP \
             addresses need no entry"
        ));
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if n.is_empty() || n.len() > 253 || !n.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a host name (letters, digits, '-' and dots, such as camera-monitor.example.lan)"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn err(text: &str) -> Error {
        parse(text, "config.yaml").expect_err("should be rejected")
    }

    #[test]
    fn listen_takes_one_address_or_a_list() {
        let one = |t: &str| parse(t, "c").unwrap().web_listen;
        assert_eq!(one("streams: []\n"), [DEFAULT_LISTEN]);
        assert_eq!(one("web:\n  workers: 2\n"), [DEFAULT_LISTEN]);
        assert_eq!(one("web:\n  listen: 127.0.0.1:81\n"), ["127.0.0.1:81"]);
        assert_eq!(
            one("web:\n  listen:\n  - 0.0.0.0:80\n  - '[::]:8000'\n"),
            ["0.0.0.0:80", "[::]:8000"]
        );
    }

    #[test]
    fn allowed_hosts() {
        let c = parse("streams: []\n", "c").unwrap();
        assert!(c.web_allowed_hosts.is_empty());
        let c = parse(
            "web:\n  allowed_hosts: [Camera-Monitor.example.lan., cams, cams]\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.web_allowed_hosts, ["camera-monitor.example.lan", "cams"]);
        for (text, want, line) in [
            (
                "web:\n  listen: 0.0.0.0:8000\n  allowed_hosts:\n  - ok.lan\n  - http://cams.lan/\n",
                "web.allowed_hosts[1]: \"http://cams.lan/\" is not a host name: write the name only",
                5,
            ),
            (
                "web:\n  allowed_hosts:\n  - cams.lan:8000\n",
                "leave out the port",
                3,
            ),
            ("web:\n  allowed_hosts: ['bad name']\n", "is not a host name", 2),
            ("web:\n  allowed_hosts: ['']\n", "is not a host name", 2),
            ("web:\n  allowed_hosts: [-x.lan]\n", "is not a host name", 2),
            ("web:\n  allowed_hosts: cams.lan\n", "sequence", 2),
        ] {
            let e = err(text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.line, Some(line), "{text}: {e}");
        }
        let many: String = (0..17).map(|i| format!("  - h{i}.lan\n")).collect();
        let e = err(&format!("web:\n  allowed_hosts:\n{many}"));
        assert!(e.message.contains("at most 16"), "{e}");
        assert_eq!(e.line, Some(19), "{e}");
    }
}
