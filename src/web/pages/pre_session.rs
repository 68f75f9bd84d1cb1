//! The CSRF token of the forms shown before anyone is logged in (setup and
//! login): a random value in a short-lived cookie that the form sends back,
//! since there is no session to carry one yet.

use crate::web::auth;
use crate::web::handler::{Req, Resp};

/// Why a setup or login post without a matching token is refused (403).
pub(super) const PRE_EXPIRED: &str =
    "the form was out of date or cookies are blocked; reload the page and try again";

/// The pre-session CSRF token of a login/setup form, and the cookie to set
/// if the browser has none yet.
pub(super) fn pre_token(req: &Req) -> (String, Option<String>) {
    match req.cookie(auth::PRE_COOKIE) {
        Some(t) if t.len() == 43 => (t.to_owned(), None),
        _ => {
            let t = auth::random_token();
            let c = auth::set_cookie(auth::PRE_COOKIE, &t, 3600);
            (t, Some(c))
        }
    }
}

/// True if the form sent the token its cookie holds.
pub(super) fn pre_ok(req: &Req, sent: &str) -> bool {
    req.cookie(auth::PRE_COOKIE)
        .is_some_and(|c| !c.is_empty() && auth::ct_eq(c.as_bytes(), sent.as_bytes()))
}

/// `r` with the token's cookie, when [`pre_token`] made a new one.
pub(super) fn with_cookie(mut r: Resp, cookie: Option<String>) -> Resp {
    if let Some(c) = cookie {
        r.headers.push(("Set-Cookie", c));
    }
    r
}
