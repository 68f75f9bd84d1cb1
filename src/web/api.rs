//! JSON answers of the web API. `/api/status` is the status report
//! ([`crate::report`], shared with MQTT), written pretty into the response
//! body; the rest (`/api/streams`, `/healthz`, history) are the web's own.
//! Times are ISO 8601 in the configured time zone ([`crate::report::iso`]);
//! `_ms` fields are UTC epoch ms.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::{HttpError, WebCtx};
use crate::report::{self, iso};
use crate::store::query;

/// `/api/openapi.json`: the JSON API described in OpenAPI 3.0, compiled in
/// (`src/web/openapi.json`; `tests/it/write_api.rs` checks it against the
/// routes).
pub const OPENAPI_JSON: &[u8] = include_bytes!("openapi.json");

/// `/api/status`: the status report, indented (people read it with curl).
pub fn status(ctx: &WebCtx) -> Vec<u8> {
    let mut body = Vec::new();
    report::write_status(&mut body, &ctx.board, &ctx.config, report::Style::Pretty);
    body
}

/// `/api/streams`: the configured streams, URLs redacted, with their
/// availability figures ([`super::availability::stream_fields`]) when the
/// database can be read (`db`).
pub fn streams(ctx: &WebCtx, db: Option<&rusqlite::Connection>) -> Value {
    let cfg = ctx.config.read().expect("config lock").clone();
    let now = ctx.clock.now_ms();
    let figures = db.and_then(|c| {
        super::availability::all_streams(ctx, c, now)
            .map_err(|e| tracing::error!("availability: {e}"))
            .ok()
            .map(|v| {
                v.into_iter()
                    .map(|f| (f.name.clone(), f))
                    .collect::<std::collections::HashMap<_, _>>()
            })
    });
    let tz = cfg.tz();
    let board = ctx.board.lock().expect("board lock");
    let list: Vec<Value> = cfg
        .streams
        .iter()
        .map(|s| {
            let mut v = json!({
                "name": s.name,
                "kind": s.target.kind,
                "url": s.url_redacted,
                "enabled": s.enabled,
                "interval_s": s.interval.as_secs(),
                "timeout_s": s.target.timeout.as_secs(),
                "transport": s.target.transport,
                "fail_threshold": s.fail_threshold,
                "ok_threshold": s.ok_threshold,
                "has_credentials": s.target.creds.is_some(),
                "state": board.get(&s.name).map(|b| b.health),
            });
            let fields = figures
                .as_ref()
                .and_then(|f| f.get(&s.name))
                .map(|f| super::availability::stream_fields(f, now, &tz));
            if let (Some(o), Some(Value::Object(extra))) = (v.as_object_mut(), fields) {
                o.extend(extra);
            }
            v
        })
        .collect();
    Value::Array(list)
}

/// What `/healthz` says of a config error to a caller who is not logged in:
/// that there is one, not what it is (it may name hosts, keys and values).
pub const CONFIG_ERROR_PUBLIC: &str = "config.yaml has an error; log in to see it";

/// `/healthz`: the box itself. `detail`: the caller is logged in (session or
/// API token) and sees config and boot-import errors in full (scrubbed of
/// secrets); others see [`CONFIG_ERROR_PUBLIC`] and the import's outcome only.
pub fn healthz(ctx: &WebCtx, detail: bool) -> Value {
    let cfg = ctx.config.read().expect("config lock").clone();
    let now = ctx.clock.now_ms();
    let sync = ctx.sync.state(now);
    let board = ctx.board.lock().expect("board lock");
    let count = |h: crate::state::Health| {
        board
            .values()
            .filter(|s| s.enabled && s.health == h)
            .count()
    };
    let st = &ctx.recorder_stats;
    let mut v = json!({
        "ok": true,
        "version": crate::VERSION,
        "device_name": cfg.device_name,
        "uptime_s": ctx.started.elapsed().as_secs(),
        "time": iso(now, &cfg.tz()),
        "timezone": cfg.timezone,
        "clock": sync,
        "streams": {
            "configured": board.len(),
            "up": count(crate::state::Health::Up),
            "down": count(crate::state::Health::Down),
            "unknown": count(crate::state::Health::Unknown),
        },
        "probes_done": ctx.monitor.as_ref().map(|m| m.probes_done.load(Ordering::Relaxed)),
        // The box's own link at the last failing probe (monitor::link):
        // while offline, failing cameras are not counted as down.
        "network": ctx.monitor.as_ref().map(|m| {
            let offline = m.link.last();
            json!({ "online": offline.is_none(), "offline_reason": offline })
        }),
        // Counters plus the error state: ok, error, failing_since_ms, backlog, reopens.
        "recorder": st.json(),
        "config_error": ctx.config_error.lock().expect("config_error lock").as_ref()
            .map(|e| if detail { e.as_str() } else { CONFIG_ERROR_PUBLIC }),
    });
    // The box itself (data partition space and retention, NTP offset, watchdog,
    // boot-config import) goes here, not in /api/status: that one's top-level
    // keys are stream names (seed shape).
    let data_dir = ctx.db_path.parent().unwrap_or(std::path::Path::new("."));
    if let (Some(o), Value::Object(extra)) = (
        v.as_object_mut(),
        crate::system::health::global().json(data_dir, detail),
    ) {
        o.extend(extra);
    }
    v
}

/// Parses a `since`/`until` value: epoch milliseconds or an RFC 3339 time.
pub(super) fn parse_time(v: &str) -> Result<i64, HttpError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    v.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            HttpError::new(
                400,
                format!("bad time {v:?}: use epoch milliseconds or RFC 3339"),
            )
        })
}

/// `/api/streams/{name}/history?since=…&until=…&limit=…` (default: the last 24 h).
pub fn history(
    ctx: &WebCtx,
    db: &rusqlite::Connection,
    name: &str,
    query: &str,
) -> Result<Value, HttpError> {
    let now = ctx.clock.now_ms();
    let (mut since, mut until, mut limit) = (now - 24 * 3_600_000, now + 60_000, 10_000u32);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "since" => since = parse_time(&v)?,
            "until" => until = parse_time(&v)?,
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .map_err(|_| HttpError::new(400, "limit must be a positive integer"))?
                    .min(100_000)
            }
            _ => return Err(HttpError::new(400, format!("unknown parameter {k:?}"))),
        }
    }
    let db_err = |e: rusqlite::Error| {
        tracing::error!("history query: {e}");
        HttpError::new(503, "database busy or unavailable")
    };
    let rows = query::history(db, &ctx.heartbeat_tail, name, since, until, limit)
        .map_err(db_err)?
        .ok_or_else(|| HttpError::new(404, "no such stream"))?;
    let events = query::events(db, name, since, 1000).map_err(db_err)?;
    let tz = ctx.config.read().expect("config lock").tz();
    let hb: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "ts": iso(r.ts_ms, &tz),
                "ts_ms": r.ts_ms,
                "status": if r.ok { "ok" } else { "fail" },
                "latency": r.latency_ms,
                "reason": r.reason,
                "clock_synced": !r.clock_unsynced,
            })
        })
        .collect();
    let ev: Vec<Value> = events
        .iter()
        .map(|e| json!({"ts": iso(e.ts_ms, &tz), "ts_ms": e.ts_ms, "from": e.from, "to": e.to, "reason": e.reason, "message": e.message}))
        .collect();
    Ok(json!({
        "stream": name,
        "since": iso(since, &tz),
        "until": iso(until, &tz),
        "heartbeats": hb,
        "events": ev,
    }))
}
