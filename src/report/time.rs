//! How the status report, the JSON API and webhook bodies write a point in
//! time: ISO 8601 with the offset of the configured time zone
//! (`2023-11-15T03:43:20+05:30`). One place, so `/api/status`, MQTT payloads,
//! `/api/.../history`, `/healthz` and webhooks cannot drift apart; consumers
//! (Home Assistant templates, scripts) parse this exact shape.

use std::fmt;

use serde::{Serialize, Serializer};

/// The `strftime` pattern of every ISO time we send.
const ISO_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%:z";

/// Epoch ms shown as ISO 8601 in a time zone, written without an
/// intermediate `String` (serialized with `collect_str`). A time jiff cannot
/// represent (far outside years -9999..9999) writes as the empty string, as
/// it always has.
#[derive(Clone, Copy, Debug)]
pub struct Iso<'a> {
    pub ms: i64,
    pub tz: &'a jiff::tz::TimeZone,
}

impl<'a> Iso<'a> {
    pub fn new(ms: i64, tz: &'a jiff::tz::TimeZone) -> Self {
        Iso { ms, tz }
    }
}

impl fmt::Display for Iso<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.ms) {
            Ok(ts) => write!(f, "{}", ts.to_zoned(self.tz.clone()).strftime(ISO_FORMAT)),
            Err(_) => Ok(()),
        }
    }
}

impl Serialize for Iso<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Formats epoch ms as ISO 8601 with offset in `tz` (empty if out of range).
pub fn iso(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    Iso::new(ms, tz).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings below were printed by the formatter this one replaced
    /// (`web::api::iso`) before the move.
    #[test]
    fn iso_shape_offsets_and_out_of_range() {
        let kolkata = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
        let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(
            iso(1_700_000_000_000, &kolkata),
            "2023-11-15T03:43:20+05:30"
        );
        assert_eq!(
            iso(1_700_000_000_999, &utc),
            "2023-11-14T22:13:20+00:00",
            "milliseconds are cut, not rounded"
        );
        assert_eq!(iso(-1, &ny), "1969-12-31T18:59:59-05:00");
        assert_eq!(iso(i64::MAX, &utc), "", "out of range writes nothing");
        assert_eq!(
            serde_json::to_string(&Iso::new(1_700_000_000_000, &kolkata)).unwrap(),
            "\"2023-11-15T03:43:20+05:30\""
        );
        assert_eq!(
            serde_json::to_string(&Iso::new(i64::MAX, &utc)).unwrap(),
            "\"\""
        );
    }
}
