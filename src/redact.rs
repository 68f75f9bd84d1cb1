//! Keeping camera passwords inside the box.
//!
//! A URL from `config.yaml` may carry `user:password@`. [`split_credentials`]
//! takes the credentials out once, at config time; everything after that holds
//! a URL *without* userinfo plus a [`Credentials`] whose `Debug` hides the
//! password. [`redact_url`] is what pages, API answers and logs show.

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
}
