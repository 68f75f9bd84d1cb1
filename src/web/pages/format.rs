//! How the pages write times, ages, durations and probe stages, so every
//! page (and the system and live pages) says them the same way.

use crate::probe::Stages;

/// `2026-11-28 17:30:05` in `tz`.
pub fn fmt_time(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago` (the dashboard's script
/// formats the same way).
pub fn ago(now_ms: i64, ms: i64) -> String {
    let s = (now_ms - ms) / 1000;
    match s {
        i64::MIN..=0 => "just now".into(),
        1..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

pub(crate) fn fmt_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{secs} s")
    }
}

/// The timed stages of a probe as (label, `12 ms`) rows; `http` names the
/// request stage as HTTP does.
pub(super) fn stages_list(st: &Stages, http: bool) -> Vec<(String, String)> {
    let rows = [
        ("DNS", st.dns_ms),
        ("Connect", st.connect_ms),
        (if http { "Request" } else { "DESCRIBE" }, st.describe_ms),
        ("SETUP", st.setup_ms),
        ("PLAY", st.play_ms),
        ("First frame", st.first_frame_ms),
    ];
    rows.iter()
        .filter_map(|(l, v)| v.map(|ms| ((*l).to_owned(), format!("{ms} ms"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_and_durations() {
        assert_eq!(ago(10_000, 10_000), "just now");
        assert_eq!(ago(15_000, 10_000), "5 s ago");
        assert_eq!(ago(200_000, 10_000), "3 min ago");
        assert_eq!(ago(3 * 3_600_000, 0), "3 h ago");
        assert_eq!(ago(3 * 86_400_000, 0), "3 d ago");
        assert_eq!(fmt_duration(59), "59 s");
        assert_eq!(fmt_duration(3700), "1 h 1 min");
        assert_eq!(fmt_duration(90_000), "1 d 1 h");
    }
}
