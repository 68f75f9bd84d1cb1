//! Changing the admin password, the first form of the access page: the
//! current password (under the login's lockout), the new one twice, and
//! afterwards every other session logged out. Also the new-password rules
//! the setup form shares.

use super::access;
use super::form::{Field, Filled, FormPage};
use super::login::lock_end;
use super::LoggedIn;
use crate::config::edit::{self, EditError, FieldErrors, Yaml};
use crate::credentials;
use crate::web::handler::{Form, Resp};
use crate::web::{auth, HttpError};

/// Adds why `pw` (typed again as `pw2`) cannot be the new password, next
/// to field `name`, or to `name2` when the two differ.
pub(super) fn check_new_password(
    errs: &mut FieldErrors,
    pw: &str,
    pw2: &str,
    name: &'static str,
    name2: &'static str,
) {
    if let Err(m) = credentials::check_new_password(pw, pw2) {
        let field = if m.contains("differ") { name2 } else { name };
        errs.add(field, m);
    }
}

/// The hash to store for `pw`.
pub(super) fn hash_password(pw: &str) -> Result<String, HttpError> {
    credentials::hash_password(pw).map_err(|e| {
        tracing::error!("{e:#}");
        HttpError::new(500, "the password could not be hashed")
    })
}

/// The password form as typed.
#[derive(Default)]
pub(super) struct PasswordForm {
    current: String,
    new: String,
    new2: String,
    /// The new password's hash, once it passed the checks.
    hash: String,
}

/// The password form on the access page (`action=password`).
pub(super) struct PasswordChange<'a> {
    pub v: LoggedIn<'a>,
}

impl FormPage for PasswordChange<'_> {
    type Form = PasswordForm;
    /// The hash now in the file.
    type Saved = String;

    fn initial(&self) -> PasswordForm {
        PasswordForm::default()
    }

    fn read(&self, p: &Form) -> PasswordForm {
        PasswordForm {
            current: p.get("current_password"),
            new: p.get("new_password"),
            new2: p.get("new_password2"),
            hash: String::new(),
        }
    }

    fn check(&self, f: &mut PasswordForm, errs: &mut FieldErrors) -> Result<(), HttpError> {
        let LoggedIn { ctx, cfg, req, .. } = self.v;
        let stored = cfg.admin_password_hash.clone().unwrap_or_default();
        if let Err(wait) = ctx.gui.limiter.check(req.remote) {
            errs.add(
                "current_password",
                format!(
                    "too many wrong passwords; try again after {}",
                    lock_end(ctx, cfg, wait)
                ),
            );
        } else if !credentials::verify_password(&f.current, &stored) {
            ctx.gui.limiter.failed(req.remote);
            errs.add("current_password", "this is not the current password");
        } else {
            check_new_password(errs, &f.new, &f.new2, "new_password", "new_password2");
            if errs.is_empty() {
                f.hash = hash_password(&f.new)?;
            }
        }
        Ok(())
    }

    fn apply(&self, t: &mut Yaml, f: &PasswordForm) -> Result<String, EditError> {
        edit::set_admin_hash(t, &f.hash);
        Ok(f.hash.clone())
    }

    fn done(&self, new_hash: String) -> Resp {
        let LoggedIn { ctx, cfg, req, .. } = self.v;
        // Everyone else is logged out; this browser stays in.
        ctx.gui.sessions.clear();
        let life = i64::from(cfg.web_session_hours) * 3_600_000;
        let (tok, _) = ctx.gui.sessions.create(life, &new_hash);
        tracing::info!("admin password changed from {}", req.remote);
        Resp::redirect("/settings/access?msg=password").with_header(
            "Set-Cookie",
            auth::set_cookie(auth::SESSION_COOKIE, &tok, life / 1000),
        )
    }

    fn fields(&self, _: PasswordForm) -> Vec<Field> {
        vec![
            Field::password("current_password", "Current password", "current-password"),
            Field::password("new_password", "New password", "new-password").hint(format!(
                "At least {} characters.",
                credentials::MIN_PASSWORD_CHARS
            )),
            Field::password("new_password2", "New password again", "new-password"),
        ]
    }

    fn page(&self, form: Filled) -> Result<Resp, HttpError> {
        access::show(self.v, form, access::TokenResult::default())
    }
}
