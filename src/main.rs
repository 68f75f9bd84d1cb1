//! The `streampulse` binary: parses the command line and hands over to `cmds`.
//! Everything else lives in the library so the integration tests can use it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = streampulse::cmds::Args::parse();
    streampulse::cmds::init_logging();
    match streampulse::cmds::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One place prints the whole error chain (`{:#}`), as ripgrep does;
            // the log goes to stderr, so this is what the user sees.
            tracing::error!("fatal: {e:#}");
            ExitCode::from(1)
        }
    }
}
