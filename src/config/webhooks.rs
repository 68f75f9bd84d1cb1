//! The `notify:` list of `config.yaml`: each entry validated into a
//! [`Webhook`] (URL without credentials, the credentials apart). Here, in
//! config, so that parsing a file needs nothing of the sender;
//! [`crate::webhooks`] reads these values and does the POSTs.

use serde_saphyr::Spanned;

use super::{At, Error};
use crate::redact::{self, Credentials};

/// One webhook receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// The URL without credentials.
    pub url: url::Url,
    /// As shown in logs and pages: password replaced by `***`.
    pub url_redacted: String,
    /// Sent as HTTP Basic auth; `Debug` hides the password.
    pub credentials: Option<Credentials>,
}

impl Webhook {
    /// Validates one `notify:` entry.
    ///
    /// # Errors
    /// A message for the config error (without the password).
    pub fn parse(s: &str) -> Result<Webhook, String> {
        let parsed = url::Url::parse(s.trim()).map_err(|e| format!("not a valid URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "scheme {:?}: webhooks are http or https",
                parsed.scheme()
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        let (url, credentials) = redact::split_credentials(&parsed);
        let url_redacted = redact::redact_url(&url, credentials.as_ref());
        Ok(Webhook {
            url,
            url_redacted,
            credentials,
        })
    }
}

/// Validates the `notify:` list, in file order; a URL listed twice is an error.
pub(super) fn from_raw(list: Option<&[Spanned<String>]>, at: &At) -> Result<Vec<Webhook>, Error> {
    let mut notify: Vec<Webhook> = Vec::new();
    for (i, n) in list.into_iter().flatten().enumerate() {
        let w = Webhook::parse(&n.value)
            .map_err(|m| at.err(&n.referenced, format!("notify[{i}]: {m}")))?;
        if notify.iter().any(|o| o.url == w.url) {
            return Err(at.err(
                &n.referenced,
                format!("notify[{i}]: {} is listed twice", w.url_redacted),
            ));
        }
        notify.push(w);
    }
    Ok(notify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        let w = Webhook::parse("https://bot:t0ken-xyz@hooks.example/notify?a=1").unwrap();
        assert_eq!(w.url.as_str(), "https://hooks.example/notify?a=1");
        assert_eq!(w.credentials.as_ref().unwrap().password, "t0ken-xyz");
        assert!(!w.url_redacted.contains("t0ken"), "{}", w.url_redacted);
        assert!(!format!("{w:?}").contains("t0ken"));
        assert!(Webhook::parse("ftp://h/x").unwrap_err().contains("http"));
        assert!(Webhook::parse("not a url").is_err());
    }
}
