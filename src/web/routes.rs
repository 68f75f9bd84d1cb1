//! URL → [`Route`], a pure function with one table test (moonfire's `path.rs`),
//! and the one place that says which routes need a login.

/// Every URL the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Dashboard,                // /
    Setup,                    // /setup (first boot only)
    Login,                    // /login
    Logout,                   // /logout (POST)
    AddStream,                // /add
    Stream(String),           // /streams/{name}
    EditStream(String),       // /streams/{name}/edit
    DeleteStream(String),     // /streams/{name}/delete (GET asks, POST deletes)
    EnableStream(String),     // /streams/{name}/enable (POST enabled=0|1)
    Preview(String),          // /streams/{name}/preview (GET shows, POST checks now)
    Frame(String),            // /streams/{name}/frame.jpg (the last preview picture)
    Evidence(String), // /streams/{name}/evidence.jpg (the last good picture before it went down)
    Settings,         // /settings
    SettingsMqtt,     // /settings/mqtt
    SettingsNetwork,  // /settings/network
    SettingsAccess,   // /settings/access (password, API tokens)
    Static(&'static str), // /static/{app.css,app.js,icon.svg}, /favicon.ico
    ApiStatus,        // /api/status
    ApiStreams,       // /api/streams (GET: read; POST: add a stream, admin)
    ApiStream(String), // /api/streams/{name} (GET, PUT, PATCH, DELETE: the write API, admin)
    ApiStreamCheck(String), // /api/streams/{name}/check (POST: probe now, admin)
    ApiSettings,      // /api/settings (GET, PUT: the general settings, admin)
    ApiOpenApi,       // /api/openapi.json (this API's OpenAPI 3.0 description)
    ApiStreamHistory(String), // /api/streams/{name}/history
    ApiAvailability(String), // /api/streams/{name}/availability
    ApiHistoryCsv(String), // /api/streams/{name}/history.csv (streamed download)
    ApiAllHistoryCsv, // /api/history.csv (every stream, streamed download)
    Healthz,          // /healthz
    Metrics,          // /metrics (Prometheus text)
    Live,             // /live (the live grid)
    ApiLive,          // /api/live (live sessions, caps, thumbnails)
    LiveStream(String), // /live/{name}/stream (MJPEG or fragmented MP4, streamed)
    LiveThumb(String), // /live/{name}/thumb.jpg
    System,           // /system (version, health, recent log)
    SystemDiagnostics, // /system/diagnostics.txt (a download)
    SystemBackup,     // /system/backup.spbackup (a download with secrets)
    SystemRestore,    // /system/restore (POST: a backup, streamed to the card)
    SystemUpdate, // /system/update (GET: progress JSON; POST: a RAUC bundle, streamed to the card)
    SystemUpdateReboot, // /system/update/reboot (POST: reboot into the installed update)
    SystemUpdateDismiss, // /system/update/dismiss (POST: forget the rollback note)
    NotFound,
}

use super::auth::Scope;

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, always (login, setup, static files, `/healthz`).
    Public,
    /// Anyone if `web.public_status: true`, else like [`Access::Api`].
    PublicStatus,
    /// A session cookie or an API token (`Authorization: Bearer`) of scope
    /// `read` or `admin`.
    Api,
    /// The live view's streams, thumbnails and JSON: a session cookie or an
    /// API token of scope `live` or `admin`.
    Live,
    /// A session cookie (HTML pages and forms).
    Page,
    /// The diagnostics download: a session cookie or an API token of scope
    /// `admin` (it holds the redacted config and the log).
    Admin,
}

/// Static files, compiled in.
pub const STATIC_FILES: [&str; 5] = ["app.css", "app.js", "icon.svg", "live.js", "live.css"];

impl Access {
    /// The API token scope this class needs (None: tokens do not open it).
    pub fn token_scope(self) -> Option<Scope> {
        match self {
            Access::PublicStatus | Access::Api => Some(Scope::Read),
            Access::Live => Some(Scope::Live),
            Access::Admin => Some(Scope::Admin),
            Access::Public | Access::Page => None,
        }
    }
}

impl Route {
    /// Decodes a request path (without the query string). Stream names are
    /// percent-decoded; names may contain spaces, `/` (as `%2F`) and any Unicode.
    pub fn decode(path: &str) -> Route {
        match path {
            "/" => return Route::Dashboard,
            "/setup" => return Route::Setup,
            "/login" => return Route::Login,
            "/logout" => return Route::Logout,
            "/add" => return Route::AddStream,
            "/settings" => return Route::Settings,
            "/settings/mqtt" => return Route::SettingsMqtt,
            "/settings/network" => return Route::SettingsNetwork,
            "/settings/access" => return Route::SettingsAccess,
            "/api/status" | "/api/status/" => return Route::ApiStatus,
            "/api/streams" | "/api/streams/" => return Route::ApiStreams,
            "/api/settings" => return Route::ApiSettings,
            "/api/openapi.json" => return Route::ApiOpenApi,
            "/api/history.csv" => return Route::ApiAllHistoryCsv,
            "/healthz" => return Route::Healthz,
            "/metrics" => return Route::Metrics,
            "/live" => return Route::Live,
            "/api/live" => return Route::ApiLive,
            "/system" => return Route::System,
            "/system/diagnostics.txt" => return Route::SystemDiagnostics,
            "/system/backup.spbackup" => return Route::SystemBackup,
            "/system/restore" => return Route::SystemRestore,
            "/system/update" => return Route::SystemUpdate,
            "/system/update/reboot" => return Route::SystemUpdateReboot,
            "/system/update/dismiss" => return Route::SystemUpdateDismiss,
            "/favicon.ico" => return Route::Static("icon.svg"),
            _ => {}
        }
        if let Some(file) = path.strip_prefix("/static/") {
            if let Some(f) = STATIC_FILES.iter().find(|f| **f == file) {
                return Route::Static(f);
            }
            return Route::NotFound;
        }
        if let Some(rest) = path.strip_prefix("/api/streams/") {
            if let Some(name) = rest.strip_suffix("/history").and_then(name_segment) {
                return Route::ApiStreamHistory(name);
            }
            if let Some(name) = rest.strip_suffix("/availability").and_then(name_segment) {
                return Route::ApiAvailability(name);
            }
            if let Some(name) = rest.strip_suffix("/history.csv").and_then(name_segment) {
                return Route::ApiHistoryCsv(name);
            }
            if let Some(name) = rest.strip_suffix("/check").and_then(name_segment) {
                return Route::ApiStreamCheck(name);
            }
            if let Some(name) = name_segment(rest) {
                return Route::ApiStream(name);
            }
            return Route::NotFound;
        }
        if let Some(rest) = path.strip_prefix("/live/") {
            let (enc, action) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(name) = name_segment(enc) else {
                return Route::NotFound;
            };
            return match action {
                "stream" => Route::LiveStream(name),
                "thumb.jpg" => Route::LiveThumb(name),
                _ => Route::NotFound,
            };
        }
        if let Some(rest) = path.strip_prefix("/streams/") {
            let (enc, action) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(name) = name_segment(enc) else {
                return Route::NotFound;
            };
            return match action {
                "" => Route::Stream(name),
                "edit" => Route::EditStream(name),
                "delete" => Route::DeleteStream(name),
                "enable" => Route::EnableStream(name),
                "preview" => Route::Preview(name),
                "frame.jpg" => Route::Frame(name),
                "evidence.jpg" => Route::Evidence(name),
                _ => Route::NotFound,
            };
        }
        Route::NotFound
    }

    /// Who may use this route; see [`Access`].
    pub fn access(&self) -> Access {
        match self {
            Route::Setup | Route::Login | Route::Static(_) | Route::Healthz | Route::NotFound => {
                Access::Public
            }
            Route::ApiStatus | Route::Metrics => Access::PublicStatus,
            Route::ApiStreams
            | Route::ApiStreamHistory(_)
            | Route::ApiAvailability(_)
            | Route::ApiHistoryCsv(_)
            | Route::ApiAllHistoryCsv
            | Route::ApiOpenApi
            | Route::Evidence(_) => Access::Api,
            Route::ApiLive | Route::LiveStream(_) | Route::LiveThumb(_) => Access::Live,
            Route::SystemDiagnostics
            | Route::SystemBackup
            | Route::SystemRestore
            | Route::SystemUpdate
            | Route::SystemUpdateReboot
            | Route::SystemUpdateDismiss
            | Route::ApiStream(_)
            | Route::ApiStreamCheck(_)
            | Route::ApiSettings => Access::Admin,
            _ => Access::Page,
        }
    }

    /// True for routes answering JSON or text for programs (errors as JSON).
    pub fn is_api(&self) -> bool {
        matches!(
            self,
            Route::ApiStatus
                | Route::ApiStreams
                | Route::ApiStreamHistory(_)
                | Route::Evidence(_)
                | Route::ApiAvailability(_)
                | Route::ApiHistoryCsv(_)
                | Route::ApiAllHistoryCsv
                | Route::Healthz
                | Route::Metrics
                | Route::ApiLive
                | Route::LiveStream(_)
                | Route::LiveThumb(_)
                | Route::SystemDiagnostics
                | Route::SystemBackup
                | Route::SystemRestore
                | Route::SystemUpdate
                | Route::SystemUpdateReboot
                | Route::SystemUpdateDismiss
                | Route::ApiStream(_)
                | Route::ApiStreamCheck(_)
                | Route::ApiSettings
                | Route::ApiOpenApi
        )
    }

    /// True for routes whose POST body is a file streamed to the card
    /// (not read into memory, not a form): an admin session with the CSRF
    /// header, or an admin API token.
    pub fn takes_upload(&self) -> bool {
        matches!(self, Route::SystemRestore | Route::SystemUpdate)
    }

    /// True for the JSON write API ([`super::write_api`]): besides GET and
    /// POST they take PUT, PATCH and DELETE, their bodies are JSON (checked
    /// by the handler, after the login), and every request other than GET
    /// or HEAD needs [`Access::Admin`] (`POST /api/streams` too, whose GET
    /// is `read`). An admin API token without a session cookie may make
    /// these requests without a CSRF token, unless the body is a form (see
    /// `handler::gate`).
    pub fn takes_json(&self) -> bool {
        matches!(
            self,
            Route::ApiStreams | Route::ApiStream(_) | Route::ApiStreamCheck(_) | Route::ApiSettings
        )
    }

    /// The methods this route answers, for `Allow` on a 405.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::ApiStreams => "GET, HEAD, POST",
            Route::ApiStream(_) => "GET, HEAD, PUT, PATCH, DELETE",
            Route::ApiStreamCheck(_) => "POST",
            Route::ApiSettings => "GET, HEAD, PUT",
            _ => "GET, HEAD, POST",
        }
    }
}

/// A percent-decoded, non-empty path segment.
fn name_segment(enc: &str) -> Option<String> {
    if enc.is_empty() || enc.contains('/') {
        return None;
    }
    percent_encoding::percent_decode_str(enc)
        .decode_utf8()
        .ok()
        .map(|n| n.into_owned())
        .filter(|n| !n.is_empty())
}

/// `/streams/{name}{suffix}` with the name percent-encoded.
pub fn stream_path(name: &str, suffix: &str) -> String {
    format!("/streams/{}{suffix}", crate::report::path_segment(name))
}

/// `/live/{name}{suffix}` with the name percent-encoded.
pub fn live_path(name: &str, suffix: &str) -> String {
    format!("/live/{}{suffix}", crate::report::path_segment(name))
}

/// Splits `url` (as tiny_http gives it) into path and query.
pub fn split_query(url: &str) -> (&str, &str) {
    url.split_once('?').unwrap_or((url, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table() {
        let s = |n: &str| n.to_owned();
        let cases = [
            ("/", Route::Dashboard),
            ("/setup", Route::Setup),
            ("/login", Route::Login),
            ("/logout", Route::Logout),
            ("/add", Route::AddStream),
            ("/settings", Route::Settings),
            ("/settings/mqtt", Route::SettingsMqtt),
            ("/settings/network", Route::SettingsNetwork),
            ("/settings/access", Route::SettingsAccess),
            ("/static/app.css", Route::Static("app.css")),
            ("/static/app.js", Route::Static("app.js")),
            ("/static/icon.svg", Route::Static("icon.svg")),
            ("/favicon.ico", Route::Static("icon.svg")),
            ("/static/../config.yaml", Route::NotFound),
            ("/static/", Route::NotFound),
            ("/api/status", Route::ApiStatus),
            ("/api/status/", Route::ApiStatus),
            ("/api/streams", Route::ApiStreams),
            ("/healthz", Route::Healthz),
            ("/metrics", Route::Metrics),
            ("/streams/cam1", Route::Stream(s("cam1"))),
            ("/streams/new", Route::Stream(s("new"))),
            (
                "/streams/Front%20door/edit",
                Route::EditStream(s("Front door")),
            ),
            ("/streams/a%2Fb/delete", Route::DeleteStream(s("a/b"))),
            ("/streams/x/enable", Route::EnableStream(s("x"))),
            ("/streams/x/preview", Route::Preview(s("x"))),
            ("/streams/x/frame.jpg", Route::Frame(s("x"))),
            ("/streams/x/evidence.jpg", Route::Evidence(s("x"))),
            ("/streams/%3Cscript%3E", Route::Stream(s("<script>"))),
            ("/streams/x/other", Route::NotFound),
            ("/streams/", Route::NotFound),
            ("/streams//edit", Route::NotFound),
            ("/streams/%ff", Route::NotFound),
            (
                "/api/streams/cam1/history",
                Route::ApiStreamHistory(s("cam1")),
            ),
            (
                "/api/streams/Front%20door/history",
                Route::ApiStreamHistory(s("Front door")),
            ),
            (
                "/api/streams/a%2Fb/history",
                Route::ApiStreamHistory(s("a/b")),
            ),
            ("/api/streams//history", Route::NotFound),
            (
                "/api/streams/a%2C%22b/availability",
                Route::ApiAvailability(s("a,\"b")),
            ),
            (
                "/api/streams/cam1/history.csv",
                Route::ApiHistoryCsv(s("cam1")),
            ),
            ("/api/history.csv", Route::ApiAllHistoryCsv),
            ("/api/streams//availability", Route::NotFound),
            ("/api/streams/a/b/history.csv", Route::NotFound),
            ("/api/streams/a/b/history", Route::NotFound),
            ("/api/settings", Route::ApiSettings),
            ("/api/openapi.json", Route::ApiOpenApi),
            ("/api/streams/cam1", Route::ApiStream(s("cam1"))),
            ("/api/streams/a%2Fb", Route::ApiStream(s("a/b"))),
            ("/api/streams/history", Route::ApiStream(s("history"))),
            ("/api/streams/check", Route::ApiStream(s("check"))),
            ("/api/streams/cam1/check", Route::ApiStreamCheck(s("cam1"))),
            (
                "/api/streams/check/check",
                Route::ApiStreamCheck(s("check")),
            ),
            ("/api/streams//check", Route::NotFound),
            ("/api/streams/a/b", Route::NotFound),
            ("/api/streams/cam1/other", Route::NotFound),
            ("/api/streams/%ff/history", Route::NotFound),
            ("/api/statusx", Route::NotFound),
            ("/live", Route::Live),
            ("/api/live", Route::ApiLive),
            ("/static/live.js", Route::Static("live.js")),
            ("/static/live.css", Route::Static("live.css")),
            ("/live/cam1/stream", Route::LiveStream(s("cam1"))),
            (
                "/live/Front%20door/thumb.jpg",
                Route::LiveThumb(s("Front door")),
            ),
            ("/live/a%2Fb/stream", Route::LiveStream(s("a/b"))),
            ("/live/cam1", Route::NotFound),
            ("/live/cam1/other", Route::NotFound),
            ("/live//stream", Route::NotFound),
            ("/live/a/b/stream", Route::NotFound),
            ("/live/%ff/stream", Route::NotFound),
            ("/live/", Route::NotFound),
            ("/system", Route::System),
            ("/system/diagnostics.txt", Route::SystemDiagnostics),
            ("/system/backup.spbackup", Route::SystemBackup),
            ("/system/restore", Route::SystemRestore),
            ("/system/update", Route::SystemUpdate),
            ("/system/update/reboot", Route::SystemUpdateReboot),
            ("/system/update/dismiss", Route::SystemUpdateDismiss),
            ("/system/", Route::NotFound),
            ("/../etc/passwd", Route::NotFound),
        ];
        for (path, want) in cases {
            assert_eq!(Route::decode(path), want, "{path}");
        }
        assert_eq!(split_query("/a?b=1"), ("/a", "b=1"));
        assert_eq!(split_query("/a"), ("/a", ""));
    }

    #[test]
    fn stream_paths_round_trip() {
        for name in [
            "cam 1",
            "a/b",
            "<script>alert(1)</script>",
            "Café ☕",
            "x?y#z&w",
            "new",
        ] {
            let p = stream_path(name, "/edit");
            assert_eq!(Route::decode(&p), Route::EditStream(name.into()), "{p}");
            assert!(!p.contains(['<', '>', '"', '\'', ' ']), "{p}");
            let l = live_path(name, "/stream");
            assert_eq!(Route::decode(&l), Route::LiveStream(name.into()), "{l}");
        }
    }

    #[test]
    fn access_classes() {
        assert_eq!(Route::Login.access(), Access::Public);
        assert_eq!(Route::Healthz.access(), Access::Public);
        assert_eq!(Route::Metrics.access(), Access::PublicStatus);
        assert_eq!(Route::ApiStatus.access(), Access::PublicStatus);
        assert_eq!(Route::ApiStreams.access(), Access::Api);
        assert_eq!(Route::ApiAllHistoryCsv.access(), Access::Api);
        assert_eq!(Route::ApiAvailability("x".into()).access(), Access::Api);
        assert_eq!(Route::ApiHistoryCsv("x".into()).access(), Access::Api);
        assert_eq!(Route::Dashboard.access(), Access::Page);
        assert_eq!(Route::Frame("x".into()).access(), Access::Page);
        assert_eq!(Route::Logout.access(), Access::Page);
        assert_eq!(Route::Live.access(), Access::Page);
        assert_eq!(Route::LiveStream("x".into()).access(), Access::Live);
        assert_eq!(Route::LiveThumb("x".into()).access(), Access::Live);
        assert_eq!(Route::ApiLive.access(), Access::Live);
        assert_eq!(Route::System.access(), Access::Page);
        assert_eq!(Route::SystemDiagnostics.access(), Access::Admin);
        assert_eq!(Route::ApiStream("x".into()).access(), Access::Admin);
        assert_eq!(Route::ApiStreamCheck("x".into()).access(), Access::Admin);
        assert_eq!(Route::ApiSettings.access(), Access::Admin);
        for r in [
            Route::ApiStreams,
            Route::ApiStream("x".into()),
            Route::ApiStreamCheck("x".into()),
            Route::ApiSettings,
        ] {
            assert!(r.takes_json() && r.is_api() && !r.takes_upload(), "{r:?}");
        }
        assert!(!Route::ApiStatus.takes_json());
    }
}
