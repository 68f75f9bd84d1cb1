//! One request, start to finish: read it (body capped), check that its
//! `Host` names this box ([`super::host`]), route it, decide
//! who is asking and whether they may, check CSRF on every POST, run the
//! handler, and answer with a content type and security headers.
//!
//! The access rules live here and in [`Route::access`] only:
//!
//! | route class | first boot (no admin password) | after setup |
//! |---|---|---|
//! | `/setup` | the setup form | 404 (gone for good) |
//! | `/login`, `/static/*`, `/healthz` | `/login` → `/setup`; others public | public |
//! | `/api/status`, `/metrics` | public if `web.public_status`, else API token | public if `web.public_status`, else session or API token |
//! | other JSON (`/api/streams…`) | API token | session or API token |
//! | write API (`/api/streams` writes, `/api/streams/{name}[/check]`, `/api/settings`) | `admin` API token | session (with its CSRF token) or `admin` API token |
//! | live view (`/api/live`, `/live/*/stream`, `/live/*/thumb.jpg`) | `live` API token | session or `live` API token |
//! | pages and forms | redirect to `/setup` | session (else redirect to `/login`) |
//!
//! API tokens open only the routes of their scope ([`auth::Scope`]): `read`
//! the status, JSON and metrics rows, `live` the live view, `admin` both; a
//! valid token outside its scope gets 403.
//!
//! Every POST must come from this site (`Origin`/`Sec-Fetch-Site` checked
//! when the browser sends them) and carry the session's CSRF token (forms:
//! `csrf` field; scripts: `X-CSRF-Token`), or for `/login` and `/setup` the
//! pre-session token of [`auth::PRE_COOKIE`].
//!
//! Two kinds of request need no CSRF token, because a browser never sends
//! an `Authorization: Bearer` header on its own: uploads made with an
//! `admin` API token ([`Route::takes_upload`]), and the write API's POST,
//! PUT, PATCH and DELETE ([`Route::takes_json`], [`super::write_api`])
//! made with an `admin` token, no session cookie and a body that is not a
//! form. Every other method (and PUT/PATCH/DELETE elsewhere) is a 405.

use std::io::Read;
use std::net::IpAddr;
use std::time::Instant;

use tiny_http::{Header, Method, Request, Response, StatusCode};

use super::routes::{self, Access, Route};
use super::{
    api, auth, availability, backup, export, live_page, metrics, pages, system_page, update,
    write_api, HttpError, WebCtx,
};
use crate::config::Config;

/// Largest request body accepted (forms are a few KB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Content security policy of every HTML page: our own script and style
/// only, no inline script, no framing, forms post only to us.
/// `media-src blob:` lets the live view feed Media Source Extensions.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   media-src 'self' blob:; connect-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Headers every answer carries: the handler's responses and the raw
/// heads the live viewer threads write ([`super::live_page::HttpSink`]) alike.
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
];

/// [`SECURITY_HEADERS`] as raw header lines, each ending in CRLF, for code
/// that writes its own response head.
pub fn security_header_lines() -> String {
    SECURITY_HEADERS
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect()
}

/// A request as handlers see it (headers copied, body read).
#[derive(Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: String,
    /// Raw `Cookie:` header.
    pub cookies: String,
    pub host: String,
    pub origin: Option<String>,
    pub sec_fetch_site: Option<String>,
    pub authorization: Option<String>,
    pub csrf_header: Option<String>,
    pub content_type: String,
    pub remote: IpAddr,
    pub body: Vec<u8>,
}

impl Req {
    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        auth::cookie(&self.cookies, name)
    }

    /// The form fields of a urlencoded body (last value wins).
    pub fn form(&self) -> Form {
        Form(
            url::form_urlencoded::parse(&self.body)
                .into_owned()
                .collect(),
        )
    }

    /// Query string parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn is_post(&self) -> bool {
        self.method == Method::Post
    }

    /// True for requests that may change something: anything but GET and
    /// HEAD (POST everywhere; PUT, PATCH and DELETE on the write API).
    pub fn is_write(&self) -> bool {
        !matches!(self.method, Method::Get | Method::Head)
    }

    /// True if the body is a browser form (what a page on any site can
    /// make a browser send, with its cookies, without asking first).
    pub fn is_form(&self) -> bool {
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/plain",
        ]
        .iter()
        .any(|t| self.content_type.starts_with(t))
    }
}

/// Decoded form fields.
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// The last value of `name`, or "".
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    /// True if checkbox `name` was sent checked.
    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name).as_str(), "1" | "on" | "true" | "yes")
    }
}

/// A response under construction.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub ctype: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    /// `Cache-Control`; `no-store` unless set.
    pub cache: &'static str,
    /// A live viewer admitted by [`crate::live`]: it takes over the socket
    /// on its own thread instead of this response being sent.
    pub handoff: Option<crate::live::Ticket>,
    /// A body read while it is sent (chunked; `body` is then unused): the
    /// CSV exports, written as they are read from the database.
    pub stream: Option<Box<StreamBody>>,
    /// An upload accepted by the gate and the route's handler: called with
    /// the request body (not read yet) and its length; its answer is sent.
    pub upload: Option<Upload>,
}

/// Takes an upload's body ([`Resp::upload`]): `(body, content_length)`.
pub struct Upload(pub Box<TakeUpload>);

/// What an [`Upload`] runs: `(body, content_length)` → the answer.
pub type TakeUpload = dyn FnOnce(&mut dyn Read, u64) -> Result<Resp, HttpError> + Send;

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upload")
    }
}

/// A response body produced while it is sent ([`Resp::stream`]).
pub struct StreamBody(pub Box<dyn Read + Send>);

impl std::fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamBody")
    }
}

impl Resp {
    pub fn new(status: u16, ctype: &'static str, body: Vec<u8>) -> Resp {
        Resp {
            status,
            ctype,
            body,
            headers: Vec::new(),
            cache: "no-store",
            handoff: None,
            stream: None,
            upload: None,
        }
    }
    pub fn html(status: u16, body: String) -> Resp {
        Resp::new(status, "text/html; charset=utf-8", body.into_bytes())
    }
    pub fn json(v: &serde_json::Value) -> Resp {
        Resp::new(
            200,
            "application/json",
            serde_json::to_vec_pretty(v).unwrap_or_default(),
        )
    }
    /// `303 See Other` to a local path.
    pub fn redirect(location: &str) -> Resp {
        let mut r = Resp::new(
            303,
            "text/plain; charset=utf-8",
            format!("See {location}\n").into_bytes(),
        );
        r.headers.push(("Location", location.to_owned()));
        r
    }
    pub fn with_header(mut self, name: &'static str, value: String) -> Resp {
        self.headers.push((name, value));
        self
    }
    fn is_html(&self) -> bool {
        self.ctype.starts_with("text/html")
    }
}

/// Who is asking.
#[derive(Debug, Default)]
pub struct Who {
    /// The session cookie's token and its session.
    pub session: Option<(String, auth::Session)>,
    /// The API token presented, if valid.
    pub token: Option<auth::TokenEntry>,
}

/// Reads the request line, headers and (capped) body.
fn read_request(rq: &mut Request, path: &str, query: &str, upload: bool) -> Result<Req, HttpError> {
    let h = |name: &'static str| {
        rq.headers()
            .iter()
            .find(|x| x.field.equiv(name))
            .map(|x| x.value.as_str().to_owned())
    };
    let mut req = Req {
        method: rq.method().clone(),
        path: path.to_owned(),
        query: query.to_owned(),
        cookies: h("Cookie").unwrap_or_default(),
        host: h("Host").unwrap_or_default(),
        origin: h("Origin"),
        sec_fetch_site: h("Sec-Fetch-Site"),
        authorization: h("Authorization"),
        csrf_header: h("X-CSRF-Token"),
        content_type: h("Content-Type").unwrap_or_default().to_ascii_lowercase(),
        remote: rq
            .remote_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        body: Vec::new(),
    };
    // PUT and PATCH carry a body on the write API (`Route::takes_json`);
    // elsewhere the gate refuses them (405) after this read.
    if matches!(req.method, Method::Post | Method::Put | Method::Patch) {
        // Bodies up to MAX_BODY_BYTES with a Content-Length are already in
        // memory (read on the connection's thread, see `super::limits`), so
        // the reads below never wait for a slow client. Chunked bodies and
        // `Expect: 100-continue` would be read here, by a worker: refused
        // (browsers send neither with a form).
        if h("Transfer-Encoding").is_some() {
            return Err(HttpError::new(411, "send the body with a Content-Length"));
        }
        if h("Expect").is_some() {
            return Err(HttpError::new(417, "Expect is not supported"));
        }
        if upload {
            // A file for the card: read later by the route's handler, once
            // the gate has let the request in ([`Resp::upload`]).
            if rq.body_length().is_none() {
                return Err(HttpError::new(411, "send the file with a Content-Length"));
            }
            return Ok(req);
        }
        if rq.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(HttpError::new(413, "request body too large"));
        }
        let mut body = Vec::new();
        rq.as_reader()
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|_| HttpError::new(400, "could not read the request body"))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(HttpError::new(413, "request body too large"));
        }
        req.body = body;
    }
    Ok(req)
}

/// Answers one request; see the module docs.
pub fn serve(ctx: &WebCtx, db: &mut Option<rusqlite::Connection>, mut rq: Request) {
    let t = Instant::now();
    let url = rq.url().to_owned();
    let (path, query) = routes::split_query(&url);
    let route = Route::decode(path);
    let cfg = ctx.config.read().expect("config lock").clone();
    let http11 = *rq.http_version() >= tiny_http::HTTPVersion(1, 1);
    let upload = route.takes_upload() && *rq.method() == Method::Post;
    let resp = match read_request(&mut rq, path, query, upload) {
        Ok(req) => match ctx
            .gui
            .names
            .check(&req.host, http11, &cfg.web_allowed_hosts)
        {
            Err(r) => {
                tracing::debug!("refused Host {:?} from {}", req.host, req.remote);
                *r
            }
            Ok(()) => answer(ctx, db, &cfg, &route, &req),
        },
        Err(e) => error_response(ctx, &cfg, &route, &Who::default(), e),
    };
    let method = rq.method().clone();
    tracing::debug!("{method} {route:?} {} {:?}", resp.status, t.elapsed());
    let mut resp = resp;
    if let Some(take) = resp.upload.take() {
        let len = rq.body_length().unwrap_or(0) as u64;
        resp = match (take.0)(rq.as_reader(), len) {
            Ok(r) => r,
            Err(e) => error_response(ctx, &cfg, &route, &Who::default(), e),
        };
        tracing::debug!(
            "{method} {route:?} upload {} {:?}",
            resp.status,
            t.elapsed()
        );
    }
    if let Some(ticket) = resp.handoff.take() {
        // Live view: the socket leaves this worker (see `crate::live`).
        ticket.start(live_page::HttpSink::new(rq));
        return;
    }
    let mut headers = vec![
        header("Content-Type", resp.ctype),
        header("Cache-Control", resp.cache),
    ];
    headers.extend(SECURITY_HEADERS.iter().map(|(k, v)| header(k, v)));
    if resp.ctype.starts_with("text/html") {
        headers.push(header("Content-Security-Policy", CSP));
    }
    headers.extend(resp.headers.iter().map(|(k, v)| header(k, v)));
    let sent = match resp.stream.map(|b| b.0) {
        // No length: chunked (HTTP/1.1), or until the connection closes.
        // Sent from a thread of its own: a slow client must not hold a
        // worker (`export` caps how many run).
        Some(body) => {
            let out = Response::new(StatusCode(resp.status), headers, body, None, None);
            let sent = std::thread::Builder::new()
                .name("web-download".into())
                .spawn(move || {
                    if let Err(e) = rq.respond(out) {
                        tracing::debug!("download not delivered: {e}");
                    }
                });
            if let Err(e) = sent {
                tracing::error!("starting a download thread: {e}");
            }
            return;
        }
        None => {
            let mut out = Response::from_data(resp.body).with_status_code(StatusCode(resp.status));
            for h in headers {
                out = out.with_header(h);
            }
            rq.respond(out)
        }
    };
    if let Err(e) = sent {
        tracing::debug!("response not delivered: {e}");
    }
}

/// The answer to a request for this box: who asks, the gate, the handler.
fn answer(
    ctx: &WebCtx,
    db: &mut Option<rusqlite::Connection>,
    cfg: &Config,
    route: &Route,
    req: &Req,
) -> Resp {
    let who = identify(ctx, cfg, req);
    match gate(ctx, db, cfg, route, req, &who) {
        Ok(mut r) => {
            // Sliding expiry: renew the cookie with every page.
            if let (Some((tok, _)), true) = (&who.session, r.is_html()) {
                r.headers.push((
                    "Set-Cookie",
                    auth::set_cookie(
                        auth::SESSION_COOKIE,
                        tok,
                        i64::from(cfg.web_session_hours) * 3600,
                    ),
                ));
            }
            r
        }
        Err(e) => error_response(ctx, cfg, route, &who, e),
    }
}

fn header(name: &str, value: &str) -> Header {
    // Values are ours (never raw user input with CR/LF): cookie tokens are
    // base64url and locations are percent-encoded paths.
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|_| Header::from_bytes("X-Invalid-Header", "1").expect("valid header"))
}

/// Finds the session (cookie) and API token (bearer) of a request.
fn identify(ctx: &WebCtx, cfg: &Config, req: &Req) -> Who {
    let mut who = Who::default();
    if let (Some(hash), Some(tok)) = (
        cfg.admin_password_hash.as_deref(),
        req.cookie(auth::SESSION_COOKIE),
    ) {
        let life = i64::from(cfg.web_session_hours) * 3_600_000;
        if let Some(s) = ctx.gui.sessions.get(tok, life, hash) {
            who.session = Some((tok.to_owned(), s));
        }
    }
    if let Some(b) = req
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
    {
        who.token = ctx.gui.tokens.verify(b.trim());
    }
    who
}

/// True if a POST came from a page of this site (or from a non-browser
/// client that sends neither header). Pages use `Referrer-Policy:
/// same-origin`: with `no-referrer`, browsers send `Origin: null` even for
/// same-origin form posts.
fn same_origin(req: &Req) -> bool {
    if let Some(site) = &req.sec_fetch_site {
        if !matches!(site.as_str(), "same-origin" | "none") {
            return false;
        }
    }
    match &req.origin {
        None => true,
        Some(o) if o == "null" => false,
        Some(o) => {
            let host = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or("");
            !req.host.is_empty() && host.eq_ignore_ascii_case(&req.host)
        }
    }
}

/// Access rules, CSRF, then the handler; see the module docs.
fn gate(
    ctx: &WebCtx,
    db: &mut Option<rusqlite::Connection>,
    cfg: &Config,
    route: &Route,
    req: &Req,
    who: &Who,
) -> Result<Resp, HttpError> {
    let set_up = cfg.admin_password_hash.is_some();
    // The write API also takes PUT, PATCH and DELETE (`super::write_api`).
    let json_write =
        route.takes_json() && matches!(req.method, Method::Put | Method::Patch | Method::Delete);
    if req.method != Method::Get
        && req.method != Method::Head
        && req.method != Method::Post
        && !json_write
    {
        return Err(HttpError::new(405, "method not allowed"));
    }
    if req.is_write() {
        if !same_origin(req) {
            return Err(HttpError::new(403, "cross-site request refused"));
        }
        // An upload's type is checked by its handler, after the login; so
        // is the write API's JSON.
        if !route.takes_upload()
            && !route.takes_json()
            && !req
                .content_type
                .starts_with("application/x-www-form-urlencoded")
        {
            return Err(HttpError::new(
                415,
                "send forms as application/x-www-form-urlencoded",
            ));
        }
    }
    match route {
        Route::Static(f) => return Ok(static_file(f)),
        Route::Healthz => {
            // Error details for logged-in callers only (issue 14).
            let detail = who.session.is_some() || who.token.is_some();
            return get_only(req).map(|_| Resp::json(&api::healthz(ctx, detail)));
        }
        Route::NotFound => return Err(HttpError::new(404, "no such page")),
        Route::Setup if set_up => {
            return Err(HttpError::new(
                404,
                "this box is already set up; log in instead",
            ))
        }
        Route::Setup => return pages::setup(ctx, cfg, req),
        Route::Login if !set_up => return Ok(Resp::redirect("/setup")),
        Route::Login => return pages::login(ctx, cfg, req, who),
        _ => {}
    }
    // The write API's writes need admin, also where its GET needs `read`.
    let access = if route.takes_json() && req.is_write() {
        Access::Admin
    } else {
        route.access()
    };
    let token_ok = match (access.token_scope(), &who.token) {
        (Some(needed), Some(t)) => t.scope.allows(needed),
        _ => false,
    };
    let allowed = match access {
        Access::Public => true,
        Access::PublicStatus => cfg.web_public_status || who.session.is_some() || token_ok,
        Access::Api | Access::Live | Access::Admin => who.session.is_some() || token_ok,
        Access::Page => who.session.is_some(),
    };
    if !allowed {
        if let (Some(t), Some(needed), true) = (&who.token, access.token_scope(), route.is_api()) {
            return Err(HttpError::new(
                403,
                format!(
                    "this API token has the {} scope ({}); this needs {}",
                    t.scope.as_str(),
                    t.scope.describe(),
                    if needed == auth::Scope::Admin {
                        "an admin token".to_owned()
                    } else {
                        format!("a {} or admin token", needed.as_str())
                    }
                ),
            ));
        }
        if route.is_api() {
            let msg = if set_up {
                "authentication required: log in, or send Authorization: Bearer <API token>"
            } else {
                "not set up yet: open /setup in a browser to set the admin password"
            };
            return Err(HttpError::new(401, msg));
        }
        if !set_up {
            return Ok(Resp::redirect("/setup"));
        }
        if req.is_post() {
            return Ok(Resp::redirect("/login?msg=expired"));
        }
        let next = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        let enc: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        return Ok(Resp::redirect(&format!("/login?next={enc}")));
    }
    // An admin API token is not sent by a browser on its own (unlike a
    // cookie), so an upload made with one needs no CSRF token.
    let token_upload = route.takes_upload() && token_ok && who.session.is_none();
    // The same for the write API's JSON, unless the body is a form: that a
    // page on another site can make a browser send, and it is refused
    // below as a form without a session (a bearer token is never sent by a
    // browser on its own, but a form has no business here either).
    let token_json = route.takes_json() && token_ok && who.session.is_none() && !req.is_form();
    if req.is_write() && !token_upload && !token_json {
        // Every state-changing request carries the session's CSRF token.
        let Some((_, s)) = &who.session else {
            if route.takes_json() && who.token.is_some() {
                return Err(HttpError::new(
                    403,
                    "API tokens write with JSON (Content-Type: application/json); \
                     forms need a login session",
                ));
            }
            return Err(HttpError::new(403, "forms need a login session"));
        };
        let sent = req
            .csrf_header
            .clone()
            .unwrap_or_else(|| req.form().get("csrf"));
        if !auth::ct_eq(sent.as_bytes(), s.csrf.as_bytes()) {
            return Err(HttpError::new(
                403,
                "the form was out of date or did not come from this site; reload the page and try again",
            ));
        }
    }
    let session = who.session.as_ref().map(|(t, s)| (t.as_str(), s));
    match route {
        Route::ApiStreams if req.is_write() => write_api::handle(ctx, cfg, route, req),
        Route::ApiStream(_) | Route::ApiStreamCheck(_) | Route::ApiSettings => {
            write_api::handle(ctx, cfg, route, req)
        }
        Route::ApiStatus => {
            get_only(req).map(|_| Resp::new(200, "application/json", api::status(ctx)))
        }
        Route::ApiOpenApi => {
            get_only(req).map(|_| Resp::new(200, "application/json", api::OPENAPI_JSON.to_vec()))
        }
        Route::ApiStreams => {
            get_only(req)?;
            let conn = open_db(ctx, db).ok();
            Ok(Resp::json(&api::streams(ctx, conn)))
        }
        Route::Metrics => get_only(req).map(|_| {
            let mut text = metrics::render(ctx);
            // Availability gauges need the database; without it, the rest.
            if let Ok(conn) = open_db(ctx, db) {
                let now = ctx.clock.now_ms();
                match availability::all_streams(ctx, conn, now) {
                    Ok(f) => availability::write_metrics(&mut text, &f, now),
                    Err(e) => tracing::error!("availability: {e}"),
                }
            }
            Resp::new(200, metrics::CONTENT_TYPE, text.into_bytes())
        }),
        Route::ApiAvailability(name) => {
            get_only(req)?;
            let conn = open_db(ctx, db)?;
            Ok(Resp::json(&availability::endpoint(
                ctx, conn, name, &req.query,
            )?))
        }
        Route::ApiHistoryCsv(name) => {
            get_only(req)?;
            export::download(ctx, Some(name), &req.query)
        }
        Route::ApiAllHistoryCsv => {
            get_only(req)?;
            export::download(ctx, None, &req.query)
        }
        Route::ApiStreamHistory(name) => {
            get_only(req)?;
            let conn = open_db(ctx, db)?;
            Ok(Resp::json(&api::history(ctx, conn, name, &req.query)?))
        }
        Route::Evidence(name) => {
            get_only(req)?;
            let known = cfg.streams.iter().any(|s| s.name == *name);
            let jpeg = known
                .then(|| {
                    std::fs::read(crate::evidence::jpeg_path(&ctx.gui.evidence_dir, name)).ok()
                })
                .flatten()
                .ok_or_else(|| {
                    HttpError::new(404, "no picture kept from before this stream went down")
                })?;
            Ok(Resp::new(200, "image/jpeg", jpeg))
        }
        Route::Live | Route::ApiLive | Route::LiveStream(_) | Route::LiveThumb(_) => {
            live_page::handle(ctx, cfg, route, req, session.map(|(_, s)| s))
        }
        Route::System | Route::SystemDiagnostics => {
            system_page::handle(ctx, cfg, route, req, session.map(|(_, s)| s))
        }
        Route::SystemBackup | Route::SystemRestore => backup::handle(ctx, cfg, route, req),
        Route::SystemUpdate | Route::SystemUpdateReboot | Route::SystemUpdateDismiss => {
            update::handle(ctx, route, req)
        }
        _ => pages::page(ctx, db, cfg, route, req, session),
    }
}

/// 405 unless GET/HEAD.
pub fn get_only(req: &Req) -> Result<(), HttpError> {
    if req.is_post() {
        Err(HttpError::new(405, "method not allowed"))
    } else {
        Ok(())
    }
}

/// This worker's read-only database connection, opened on first use.
pub fn open_db<'a>(
    ctx: &WebCtx,
    db: &'a mut Option<rusqlite::Connection>,
) -> Result<&'a rusqlite::Connection, HttpError> {
    if db.is_none() {
        *db = Some(crate::store::open_read_only(&ctx.db_path).map_err(|e| {
            tracing::error!("web: {e:#}");
            HttpError::new(503, "database not available")
        })?);
    }
    Ok(db.as_ref().expect("opened above"))
}

fn static_file(name: &str) -> Resp {
    let (ctype, body): (&'static str, &'static str) = match name {
        "app.css" => ("text/css; charset=utf-8", include_str!("static/app.css")),
        "app.js" => (
            "text/javascript; charset=utf-8",
            include_str!("static/app.js"),
        ),
        "icon.svg" => ("image/svg+xml", include_str!("static/icon.svg")),
        "live.js" => (
            "text/javascript; charset=utf-8",
            include_str!("static/live.js"),
        ),
        "live.css" => ("text/css; charset=utf-8", include_str!("static/live.css")),
        _ => ("text/plain; charset=utf-8", ""),
    };
    let mut r = Resp::new(200, ctype, body.as_bytes().to_vec());
    // Pages link them with ?v=<version>, so a day of caching is safe.
    r.cache = "public, max-age=86400";
    r
}

/// Turns an error into JSON (API routes) or an HTML page.
fn error_response(ctx: &WebCtx, cfg: &Config, route: &Route, who: &Who, e: HttpError) -> Resp {
    let mut r = if route.is_api() {
        let mut r = Resp::new(
            e.status,
            "application/json",
            serde_json::to_vec(&serde_json::json!({ "error": e.public_msg })).unwrap_or_default(),
        );
        if e.status == 401 {
            r.headers
                .push(("WWW-Authenticate", "Bearer realm=\"streampulse\"".into()));
        }
        r
    } else {
        pages::error_page(ctx, cfg, who.session.as_ref().map(|(_, s)| s), &e)
    };
    if e.status == 405 {
        r.headers.push(("Allow", route.allow().into()));
    }
    r
}
