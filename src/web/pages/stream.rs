//! A stream's detail page (`/streams/<name>`): its card, settings, last
//! probe with stage timings, uptime, the history chart, the last kept
//! picture and the state changes of the past week.

use askama::Template;

use super::card::{card, Card};
use super::format::{fmt_time, stages_list};
use super::preview::{picture_view, PictureView};
use super::{render, Chrome, LoggedIn};
use crate::probe::Transport;
use crate::state::StreamState;
use crate::store::query;
use crate::web::chart;
use crate::web::handler::{open_db, Resp};
use crate::web::routes::stream_path;
use crate::web::HttpError;

/// A state change in the event list.
pub struct EventView {
    pub when: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "stream.html")]
struct StreamPage {
    c: Chrome,
    s: Card,
    enable_href: String,
    delete_href: String,
    since: String,
    url: String,
    kind: String,
    transport: String,
    /// "every 2.0 s, 4.1 Mbit/s", empty when not measured.
    keyframes: String,
    /// Set when key frames come less often than the probe's timeout allows.
    keyframes_warning: Option<String>,
    /// The picture checks: "ok (checked 12:03, mean luma 92)", "frozen: …".
    picture_check: String,
    /// Set when the picture checks found a problem (frozen, black, clock).
    picture_warning: Option<String>,
    /// "2 h 0 min ahead of the box's (off)", empty without sender reports.
    camera_clock: String,
    interval: u64,
    timeout: u64,
    last_probe: String,
    stages: Vec<(String, String)>,
    range: &'static str,
    range_label: &'static str,
    uptime_24h: String,
    uptime_7d: String,
    chart: chart::Chart,
    picture: Option<PictureView>,
    /// The last outage: when, why, where the probe stopped, and the last good
    /// picture before it (`crate::evidence`).
    evidence: Option<EvidenceView>,
    events: Vec<EventView>,
    /// Uptime over 24 h / 7 d / 30 d, streak, last OK, CSV links.
    avail: super::availability::AvailView,
}

/// The stream page's evidence section.
pub struct EvidenceView {
    /// "went down at 12:03:05: connect (at the connect stage): cannot connect …"
    pub failure: String,
    /// The picture's URL and "taken 12:02:10, 55 s before", if one was kept.
    pub picture: Option<(String, String)>,
}

fn pct(probes: u64, ok: u64) -> String {
    if probes == 0 {
        "—".into()
    } else {
        format!("{:.2} %", ok as f64 * 100.0 / probes as f64)
    }
}

/// `/streams/<name>` (`?range=7d` for a week's chart).
pub(super) fn stream_page(
    v: LoggedIn,
    db: &mut Option<rusqlite::Connection>,
    name: &str,
) -> Result<Resp, HttpError> {
    let (ctx, cfg) = (v.ctx, v.cfg);
    let sc = v.stream(name)?;
    let now = ctx.clock.now_ms();
    let tz = cfg.tz();
    let st = ctx.board.lock().expect("board lock").get(name).cloned();
    let st = st.unwrap_or_else(|| StreamState::for_config(sc));
    let http = sc.target.kind != crate::probe::Kind::Rtsp;
    let (range, range_label, span, bucket) = match v.req.query_param("range").as_deref() {
        Some("7d") => ("7d", "last 7 days", 7 * 86_400_000i64, 3_600_000i64),
        _ => ("24h", "last 24 hours", 86_400_000i64, 300_000i64),
    };
    let until = (now / bucket + 1) * bucket;
    let since = until - span;
    let day = 86_400_000;
    let tail = &*ctx.heartbeat_tail;
    let (rows, up24, up7, events) = match open_db(ctx, db) {
        Ok(conn) => {
            let q = || -> rusqlite::Result<_> {
                let week =
                    query::raw(conn, tail, name, now - 7 * day, now + 1)?.unwrap_or_default();
                let last_day = &week[week.partition_point(|h| h.ts_ms < now - day)..];
                Ok((
                    query::buckets(conn, tail, name, since, until, bucket)?,
                    // One read of the week's raw heartbeats serves both.
                    query::uptime_of(conn, name, last_day, now - day, now + 1)?,
                    query::uptime_of(conn, name, &week, now - 7 * day, now + 1)?,
                    query::events(conn, name, now - 7 * day, 50)?,
                ))
            };
            q().unwrap_or_else(|e| {
                tracing::error!("stream page history: {e}");
                (Vec::new(), (0, 0), (0, 0), Vec::new())
            })
        }
        Err(_) => (Vec::new(), (0, 0), (0, 0), Vec::new()),
    };
    let chart = chart::build(&rows, since, until, bucket, &tz);
    let avail = super::availability::view(
        open_db(ctx, db).ok(),
        tail,
        name,
        (st.health.as_str(), st.health_since_ms, st.last_ok_ms),
        now,
        &tz,
    );
    let events = events
        .into_iter()
        .map(|e| EventView {
            when: fmt_time(e.ts_ms, &tz),
            reason: match (e.reason, e.message) {
                (Some(r), Some(m)) => format!("{r}: {m}"),
                (Some(r), None) => r,
                (None, Some(m)) => m,
                (None, None) => String::new(),
            },
            from: e.from,
            to: e.to,
        })
        .collect();
    let last_probe = match &st.last {
        Some(l) => format!(
            "{} ({}): {}",
            fmt_time(l.ts_ms, &tz),
            if l.ok { "ok" } else { "failed" },
            l.message
        ),
        None => "none yet".into(),
    };
    let stages = st
        .last
        .as_ref()
        .map(|l| stages_list(&l.stages, http))
        .unwrap_or_default();
    let picture = ctx
        .gui
        .checks
        .last(name)
        .and_then(|r| picture_view(name, &r, &tz));
    let page = StreamPage {
        c: v.chrome_with_flash(sc.name.clone(), ""),
        s: card(&st, now, &tz),
        enable_href: stream_path(name, "/enable"),
        delete_href: stream_path(name, "/delete"),
        since: st
            .health_since_ms
            .map(|t| fmt_time(t, &tz))
            .unwrap_or_default(),
        url: sc.url_redacted.clone(),
        kind: sc.target.kind.as_str().into(),
        transport: if http {
            String::new()
        } else {
            transport_label(sc.target.transport, st.media.transport.as_deref())
        },
        keyframes: keyframes_text(&st.media),
        keyframes_warning: keyframes_warning(&st.media, sc.target.timeout),
        picture_check: picture_check_text(&st.picture, &tz),
        picture_warning: Some(super::card::picture_text(&st.picture)).filter(|t| !t.is_empty()),
        camera_clock: camera_clock_text(&st.picture),
        interval: sc.interval.as_secs(),
        timeout: sc.target.timeout.as_secs(),
        last_probe,
        stages,
        range,
        range_label,
        uptime_24h: pct(up24.0, up24.1),
        uptime_7d: pct(up7.0, up7.1),
        chart,
        picture,
        evidence: evidence_view(&ctx.gui.evidence_dir, name, &tz),
        events,
        avail,
    };
    render(200, &page)
}

fn evidence_view(
    dir: &std::path::Path,
    name: &str,
    tz: &jiff::tz::TimeZone,
) -> Option<EvidenceView> {
    let r = crate::evidence::read(dir, name)?;
    let failure = format!(
        "went down at {}: {} (the probe stopped at: {}): {}",
        fmt_time(r.down_ms, tz),
        r.reason.as_deref().unwrap_or("failed"),
        r.failed_stage.as_deref().unwrap_or("?"),
        r.message
    );
    let picture = r.picture_ms.map(|t| {
        (
            stream_path(name, &format!("/evidence.jpg?v={}", r.down_ms)),
            format!(
                "The last good picture, taken {} ({} s before it went down)",
                fmt_time(t, tz),
                (r.down_ms - t).max(0) / 1000
            ),
        )
    });
    Some(EvidenceView { failure, picture })
}

/// The picture checks' line: the verdict, when it was checked and what was seen.
fn picture_check_text(p: &crate::picture::PictureState, tz: &jiff::tz::TimeZone) -> String {
    use crate::picture::PictureVerdict;
    let Some(checked) = p.checked_ms else {
        return "not checked yet".into();
    };
    let when = fmt_time(checked, tz);
    match p.verdict {
        PictureVerdict::Ok => match p.mean_luma {
            Some(l) => format!("ok (checked {when}, mean luma {l:.0})"),
            None => format!("ok (checked {when})"),
        },
        v if p.detail.is_empty() => format!("{} (checked {when})", v.as_str()),
        v => format!("{}: {} (checked {when})", v.as_str(), p.detail),
    }
}

/// "2 h 0 min ahead of the box's (off)"; empty when the camera sent no
/// sender report.
fn camera_clock_text(p: &crate::picture::PictureState) -> String {
    p.camera_clock_offset_ms.map_or_else(String::new, |off| {
        format!(
            "{} ({})",
            crate::picture::clock_offset_words(off),
            p.camera_clock.as_str()
        )
    })
}

/// "UDP (auto)": the transport the last session got, and the setting when
/// it chose; "TCP" when forced.
fn transport_label(configured: Transport, used: Option<&str>) -> String {
    match (configured, used) {
        (Transport::Auto, Some(u)) => format!("{} (auto)", u.to_uppercase()),
        (Transport::Auto, None) => "auto".into(),
        (t, _) => t.as_str().to_uppercase(),
    }
}

/// "every 2.0 s, 4.1 Mbit/s" (or "more than 9.7 s apart"); empty when the
/// key-frame interval was not measured (HTTP, JPEG, not yet).
fn keyframes_text(m: &crate::probe::MediaFacts) -> String {
    let Some(ms) = m.keyframe_interval_ms else {
        return String::new();
    };
    let secs = f64::from(ms) / 1000.0;
    if m.keyframe_interval_over {
        return format!("more than {secs:.1} s apart");
    }
    match m.bitrate_kbps {
        Some(k) if k >= 1000 => format!("every {secs:.1} s, {:.1} Mbit/s", f64::from(k) / 1000.0),
        Some(k) => format!("every {secs:.1} s, {k} kbit/s"),
        None => format!("every {secs:.1} s"),
    }
}

/// A key-frame interval longer than the probe's timeout makes probes that
/// join just after a key frame fail with `no_frame` although the camera is
/// fine: say so, and what to change.
fn keyframes_warning(m: &crate::probe::MediaFacts, timeout: std::time::Duration) -> Option<String> {
    let ms = m.keyframe_interval_ms?;
    // A lower bound (`over`) means the probe's deadline came first.
    (m.keyframe_interval_over || u128::from(ms) > timeout.as_millis()).then(|| {
        format!(
            "Key frames come less often than the probe's timeout ({} s): a probe that joins just after one \
             can fail with no_frame although the camera is fine. Raise this stream's timeout above the \
             interval, or shorten the camera's key-frame interval (GOP, \"I-frame interval\").",
            timeout.as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::MediaFacts;

    #[test]
    fn keyframe_text_and_warning() {
        let mut m = MediaFacts::default();
        assert_eq!(keyframes_text(&m), "");
        assert_eq!(keyframes_warning(&m, Duration::from_secs(10)), None);
        m.keyframe_interval_ms = Some(2002);
        m.bitrate_kbps = Some(4096);
        assert_eq!(keyframes_text(&m), "every 2.0 s, 4.1 Mbit/s");
        assert_eq!(keyframes_warning(&m, Duration::from_secs(10)), None);
        m.keyframe_interval_ms = Some(12_000);
        m.bitrate_kbps = Some(800);
        assert_eq!(keyframes_text(&m), "every 12.0 s, 800 kbit/s");
        let w = keyframes_warning(&m, Duration::from_secs(10)).unwrap();
        assert!(
            w.contains("timeout (10 s)") && w.contains("no_frame"),
            "{w}"
        );
        m.keyframe_interval_over = true;
        m.keyframe_interval_ms = Some(9_700);
        assert_eq!(keyframes_text(&m), "more than 9.7 s apart");
        assert!(keyframes_warning(&m, Duration::from_secs(10)).is_some());
    }
}
