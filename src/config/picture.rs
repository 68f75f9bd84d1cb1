//! A stream's `picture:` block: what the picture checks (`crate::picture`)
//! do with what they find. Each finding is `down` (counts as a failed
//! heartbeat: the stream goes down after `fail_threshold`), `warn` (shown in
//! the `picture`/`camera_clock` fields, the stream stays up) or `off` (not
//! checked). Defaults: a frozen picture counts, a black one and a camera
//! clock that is off only warn.

use std::time::Duration;

use serde::Deserialize;

/// What a finding does to the stream's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The heartbeat counts as failed (reason `frozen`, `black`, `blank`, `camera_clock`).
    Down,
    /// Reported next to `status`; the heartbeat stays ok.
    Warn,
    /// Not checked.
    Off,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Down => "down",
            Action::Warn => "warn",
            Action::Off => "off",
        }
    }
}

/// `picture:` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPicture {
    /// The picture has not changed over `frozen_after` checks. Default `down`.
    pub frozen: Option<Action>,
    /// The picture is black, or one flat colour. Default `warn`.
    pub black: Option<Action>,
    /// The camera's clock (RTCP sender reports) is off by more than
    /// `clock_tolerance`. Default `warn`.
    pub camera_clock: Option<Action>,
    /// Checks in a row that found the same picture before it is `frozen`
    /// (the first check included). Default 4.
    pub frozen_after: Option<u32>,
    /// Seconds between two picture checks (a decode); a check happens on the
    /// first heartbeat after that. Default 60.
    pub every: Option<u32>,
    /// Seconds the camera's clock may be off. Default 30.
    pub clock_tolerance: Option<u32>,
}

/// The validated `picture:` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PictureConfig {
    pub frozen: Action,
    pub black: Action,
    pub camera_clock: Action,
    pub frozen_after: u32,
    pub every: Duration,
    pub clock_tolerance: Duration,
}

impl Default for PictureConfig {
    fn default() -> Self {
        PictureConfig {
            frozen: Action::Down,
            black: Action::Warn,
            camera_clock: Action::Warn,
            frozen_after: 4,
            every: Duration::from_secs(60),
            clock_tolerance: Duration::from_secs(30),
        }
    }
}

impl PictureConfig {
    /// Whether any check needs the decoded picture.
    pub fn decodes(&self) -> bool {
        self.frozen != Action::Off || self.black != Action::Off
    }

    /// Validates `raw`; the message starts with the key it is about.
    pub fn from_raw(raw: Option<&RawPicture>) -> Result<PictureConfig, String> {
        let d = PictureConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        let frozen_after = raw.frozen_after.unwrap_or(d.frozen_after);
        if !(2..=100).contains(&frozen_after) {
            return Err(format!(
                "picture.frozen_after: must be between 2 and 100 checks (got {frozen_after})"
            ));
        }
        let every = raw.every.unwrap_or(d.every.as_secs() as u32);
        if !(5..=86_400).contains(&every) {
            return Err(format!(
                "picture.every: must be between 5 and 86400 seconds (got {every})"
            ));
        }
        let tolerance = raw
            .clock_tolerance
            .unwrap_or(d.clock_tolerance.as_secs() as u32);
        if !(1..=86_400).contains(&tolerance) {
            return Err(format!(
                "picture.clock_tolerance: must be between 1 and 86400 seconds (got {tolerance})"
            ));
        }
        Ok(PictureConfig {
            frozen: raw.frozen.unwrap_or(d.frozen),
            black: raw.black.unwrap_or(d.black),
            camera_clock: raw.camera_clock.unwrap_or(d.camera_clock),
            frozen_after,
            every: Duration::from_secs(every.into()),
            clock_tolerance: Duration::from_secs(tolerance.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_count_frozen_and_warn_for_the_rest() {
        let c = PictureConfig::from_raw(None).unwrap();
        assert_eq!(c, PictureConfig::default());
        assert_eq!(
            (c.frozen, c.black, c.camera_clock),
            (Action::Down, Action::Warn, Action::Warn)
        );
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let raw = RawPicture {
            frozen_after: Some(1),
            ..RawPicture::default()
        };
        assert!(PictureConfig::from_raw(Some(&raw))
            .unwrap_err()
            .starts_with("picture.frozen_after:"));
        let raw = RawPicture {
            every: Some(2),
            ..RawPicture::default()
        };
        assert!(PictureConfig::from_raw(Some(&raw))
            .unwrap_err()
            .starts_with("picture.every:"));
    }
}
