//! Installing an update (System page; the same calls with an `admin` API
//! token for fleets), over [`crate::system::update`]:
//!
//! * `GET /system/update`: JSON: whether updates are possible here, the
//!   install's progress, the rollback note, what runs now;
//! * `POST /system/update[?reboot=0]`: a RAUC bundle as the body
//!   (`Content-Type: application/octet-stream`), streamed to the data
//!   partition (never held in memory), then installed by RAUC, which checks
//!   its signature and compatible before it writes the other slot; the box
//!   reboots into it when it is done unless `reboot=0`. Answers `202` once
//!   the bundle is stored and the install started; poll the GET for the rest;
//! * `POST /system/update/reboot`, `POST /system/update/dismiss` (forms):
//!   reboot into an install made with `reboot=0`; forget the rollback note.

use super::handler::{Req, Resp, Upload};
use super::routes::Route;
use super::{HttpError, WebCtx};

/// Answers the [`Route::SystemUpdate`] family.
pub fn handle(ctx: &WebCtx, route: &Route, req: &Req) -> Result<Resp, HttpError> {
    let updates = ctx.gui.updates.clone();
    match route {
        Route::SystemUpdate if !req.is_post() => Ok(Resp::json(&status(ctx))),
        Route::SystemUpdate => {
            if !req.content_type.starts_with("application/octet-stream") {
                return Err(HttpError::new(
                    415,
                    "send the bundle as the body, Content-Type: application/octet-stream",
                ));
            }
            let reboot = !matches!(
                req.query_param("reboot").as_deref(),
                Some("0" | "false" | "no")
            );
            let clock = ctx.clock.clone();
            updates.begin("upload", clock.now_ms()).map_err(|e| {
                let status = if updates.unavailable().is_some() {
                    503
                } else {
                    409
                };
                HttpError::new(status, e)
            })?;
            Ok(Resp {
                upload: Some(Upload(Box::new(move |body, len| {
                    updates
                        .receive(body, len, clock.now_ms())
                        .map_err(|e| HttpError::new(400, format!("not installed: {e}")))?;
                    tracing::warn!(
                        "update: received a bundle of {} MiB; installing it",
                        len >> 20
                    );
                    updates.install(reboot, clock);
                    let mut r = Resp::json(&serde_json::json!({
                        "received_bytes": len,
                        "reboot": reboot,
                        "progress": updates.progress(),
                    }));
                    r.status = 202;
                    Ok(r)
                }))),
                ..Resp::new(202, "application/json", Vec::new())
            })
        }
        Route::SystemUpdateReboot => {
            if !req.is_post() {
                return Err(HttpError::new(
                    405,
                    "POST to reboot into the installed update",
                ));
            }
            if updates.progress().phase != crate::system::update::Phase::Installed {
                return Err(HttpError::new(
                    409,
                    "no installed update waits for a reboot",
                ));
            }
            updates.request_reboot().map_err(|e| {
                tracing::error!("update: {e:#}");
                HttpError::new(500, format!("could not ask for the reboot: {e:#}"))
            })?;
            tracing::warn!("update: reboot into the installed update asked for on the System page");
            Ok(Resp::redirect("/system?msg=rebooting"))
        }
        Route::SystemUpdateDismiss => {
            if !req.is_post() {
                return Err(HttpError::new(405, "POST to dismiss the note"));
            }
            updates.dismiss_rolled_back().map_err(|e| {
                tracing::error!("update: {e:#}");
                HttpError::new(500, format!("{e:#}"))
            })?;
            Ok(Resp::redirect("/system"))
        }
        _ => Err(HttpError::new(404, "no such page")),
    }
}

/// `GET /system/update`'s answer.
pub fn status(ctx: &WebCtx) -> serde_json::Value {
    let u = &ctx.gui.updates;
    serde_json::json!({
        "available": u.unavailable().is_none(),
        "unavailable_reason": u.unavailable(),
        "progress": u.progress(),
        "rolled_back": u.rolled_back(),
        "running": u.running(),
    })
}
