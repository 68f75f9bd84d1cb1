//! `streampulse passwd`: make an admin password hash for the web GUI.
//!
//! Prints the Argon2id hash to put in `config.yaml` as
//! `admin_password_hash:` (for example in a `config.yaml` dropped on the SD
//! card's boot partition, which is how a forgotten password is reset; there
//! `admin_password:` with the plain text works too, see
//! [`crate::system::bootcfg`]), or
//! with `--config FILE` writes it into that file directly (atomically; a
//! running daemon picks it up within seconds and ends all web sessions).
//!
//! The password is read from the terminal without echo (asked twice), or as
//! the first line of standard input when that is not a terminal (scripts).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::config::edit::{self, ConfigFile};
use crate::credentials;

/// Arguments of `passwd`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the hash into this config file instead of printing it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<u8> {
    let stdin = std::io::stdin();
    let pw = if stdin.is_terminal() {
        let a = prompt_hidden("New admin password: ")?;
        let b = prompt_hidden("Again: ")?;
        if let Err(m) = credentials::check_new_password(&a, &b) {
            bail!("password not accepted: {m}");
        }
        a
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let pw = line.trim_end_matches(['\r', '\n']).to_owned();
        if let Err(m) = credentials::check_new_password(&pw, &pw) {
            bail!("password not accepted: {m}");
        }
        pw
    };
    let hash = credentials::hash_password(&pw)?;
    match args.config {
        None => println!("{hash}"),
        Some(path) => {
            ConfigFile::new(&path)
                .edit(|t| {
                    edit::set_admin_hash(t, &hash);
                    Ok(())
                })
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("setting the admin password in {}", path.display()))?;
            eprintln!(
                "admin password set in {} (a running streampulse applies it within a few seconds)",
                path.display()
            );
        }
    }
    Ok(0)
}

/// Reads a line from the terminal with echo turned off.
fn prompt_hidden(prompt: &str) -> Result<String> {
    use std::os::fd::AsRawFd;
    let mut err = std::io::stderr();
    write!(err, "{prompt}")?;
    err.flush()?;
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed, owned termios.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    let have_tty = unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have_tty {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    if have_tty {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    }
    writeln!(err)?;
    r.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
