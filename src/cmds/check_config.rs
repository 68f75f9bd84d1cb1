//! `streampulse check-config FILE`: validate without running.

use std::path::PathBuf;

/// Arguments of `check-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file to check.
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match crate::config::load(&args.file) {
        Ok(c) => {
            let enabled = c.streams.iter().filter(|s| s.enabled).count();
            println!(
                "{}: ok: {} streams ({enabled} enabled), heartbeat {} s, time zone {}",
                args.file.display(),
                c.streams.len(),
                c.heartbeat.as_secs(),
                c.timezone
            );
            println!("  network: {}", c.network);
            for s in &c.streams {
                println!(
                    "  {:<24} {:<8} every {:>4} s  timeout {:>3} s  {}{}",
                    s.name,
                    s.target.kind,
                    s.interval.as_secs(),
                    s.target.timeout.as_secs(),
                    s.url_redacted,
                    if s.enabled { "" } else { "  (disabled)" }
                );
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}
