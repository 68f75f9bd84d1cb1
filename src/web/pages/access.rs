//! The access page (`/settings/access`): the admin password form (see
//! [`super::password`]) and the API tokens: listing, creating (the token is
//! shown once) and revoking them.

use askama::Template;

use super::form::{self, Field, Filled};
use super::format::fmt_time;
use super::password::PasswordChange;
use super::{flash_for, render, Chrome, LoggedIn};
use crate::web::handler::Resp;
use crate::web::{auth, HttpError};

/// An API token as listed.
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created: String,
    /// `read`, `live` or `admin`.
    pub scope: &'static str,
    /// What the scope opens, in words.
    pub scope_text: &'static str,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    c: Chrome,
    fields: Vec<Field>,
    general_error: Option<String>,
    tokens: Vec<TokenView>,
    token_error: Option<String>,
    new_token: Option<String>,
    new_token_name: String,
    /// The new token's scope, as listed.
    new_token_scope: &'static str,
    /// (name, description) of every scope, for the creation form.
    scopes: Vec<(&'static str, &'static str)>,
    public_status: bool,
    host: String,
}

/// What a token action did, for the page shown after it.
#[derive(Default)]
pub(super) struct TokenResult {
    /// Why the action failed (a 400).
    error: Option<String>,
    /// A token just created (shown once), its name and scope.
    new_token: Option<String>,
    new_token_name: String,
    new_token_scope: &'static str,
}

/// `/settings/access`: a POST's `action` is `password`, `create_token` or
/// `revoke`.
pub(super) fn access(v: LoggedIn) -> Result<Resp, HttpError> {
    let password = PasswordChange { v };
    if !v.req.is_post() {
        return show(v, form::blank(&password), TokenResult::default());
    }
    let ctx = v.ctx;
    let p = v.req.form();
    let mut result = TokenResult::default();
    match p.get("action").as_str() {
        "password" => return form::run(ctx, v.req, &password),
        "create_token" => {
            let name = p.get("token_name").trim().to_owned();
            // No choice sent (an older page): the least a token can open.
            let scope = match p.get("scope").as_str() {
                "" => Some(auth::Scope::Read),
                s => auth::Scope::parse(s),
            };
            if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
                result.error = Some("give the token a name (1 to 64 characters)".into());
            } else if let Some(scope) = scope {
                match ctx.gui.tokens.create(&name, scope, ctx.clock.now_ms()) {
                    Ok(t) => {
                        tracing::info!("API token {name:?} ({}) created", scope.as_str());
                        result.new_token = Some(t);
                        result.new_token_name = name;
                        result.new_token_scope = scope.as_str();
                    }
                    Err(e) => result.error = Some(format!("{e:#}")),
                }
            } else {
                result.error = Some("choose what the token may open: read, live or admin".into());
            }
        }
        "revoke" => {
            let id = p.get("id");
            match ctx.gui.tokens.revoke(&id) {
                Ok(true) => {
                    tracing::info!("API token {id} revoked");
                    return Ok(Resp::redirect("/settings/access?msg=revoked"));
                }
                Ok(false) => result.error = Some("no such token".into()),
                Err(e) => result.error = Some(format!("{e:#}")),
            }
        }
        _ => return Err(HttpError::new(400, "unknown action")),
    }
    show(v, form::blank(&password), result)
}

/// The access page with the password form `form` and what a token action
/// did; a 400 if either went wrong.
pub(super) fn show(v: LoggedIn, form: Filled, result: TokenResult) -> Result<Resp, HttpError> {
    let (ctx, cfg, req) = (v.ctx, v.cfg, v.req);
    let tz = cfg.tz();
    let tokens = ctx
        .gui
        .tokens
        .list()
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            created: if t.created_ms > 0 {
                fmt_time(t.created_ms, &tz)
            } else {
                "—".into()
            },
            scope: t.scope.as_str(),
            scope_text: t.scope.describe(),
        })
        .collect();
    let mut c = v.chrome("Password & API tokens", "settings");
    // After a post, the page says what the post did instead.
    if !req.is_post() {
        c.flash = flash_for(req.query_param("msg"));
    }
    let status = if form.status != 200 || result.error.is_some() {
        400
    } else {
        200
    };
    let page = AccessPage {
        c,
        fields: form.fields,
        general_error: form.general_error,
        tokens,
        token_error: result.error,
        new_token: result.new_token,
        new_token_name: result.new_token_name,
        new_token_scope: result.new_token_scope,
        scopes: auth::Scope::ALL
            .iter()
            .map(|s| (s.as_str(), s.describe()))
            .collect(),
        public_status: cfg.web_public_status,
        host: if req.host.is_empty() {
            "<device>:8000".into()
        } else {
            req.host.clone()
        },
    };
    render(status, &page)
}
