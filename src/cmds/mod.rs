//! Subcommands of the `streampulse` binary. Each module has an `Args` struct
//! and a `run(args) -> anyhow::Result<u8>` returning the exit code.

pub mod bench_availability;
pub mod check_config;
pub mod network;
pub mod passwd;
pub mod probe;
pub mod run;

use clap::{Parser, Subcommand};

/// Camera-stream health monitor: proves on every heartbeat that real video arrives.
#[derive(Debug, Parser)]
#[command(name = "streampulse", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the monitor, recorder and web server.
    Run(run::Args),
    /// Validate a config file; exit 0 if valid, 1 with a line-numbered error if not.
    CheckConfig(check_config::Args),
    /// Probe one URL once and print what was learnt (a field engineer's tool).
    Probe(probe::Args),
    /// Make an admin password hash for the web GUI (or set it with --config).
    Passwd(passwd::Args),
    /// Apply `network:` of the config to networkd/wpa_supplicant (root, on the box).
    Network(network::Args),
    /// Time the availability figures on a scratch database (`make bench`).
    #[command(hide = true)]
    BenchAvailability(bench_availability::Args),
}

/// Dispatches to the subcommand.
pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::CheckConfig(a) => check_config::run(a),
        Cmd::Probe(a) => probe::run(a),
        Cmd::Passwd(a) => passwd::run(a),
        Cmd::Network(a) => network::run(a),
        Cmd::BenchAvailability(a) => bench_availability::run(a),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): a level, and
/// `target=level` pairs, comma-separated (`info,streampulse::live=debug`).
/// Not tracing-subscriber's `EnvFilter`: its span and field filters are
/// never used here and it pulls a regex engine into the binary (issue 20).
///
/// Third-party crates that may print request headers at debug level (retina,
/// ureq, rustls) are held at `warn`/`info` unless `RUST_LOG` names them
/// explicitly: a camera's Authorization header must never reach a log.
pub fn init_logging() {
    use tracing_subscriber::filter::Targets;
    let mut spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    for (krate, level) in [
        ("retina", "warn"),
        ("ureq", "warn"),
        ("ureq_proto", "warn"),
        ("rustls", "warn"),
    ] {
        if !spec.contains(krate) {
            spec.push_str(&format!(",{krate}={level}"));
        }
    }
    let filter = spec.parse::<Targets>().unwrap_or_else(|e| {
        eprintln!("RUST_LOG={spec:?}: {e}; logging at info");
        Targets::new().with_default(tracing::Level::INFO)
    });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(filter)
        // A camera quirk's third-party warning once per stream, not per probe.
        .with(crate::log_once::OncePerStream::default())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        // The last lines, scrubbed, for the System page (see recent_log).
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(crate::system::recent_log::MakeLineWriter)
                .with_ansi(false)
                .with_target(false),
        )
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
