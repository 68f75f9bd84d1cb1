//! The security tests' route table: one case per variant of `Route`
//! (`src/web/routes.rs`) with a path that decodes to it and who may use it.
//! `routes_login_csrf::route_table_covers_every_route` fails when a new
//! route has no case here, so every route is checked for login, CSRF and
//! escaping.

use std::collections::BTreeSet;

use super::manifest_dir;

/// Who may use a route, as the security tests expect it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// HTML pages and forms: a session, else `303 /login?next=`.
    Page,
    /// JSON for programs: a session or a `read`/`admin` API token, else 401.
    Api,
    /// The live view's streams, thumbnails and JSON: a session or a
    /// `live`/`admin` API token, else 401.
    Live,
    /// The diagnostics download, backups, updates and the write API: a
    /// session or an `admin` API token, else 401.
    Admin,
    /// `/api/status`, `/metrics`: like `Api` unless `web.public_status`.
    PublicStatus,
    /// `/static/*`: public, GET only in effect (a POST changes nothing).
    Static,
    /// `/healthz`: public, GET only.
    Healthz,
    /// `/login`: public form with the pre-session token.
    Login,
    /// `/setup`: gone (404) once the box is set up.
    Setup,
    /// Unknown paths: 404.
    NotFound,
}

/// One case per `Route` variant: the variant's name (as in `routes.rs`), a
/// path decoding to it (streams: the configured `cam x`) and its class.
pub(super) const ROUTES: &[(&str, &str, Class)] = &[
    ("Dashboard", "/", Class::Page),
    ("Setup", "/setup", Class::Setup),
    ("Login", "/login", Class::Login),
    ("Logout", "/logout", Class::Page),
    ("AddStream", "/add", Class::Page),
    ("Stream", "/streams/cam%20x", Class::Page),
    ("EditStream", "/streams/cam%20x/edit", Class::Page),
    ("DeleteStream", "/streams/cam%20x/delete", Class::Page),
    ("EnableStream", "/streams/cam%20x/enable", Class::Page),
    ("Preview", "/streams/cam%20x/preview", Class::Page),
    ("Frame", "/streams/cam%20x/frame.jpg", Class::Page),
    ("Evidence", "/streams/cam%20x/evidence.jpg", Class::Api),
    ("Settings", "/settings", Class::Page),
    ("SettingsMqtt", "/settings/mqtt", Class::Page),
    ("SettingsNetwork", "/settings/network", Class::Page),
    ("SettingsAccess", "/settings/access", Class::Page),
    ("Static", "/static/app.css", Class::Static),
    ("ApiStatus", "/api/status", Class::PublicStatus),
    ("ApiStreams", "/api/streams", Class::Api),
    ("ApiStream", "/api/streams/cam%20x", Class::Admin),
    ("ApiStreamCheck", "/api/streams/cam%20x/check", Class::Admin),
    ("ApiSettings", "/api/settings", Class::Admin),
    ("ApiOpenApi", "/api/openapi.json", Class::Api),
    (
        "ApiStreamHistory",
        "/api/streams/cam%20x/history",
        Class::Api,
    ),
    (
        "ApiAvailability",
        "/api/streams/cam%20x/availability",
        Class::Api,
    ),
    (
        "ApiHistoryCsv",
        "/api/streams/cam%20x/history.csv",
        Class::Api,
    ),
    ("ApiAllHistoryCsv", "/api/history.csv", Class::Api),
    ("Healthz", "/healthz", Class::Healthz),
    ("Metrics", "/metrics", Class::PublicStatus),
    ("Live", "/live", Class::Page),
    ("ApiLive", "/api/live", Class::Live),
    ("LiveStream", "/live/cam%20x/stream", Class::Live),
    ("LiveThumb", "/live/cam%20x/thumb.jpg", Class::Live),
    ("System", "/system", Class::Page),
    ("SystemDiagnostics", "/system/diagnostics.txt", Class::Admin),
    ("SystemBackup", "/system/backup.spbackup", Class::Admin),
    ("SystemRestore", "/system/restore", Class::Admin),
    ("SystemUpdate", "/system/update", Class::Admin),
    ("SystemUpdateReboot", "/system/update/reboot", Class::Admin),
    (
        "SystemUpdateDismiss",
        "/system/update/dismiss",
        Class::Admin,
    ),
    ("NotFound", "/nope", Class::NotFound),
];

/// The variants of `enum Route` in `src/web/routes.rs`, read from the source.
pub(super) fn route_variants() -> BTreeSet<String> {
    let src = std::fs::read_to_string(manifest_dir().join("src/web/routes.rs")).unwrap();
    let body = src
        .split("pub enum Route {")
        .nth(1)
        .and_then(|r| r.split("\n}").next())
        .expect("routes.rs defines `pub enum Route { ... }`");
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'))
        .map(|l| {
            l.split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}
