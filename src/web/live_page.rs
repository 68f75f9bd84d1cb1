//! The live view's web side: the grid page (`/live`), its status JSON
//! (`/api/live`), thumbnails (`/live/{name}/thumb.jpg`), admission of live
//! streams (`/live/{name}/stream`, handed to a viewer thread by
//! [`super::handler`] through [`Resp::handoff`]) and the HTTP answer a
//! viewer thread writes ([`HttpSink`]).
//!
//! The camera sessions, caps and frames are [`crate::live`]'s; this file
//! turns them into pages and HTTP, so the live view never depends on the
//! web layer.
//!
//! The gate in `handler.rs` has already checked the login (pages need a
//! session; the stream, thumbnails and JSON also take an API token of
//! scope `live` or `admin`).

use std::io::Write;

use askama::Template;

use super::auth;
use super::handler::{get_only, security_header_lines, Req, Resp};
use super::pages::{self, Chrome};
use super::routes::{live_path, stream_path, Route};
use super::{HttpError, WebCtx};
use crate::config::Config;
use crate::live::{Head, Refused, Sink};
use crate::probe::Kind;
use crate::state::StreamState;

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
            let ticket = live.admit(cfg, name).map_err(refused)?;
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

/// A refused viewer's answer: 404 for an unknown stream, else 503 (a cap,
/// or the live view off); the message says which, for the page.
fn refused(r: Refused) -> HttpError {
    let status = match r {
        Refused::NoSuchStream => 404,
        _ => 503,
    };
    HttpError::new(status, r.to_string())
}

/// A live viewer's HTTP answer, written by its viewer thread straight to
/// the socket the web worker handed over: the head (with the security
/// headers every answer carries), then the body in chunks when the client
/// speaks HTTP/1.1, until the connection closes.
pub struct HttpSink {
    w: Box<dyn Write + Send>,
    chunked: bool,
}

impl HttpSink {
    /// Takes over `rq`'s socket (the worker that read it is free after this).
    pub fn new(rq: tiny_http::Request) -> HttpSink {
        let chunked = *rq.http_version() >= tiny_http::HTTPVersion(1, 1);
        HttpSink {
            w: rq.into_writer(),
            chunked,
        }
    }
}

impl Sink for HttpSink {
    fn refuse(&mut self, msg: &str) -> std::io::Result<()> {
        let body = serde_json::json!({ "error": format!("No live picture: {msg}") }).to_string();
        write!(
            self.w,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nCache-Control: no-store\r\n{}\
             Connection: close\r\n\r\n{body}",
            body.len(),
            security_header_lines()
        )
    }

    fn begin(&mut self, head: &Head) -> std::io::Result<()> {
        let text = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nX-Live-Codec: {}\r\n\
             X-Box-Now-Ms: {}\r\nCache-Control: no-store\r\n{}{}Connection: close\r\n\r\n",
            head.content_type,
            head.codec,
            head.box_now_ms,
            security_header_lines(),
            if self.chunked {
                "Transfer-Encoding: chunked\r\n"
            } else {
                ""
            }
        );
        self.w.write_all(text.as_bytes())
    }

    fn piece(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.chunked {
            write!(self.w, "{len:x}\r\n")?;
        }
        for p in parts {
            self.w.write_all(p)?;
        }
        if self.chunked {
            self.w.write_all(b"\r\n")?;
        }
        Ok(())
    }

    fn end(&mut self) -> std::io::Result<()> {
        if self.chunked {
            self.w.write_all(b"0\r\n\r\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A socket that keeps what is written to it.
    #[derive(Clone, Default)]
    struct Wire(Arc<Mutex<Vec<u8>>>);

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn sink(chunked: bool) -> (HttpSink, Wire) {
        let wire = Wire::default();
        let sink = HttpSink {
            w: Box::new(wire.clone()),
            chunked,
        };
        (sink, wire)
    }

    fn text(wire: &Wire) -> String {
        String::from_utf8(wire.0.lock().unwrap().clone()).unwrap()
    }

    const SECURITY: &str =
        "X-Content-Type-Options: nosniff\r\nReferrer-Policy: same-origin\r\nX-Frame-Options: DENY\r\n";

    #[test]
    fn a_stream_is_framed_as_before_the_split() {
        let head = Head {
            content_type: "video/mp4; codecs=\"avc1.42c01e\"".into(),
            codec: "avc1.42c01e".into(),
            box_now_ms: 1_700_000_000_000,
        };
        let (mut s, wire) = sink(true);
        s.begin(&head).unwrap();
        s.piece(&[b"ab", b"cdefghijklmnop"]).unwrap();
        s.end().unwrap();
        assert_eq!(
            text(&wire),
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: video/mp4; codecs=\"avc1.42c01e\"\r\n\
                 X-Live-Codec: avc1.42c01e\r\nX-Box-Now-Ms: 1700000000000\r\n\
                 Cache-Control: no-store\r\n{SECURITY}Transfer-Encoding: chunked\r\n\
                 Connection: close\r\n\r\n10\r\nabcdefghijklmnop\r\n0\r\n\r\n"
            )
        );
        // HTTP/1.0: no chunks, the end is the connection closing.
        let (mut s, wire) = sink(false);
        s.begin(&head).unwrap();
        s.piece(&[b"ab", b"cd"]).unwrap();
        s.end().unwrap();
        assert!(
            text(&wire).ends_with(&format!("{SECURITY}Connection: close\r\n\r\nabcd")),
            "{}",
            text(&wire)
        );
    }

    #[test]
    fn no_picture_is_a_502_with_a_json_reason() {
        let (mut s, wire) = sink(true);
        s.refuse("no picture from the camera in time").unwrap();
        let body = r#"{"error":"No live picture: no picture from the camera in time"}"#;
        assert_eq!(
            text(&wire),
            format!(
                "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nCache-Control: no-store\r\n{SECURITY}\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        );
    }

    #[test]
    fn refusals_map_to_404_and_503() {
        assert_eq!(refused(Refused::NoSuchStream).status, 404);
        assert_eq!(refused(Refused::NoSuchStream).public_msg, "no such stream");
        assert_eq!(refused(Refused::BoxFull { cap: 2 }).status, 503);
        assert_eq!(refused(Refused::Closing).status, 503);
    }
}
