//! One GET of a camera URL, as both HTTP users need it: the probe
//! ([`super::http`]) and the live view's MJPEG/snapshot relay
//! (`crate::live`). It sends the request, answers a 401 challenge once
//! (Basic or Digest: credentials are never sent before the camera asks for
//! them) and sends it again; it also maps ureq's errors to a [`Failure`].
//!
//! What each caller does with the answer differs (the probe names 403 and
//! 404, the live view only says `HTTP <status>`), so the status is theirs
//! to judge; so are the agent's timeouts.

use super::{Failure, Reason, Stage};
use crate::redact::Credentials;

/// A camera's answer whose body can be read.
pub(crate) type Response = ureq::http::Response<ureq::Body>;

/// GETs `url` with `agent`. `auth` is the `Authorization` header to send
/// first (`None`: none; the live snapshot loop keeps it between requests);
/// a 401 is answered once from `creds` and the answer is left in `auth`.
/// `call_failed` turns a transport error into a [`Failure`] (the probe names
/// its stage deadlines there).
///
/// # Errors
/// A transport error, or a 401 without credentials, with an unusable
/// challenge, or again after the answer. Any other status is returned as a
/// response for the caller to judge.
pub(crate) fn get(
    agent: &ureq::Agent,
    url: &url::Url,
    creds: Option<&Credentials>,
    auth: &mut Option<String>,
    call_failed: impl Fn(ureq::Error) -> Failure,
) -> Result<Response, Failure> {
    let send = |authz: &Option<String>| {
        let mut rq = agent.get(url.as_str());
        if let Some(a) = authz {
            rq = rq.header("Authorization", a);
        }
        rq.call().map_err(&call_failed)
    };
    let resp = send(auth)?;
    if resp.status() != 401 {
        return Ok(resp);
    }
    let Some(creds) = creds else {
        return Err(Failure::new(
            Reason::Auth,
            "HTTP 401: the camera asks for a username and password",
        ));
    };
    let challenges: Vec<String> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    // A Digest answer is valid for one request only; recompute each time.
    *auth = Some(answer_challenge(&challenges, creds, url)?);
    drop(resp);
    let resp = send(auth)?;
    if resp.status() == 401 {
        return Err(Failure::new(
            Reason::Auth,
            "HTTP 401: the camera rejected the username/password",
        ));
    }
    Ok(resp)
}

/// The response's content type (lower case) when it announces text or JSON,
/// not a picture: an error page, a login form, an API.
pub(crate) fn not_a_picture(resp: &Response) -> Option<String> {
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    (content_type.starts_with("text/") || content_type.contains("json")).then_some(content_type)
}

/// Builds the `Authorization` header for a 401's challenges (Digest preferred).
fn answer_challenge(
    challenges: &[String],
    creds: &Credentials,
    url: &url::Url,
) -> Result<String, Failure> {
    if challenges.is_empty() {
        return Err(Failure::new(
            Reason::Auth,
            "HTTP 401 without a WWW-Authenticate challenge",
        ));
    }
    // Some cameras send `algorithm=md5`; http-auth only accepts the RFC's spelling.
    let joined = challenges
        .iter()
        .map(|c| normalize_algorithm(c))
        .collect::<Vec<_>>()
        .join(", ");
    let mut client = http_auth::PasswordClient::try_from(joined.as_str())
        .map_err(|e| Failure::new(Reason::Auth, format!("unsupported auth challenge: {e}")))?;
    let mut uri = url.path().to_owned();
    if let Some(q) = url.query() {
        uri.push('?');
        uri.push_str(q);
    }
    client
        .respond(&http_auth::PasswordParams {
            username: &creds.username,
            password: &creds.password,
            uri: &uri,
            method: "GET",
            body: Some(&[]),
        })
        .map_err(|e| Failure::new(Reason::Auth, format!("cannot answer auth challenge: {e}")))
}

fn normalize_algorithm(challenge: &str) -> String {
    let mut out = String::with_capacity(challenge.len());
    let lower = challenge.to_ascii_lowercase();
    let mut i = 0;
    while let Some(off) = lower[i..].find("algorithm=") {
        let at = i + off + "algorithm=".len();
        out.push_str(&challenge[i..at]);
        let rest = &challenge[at..];
        let quoted = rest.starts_with('"');
        let body = if quoted { &rest[1..] } else { rest };
        let end = body
            .find(|c: char| c == '"' || c == ',' || c.is_whitespace())
            .unwrap_or(body.len());
        if quoted {
            out.push('"');
        }
        out.push_str(&body[..end].to_ascii_uppercase());
        i = at + usize::from(quoted) + end;
    }
    out.push_str(&challenge[i..]);
    out
}

pub(crate) fn classify(e: ureq::Error, stage: Stage) -> Failure {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Timeout(_) => Failure::new(
            Reason::Timeout,
            format!("timed out while {}", stage.as_str()),
        ),
        ureq::Error::HostNotFound => Failure::new(Reason::Dns, "host name does not resolve"),
        ureq::Error::ConnectionFailed => Failure::new(Reason::Connect, "connection failed"),
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable => {
                Failure::new(Reason::Connect, format!("cannot connect: {io}"))
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Failure::new(
                Reason::Timeout,
                format!("timed out while {}", stage.as_str()),
            ),
            _ if stage == Stage::FirstFrame => Failure::new(
                Reason::NoFrame,
                format!("connection lost while {}: {io}", stage.as_str()),
            ),
            _ => Failure::new(
                Reason::Protocol,
                format!("I/O error while {}: {io}", stage.as_str()),
            ),
        },
        ureq::Error::StatusCode(s) => Failure::new(Reason::HttpStatus, format!("HTTP {s}")),
        other => Failure::new(
            Reason::Protocol,
            format!(
                "{} while {}",
                super::rtsp_session::first_line(&other.to_string()),
                stage.as_str()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_md5_is_normalized() {
        assert_eq!(
            normalize_algorithm(r#"Digest realm="x", algorithm=md5, nonce="abc""#),
            r#"Digest realm="x", algorithm=MD5, nonce="abc""#
        );
        assert_eq!(
            normalize_algorithm(r#"Digest algorithm="md5""#),
            r#"Digest algorithm="MD5""#
        );
    }
}
