//! The general settings (`/settings`): the box's name, time zone, default
//! probe interval, retention and web access. Also the frame both settings
//! forms share (the tabs of `settings.html`); the MQTT tab is in
//! [`super::mqtt_settings`].

use askama::Template;

use super::form::{self, timezones, Field, Filled, FormPage};
use super::{render, Chrome, LoggedIn};
use crate::config::edit::{self, EditError, SettingsForm, Yaml};
use crate::web::handler::{Form, Resp};
use crate::web::HttpError;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    c: Chrome,
    tab: &'static str,
    intro: &'static str,
    action: &'static str,
    fields: Vec<Field>,
    general_error: Option<String>,
    timezones: Vec<String>,
}

/// One tab of `settings.html`.
pub(super) struct Tab {
    pub title: &'static str,
    /// `general`, `mqtt` or `network` (which tab is current).
    pub tab: &'static str,
    /// A sentence above the form ("" for none).
    pub intro: &'static str,
    /// The URL the form posts to (its own).
    pub action: &'static str,
    /// Whether the form suggests time zone names.
    pub timezones: bool,
}

/// The settings tab `tab` around `form`.
pub(super) fn show_tab(v: LoggedIn, tab: &Tab, form: Filled) -> Result<Resp, HttpError> {
    let page = SettingsPage {
        c: v.chrome_with_flash(tab.title, "settings"),
        tab: tab.tab,
        intro: tab.intro,
        action: tab.action,
        fields: form.fields,
        general_error: form.general_error,
        timezones: if tab.timezones {
            timezones()
        } else {
            Vec::new()
        },
    };
    render(form.status, &page)
}

struct GeneralSettings<'a> {
    v: LoggedIn<'a>,
}

impl FormPage for GeneralSettings<'_> {
    type Form = SettingsForm;
    type Saved = ();

    fn initial(&self) -> SettingsForm {
        SettingsForm::from_config(self.v.cfg)
    }

    fn read(&self, p: &Form) -> SettingsForm {
        SettingsForm {
            device_name: p.get("device_name"),
            timezone: p.get("timezone"),
            heartbeat_seconds: p.get("heartbeat_seconds"),
            heartbeat_days: p.get("heartbeat_days"),
            rollup_days: p.get("rollup_days"),
            public_status: p.checked("public_status"),
            session_hours: p.get("session_hours"),
        }
    }

    fn apply(&self, t: &mut Yaml, f: &SettingsForm) -> Result<(), EditError> {
        edit::apply_settings(t, f)
    }

    fn done(&self, (): ()) -> Resp {
        Resp::redirect("/settings?msg=saved")
    }

    fn fields(&self, f: SettingsForm) -> Vec<Field> {
        vec![
            Field::text("device_name", "Name of this box", &f.device_name).required(),
            Field::text("timezone", "Time zone", &f.timezone)
                .list("timezones")
                .hint("IANA name, e.g. Europe/Berlin. Pages, the API and MQTT show times in it."),
            Field::number(
                "heartbeat_seconds",
                "Seconds between probes (default for streams)",
                &f.heartbeat_seconds,
            )
            .hint("5 to 86400. A stream's own interval overrides it."),
            Field::section("Retention", "How long history is kept on the SD card."),
            Field::number(
                "heartbeat_days",
                "Days of raw heartbeats",
                &f.heartbeat_days,
            ),
            Field::number(
                "rollup_days",
                "Days of hourly summaries and state changes",
                &f.rollup_days,
            ),
            Field::section("Web access", ""),
            Field::checkbox(
                "public_status",
                "Let anyone on the network read /api/status and /metrics without logging in",
                f.public_status,
            )
            .hint("For scripts and Prometheus on a trusted LAN. Otherwise use an API token."),
            Field::number(
                "session_hours",
                "Stay logged in for (hours without use)",
                &f.session_hours,
            ),
        ]
    }

    fn page(&self, form: Filled) -> Result<Resp, HttpError> {
        let tab = Tab {
            title: "Settings",
            tab: "general",
            intro: "",
            action: "/settings",
            timezones: true,
        };
        show_tab(self.v, &tab, form)
    }
}

/// `/settings`.
pub(super) fn settings(v: LoggedIn) -> Result<Resp, HttpError> {
    form::run(v.ctx, v.req, &GeneralSettings { v })
}
