//! The stream page's history chart, computed on the box and drawn as inline
//! SVG by the template (no JavaScript, no chart library): a strip of up/down
//! bands on top and the mean latency of successful probes below, with time
//! ticks in the configured time zone.
//!
//! Pure: takes the buckets from [`crate::store::query::buckets`] and returns
//! numbers and labels only; the template escapes the labels. Colours come
//! from the stylesheet (classes), and every band also has a text legend, so
//! the chart is readable without colour.

use crate::store::query::BucketRow;

/// Drawing size (SVG user units; the SVG scales to the page width).
pub const WIDTH: f64 = 760.0;
pub const HEIGHT: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 10.0;
const BAND_TOP: f64 = 8.0;
const BAND_H: f64 = 18.0;
const PLOT_TOP: f64 = 34.0;
const PLOT_BOTTOM: f64 = 206.0;

/// One coloured stretch of the up/down strip.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub x: f64,
    pub w: f64,
    /// `up`, `down` or `mixed` (CSS class suffix and legend word).
    pub class: &'static str,
    /// Tooltip: time range and counts.
    pub title: String,
}

/// An axis tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// x (time axis) or y (latency axis) position.
    pub pos: f64,
    pub label: String,
}

/// Everything the template needs to draw the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right_x: f64,
    pub band_top: f64,
    pub band_h: f64,
    pub plot_top: f64,
    pub plot_bottom: f64,
    pub plot_h: f64,
    pub bands: Vec<Band>,
    /// Failing stretches, drawn as shaded columns over the plot area.
    pub down: Vec<Band>,
    /// Polylines (`x,y x,y …`), broken where no probe succeeded.
    pub lines: Vec<String>,
    /// Lone points (a successful bucket between gaps).
    pub dots: Vec<(f64, f64)>,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    /// One sentence for screen readers and the `<title>`.
    pub summary: String,
    pub has_data: bool,
}

/// A "nice" axis maximum ≥ `v`: 1, 2 or 5 times a power of ten.
pub fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 100.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        let s = ms / 1000.0;
        if s.fract() == 0.0 {
            format!("{s:.0} s")
        } else {
            format!("{s:.1} s")
        }
    } else {
        format!("{ms:.0} ms")
    }
}

/// Builds the chart of `rows` (buckets of `bucket_ms` from `since_ms` to
/// `until_ms`), labelling time in `tz`.
pub fn build(
    rows: &[BucketRow],
    since_ms: i64,
    until_ms: i64,
    bucket_ms: i64,
    tz: &jiff::tz::TimeZone,
) -> Chart {
    let span = (until_ms - since_ms).max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_of = |t: i64| LEFT + (t - since_ms) as f64 / span * plot_w;
    let fmt_time = |t: i64| {
        jiff::Timestamp::from_millisecond(t)
            .map(|ts| {
                ts.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };

    // Up/down strip, merging neighbouring buckets of the same class.
    let mut bands: Vec<Band> = Vec::new();
    let (mut probes_total, mut ok_total) = (0u64, 0u64);
    for r in rows {
        probes_total += u64::from(r.probes);
        ok_total += u64::from(r.ok);
        let class = if r.ok == r.probes {
            "up"
        } else if r.ok == 0 {
            "down"
        } else {
            "mixed"
        };
        let (x0, x1) = (
            x_of(r.start_ms),
            x_of(r.start_ms + bucket_ms).min(WIDTH - RIGHT),
        );
        match bands.last_mut() {
            Some(b) if b.class == class && (b.x + b.w - x0).abs() < 0.01 => {
                b.w = x1 - b.x;
            }
            _ => bands.push(Band {
                x: x0,
                w: x1 - x0,
                class,
                title: String::new(),
            }),
        }
    }
    for b in &mut bands {
        let t0 = since_ms + ((b.x - LEFT) / plot_w * span).round() as i64;
        let t1 = since_ms + ((b.x + b.w - LEFT) / plot_w * span).round() as i64;
        let what = match b.class {
            "up" => "all probes succeeded",
            "down" => "all probes failed",
            _ => "some probes failed",
        };
        b.title = format!("{} – {}: {what}", fmt_time(t0), fmt_time(t1));
    }
    let down: Vec<Band> = bands.iter().filter(|b| b.class != "up").cloned().collect();

    // Latency line: mean of successful probes per bucket.
    let max_lat = rows
        .iter()
        .filter_map(|r| r.latency_avg_ms)
        .fold(0.0f64, f64::max);
    let y_max = nice_ceil(max_lat);
    let plot_h = PLOT_BOTTOM - PLOT_TOP;
    let y_of = |ms: f64| PLOT_BOTTOM - (ms / y_max).min(1.0) * plot_h;
    let mut lines = Vec::new();
    let mut dots = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let mut prev_idx: Option<i64> = None;
    let flush = |cur: &mut Vec<(f64, f64)>, lines: &mut Vec<String>, dots: &mut Vec<(f64, f64)>| {
        match cur.len() {
            0 => {}
            1 => dots.push(cur[0]),
            _ => lines.push(
                cur.iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
        cur.clear();
    };
    for r in rows {
        let idx = (r.start_ms - since_ms) / bucket_ms.max(1);
        let Some(avg) = r.latency_avg_ms else {
            flush(&mut current, &mut lines, &mut dots);
            prev_idx = None;
            continue;
        };
        if prev_idx.is_some_and(|p| idx != p + 1) {
            flush(&mut current, &mut lines, &mut dots);
        }
        current.push((x_of(r.start_ms + bucket_ms / 2), y_of(avg)));
        prev_idx = Some(idx);
    }
    flush(&mut current, &mut lines, &mut dots);

    let y_ticks = (0..=4)
        .map(|i| {
            let v = y_max * f64::from(i) / 4.0;
            Tick {
                pos: y_of(v),
                label: ms_label(v),
            }
        })
        .collect();
    let x_ticks = time_ticks(since_ms, until_ms, tz)
        .into_iter()
        .map(|(t, label)| Tick {
            pos: x_of(t),
            label,
        })
        .collect();

    let summary = if probes_total == 0 {
        "No heartbeats in this period.".to_owned()
    } else {
        format!(
            "{probes_total} probes, {} failed; mean latency of successful probes up to {}.",
            probes_total - ok_total,
            ms_label(max_lat)
        )
    };
    Chart {
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right_x: WIDTH - RIGHT,
        band_top: BAND_TOP,
        band_h: BAND_H,
        plot_top: PLOT_TOP,
        plot_bottom: PLOT_BOTTOM,
        plot_h,
        bands,
        down,
        lines,
        dots,
        x_ticks,
        y_ticks,
        summary,
        has_data: probes_total > 0,
    }
}

/// Tick times and labels: every 3 hours for a day or less (`HH:MM`), every
/// local midnight for longer spans (`Mon 28`).
fn time_ticks(since_ms: i64, until_ms: i64, tz: &jiff::tz::TimeZone) -> Vec<(i64, String)> {
    let Ok(start) = jiff::Timestamp::from_millisecond(since_ms) else {
        return Vec::new();
    };
    let daily = until_ms - since_ms > 36 * 3_600_000;
    let z = start.to_zoned(tz.clone());
    let step_h: i64 = if daily { 24 } else { 3 };
    // First aligned local boundary after `since`.
    let Ok(mut t) = z
        .with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .hour(if daily { 0 } else { (z.hour() / 3) * 3 })
        .build()
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for _ in 0..64 {
        if t.timestamp().as_millisecond() > since_ms {
            let ms = t.timestamp().as_millisecond();
            if ms >= until_ms {
                break;
            }
            let label = if daily {
                t.strftime("%a %d").to_string()
            } else {
                t.strftime("%H:%M").to_string()
            };
            out.push((ms, label));
        }
        let Ok(next) = t.checked_add(jiff::Span::new().hours(step_h)) else {
            break;
        };
        // Snap back to the boundary after DST changes.
        t = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % H;

    fn row(i: i64, probes: u32, ok: u32, lat: Option<f64>) -> BucketRow {
        BucketRow {
            start_ms: T0 + i * H,
            probes,
            ok,
            latency_avg_ms: lat,
            latency_max_ms: lat.map(|l| l as u32),
        }
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceil(0.0), 100.0);
        assert_eq!(nice_ceil(130.0), 200.0);
        assert_eq!(nice_ceil(480.0), 500.0);
        assert_eq!(nice_ceil(501.0), 1000.0);
        assert_eq!(nice_ceil(1000.0), 1000.0);
    }

    #[test]
    fn bands_merge_and_lines_break_at_gaps() {
        let rows = [
            row(0, 10, 10, Some(100.0)),
            row(1, 10, 10, Some(150.0)),
            row(2, 10, 0, None),
            row(3, 10, 5, Some(300.0)),
            // hour 4 has no data at all
            row(5, 10, 10, Some(120.0)),
        ];
        let c = build(&rows, T0, T0 + 6 * H, H, &jiff::tz::TimeZone::UTC);
        let classes: Vec<&str> = c.bands.iter().map(|b| b.class).collect();
        assert_eq!(classes, ["up", "down", "mixed", "up"]);
        assert!((c.bands[0].x - LEFT).abs() < 1e-9);
        assert!((c.bands[0].w - 2.0 * (WIDTH - LEFT - RIGHT) / 6.0).abs() < 1e-6);
        assert_eq!(c.down.len(), 2);
        assert_eq!(c.lines.len(), 1, "hours 0-1 joined: {:?}", c.lines);
        assert_eq!(c.dots.len(), 2, "hours 3 and 5 stand alone");
        assert_eq!(c.y_ticks.last().unwrap().label, "500 ms");
        assert!(c.summary.contains("50 probes, 15 failed"), "{}", c.summary);
        assert!(c.has_data);
        assert!(c.bands[1].title.contains("all probes failed"));
    }

    #[test]
    fn ticks_follow_the_time_zone() {
        // 24 h from an hour boundary: 8 ticks every 3 h, in Asia/Kolkata they
        // fall on :00 local time, i.e. :30 UTC.
        let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
        let c = build(&[], T0, T0 + 24 * H, 300_000, &tz);
        assert_eq!(c.x_ticks.len(), 8, "{:?}", c.x_ticks);
        assert!(c.x_ticks.iter().all(|t| t.label.ends_with(":00")));
        let week = build(&[], T0, T0 + 7 * 24 * H, H, &tz);
        assert!((6..=7).contains(&week.x_ticks.len()), "{:?}", week.x_ticks);
        assert!(!build(&[], T0, T0 + H, 60_000, &tz).has_data);
    }
}
