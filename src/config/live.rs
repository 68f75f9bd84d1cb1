//! The `live:` section: how many browsers may watch at once (in all and per
//! stream) and how often grid thumbnails are refreshed; the live view itself
//! is [`crate::live`].

use serde_saphyr::Spanned;

use super::{At, Error, RawLive};

/// Validated `live:` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// 0 means the live view is off.
    pub max_viewers: u32,
    pub max_viewers_per_stream: u32,
    pub thumbnail_seconds: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_viewers: 4,
            max_viewers_per_stream: 2,
            thumbnail_seconds: 60,
        }
    }
}

/// Validates `live:` (absent: the defaults).
pub(super) fn from_raw(raw: Option<&Spanned<RawLive>>, at: &At) -> Result<LiveConfig, Error> {
    let Some(l) = raw else {
        return Ok(LiveConfig::default());
    };
    let d = LiveConfig::default();
    let c = LiveConfig {
        max_viewers: l.value.max_viewers.unwrap_or(d.max_viewers),
        max_viewers_per_stream: l
            .value
            .max_viewers_per_stream
            .unwrap_or(d.max_viewers_per_stream),
        thumbnail_seconds: l.value.thumbnail_seconds.unwrap_or(d.thumbnail_seconds),
    };
    if c.max_viewers > 32 {
        return Err(at.err(
            &l.referenced,
            "live.max_viewers: must be between 0 (off) and 32",
        ));
    }
    if !(1..=32).contains(&c.max_viewers_per_stream) {
        return Err(at.err(
            &l.referenced,
            "live.max_viewers_per_stream: must be between 1 and 32",
        ));
    }
    if !(5..=3600).contains(&c.thumbnail_seconds) {
        return Err(at.err(
            &l.referenced,
            "live.thumbnail_seconds: must be between 5 and 3600",
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn err(text: &str) -> Error {
        parse(text, "config.yaml").expect_err("should be rejected")
    }

    #[test]
    fn live_settings() {
        let c = parse("streams: []\n", "c").unwrap();
        assert_eq!(c.live, LiveConfig::default());
        let c = parse(
            "live:\n  max_viewers: 0\n  max_viewers_per_stream: 3\n  thumbnail_seconds: 30\n",
            "c",
        )
        .unwrap();
        assert_eq!(
            (
                c.live.max_viewers,
                c.live.max_viewers_per_stream,
                c.live.thumbnail_seconds
            ),
            (0, 3, 30)
        );
        for (text, want, line) in [
            (
                "heartbeat_seconds: 20\nlive:\n  max_viewers: 33\n",
                "live.max_viewers",
                3,
            ),
            (
                "live:\n  max_viewers_per_stream: 0\n",
                "live.max_viewers_per_stream",
                2,
            ),
            (
                "live:\n  thumbnail_seconds: 1\n",
                "live.thumbnail_seconds",
                2,
            ),
            ("live:\n  max_viewer: 3\n", "max_viewer", 2),
        ] {
            let e = err(text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.line, Some(line), "{text}: {e}");
        }
    }
}
