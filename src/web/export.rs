//! CSV downloads of the history: `/api/streams/{name}/history.csv` and
//! `/api/history.csv` (every stream), `?resolution=raw|hour&since=…&until=…`.
//!
//! Streamed: the body is a [`Read`] that asks [`crate::store::export::Pager`]
//! for the next page of rows whenever the bytes of the previous one are
//! sent, on its own read-only connection; tiny_http sends it chunked. Memory
//! is one page (one 10-minute window of heartbeats, or 2000 hourly rows),
//! whatever the range. A database error mid-way ends the body without its
//! last chunk, so the client sees a broken transfer, not a short file.
//!
//! A download may take long on a slow client, so it is sent from a thread
//! of its own (`handler::serve`), not by the web worker; at most
//! [`MAX_EXPORTS`] at once (each holds a thread and a database connection),
//! more get `503`.
//!
//! Times are written twice: UTC (RFC 3339, `Z`) and in the configured zone
//! (RFC 3339 with its offset), both to the millisecond.

use std::borrow::Cow;
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::handler::{Resp, StreamBody};
use super::{HttpError, WebCtx};
use crate::store::export::{Pager, Resolution, Row};

/// The header row of a raw export.
pub const RAW_HEADER: &str = "time_utc,time_local,stream,status,latency_ms,reason,clock_synced\r\n";
/// The header row of an hourly export.
pub const HOUR_HEADER: &str =
    "hour_utc,hour_local,stream,probes,ok,failed,availability,latency_avg_ms,latency_max_ms\r\n";

/// CSV downloads sent at once; more get `503`.
pub const MAX_EXPORTS: usize = 2;

/// Downloads being sent now (process-wide, like the threads they hold).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// One of the [`MAX_EXPORTS`], given back when the body is dropped (sent,
/// or the client went away).
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        RUNNING
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_EXPORTS).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// First characters that make a spreadsheet (Excel, LibreOffice Calc,
/// Google Sheets) read a cell as a formula: `=`, `+`, `-`, `@`, and tab and
/// carriage return, which some of them skip before looking (OWASP, "CSV
/// Injection").
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A CSV field of user text (a stream name): a leading `'` when it starts
/// like a formula, so a spreadsheet shows it as text (`=HYPERLINK(..)`
/// becomes `'=HYPERLINK(..)`; OWASP's advice), then quoted (quotes doubled)
/// when it holds a comma, a quote, a line break or leading/trailing space
/// (RFC 4180). Only for text: a number with a minus sign would get the `'`
/// too.
pub fn field(s: &str) -> Cow<'_, str> {
    let s: Cow<'_, str> = if s.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    };
    let needs = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        s
    }
}

/// Epoch ms as RFC 3339 to the millisecond in `tz` (`Z` for UTC itself);
/// empty if out of range.
pub fn rfc3339_ms(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
        return String::new();
    };
    let frac = ms.rem_euclid(1000);
    if tz == &jiff::tz::TimeZone::UTC {
        return format!("{}.{frac:03}Z", ts.strftime("%Y-%m-%dT%H:%M:%S"));
    }
    let z = ts.to_zoned(tz.clone());
    format!(
        "{}.{frac:03}{}",
        z.strftime("%Y-%m-%dT%H:%M:%S"),
        z.strftime("%:z")
    )
}

/// Writes one row (with its line end) to `out`.
fn write_row(out: &mut Vec<u8>, row: &Row, tz: &jiff::tz::TimeZone) {
    use std::io::Write as _;
    let utc = jiff::tz::TimeZone::UTC;
    let _ = match row {
        Row::Raw(name, h) => write!(
            out,
            "{},{},{},{},{},{},{}\r\n",
            rfc3339_ms(h.ts_ms, &utc),
            rfc3339_ms(h.ts_ms, tz),
            field(name),
            if h.ok { "ok" } else { "fail" },
            h.latency_ms,
            h.reason.map_or("", |r| r.as_str()),
            h.flags & crate::store::recorder::FLAG_CLOCK_UNSYNCED == 0,
        ),
        Row::Hour(name, r) => {
            let failed = r.probes.saturating_sub(r.ok);
            let ratio = if r.probes > 0 {
                format!("{:.6}", r.ok as f64 / r.probes as f64)
            } else {
                String::new()
            };
            let avg = if r.ok > 0 {
                format!("{:.1}", r.latency_sum_ms as f64 / r.ok as f64)
            } else {
                String::new()
            };
            write!(
                out,
                "{},{},{},{},{},{failed},{ratio},{avg},{}\r\n",
                rfc3339_ms(r.hour_ms, &utc),
                rfc3339_ms(r.hour_ms, tz),
                field(name),
                r.probes,
                r.ok,
                r.latency_max_ms,
            )
        }
    };
}

/// The body: the header row, then the pager's rows a page at a time.
struct CsvBody {
    _slot: Slot,
    pager: Option<Pager>,
    tz: jiff::tz::TimeZone,
    /// The page being sent, and where the next row to format is.
    rows: Vec<Row>,
    next_row: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for CsvBody {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.next_row >= self.rows.len() {
                self.rows.clear();
                self.next_row = 0;
                let Some(pager) = self.pager.as_mut() else {
                    return Ok(0);
                };
                match pager.next_page() {
                    Ok(Some(rows)) => self.rows = rows,
                    Ok(None) => {
                        self.pager = None;
                        return Ok(0);
                    }
                    Err(e) => {
                        tracing::error!("CSV export stopped: {e}");
                        self.pager = None;
                        return Err(io::Error::other("database error"));
                    }
                }
            }
            // Format rows until about 16 KiB are ready, not the whole page.
            while self.next_row < self.rows.len() && self.buf.len() < 16 * 1024 {
                write_row(&mut self.buf, &self.rows[self.next_row], &self.tz);
                self.next_row += 1;
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A file name for `Content-Disposition`: the stream's name with anything
/// but ASCII letters, digits, `.`, `_` and `-` made `_`.
fn file_name(only: Option<&str>, res: Resolution) -> String {
    let what = match only {
        Some(n) => n
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        None => "all".to_owned(),
    };
    let res = match res {
        Resolution::Raw => "raw",
        Resolution::Hour => "hour",
    };
    format!("streampulse-{what}-{res}.csv")
}

/// Answers a CSV download: `only` one stream (404 if neither configured
/// nor in the history) or all. Defaults: `resolution=raw`, `until` now
/// (plus a minute), `since` 24 hours (raw) or 30 days (hour) before `until`; `since`/`until` as in the JSON history
/// (epoch ms or RFC 3339).
pub fn download(ctx: &WebCtx, only: Option<&str>, query: &str) -> Result<Resp, HttpError> {
    let now = ctx.clock.now_ms();
    let (mut since, mut until, mut res) = (None, now + 60_000, Resolution::Raw);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "since" => since = Some(super::availability::parse_window_time(&v)?),
            "until" => until = super::availability::parse_window_time(&v)?,
            "resolution" => {
                res = match &*v {
                    "raw" => Resolution::Raw,
                    "hour" => Resolution::Hour,
                    _ => return Err(HttpError::new(400, "resolution must be raw or hour")),
                }
            }
            _ => return Err(HttpError::new(400, format!("unknown parameter {k:?}"))),
        }
    }
    let since = since.unwrap_or(match res {
        Resolution::Raw => until - crate::store::retention::DAY_MS,
        Resolution::Hour => until - 30 * crate::store::retention::DAY_MS,
    });
    if since >= until {
        return Err(HttpError::new(400, "since must be before until"));
    }
    let cfg = ctx.config.read().expect("config lock").clone();
    let slot = Slot::take().ok_or_else(|| {
        HttpError::new(
            503,
            format!("{MAX_EXPORTS} downloads are running; try again when one is done"),
        )
    })?;
    let conn = crate::store::open_read_only(&ctx.db_path).map_err(|e| {
        tracing::error!("CSV export: {e:#}");
        HttpError::new(503, "database not available")
    })?;
    let pager =
        Pager::new(conn, ctx.heartbeat_tail.clone(), res, only, since, until).map_err(|e| {
            tracing::error!("CSV export: {e}");
            HttpError::new(503, "database busy or unavailable")
        })?;
    if let (None, Some(name)) = (&pager, only) {
        if !cfg.streams.iter().any(|s| s.name == name) {
            return Err(HttpError::new(404, "no such stream"));
        }
    }
    let header = match res {
        Resolution::Raw => RAW_HEADER,
        Resolution::Hour => HOUR_HEADER,
    };
    let body = CsvBody {
        _slot: slot,
        pager,
        tz: cfg.tz(),
        rows: Vec::new(),
        next_row: 0,
        buf: header.as_bytes().to_vec(),
        pos: 0,
    };
    let mut r = Resp::new(200, "text/csv; charset=utf-8", Vec::new());
    r.stream = Some(Box::new(StreamBody(Box::new(body))));
    Ok(r.with_header(
        "Content-Disposition",
        format!("attachment; filename=\"{}\"", file_name(only, res)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("cam 1"), "cam 1");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field(" lead"), "\" lead\"");
    }

    /// See: issue 19 (CSV formula injection). A name a spreadsheet would
    /// run as a formula gets a leading `'`, and is still RFC 4180 quoted
    /// when it needs to be; text that merely holds those characters later
    /// is left alone.
    #[test]
    fn formula_cells_get_a_leading_quote() {
        assert_eq!(
            field("=HYPERLINK(\"http://evil.test/\",\"cam\")"),
            "\"'=HYPERLINK(\"\"http://evil.test/\"\",\"\"cam\"\")\""
        );
        assert_eq!(field("=1+2"), "'=1+2");
        assert_eq!(field("+33 lobby"), "'+33 lobby");
        assert_eq!(field("-2 garage"), "'-2 garage");
        assert_eq!(field("@SUM(A1:A9)"), "'@SUM(A1:A9)");
        assert_eq!(field("\t=1"), "'\t=1");
        assert_eq!(field("\r=1"), "\"'\r=1\"");
        assert_eq!(field("=a,b"), "\"'=a,b\"");
        assert_eq!(field("cam=1 + 2 - 3 @home"), "cam=1 + 2 - 3 @home");
        assert_eq!(field(""), "");
    }

    #[test]
    fn times_in_utc_and_the_zone_to_the_ms() {
        let ms = 1_700_000_000_123;
        assert_eq!(
            rfc3339_ms(ms, &jiff::tz::TimeZone::UTC),
            "2023-11-14T22:13:20.123Z"
        );
        let kolkata = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
        assert_eq!(rfc3339_ms(ms, &kolkata), "2023-11-15T03:43:20.123+05:30");
        assert_eq!(
            rfc3339_ms(-1, &jiff::tz::TimeZone::UTC),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(
            file_name(Some("Front door, \"east\"/ü"), Resolution::Raw),
            "streampulse-Front_door___east___-raw.csv"
        );
        assert_eq!(
            file_name(None, Resolution::Hour),
            "streampulse-all-hour.csv"
        );
    }
}
