//! Security, as tests (issue 8, "Security"), one concern per file: who may
//! use which route (login and CSRF on every route, sessions that cannot be
//! forged, expired or carried over from another box), first-boot setup that
//! cannot be replayed or raced, the login rate limit, no default password,
//! streams whose names differ only in punctuation kept apart, escaping of
//! everything a camera or a config controls, secrets that never leave the
//! box, path handling, request size caps, slow clients, and the systemd unit;
//! then the outside audit's findings (issue 14).
//!
//! Everything runs against the real `streampulse run` daemon with real
//! peers (GStreamer RTSP, lighttpd, mosquitto) and, where no real peer can
//! misbehave on demand, the named fakes of `tests/it/fakes/`. [`raw`]
//! speaks HTTP over a plain socket, optionally from another loopback
//! address (127.0.0.x), because ureq normalises paths and cannot pick its
//! source address.
//!
//! The route table (`route_table.rs`) is checked against the `Route` enum
//! in `src/web/routes.rs`: a new route without a security case fails
//! `routes_login_csrf::route_table_covers_every_route`.
//!
//! This file holds the module list and the helpers several of them share.

// Helpers for the files below (no tests).
mod raw_http; // HTTP by hand over a socket, from a chosen 127.0.0.x address
mod route_table; // one case per `Route` variant: a path and who may use it

// Issue 8, one file per concern.
mod caps_slow_clients; // request head/body caps, slow clients vs the workers
mod default_password; // a fresh box lets nobody in; no shipped file has a hash
mod editor_echo; // the editors never show a stored or just-typed password
mod escaping; // markup from names, cameras and config shown as text everywhere
mod leaks; // every way out of the box searched for every password
mod paths; // no route reads an arbitrary file; odd methods refused
mod rate_limit; // the login limit per socket address and over all addresses
mod routes_login_csrf; // every route: login, sessions (forged, expired, other box), CSRF
mod setup; // first-boot setup cannot be raced or replayed
mod stream_names; // `a-b`, `a_b`, `a.b`, `a b` stay four streams
mod systemd_unit; // the unit's hardening score and its unprivileged user

// The outside audit's findings (issue 14), one file per concern.
mod access; // Host check (DNS rebinding), login redirect, token scopes, live-view headers, login lock
mod boot_import; // boot-partition import merges, factory/password reset, redacted .applied, file modes and owners
mod secrets; // kept passwords dropped on a changed URL, config errors that quote no secret

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

// What the files above use from the rest of the suite, in one place.
use super::app::{App, TEST_TOKEN};
use super::mosquitto::{Broker, Msg, Spec, Sub};
use super::util::procfs::{rss_kib, threads};
use super::util::{
    closed_port, manifest_dir, streampulse, temp_dir, LighttpdServer, RtspServer, SnapshotServer,
};
use super::web::{log_in, logged_in, set_up, start, Browser, Page, PASSWORD, XSS};
use raw_http::{
    connect_from, find, form_post, get_as, get_req, healthy_within, raw, read_answer, urlencoded,
    Raw,
};

/// Everything a session cookie header needs (`sp_session=...`).
fn session_cookie(b: &Browser) -> String {
    format!(
        "sp_session={}",
        b.jar.get("sp_session").expect("a logged-in browser")
    )
}

/// A raw login attempt from `from` with `password`; extra headers as given.
fn login_from(addr: &str, from: Ipv4Addr, password: &str, extra: &str) -> u16 {
    let pre = "P".repeat(43);
    let body = urlencoded([("pre", pre.as_str()), ("password", password), ("next", "/")]);
    let headers = format!("Cookie: sp_pre={pre}\r\n{extra}");
    raw(
        addr,
        Some(from),
        &form_post("/login", addr, &headers, &body),
    )
    .status
}

/// Every file below `dir`, recursively (none if `dir` does not exist).
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Stream name → state topic, from the Home Assistant discovery configs
/// received (the latest config of a name wins).
fn ha_state_topics(all: &[Msg]) -> BTreeMap<String, String> {
    let mut topics = BTreeMap::new();
    for m in all
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/") && m.topic.ends_with("/config"))
    {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&m.payload) else {
            continue; // an empty payload removes an entity
        };
        if let (Some(name), Some(topic)) = (v["name"].as_str(), v["state_topic"].as_str()) {
            topics.insert(name.to_owned(), topic.to_owned());
        }
    }
    topics
}

/// The `state` field of the last message on `topic`.
fn last_state(all: &[Msg], topic: &str) -> Option<String> {
    let m = all.iter().rev().find(|m| m.topic == topic)?;
    let v: serde_json::Value = serde_json::from_str(&m.payload).ok()?;
    v["state"].as_str().map(str::to_owned)
}
