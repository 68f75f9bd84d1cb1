//! Backup download and restore upload (System page; the same calls with an
//! `admin` API token for fleets):
//!
//! * `GET /system/backup.spbackup`: a backup made now
//!   ([`crate::system::backup`]), streamed from an unlinked 0600 file;
//! * `POST /system/restore`: a backup as the body
//!   (`Content-Type: application/octet-stream`), streamed to the data
//!   partition (never held in memory), checked, staged, and applied by a
//!   restart ([`crate::system::restore`]). Answers JSON; one at a time.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};

use super::handler::{get_only, Req, Resp, StreamBody, Upload};
use super::routes::Route;
use super::{HttpError, WebCtx};
use crate::config::Config;
use crate::system::{backup, restore};

/// Largest backup accepted: far above a year of 100 cameras' history.
pub const MAX_BACKUP_BYTES: u64 = 4 << 30;

/// Longest wait for the recorder to write what it holds before a backup.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Set while an upload or a backup runs: they are large, and one at a time
/// is plenty for an admin action.
static BUSY: AtomicBool = AtomicBool::new(false);

/// Clears [`BUSY`] when the work ends, however it ends.
struct Busy;

impl Busy {
    fn take() -> Result<Busy, HttpError> {
        if BUSY.swap(true, Ordering::AcqRel) {
            return Err(HttpError::new(
                409,
                "a backup or restore is already running; try again when it is done",
            ));
        }
        Ok(Busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::Release);
    }
}

/// Answers [`Route::SystemBackup`] and [`Route::SystemRestore`].
pub fn handle(ctx: &WebCtx, cfg: &Config, route: &Route, req: &Req) -> Result<Resp, HttpError> {
    let data_dir = ctx
        .db_path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    match route {
        Route::SystemBackup => {
            get_only(req)?;
            let _busy = Busy::take()?;
            // Heartbeats of the open 10-minute window are still in memory:
            // written first, so the backup holds history up to now.
            if let Some(m) = &ctx.monitor {
                if !m.recorder.flush(FLUSH_TIMEOUT) {
                    tracing::warn!(
                        "backup: the recorder did not write its unwritten heartbeats within {FLUSH_TIMEOUT:?}; the backup lacks them"
                    );
                }
            }
            let now = ctx.clock.now_ms();
            let file = backup::create(
                &ctx.db_path,
                ctx.gui.config_file.path(),
                &data_dir,
                &cfg.device_name,
                now,
            )
            .map_err(|e| {
                tracing::error!("backup: {e:#}");
                HttpError::new(500, format!("could not make the backup: {e:#}"))
            })?;
            let stamp: String = crate::report::iso(now, &cfg.tz())
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            let device: String = cfg
                .device_name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let mut r = Resp::new(200, "application/vnd.sqlite3", Vec::new());
            r.stream = Some(Box::new(StreamBody(Box::new(file))));
            tracing::info!("backup: made one for a download");
            Ok(r.with_header(
                "Content-Disposition",
                format!(
                    "attachment; filename=\"streampulse-backup-{device}-{stamp}.{}\"",
                    backup::EXTENSION
                ),
            ))
        }
        Route::SystemRestore => {
            if !req.is_post() {
                return Err(HttpError::new(405, "POST the backup file"));
            }
            if !req.content_type.starts_with("application/octet-stream") {
                return Err(HttpError::new(
                    415,
                    "send the file as the body, Content-Type: application/octet-stream",
                ));
            }
            let busy = Busy::take()?;
            let restart = ctx.gui.restart.clone();
            Ok(Resp {
                upload: Some(Upload(Box::new(move |body, len| {
                    let _busy = busy;
                    let b = receive(body, len, &data_dir)?;
                    tracing::warn!(
                        "restore: staged the {}; restarting to apply it",
                        b.describe()
                    );
                    restart.notify_one();
                    Ok(Resp::json(&serde_json::json!({
                        "restored": b.describe(),
                        "device_name": b.device_name,
                        "version": b.version,
                        "created_ms": b.created_ms,
                        "restarting": true,
                    })))
                }))),
                ..Resp::new(202, "application/json", Vec::new())
            })
        }
        _ => Err(HttpError::new(404, "no such page")),
    }
}

/// Streams `len` bytes of `body` to a 0600 file in `data_dir`, then checks
/// and stages it. Nothing of the running box changes on any error.
fn receive(
    body: &mut dyn Read,
    len: u64,
    data_dir: &std::path::Path,
) -> Result<backup::Backup, HttpError> {
    if len > MAX_BACKUP_BYTES {
        return Err(HttpError::new(413, "that file is larger than any backup"));
    }
    if let Ok(u) = crate::store::disk::usage(data_dir) {
        if u.free_bytes < len + (16 << 20) {
            return Err(HttpError::new(
                507,
                format!(
                    "not enough free space on the data partition: {} MiB free, the backup is {} MiB",
                    u.free_bytes >> 20,
                    len >> 20
                ),
            ));
        }
    }
    let upload = data_dir.join(".restore-upload.tmp");
    let _ = std::fs::remove_file(&upload);
    let mut write = || -> std::io::Result<u64> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&upload)?;
        let n = std::io::copy(&mut body.take(len), &mut f)?;
        f.flush()?;
        f.sync_all()?;
        Ok(n)
    };
    match write() {
        Ok(n) if n == len => {}
        Ok(n) => {
            let _ = std::fs::remove_file(&upload);
            return Err(HttpError::new(
                400,
                format!("the upload ended after {n} of {len} bytes"),
            ));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&upload);
            tracing::error!("restore: receiving the upload: {e}");
            return Err(HttpError::new(
                500,
                format!("could not store the upload: {e}"),
            ));
        }
    }
    restore::stage(&upload, data_dir).map_err(|e| {
        tracing::warn!("restore: refused an upload: {e:#}");
        HttpError::new(400, format!("not restored: {e:#}"))
    })
}
