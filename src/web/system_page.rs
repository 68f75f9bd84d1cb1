//! The System page (`/system`, admin session) and the diagnostics file
//! (`/system/diagnostics.txt`, session or `admin` API token): version,
//! uptime, `/healthz` with details, the daemon's recent log
//! ([`crate::system::recent_log`]) and, in the file, the config with its
//! secrets masked and the previous boot's journal of the service. A user
//! attaches the file to a bug report, so everything in it goes through
//! [`redact::redact_text`] with the running config's secrets.

use std::process::Command;
use std::time::Duration;

use askama::Template;

use super::handler::{get_only, Req, Resp};
use super::pages::{self, Chrome};
use super::routes::Route;
use super::{api, auth, HttpError, WebCtx};
use crate::config::Config;
use crate::redact;
use crate::system::recent_log;

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    c: Chrome,
    uptime: String,
    health: String,
    log: Vec<String>,
    max_lines: usize,
    update: UpdateView,
}

/// The Update section.
struct UpdateView {
    /// Why updates cannot be installed here ("" if they can).
    unavailable: String,
    /// What runs now, e.g. "2.0.0 (StreamPulse 0.1.0), slot B".
    running: String,
    /// The install in progress or the last one: a sentence ("" if none).
    progress: String,
    /// An install made with `reboot=0` waits for a reboot.
    waiting_reboot: bool,
    /// The health gate's rollback note, as a sentence.
    rolled_back: Option<String>,
}

fn update_view(ctx: &WebCtx) -> UpdateView {
    use crate::system::update::Phase;
    let u = &ctx.gui.updates;
    let r = u.running();
    let p = u.progress();
    UpdateView {
        unavailable: u.unavailable().unwrap_or_default().to_owned(),
        running: match &r.slot {
            Some(slot) => format!("{}, root slot {slot}", r.describe()),
            None => r.describe(),
        },
        progress: match p.phase {
            Phase::Idle => String::new(),
            Phase::Receiving | Phase::Installing => {
                format!("Installing ({} %): {}", p.percent, p.message)
            }
            Phase::Installed | Phase::Rebooting => format!("Installed: {}", p.message),
            Phase::Failed => format!("The last update was not installed: {}", p.message),
        },
        waiting_reboot: p.phase == Phase::Installed,
        rolled_back: u.rolled_back().map(|r| pages::rolled_back_line(&r)),
    }
}

/// Answers [`Route::System`] and [`Route::SystemDiagnostics`].
pub fn handle(
    ctx: &WebCtx,
    cfg: &Config,
    route: &Route,
    req: &Req,
    session: Option<&auth::Session>,
) -> Result<Resp, HttpError> {
    get_only(req)?;
    let secrets = secrets(ctx, cfg);
    match route {
        Route::System => {
            let s = session.ok_or_else(|| HttpError::new(403, "log in first"))?;
            let page = SystemPage {
                c: pages::Chrome {
                    flash: pages::flash_for(req.query_param("msg")),
                    ..pages::chrome(ctx, cfg, Some(s), "System", "system")
                },
                uptime: pages::fmt_duration(ctx.started.elapsed().as_secs()),
                health: redact::redact_text(&health(ctx), &secrets),
                log: recent_log::global().lines(),
                max_lines: recent_log::MAX_LINES,
                update: update_view(ctx),
            };
            pages::render(200, &page)
        }
        Route::SystemDiagnostics => {
            let text = redact::redact_text(&diagnostics(ctx, cfg), &secrets);
            let name = format!(
                "streampulse-diagnostics-{}.txt",
                crate::report::iso(ctx.clock.now_ms(), &cfg.tz())
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
            );
            Ok(
                Resp::new(200, "text/plain; charset=utf-8", text.into_bytes()).with_header(
                    "Content-Disposition",
                    format!("attachment; filename=\"{name}\""),
                ),
            )
        }
        _ => Err(HttpError::new(404, "no such page")),
    }
}

/// The running config's secrets (see [`Config::secrets`](crate::config::Config::secrets)).
fn secrets(ctx: &WebCtx, cfg: &Config) -> Vec<String> {
    let text = std::fs::read_to_string(ctx.gui.config_file.path()).unwrap_or_default();
    cfg.secrets(&text)
}

/// `/healthz` with details, indented.
fn health(ctx: &WebCtx) -> String {
    serde_json::to_string_pretty(&api::healthz(ctx, true)).unwrap_or_default()
}

/// The text of the diagnostics file (redacted by the caller as a whole).
fn diagnostics(ctx: &WebCtx, cfg: &Config) -> String {
    let path = ctx.gui.config_file.path();
    // Masked from the parsed tree, as config.yaml.applied is: a line-based
    // scrub would miss short secrets written without quotes.
    let config = match std::fs::read_to_string(path) {
        Ok(t) => match crate::config::edit::parse_tree(&t)
            .and_then(|tree| crate::system::bootcfg::masked(&tree, cfg))
        {
            Ok(masked) => masked,
            Err(_) => "(not valid YAML, so not shown: see the config error in /healthz)".into(),
        },
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    };
    let log = recent_log::global().lines();
    format!(
        "StreamPulse diagnostics (secrets are masked as ***)\n\
         version: {}\ndevice: {}\ngenerated: {}\nuptime: {}\n\
         \n== /healthz ==\n{}\n\
         \n== {} ==\n{}\n\
         \n== recent log of this run (last {} lines) ==\n{}\n\
         \n== previous boot: journalctl -b -1 -u streampulse ==\n{}\n",
        crate::VERSION,
        cfg.device_name,
        crate::report::iso(ctx.clock.now_ms(), &cfg.tz()),
        pages::fmt_duration(ctx.started.elapsed().as_secs()),
        health(ctx),
        path.display(),
        config.trim_end(),
        log.len(),
        log.join("\n"),
        previous_boot_journal(),
    )
}

/// Longest wait for `journalctl`.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The service's log from the previous boot (why did the box reboot?), or
/// why it is not available. Needs read access to the journal
/// (`SupplementaryGroups=systemd-journal` in the unit).
fn previous_boot_journal() -> String {
    let journal = crate::system::command::output_within(
        Command::new("journalctl").args([
            "-b",
            "-1",
            "-u",
            "streampulse",
            "--no-pager",
            "-n",
            "300",
        ]),
        JOURNAL_TIMEOUT,
    );
    match journal {
        Err(e) => format!("(not available: journalctl: {e})"),
        Ok(o) if o.trim().is_empty() => "(no entries)".to_owned(),
        Ok(o) => o,
    }
}
