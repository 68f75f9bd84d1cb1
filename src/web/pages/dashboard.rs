//! The dashboard (`/`): a card per configured stream, a one-line count, and
//! the box's own health (clock, free space, recording, uptime).

use askama::Template;

use super::card::{card, Card};
use super::format::{fmt_duration, fmt_time};
use super::{render, Chrome, LoggedIn};
use crate::config::Config;
use crate::state::StreamState;
use crate::web::handler::Resp;
use crate::web::{HttpError, WebCtx};

/// The box's own health, on the dashboard.
pub struct HealthView {
    pub clock: String,
    pub clock_class: &'static str,
    pub disk: String,
    /// Empty while heartbeats are committed; otherwise why not.
    pub recording_error: String,
    pub uptime: String,
    pub now: String,
    pub tz: String,
}

fn fmt_bytes(b: u64) -> String {
    let gb = b as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.0} MB", b as f64 / 1e6)
    }
}

fn health_view(ctx: &WebCtx, cfg: &Config) -> HealthView {
    let now = ctx.clock.now_ms();
    let sync = ctx.sync.state(now);
    let (clock, clock_class) = if sync.trusted() {
        ("synchronised".to_owned(), "good")
    } else if !sync.plausible {
        ("not set (no NTP yet): times are wrong".to_owned(), "bad")
    } else {
        ("not synchronised: times may drift".to_owned(), "bad")
    };
    let data_dir = ctx.db_path.parent().unwrap_or(std::path::Path::new("."));
    let disk = match crate::store::disk::usage(data_dir) {
        Ok(u) => format!(
            "{} of {} ({:.0} %)",
            fmt_bytes(u.free_bytes),
            fmt_bytes(u.total_bytes),
            u.free_percent()
        ),
        Err(_) => "unknown".into(),
    };
    let st = &ctx.recorder_stats;
    let recording_error = if st.failing() {
        let json = st.json();
        format!(
            "Heartbeats are not being saved: {} ({} waiting in memory; retrying)",
            json["error"].as_str().unwrap_or("write failed"),
            json["backlog"]
        )
    } else {
        String::new()
    };
    HealthView {
        clock,
        clock_class,
        disk,
        recording_error,
        uptime: fmt_duration(ctx.started.elapsed().as_secs()),
        now: fmt_time(now, &cfg.tz()),
        tz: cfg.timezone.clone(),
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    c: Chrome,
    cards: Vec<Card>,
    health: HealthView,
    summary: String,
}

/// `/`.
pub(super) fn dashboard(v: LoggedIn) -> Result<Resp, HttpError> {
    let (ctx, cfg) = (v.ctx, v.cfg);
    let now = ctx.clock.now_ms();
    let tz = cfg.tz();
    let cards: Vec<Card> = {
        let board = ctx.board.lock().expect("board lock");
        cfg.streams
            .iter()
            .map(|sc| match board.get(&sc.name) {
                Some(st) => card(st, now, &tz),
                // Configured, not on the board (yet).
                None => card(&StreamState::for_config(sc), now, &tz),
            })
            .collect()
    };
    let count = |st: &str| cards.iter().filter(|c| c.state == st).count();
    let summary = if cards.is_empty() {
        "No streams configured.".to_owned()
    } else {
        let mut s = format!(
            "{} stream{}: {} up, {} down, {} unknown",
            cards.len(),
            if cards.len() == 1 { "" } else { "s" },
            count("up"),
            count("down"),
            count("unknown")
        );
        if count("disabled") > 0 {
            s.push_str(&format!(", {} disabled", count("disabled")));
        }
        s
    };
    let page = DashboardPage {
        c: v.chrome_with_flash("Dashboard", "dashboard"),
        cards,
        health: health_view(ctx, cfg),
        summary,
    };
    render(200, &page)
}
