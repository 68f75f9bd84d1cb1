//! `streampulse probe URL`: one probe, printed for a human or as JSON.

use std::time::Duration;

use serde_json::json;

use crate::config::{stream_from_raw, RawStream};
use crate::probe::{self, Kind, Outcome, Transport};

/// Arguments of `probe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// rtsp://, http:// or https:// URL; credentials may be in it or given below.
    pub url: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Deadline in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u32,
    /// RTSP transport: auto (TCP, then UDP if refused; the default), tcp or udp.
    #[arg(long)]
    pub transport: Option<String>,
    /// RTSP H.26x: after the first key frame, wait (within the timeout) for
    /// the next one and report the key-frame interval and bitrate.
    #[arg(long)]
    pub keyframe_interval: bool,
    /// rtsp, mjpeg, snapshot or local (inferred from the URL when absent).
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let kind = match args.kind.as_deref() {
        None => None,
        Some("rtsp") => Some(Kind::Rtsp),
        Some("mjpeg") => Some(Kind::Mjpeg),
        Some("snapshot") => Some(Kind::Snapshot),
        Some("local") => Some(Kind::Local),
        Some(o) => {
            eprintln!("--kind: unknown kind {o:?}; expected rtsp, mjpeg, snapshot or local");
            return Ok(2);
        }
    };
    let transport = match args.transport.as_deref().map(str::parse::<Transport>) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("--transport: {e}");
            return Ok(2);
        }
    };
    let raw = RawStream {
        name: "probe".into(),
        url: args.url.clone(),
        kind,
        interval: Some(args.timeout.max(crate::config::MIN_INTERVAL_SECS)),
        timeout: Some(args.timeout),
        enabled: None,
        fail_threshold: None,
        ok_threshold: None,
        username: args.username.clone(),
        password: args.password.clone(),
        transport,
        picture: None,
        capture: None,
    };
    let mut sc = match stream_from_raw(&raw, crate::config::DEFAULT_HEARTBEAT_SECS) {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    sc.target.measure_keyframe_interval = args.keyframe_interval;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        let o = probe::run(&sc.target).await;
        // Let the camera see our TEARDOWN before the process exits.
        probe::rtsp::wait_for_teardowns(Duration::from_secs(3)).await;
        o
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&sc.url_redacted, sc.target.kind, &outcome))?
        );
    } else {
        print_human(&sc.url_redacted, &outcome);
    }
    Ok(if outcome.is_ok() { 0 } else { 1 })
}

/// The JSON shape printed by `probe --json` (also used by tests).
pub fn to_json(url: &str, kind: Kind, o: &Outcome) -> serde_json::Value {
    json!({
        // A one-off probe has no configured stream name.
        "name": null,
        "url": url,
        "kind": kind,
        "status": if o.is_ok() { "ok" } else { "fail" },
        "reason": o.reason(),
        "message": o.message(),
        "latency_ms": o.latency_ms,
        "stages": o.stages,
        "media": o.media,
    })
}

fn print_human(url: &str, o: &Outcome) {
    println!("{url}");
    match &o.result {
        Ok(()) => println!("  status   ok: {}", o.media.summary()),
        Err(f) => println!("  status   FAIL ({}): {}", f.reason, f.message),
    }
    let s = &o.stages;
    let parts: Vec<String> = [
        ("dns", s.dns_ms),
        ("connect", s.connect_ms),
        ("describe", s.describe_ms),
        ("setup", s.setup_ms),
        ("play", s.play_ms),
        ("first frame", s.first_frame_ms),
    ]
    .iter()
    .filter_map(|(n, v)| v.map(|v| format!("{n} {v}")))
    .collect();
    if parts.is_empty() {
        println!("  latency  {} ms", o.latency_ms);
    } else {
        println!("  latency  {} ms ({})", o.latency_ms, parts.join(", "));
    }
    let m = &o.media;
    if m.codec.is_some() {
        let mut facts = vec![m.codec.clone().unwrap_or_default()];
        if let Some(c) = &m.rfc6381 {
            facts.push(c.clone());
        }
        if let (Some(w), Some(h)) = (m.width, m.height) {
            facts.push(format!("{w}x{h}"));
        }
        if let Some(f) = m.fps {
            facts.push(format!("{f:.2} fps"));
        }
        if let Some(t) = &m.transport {
            facts.push(t.clone());
        }
        if let Some(b) = m.frame_bytes {
            facts.push(format!("{b}-byte frame"));
        }
        if let Some(k) = m.keyframe_interval_ms {
            let over = if m.keyframe_interval_over {
                "more than "
            } else {
                ""
            };
            facts.push(format!(
                "key frames {over}{:.1} s apart",
                f64::from(k) / 1000.0
            ));
        }
        if let Some(b) = m.bitrate_kbps {
            facts.push(format!("{b} kbit/s"));
        }
        println!("  media    {}", facts.join(", "));
        if let Some(off) = m.camera_clock_offset_ms {
            let words = crate::picture::clock_offset_words(off);
            println!("  clock    the camera's clock is {words} (RTCP sender report)");
        }
    }
}
