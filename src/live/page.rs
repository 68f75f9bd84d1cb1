//! The live view's web side: the grid page (`/live`), its status JSON
//! (`/api/live`), thumbnails (`/live/{name}/thumb.jpg`) and admission of
//! live streams (`/live/{name}/stream`, handed to a viewer thread by
//! [`crate::web::handler`] through [`Resp::handoff`]).
//!
//! The gate in `handler.rs` has already checked the login (pages need a
//! session; the stream, thumbnails and JSON also take an API token of
//! scope `live` or `admin`).

use askama::Template;

use crate::config::Config;
use crate::probe::Kind;
use crate::state::StreamState;
use crate::web::auth;
use crate::web::handler::{get_only, Req, Resp};
use crate::web::pages::{self, Chrome};
use crate::web::routes::{live_path, stream_path, Route};
use crate::web::{HttpError, WebCtx};

/// One tile of the grid.
pub struct Tile {
    pub name: String,
    /// `t0`, `t1`, ...: element ids (names may hold any character).
    pub id: String,
    pub href: String,
    pub stream_url: String,
    pub thumb_url: String,
    pub has_thumb: bool,
    /// Why there is no thumbnail (or "").
    pub thumb_note: String,
    /// `up`, `down`, `unknown`, `disabled`.
    pub state: &'static str,
    pub state_label: &'static str,
    pub kind: &'static str,
    /// `h264`, `h265`, `jpeg` or "" (not probed yet).
    pub codec: String,
    /// RFC 6381 codec of H.26x streams ("" if unknown).
    pub rfc6381: String,
    pub media: String,
    /// `mse` (fragmented MP4) or `mjpeg`, as far as the box knows yet.
    pub player: &'static str,
    /// A note shown before playing (e.g. about H.265).
    pub note: String,
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    c: Chrome,
    tiles: Vec<Tile>,
    max_viewers: u32,
    max_viewers_per_stream: u32,
    thumbnail_seconds: u32,
}

fn state_of(s: Option<&StreamState>, enabled: bool) -> (&'static str, &'static str) {
    let st = if !enabled {
        "disabled"
    } else {
        s.map(|s| s.health.as_str()).unwrap_or("unknown")
    };
    let label = match st {
        "up" => "✔ UP",
        "down" => "✖ DOWN",
        "disabled" => "○ DISABLED",
        _ => "? UNKNOWN",
    };
    (st, label)
}

fn thumb_url(ctx: &WebCtx, name: &str) -> (String, bool, String) {
    match ctx.gui.live.thumbs.get(name) {
        Some(t) => match &t.picture {
            Ok(_) => (
                format!("{}?v={}", live_path(name, "/thumb.jpg"), t.version),
                true,
                String::new(),
            ),
            Err(m) => (live_path(name, "/thumb.jpg"), false, m.clone()),
        },
        None => (
            live_path(name, "/thumb.jpg"),
            false,
            "No picture yet: one comes with the next probe.".into(),
        ),
    }
}

fn tiles(ctx: &WebCtx, cfg: &Config) -> Vec<Tile> {
    let board = ctx.board.lock().expect("board lock");
    cfg.streams
        .iter()
        .enumerate()
        .map(|(i, sc)| {
            let s = board.get(&sc.name);
            let (state, state_label) = state_of(s, sc.enabled);
            let media = s.map(|s| s.media.clone()).unwrap_or_default();
            let codec = media.codec.clone().unwrap_or_default();
            let player = match (sc.target.kind, codec.as_str()) {
                (Kind::Rtsp, "jpeg") | (Kind::Mjpeg | Kind::Snapshot, _) => "mjpeg",
                _ => "mse",
            };
            let note = match (codec.as_str(), sc.target.kind) {
                ("h265", _) => "H.265: plays only where this browser's Media Source Extensions \
                                have HEVC (the box relays, it does not transcode)."
                    .to_owned(),
                (_, Kind::Snapshot) => {
                    "A snapshot URL: pictures are refreshed twice a second.".to_owned()
                }
                _ => String::new(),
            };
            let (thumb_url, has_thumb, thumb_note) = thumb_url(ctx, &sc.name);
            let mut parts = Vec::new();
            if !codec.is_empty() {
                parts.push(codec.clone());
            }
            if let (Some(w), Some(h)) = (media.width, media.height) {
                parts.push(format!("{w}x{h}"));
            }
            if let Some(f) = media.fps {
                parts.push(format!("{} fps", (f * 100.0).round() / 100.0));
            }
            Tile {
                name: sc.name.clone(),
                id: format!("t{i}"),
                href: stream_path(&sc.name, ""),
                stream_url: live_path(&sc.name, "/stream"),
                thumb_url,
                has_thumb,
                thumb_note,
                state,
                state_label,
                kind: sc.target.kind.as_str(),
                codec,
                rfc6381: media.rfc6381.clone().unwrap_or_default(),
                media: if parts.is_empty() {
                    sc.target.kind.as_str().to_owned()
                } else {
                    parts.join(" · ")
                },
                player,
                note,
            }
        })
        .collect()
}

/// The live routes; see the module docs.
pub fn handle(
    ctx: &WebCtx,
    cfg: &Config,
    route: &Route,
    req: &Req,
    session: Option<&auth::Session>,
) -> Result<Resp, HttpError> {
    get_only(req)?;
    let live = &ctx.gui.live;
    match route {
        Route::Live => {
            let s = session.ok_or_else(|| HttpError::new(403, "log in first"))?;
            live.thumbs.seen(cfg.live.thumbnail_seconds);
            let page = LivePage {
                c: pages::chrome(ctx, cfg, Some(s), "Live", "live"),
                tiles: tiles(ctx, cfg),
                max_viewers: cfg.live.max_viewers,
                max_viewers_per_stream: cfg.live.max_viewers_per_stream,
                thumbnail_seconds: cfg.live.thumbnail_seconds,
            };
            pages::render(200, &page)
        }
        Route::ApiLive => {
            live.thumbs.seen(cfg.live.thumbnail_seconds);
            Ok(Resp::json(&status_json(ctx, cfg)))
        }
        Route::LiveThumb(name) => thumb(ctx, cfg, req, name),
        Route::LiveStream(name) => {
            if req.method == tiny_http::Method::Head {
                return Ok(Resp::new(200, "text/plain; charset=utf-8", Vec::new()));
            }
            let ticket = live.admit(cfg, name)?;
            let mut r = Resp::new(200, "text/plain; charset=utf-8", Vec::new());
            r.handoff = Some(ticket);
            Ok(r)
        }
        _ => Err(HttpError::new(404, "no such page")),
    }
}

/// `/api/live`: caps, viewers, and per stream its live session and thumbnail.
pub fn status_json(ctx: &WebCtx, cfg: &Config) -> serde_json::Value {
    let live = &ctx.gui.live;
    let tiles = tiles(ctx, cfg);
    let streams: Vec<serde_json::Value> = tiles
        .iter()
        .map(|t| {
            let st = live.status(&t.name);
            let thumb = live.thumbs.get(&t.name);
            serde_json::json!({
                "name": t.name,
                "state": t.state,
                "state_label": t.state_label,
                "kind": t.kind,
                "codec": t.codec,
                "rfc6381": t.rfc6381,
                "media": t.media,
                "player": t.player,
                "live": st,
                "thumb": {
                    "url": if t.has_thumb { Some(&t.thumb_url) } else { None },
                    "ts_ms": thumb.as_ref().map(|t| t.ts_ms),
                    "note": t.thumb_note,
                },
            })
        })
        .collect();
    serde_json::json!({
        "now_ms": ctx.clock.now_ms(),
        "max_viewers": cfg.live.max_viewers,
        "max_viewers_per_stream": cfg.live.max_viewers_per_stream,
        "thumbnail_seconds": cfg.live.thumbnail_seconds,
        "viewers": live.viewers(),
        "streams": streams,
    })
}

/// A grey picture with a camera outline, for streams without a thumbnail.
const PLACEHOLDER_SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 320 180\">\
<rect width=\"320\" height=\"180\" fill=\"#2b343d\"/>\
<rect x=\"120\" y=\"65\" width=\"60\" height=\"44\" rx=\"6\" fill=\"none\" stroke=\"#8c99a6\" stroke-width=\"4\"/>\
<path d=\"M184 80 L204 68 L204 106 L184 94 Z\" fill=\"#8c99a6\"/></svg>";

fn thumb(ctx: &WebCtx, cfg: &Config, req: &Req, name: &str) -> Result<Resp, HttpError> {
    if !cfg.streams.iter().any(|s| s.name == name) {
        return Err(HttpError::new(404, "no such stream"));
    }
    match ctx.gui.live.thumbs.get(name) {
        Some(t) if t.picture.is_ok() => {
            let jpeg = t.picture.expect("checked");
            let mut r = Resp::new(200, "image/jpeg", jpeg.as_ref().clone());
            // A versioned URL names one picture forever; the bare URL
            // always gets the current one.
            r.cache = if req.query_param("v").as_deref() == Some(t.version.to_string().as_str()) {
                "private, max-age=86400, immutable"
            } else {
                "private, no-cache"
            };
            r.headers.push(("ETag", format!("\"{}\"", t.version)));
            Ok(r)
        }
        _ => Ok(Resp::new(
            200,
            "image/svg+xml",
            PLACEHOLDER_SVG.as_bytes().to_vec(),
        )),
    }
}
