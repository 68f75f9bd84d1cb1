//! The `streams:` list: each [`RawStream`] validated into a [`StreamConfig`]
//! with a credential-free [`Target`] (credentials from the URL or the
//! username/password keys, never both), and names unique ignoring case.
//!
//! [`stream_from_raw`] is shared: the web form's save
//! ([`super::edit::upsert_stream`]) and `streampulse probe` check a single
//! stream with the same rules as a loaded file.

use std::collections::HashSet;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::capture;
use super::picture::PictureConfig;
use super::{At, Error, RawStream};
use crate::probe::{Kind, Target, DEFAULT_MAX_FRAME_BYTES};
use crate::redact::{self, Credentials};

/// Shortest allowed interval: cameras allow few sessions, and SD cards wear.
pub const MIN_INTERVAL_SECS: u32 = 5;
/// Longest allowed interval (one day).
pub const MAX_INTERVAL_SECS: u32 = 86_400;
/// Default probe deadline, capped by the interval.
pub const DEFAULT_TIMEOUT_SECS: u32 = 10;
/// Longest allowed probe deadline.
pub const MAX_TIMEOUT_SECS: u32 = 120;

/// One validated stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamConfig {
    pub name: String,
    /// URL as shown to users: password replaced by `***`.
    pub url_redacted: String,
    pub target: Target,
    pub interval: Duration,
    pub enabled: bool,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// What the picture checks do (frozen, black, camera clock).
    pub picture: PictureConfig,
}

/// Validates the `streams:` list; `heartbeat_secs` is every stream's default
/// interval.
pub(super) fn streams_from_raw(
    list: &[Spanned<RawStream>],
    heartbeat_secs: u32,
    at: &At,
) -> Result<Vec<StreamConfig>, Error> {
    let mut names = HashSet::new();
    let mut streams = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let sc = stream_from_raw(&s.value, heartbeat_secs).map_err(|m| {
            at.err(
                &s.referenced,
                format!("streams[{i}] ({:?}): {m}", s.value.name),
            )
        })?;
        if !names.insert(sc.name.to_lowercase()) {
            return Err(at.err(
                &s.referenced,
                format!(
                    "streams[{i}]: duplicate stream name {:?} (names are compared ignoring case)",
                    sc.name
                ),
            ));
        }
        streams.push(sc);
    }
    Ok(streams)
}

pub(super) fn check_interval(secs: u32) -> Result<(), String> {
    if secs < MIN_INTERVAL_SECS {
        return Err(format!(
            "must be at least {MIN_INTERVAL_SECS} seconds (got {secs})"
        ));
    }
    if secs > MAX_INTERVAL_SECS {
        return Err(format!(
            "must be at most {MAX_INTERVAL_SECS} seconds (got {secs})"
        ));
    }
    Ok(())
}

/// Validates one stream as written. The message starts with the key it is
/// about (`interval: ...`), so the web form can show it next to its field.
pub(crate) fn stream_from_raw(s: &RawStream, heartbeat_secs: u32) -> Result<StreamConfig, String> {
    let name = s.name.trim();
    if name.is_empty() {
        return Err("name: must not be empty".into());
    }
    if name.chars().count() > 64 {
        return Err("name: at most 64 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("name: must not contain control characters".into());
    }
    let parsed =
        url::Url::parse(s.url.trim()).map_err(|e| format!("url: not a valid URL ({e})"))?;
    let kind = match s.kind {
        Some(k) => k,
        None => Kind::infer(&parsed).ok_or_else(|| {
            format!(
                "url: unsupported scheme {:?} (expected rtsp, http, https, libcamera or v4l2)",
                parsed.scheme()
            )
        })?,
    };
    let scheme_ok = match kind {
        Kind::Rtsp => parsed.scheme() == "rtsp",
        Kind::Mjpeg | Kind::Snapshot => matches!(parsed.scheme(), "http" | "https"),
        Kind::Local => matches!(parsed.scheme(), "libcamera" | "v4l2"),
    };
    if !scheme_ok {
        return Err(format!(
            "url: scheme {:?} does not fit kind {kind}",
            parsed.scheme()
        ));
    }
    // The box's own camera: a device, no host, no credentials.
    let capture = if kind == Kind::Local {
        let device = capture::device(&parsed)?;
        if s.username.is_some() || s.password.is_some() {
            return Err("username: a camera on the box takes no credentials".into());
        }
        Some(capture::from_raw(s.capture.as_ref(), &device)?)
    } else {
        if s.capture.is_some() {
            return Err("capture: only applies to local cameras (libcamera:, v4l2://)".into());
        }
        None
    };
    if kind != Kind::Local && parsed.host_str().is_none_or(str::is_empty) {
        return Err("url: has no host".into());
    }
    let (bare, url_creds) = redact::split_credentials(&parsed);
    let field_creds = match (&s.username, &s.password) {
        (None, None) => None,
        (Some(u), p) => Some(Credentials {
            username: u.clone(),
            password: p.clone().unwrap_or_default(),
        }),
        (None, Some(_)) => return Err("password: given without a username".into()),
    };
    let creds = match (url_creds, field_creds) {
        (Some(_), Some(_)) => {
            return Err(
                "credentials are given both in the URL and in username/password; keep one".into(),
            )
        }
        (a, b) => a.or(b),
    };
    let interval_secs = s.interval.unwrap_or(heartbeat_secs);
    check_interval(interval_secs).map_err(|m| format!("interval: {m}"))?;
    let timeout_secs = s.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS.min(interval_secs));
    if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "timeout: must be between 1 and {MAX_TIMEOUT_SECS} seconds (got {timeout_secs})"
        ));
    }
    if timeout_secs > interval_secs {
        return Err(format!(
            "timeout: {timeout_secs} s is longer than the interval ({interval_secs} s)"
        ));
    }
    let fail_threshold = s.fail_threshold.unwrap_or(2);
    let ok_threshold = s.ok_threshold.unwrap_or(1);
    if !(1..=100).contains(&fail_threshold) {
        return Err("fail_threshold: must be between 1 and 100".into());
    }
    if !(1..=100).contains(&ok_threshold) {
        return Err("ok_threshold: must be between 1 and 100".into());
    }
    if s.transport.is_some() && kind != Kind::Rtsp {
        return Err("transport: only applies to rtsp streams".into());
    }
    let picture = PictureConfig::from_raw(s.picture.as_ref())?;
    let url_redacted = redact::redact_url(&bare, creds.as_ref());
    Ok(StreamConfig {
        name: name.to_owned(),
        url_redacted,
        target: Target {
            url: bare,
            kind,
            creds,
            timeout: Duration::from_secs(timeout_secs.into()),
            transport: s.transport.unwrap_or_default(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            measure_keyframe_interval: false,
            capture,
        },
        interval: Duration::from_secs(interval_secs.into()),
        enabled: s.enabled.unwrap_or(true),
        fail_threshold,
        ok_threshold,
        picture,
    })
}
