//! `/metrics`: Prometheus text exposition (format 0.0.4).
//!
//! [`render`] reads the monitor's per-stream probe counters
//! ([`crate::monitor::stats::ProbeStats`]: latency histogram, failures by
//! reason) together with the board, the recorder's counters, the clock
//! state and the database size. Everything is in memory: counters restart at
//! zero with the process, as Prometheus expects (`process_start_time_seconds`
//! tells it when).
//!
//! A plain function of [`WebCtx`]: whether `/metrics` needs a login is
//! decided by the router, not here.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::WebCtx;
use crate::monitor::stats::LATENCY_BUCKETS_S;
use crate::picture::PictureVerdict;
use crate::probe::Reason;
use crate::state::Health;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and newline.
pub(super) fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric with one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A metric with one sample per stream, labelled `stream`.
fn per_stream<'a, V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a str, V)>,
) {
    family(out, name, kind, help);
    for (stream, value) in samples {
        let _ = writeln!(out, "{name}{{stream=\"{}\"}} {value}", label(stream));
    }
}

/// Resident set size from `/proc/self/statm` (pages × page size).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096))
}

/// Database size including the WAL (what the SD card holds).
fn db_bytes(ctx: &WebCtx) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal"] {
        let mut p = ctx.db_path.clone().into_os_string();
        p.push(suffix);
        total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    }
    total
}

/// Renders every metric.
pub fn render(ctx: &WebCtx) -> String {
    let mut out = String::with_capacity(4096);
    let now_ms = ctx.clock.now_ms();

    family(
        &mut out,
        "streampulse_build_info",
        "gauge",
        "Always 1; the version is in the label.",
    );
    let _ = writeln!(
        out,
        "streampulse_build_info{{version=\"{}\"}} 1",
        label(crate::VERSION)
    );

    // Copy what we need and let go of the board at once.
    type Row = (String, Health, bool);
    type Picture = (PictureVerdict, Option<i64>);
    let (states, pictures): (Vec<Row>, Vec<Picture>) = ctx
        .board
        .lock()
        .expect("board lock")
        .values()
        .map(|s| {
            let p = &s.picture;
            (
                (s.name.clone(), s.health, s.enabled),
                (p.verdict, p.camera_clock_offset_ms),
            )
        })
        .unzip();

    per_stream(
        &mut out,
        "streampulse_stream_up",
        "gauge",
        "1 if the stream is up (debounced), 0 if down or not yet known.",
        states
            .iter()
            .map(|(name, health, _)| (name.as_str(), u8::from(*health == Health::Up))),
    );
    family(
        &mut out,
        "streampulse_stream_state",
        "gauge",
        "1 for the stream's current debounced state (unknown, up or down).",
    );
    for (name, health, _) in &states {
        for h in [Health::Unknown, Health::Up, Health::Down] {
            let _ = writeln!(
                out,
                "streampulse_stream_state{{stream=\"{}\",state=\"{}\"}} {}",
                label(name),
                h.as_str(),
                u8::from(*health == h)
            );
        }
    }
    per_stream(
        &mut out,
        "streampulse_stream_enabled",
        "gauge",
        "1 if the stream is probed, 0 if disabled in the config.",
        states
            .iter()
            .map(|(name, _, enabled)| (name.as_str(), u8::from(*enabled))),
    );

    family(
        &mut out,
        "streampulse_stream_picture",
        "gauge",
        "1 for the picture checks' current verdict (unknown, ok, frozen, black, blank).",
    );
    for ((name, _, _), (verdict, _)) in states.iter().zip(&pictures) {
        for v in PictureVerdict::ALL {
            let _ = writeln!(
                out,
                "streampulse_stream_picture{{stream=\"{}\",picture=\"{}\"}} {}",
                label(name),
                v.as_str(),
                u8::from(*verdict == v)
            );
        }
    }
    family(
        &mut out,
        "streampulse_camera_clock_offset_seconds",
        "gauge",
        "The camera's clock minus the box's (RTCP sender reports); streams that sent none are absent.",
    );
    for ((name, _, _), (_, offset)) in states.iter().zip(&pictures) {
        if let Some(ms) = offset {
            let _ = writeln!(
                out,
                "streampulse_camera_clock_offset_seconds{{stream=\"{}\"}} {}",
                label(name),
                *ms as f64 / 1000.0
            );
        }
    }

    if let Some(m) = &ctx.monitor {
        let names: std::collections::HashSet<&str> =
            states.iter().map(|(n, _, _)| n.as_str()).collect();
        let stats = m.probe_stats.retain(|n| names.contains(n));

        per_stream(
            &mut out,
            "streampulse_probes_total",
            "counter",
            "Probes finished, by stream.",
            stats.iter().map(|(name, s)| (name.as_str(), s.probes)),
        );
        family(
            &mut out,
            "streampulse_probe_failures_total",
            "counter",
            "Failed probes, by stream and reason code.",
        );
        for (name, s) in &stats {
            for (reason, n) in Reason::ALL.iter().zip(s.failures) {
                if n == 0 {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "streampulse_probe_failures_total{{stream=\"{}\",reason=\"{}\"}} {n}",
                    label(name),
                    reason.as_str()
                );
            }
        }
        family(
            &mut out,
            "streampulse_probe_latency_seconds",
            "histogram",
            "Time from connect to the first complete frame, successful probes only.",
        );
        for (name, s) in &stats {
            let name = label(name);
            let mut cumulative = 0;
            for (i, b) in LATENCY_BUCKETS_S.iter().enumerate() {
                cumulative += s.buckets[i];
                let _ = writeln!(
                    out,
                    "streampulse_probe_latency_seconds_bucket{{stream=\"{name}\",le=\"{b}\"}} {cumulative}"
                );
            }
            cumulative += s.buckets[LATENCY_BUCKETS_S.len()];
            let _ = writeln!(
                out,
                "streampulse_probe_latency_seconds_bucket{{stream=\"{name}\",le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "streampulse_probe_latency_seconds_sum{{stream=\"{name}\"}} {}",
                s.ok_sum_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "streampulse_probe_latency_seconds_count{{stream=\"{name}\"}} {}",
                s.ok_count
            );
        }

        single(
            &mut out,
            "streampulse_heartbeats_total",
            "counter",
            "Heartbeats (probe results) produced by the monitor.",
            m.probes_done.load(Ordering::Relaxed),
        );
    }

    let st = &ctx.recorder_stats;
    single(
        &mut out,
        "streampulse_heartbeats_committed_total",
        "counter",
        "Heartbeats written to the database.",
        st.heartbeats_committed.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "streampulse_recorder_dropped_total",
        "counter",
        "Records dropped because the recorder queue was full.",
        st.dropped.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "streampulse_db_commit_errors_total",
        "counter",
        "Failed database commits (disk full, I/O errors).",
        st.commit_errors.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "streampulse_db_size_bytes",
        "gauge",
        "Size of the SQLite database and its WAL.",
        db_bytes(ctx),
    );

    single(
        &mut out,
        "streampulse_clock_synced",
        "gauge",
        "1 if the system clock is synchronised (NTP) and plausible.",
        u8::from(ctx.sync.state(now_ms).trusted()),
    );
    single(
        &mut out,
        "streampulse_config_error",
        "gauge",
        "1 if the last config edit was rejected (the previous config runs).",
        u8::from(
            ctx.config_error
                .lock()
                .expect("config_error lock")
                .is_some(),
        ),
    );

    if let Some(rss) = rss_bytes() {
        single(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss,
        );
    }
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let started_s = now_ms as f64 / 1000.0 - ctx.started.elapsed().as_secs_f64();
    let _ = writeln!(out, "process_start_time_seconds {started_s:.3}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_escaping() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
