//! A stream's summary as the dashboard's card and the head of its detail
//! page show it: state with a symbol (it reads without colour), latency,
//! media, last success and last failure.

use super::format::{ago, fmt_time};
use crate::state::StreamState;
use crate::web::routes::stream_path;

/// A stream as the dashboard card and the detail page show it.
pub struct Card {
    pub name: String,
    pub href: String,
    pub edit_href: String,
    pub preview_href: String,
    /// `up`, `down`, `unknown` or `disabled` (CSS class).
    pub state: &'static str,
    /// Symbol and word, so the state reads without colour.
    pub state_label: &'static str,
    pub enabled: bool,
    pub latency: String,
    pub media: String,
    pub last_ok: String,
    pub last_fail: String,
    pub message: String,
    /// "⚠ frozen: …" when the picture checks found a problem, else empty.
    pub picture: String,
}

fn state_label(state: &str) -> &'static str {
    match state {
        "up" => "✔ UP",
        "down" => "✖ DOWN",
        "disabled" => "○ DISABLED",
        _ => "? UNKNOWN",
    }
}

fn media_text(m: &crate::probe::MediaFacts) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &m.codec {
        parts.push(c.clone());
    }
    if let (Some(w), Some(h)) = (m.width, m.height) {
        parts.push(format!("{w}x{h}"));
    }
    if let Some(f) = m.fps {
        parts.push(format!("{} fps", (f * 100.0).round() / 100.0));
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(" · ")
    }
}

/// The card of `s` at `now`, times in `tz`.
pub(super) fn card(s: &StreamState, now: i64, tz: &jiff::tz::TimeZone) -> Card {
    let state = if !s.enabled {
        "disabled"
    } else {
        s.health.as_str()
    };
    let latency = match &s.last {
        Some(l) if l.ok => format!("{} ms", l.latency_ms),
        Some(l) => format!("failed after {} ms", l.latency_ms),
        None => "—".into(),
    };
    let last_ok = s
        .last_ok_ms
        .map(|t| format!("{} ({})", fmt_time(t, tz), ago(now, t)))
        .unwrap_or_else(|| "never".into());
    let last_fail = s
        .last_failure
        .as_ref()
        .map(|f| {
            format!(
                "{}: {} ({})",
                f.reason.map(|r| r.as_str()).unwrap_or("failed"),
                f.message,
                fmt_time(f.ts_ms, tz)
            )
        })
        .unwrap_or_else(|| "none".into());
    // Once there is a result, the rows above say it all (the media line
    // when ok, "Last failure" with the message when not).
    let message = match &s.last {
        Some(_) => String::new(),
        None if s.enabled => "waiting for the first probe".into(),
        None => "disabled: not probed".into(),
    };
    Card {
        name: s.name.clone(),
        href: stream_path(&s.name, ""),
        edit_href: stream_path(&s.name, "/edit"),
        preview_href: stream_path(&s.name, "/preview"),
        state,
        state_label: state_label(state),
        enabled: s.enabled,
        latency,
        media: media_text(&s.media),
        last_ok,
        last_fail,
        picture: picture_text(&s.picture),
        message,
    }
}

/// The card's picture line: empty while the picture is fine or not known,
/// else the verdict and why (and the camera clock when it is off).
pub(super) fn picture_text(p: &crate::picture::PictureState) -> String {
    use crate::picture::{ClockVerdict, PictureVerdict};
    let mut parts = Vec::new();
    if !matches!(p.verdict, PictureVerdict::Ok | PictureVerdict::Unknown) {
        parts.push(format!("⚠ {}: {}", p.verdict.as_str(), p.detail));
    }
    if p.camera_clock == ClockVerdict::Off {
        parts.push(format!("⚠ {}", crate::picture::clock_detail(p)));
    }
    parts.join("; ")
}
