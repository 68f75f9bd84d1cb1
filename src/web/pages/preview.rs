//! "Check now" (`/streams/<name>/preview`): one probe on demand with a
//! picture, the picture itself (`frame.jpg`), and how a kept picture is
//! captioned (the stream page shows the last one too).

use askama::Template;

use super::format::{fmt_time, stages_list};
use super::{render, Chrome, LoggedIn};
use crate::web::check::{CheckError, CheckResult};
use crate::web::handler::Resp;
use crate::web::routes::stream_path;
use crate::web::{HttpError, WebCtx};

/// A kept preview picture.
pub struct PictureView {
    pub src: String,
    pub width: u32,
    pub height: u32,
    pub when: String,
    pub caption: String,
}

/// The picture of check `r` on stream `name`, if it has one.
pub(super) fn picture_view(
    name: &str,
    r: &CheckResult,
    tz: &jiff::tz::TimeZone,
) -> Option<PictureView> {
    let p = r.picture.as_ref().ok()?;
    let when = fmt_time(r.ts_ms, tz);
    let how = if p.passthrough {
        "the camera's own JPEG".to_owned()
    } else if p.source_width != p.width {
        format!(
            "{}x{} scaled to {}x{} on this box in {} ms",
            p.source_width, p.source_height, p.width, p.height, p.render_ms
        )
    } else {
        format!("decoded on this box in {} ms", p.render_ms)
    };
    Some(PictureView {
        src: format!("{}?t={}", stream_path(name, "/frame.jpg"), r.ts_ms),
        width: p.width,
        height: p.height,
        caption: format!("Taken {when}: {how}."),
        when,
    })
}

/// A check result as the preview page shows it.
pub struct CheckView {
    pub ok: bool,
    pub verdict: String,
    pub message: String,
    pub when: String,
    pub latency: String,
    pub stages: Vec<(String, String)>,
    pub picture: Option<PictureView>,
    pub no_picture: String,
}

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewPage {
    c: Chrome,
    name: String,
    action: String,
    back_href: String,
    busy: bool,
    result: Option<CheckView>,
}

/// `/streams/<name>/preview`: the last check; a POST starts one.
pub(super) fn preview(v: LoggedIn, name: &str) -> Result<Resp, HttpError> {
    let (ctx, cfg) = (v.ctx, v.cfg);
    let sc = v.stream(name)?;
    let mut busy = false;
    if v.req.is_post() {
        match ctx.gui.checks.run(name, &sc.target, ctx.clock.now_ms()) {
            Ok(_) => return Ok(Resp::redirect(&stream_path(name, "/preview"))),
            Err(CheckError::Busy) => busy = true,
            Err(CheckError::NoRuntime) => {
                return Err(HttpError::new(503, "checks are not available right now"))
            }
        }
    }
    let tz = cfg.tz();
    let http = sc.target.kind != crate::probe::Kind::Rtsp;
    let result = ctx.gui.checks.last(name).map(|r| CheckView {
        ok: r.ok,
        verdict: if r.ok {
            "✔ Video arrives".into()
        } else {
            format!(
                "✖ No video: {}",
                r.reason.map(|x| x.as_str()).unwrap_or("failed")
            )
        },
        message: r.message.clone(),
        when: fmt_time(r.ts_ms, &tz),
        latency: format!("{} ms", r.latency_ms),
        stages: stages_list(&r.stages, http),
        picture: picture_view(name, &r, &tz),
        no_picture: r.picture.as_ref().err().cloned().unwrap_or_default(),
    });
    let page = PreviewPage {
        c: v.chrome(format!("Check {name}"), ""),
        name: name.to_owned(),
        action: stream_path(name, "/preview"),
        back_href: stream_path(name, ""),
        busy,
        result,
    };
    render(if busy { 503 } else { 200 }, &page)
}

/// `/streams/<name>/frame.jpg`: the last check's picture.
pub(super) fn frame(ctx: &WebCtx, name: &str) -> Result<Resp, HttpError> {
    let r = ctx
        .gui
        .checks
        .last(name)
        .ok_or_else(|| HttpError::new(404, "no picture kept for this stream"))?;
    let p = r
        .picture
        .as_ref()
        .map_err(|_| HttpError::new(404, "no picture kept for this stream"))?;
    Ok(Resp::new(200, "image/jpeg", p.jpeg.clone()))
}
