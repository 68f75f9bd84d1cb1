//! Keeping passwords inside the box.
//!
//! A URL from `config.yaml` may carry `user:password@`. [`split_credentials`]
//! takes the credentials out once, at config time; everything after that holds
//! a URL *without* userinfo plus a [`Credentials`] whose `Debug` hides the
//! password. [`redact_url`] is what pages, API answers and logs show.
//!
//! Two more rules live here because every kind of stored secret (camera,
//! MQTT broker, webhook) shares them:
//! * [`may_keep_secret`]: a secret kept from a blank form field only goes to
//!   the [`Endpoint`] (scheme, host, port) it was stored for, so editing the
//!   address cannot send the stored password to another host.
//! * [`redact_text`]: free text that may quote a value (a config error, a
//!   log line) is scrubbed of URL passwords and of every known secret; the
//!   secrets of a config file are found by [`secrets_in_yaml`].

use std::fmt;

/// Username and password for a camera. `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Splits `url` into a URL without userinfo and the (percent-decoded) credentials.
pub fn split_credentials(url: &url::Url) -> (url::Url, Option<Credentials>) {
    let mut bare = url.clone();
    let creds = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Some(Credentials {
            username: dec(url.username()),
            password: url.password().map(dec).unwrap_or_default(),
        })
    };
    // Both setters only fail for cannot-be-a-base URLs, which config rejects earlier.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    (bare, creds)
}

/// Renders `url` with the password replaced by `***` (the username is kept: it
/// helps tell cameras apart and is not a secret on its own).
pub fn redact_url(url: &url::Url, creds: Option<&Credentials>) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    let user = creds.map(|c| c.username.as_str()).unwrap_or("");
    if user.is_empty() && creds.is_none() {
        return shown.to_string();
    }
    let s = shown.to_string();
    match s.split_once("://") {
        Some((scheme, rest)) => {
            let user_enc: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
            format!("{scheme}://{user_enc}:***@{rest}")
        }
        None => s,
    }
}

/// Replaces every occurrence of `secret` in `text` with `***`; a last line of
/// defence for messages that quote peers (a camera may echo the URL back).
pub fn scrub(text: &str, secret: Option<&Credentials>) -> String {
    match secret {
        Some(c) if c.password.len() >= 3 && text.contains(&c.password) => {
            text.replace(&c.password, "***")
        }
        _ => text.to_owned(),
    }
}

/// Where a stored secret was meant to go: scheme, host and port, compared
/// normalised (host in lower case without a trailing dot, IP addresses in
/// canonical form, the scheme's default port filled in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Endpoint {
    /// `scheme://host:port` given as parts (e.g. an MQTT transport, host and port).
    pub fn new(scheme: &str, host: &str, port: Option<u16>) -> Endpoint {
        let scheme = scheme.to_ascii_lowercase();
        let port = port.or_else(|| default_port(&scheme));
        let host = host.trim().trim_end_matches('.');
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let host = match bare.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.to_lowercase(),
        };
        Endpoint { scheme, host, port }
    }

    /// The endpoint of `url` (None without a host).
    pub fn of_url(url: &url::Url) -> Option<Endpoint> {
        let host = url.host_str().filter(|h| !h.is_empty())?;
        Some(Endpoint::new(url.scheme(), host, url.port()))
    }

    /// The endpoint of a URL as written (userinfo allowed); None if it is not one.
    pub fn of_text(url: &str) -> Option<Endpoint> {
        Endpoint::of_url(&url::Url::parse(url.trim()).ok()?)
    }
}

/// Default ports of the schemes stored secrets are used with (`url` knows
/// http(s) and ws(s) only; MQTT transports always come with a port).
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "rtsp" => Some(554),
        "rtsps" => Some(322),
        _ => None,
    }
}

/// True when a secret stored for `stored_for` may be kept (a blank password
/// field) for a changed setting that now points at `new`: only if scheme,
/// host and port are the same. Unknown on either side means no.
pub fn may_keep_secret(stored_for: Option<&Endpoint>, new: Option<&Endpoint>) -> bool {
    matches!((stored_for, new), (Some(a), Some(b)) if a == b)
}

/// True for keys whose values are secrets (`password`, `admin_password_hash`,
/// `token`, `psk`, ...).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "psk"]
        .iter()
        .any(|s| k.contains(s))
}

/// `text` with secrets replaced by `***`: the password of every
/// `[scheme://]user:password@host` in it, and every one of `known` (quoted
/// as Rust, JSON and serde quote values; bare too when 4 bytes or longer,
/// shorter ones would garble ordinary words). The one scrubber for text that
/// may quote a value: config errors, and anything built from them.
pub fn redact_text(text: &str, known: &[String]) -> String {
    let mut out = redact_userinfo(text);
    for s in known.iter().filter(|s| !s.is_empty()) {
        out = out.replace(&format!("{s:?}"), "\"***\"");
        for q in ['"', '\'', '`'] {
            out = out.replace(&format!("{q}{s}{q}"), &format!("{q}***{q}"));
        }
        if s.len() >= 4 {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// Replaces the password of every `[scheme://]user:password@host` word.
fn redact_userinfo(text: &str) -> String {
    let is_gap = |c: char| c.is_whitespace() || "\"'`<>()[]{},".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(|c: char| !is_gap(c)).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(is_gap).unwrap_or(rest.len());
        let word = &rest[..end];
        let info_start = word.find("://").map_or(0, |i| i + 3);
        match word.rfind('@').filter(|&at| at > info_start) {
            Some(at) => match word[info_start..at].find(':') {
                Some(colon) => {
                    out.push_str(&word[..=info_start + colon]);
                    out.push_str("***");
                    out.push_str(&word[at..]);
                }
                None => out.push_str(word),
            },
            None => out.push_str(word),
        }
        rest = &rest[end..];
    }
    out
}

/// The secrets written in a config file: values of secret keys (see
/// [`is_secret_key`]; scalars, also in lists and flow style) and the
/// password of every `user:password@` in any value. Empty when `text` is
/// not YAML (then no value is quoted by the parser either).
pub fn secrets_in_yaml(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(v) = serde_saphyr::from_str::<serde_json::Value>(text) {
        collect_secrets(&v, false, &mut found);
    }
    found.sort();
    found.dedup();
    found
}

fn collect_secrets(v: &serde_json::Value, secret: bool, found: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                collect_secrets(v, secret || is_secret_key(k), found);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_secrets(v, secret, found)),
        Value::String(s) if secret => found.push(s.clone()),
        Value::String(s) => found.extend(userinfo_password(s)),
        Value::Number(n) if secret => found.push(n.to_string()),
        Value::Bool(b) if secret => found.push(b.to_string()),
        _ => {}
    }
}

/// The password of `[scheme://]user:password@host...` as written and decoded.
pub fn userinfo_password(s: &str) -> Vec<String> {
    let info_start = s.find("://").map_or(0, |i| i + 3);
    let Some(at) = s.rfind('@').filter(|&at| at > info_start) else {
        return Vec::new();
    };
    let Some((_, pw)) = s[info_start..at].split_once(':') else {
        return Vec::new();
    };
    let decoded = percent_encoding::percent_decode_str(pw)
        .decode_utf8_lossy()
        .into_owned();
    vec![pw.to_owned(), decoded]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_redacts() {
        let u = url::Url::parse("rtsp://admin:p%40ss%3Aw0rd@10.0.0.5:554/stream1").unwrap();
        let (bare, creds) = split_credentials(&u);
        let creds = creds.unwrap();
        assert_eq!(bare.as_str(), "rtsp://10.0.0.5:554/stream1");
        assert_eq!(creds.username, "admin");
        assert_eq!(creds.password, "p@ss:w0rd");
        let shown = redact_url(&bare, Some(&creds));
        assert_eq!(shown, "rtsp://admin:***@10.0.0.5:554/stream1");
        assert!(!format!("{creds:?}").contains("p@ss"));
    }

    #[test]
    fn no_credentials_untouched() {
        let u = url::Url::parse("http://cam.local/mjpg/video.mjpg").unwrap();
        let (bare, creds) = split_credentials(&u);
        assert!(creds.is_none());
        assert_eq!(redact_url(&bare, None), "http://cam.local/mjpg/video.mjpg");
    }

    #[test]
    fn scrub_removes_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert_eq!(scrub("bad hunter2 here", Some(&c)), "bad *** here");
    }
    #[test]
    fn kept_secret_goes_only_to_the_same_endpoint() {
        let e = |u: &str| Endpoint::of_text(u);
        let same = |a: &str, b: &str| may_keep_secret(e(a).as_ref(), e(b).as_ref());
        assert!(same("rtsp://cam/a", "rtsp://u:p@CAM.:554/b?x"));
        assert!(same("http://10.0.0.5/x", "http://10.0.0.5:80/y"));
        assert!(same("https://[::1]/", "https://[0:0::1]:443/"));
        assert!(!same("rtsp://cam/a", "rtsp://cam2/a"), "host");
        assert!(!same("rtsp://cam/a", "rtsp://cam:8554/a"), "port");
        assert!(!same("http://cam/a", "https://cam/a"), "scheme");
        assert!(!same("http://cam/a", "not a url"), "unknown");
        let m = |t: &str, h: &str, p: u16| Some(Endpoint::new(t, h, Some(p)));
        assert!(may_keep_secret(
            m("tcp", "Broker.lan", 1883).as_ref(),
            m("tcp", "broker.lan", 1883).as_ref()
        ));
        assert!(!may_keep_secret(
            m("tcp", "broker.lan", 1883).as_ref(),
            m("tls", "broker.lan", 1883).as_ref()
        ));
    }

    #[test]
    fn text_is_scrubbed_of_userinfo_and_known_secrets() {
        let t = redact_text(
            "mqtt.host: \"mqtt://user:S3cretPw@127.0.0.1:1\" and user:pw2@h, a@b, http://h:1/x",
            &[],
        );
        assert_eq!(
            t,
            "mqtt.host: \"mqtt://user:***@127.0.0.1:1\" and user:***@h, a@b, http://h:1/x"
        );
        let known = vec!["1234".to_owned(), "ab".to_owned()];
        let t = redact_text("invalid type: integer `1234`, got \"ab\" in about", &known);
        assert_eq!(t, "invalid type: integer `***`, got \"***\" in about");
        let t = redact_text("mqtt.password: given without a username", &known);
        assert_eq!(t, "mqtt.password: given without a username");
    }

    #[test]
    fn secrets_of_a_config_file_are_found() {
        let s = secrets_in_yaml(
            "mqtt: {host: b, username: u, password: 4711}\nstreams:\n- url: rtsp://a:p%40ss@h/\n  \
             password:\n    multi\nnotify: [\"http://x:tok3n@h/\"]\nwifi_psk: k3y\n",
        );
        for want in ["4711", "p%40ss", "p@ss", "multi", "tok3n", "k3y"] {
            assert!(s.iter().any(|x| x == want), "{want} not in {s:?}");
        }
        assert!(secrets_in_yaml("a: [").is_empty());
    }
}
