//! Logging in (`/login`): the password form, the lockout after too many
//! wrong passwords (and when it ends), and where the browser goes next
//! (only a path on this box: no open redirect).

use askama::Template;

use super::format::{fmt_duration, fmt_time};
use super::pre_session::{pre_ok, pre_token, with_cookie, PRE_EXPIRED};
use super::{chrome, flash_for, render, Chrome};
use crate::config::Config;
use crate::credentials;
use crate::web::handler::{Req, Resp, Who};
use crate::web::{auth, HttpError, WebCtx};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    pre: String,
    next: String,
    error: Option<String>,
}

/// Only same-origin absolute paths are followed after login (no open
/// redirect): one leading `/`, then neither `/` nor `\`, no whitespace or
/// control character anywhere. Browsers drop tabs and newlines from a
/// `Location` and treat `\` as `/`, so `/\t/evil.example` would leave the
/// box; the same rules hold for the percent-decoded path, so nothing a
/// later decoding step uncovers (`/%2F%2Fevil`, `/%09/evil`) gets past
/// either. A decoded space stays allowed: stream names may hold one.
fn safe_next(next: &str) -> String {
    let local = |p: &str, space_ok: bool| {
        let mut rest = p.chars();
        rest.next() == Some('/')
            && !matches!(rest.next(), Some('/' | '\\'))
            && !p.contains('\\')
            && !p
                .chars()
                .any(|c| c.is_control() || (c.is_whitespace() && !(space_ok && c == ' ')))
    };
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8();
    match decoded {
        Ok(d) if local(next, false) && local(&d, true) => next.to_owned(),
        _ => "/".into(),
    }
}

/// When a login lockout of `wait_secs` ends: the time in the configured
/// zone and how long that is from now (`2026-11-28 17:45:05 (in 14 min)`).
pub(super) fn lock_end(ctx: &WebCtx, cfg: &Config, wait_secs: u64) -> String {
    let wait_ms = i64::try_from(wait_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let end = ctx.clock.now_ms().saturating_add(wait_ms);
    format!(
        "{} (in {})",
        fmt_time(end, &cfg.tz()),
        fmt_duration(wait_secs)
    )
}

/// `/login`.
pub fn login(ctx: &WebCtx, cfg: &Config, req: &Req, who: &Who) -> Result<Resp, HttpError> {
    let hash = cfg
        .admin_password_hash
        .as_deref()
        .ok_or_else(|| HttpError::new(404, "not set up yet"))?;
    let (pre, cookie) = pre_token(req);
    let f = req.form();
    let next = safe_next(&if req.is_post() {
        f.get("next")
    } else {
        req.query_param("next").unwrap_or_default()
    });
    if !req.is_post() && who.session.is_some() {
        return Ok(Resp::redirect(&next));
    }
    let mut status = 200;
    // A lockout is shown before anyone types a password, with its end.
    let mut error = ctx.gui.limiter.check(req.remote).err().map(|wait| {
        format!(
            "Too many failed logins: logging in is paused until {}.",
            lock_end(ctx, cfg, wait)
        )
    });
    if req.is_post() {
        if !pre_ok(req, &f.get("pre")) {
            return Err(HttpError::new(403, PRE_EXPIRED));
        }
        match ctx.gui.limiter.check(req.remote) {
            Err(_) => status = 429,
            Ok(()) => {
                if credentials::verify_password(&f.get("password"), hash) {
                    ctx.gui.limiter.succeeded(req.remote);
                    let life = i64::from(cfg.web_session_hours) * 3_600_000;
                    let (tok, _) = ctx.gui.sessions.create(life, hash);
                    tracing::info!("login from {}", req.remote);
                    return Ok(Resp::redirect(&next)
                        .with_header(
                            "Set-Cookie",
                            auth::set_cookie(auth::SESSION_COOKIE, &tok, life / 1000),
                        )
                        .with_header("Set-Cookie", auth::set_cookie(auth::PRE_COOKIE, "", 0)));
                }
                ctx.gui.limiter.failed(req.remote);
                tracing::warn!("failed login from {}", req.remote);
                status = 401;
                error = Some("Wrong password.".into());
            }
        }
    }
    let mut c = chrome(ctx, cfg, None, "Log in", "");
    c.flash = flash_for(req.query_param("msg"));
    let page = LoginPage {
        c,
        pre,
        next,
        error,
    };
    Ok(with_cookie(render(status, &page)?, cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        for ok in [
            "/",
            "/streams/x",
            "/streams/Front%20door/edit",
            "/streams/a%2Fb",
            "/streams/Caf%C3%A9?tab=1",
            "/live",
        ] {
            assert_eq!(safe_next(ok), ok);
        }
        // See: issue 14, finding 5 (browsers strip the tab: `//evil.example/x`).
        for hostile in [
            "/%09/evil.example/x",
            "/\t/evil.example/x",
            "/\t/evil",
            "/\n/evil",
            "/\r\n/evil",
            "/%0a/evil",
            "/%0D%0A/evil",
            "/%00/evil",
            "/\u{7f}/evil",
            "/\u{85}/evil",
            "/\u{a0}/evil",
            "/\u{3000}/evil",
            "/ /evil",
            " /evil",
            "\t//evil",
            "//evil",
            "//evil.example/",
            "///evil",
            "/%2F%2Fevil",
            "/%2fevil",
            "/%5Cevil",
            "/%5C%5Cevil",
            "/\\evil",
            "\\\\evil",
            "/x/\\evil",
            "https://evil",
            "http://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "%2F%2Fevil",
            "/%ff",
            "",
        ] {
            assert_eq!(safe_next(hostile), "/", "{hostile:?}");
        }
    }
}
