//! The daemon's own last log lines, kept in memory for the System page and
//! the diagnostics file (`/system`, [`crate::web::system_page`]): after a
//! problem the admin can see what happened without a shell or `journalctl`.
//!
//! A second `tracing` fmt layer writes each event into [`global`] (see
//! [`crate::cmds::init_logging`]). Bounded to [`MAX_LINES`] lines and
//! [`MAX_BYTES`] bytes (a line is cut at [`MAX_LINE_BYTES`]). Every line is
//! scrubbed with [`redact::redact_text`] and the config's known secrets
//! ([`set_secrets`], updated at every config load) before it is stored, and
//! again when read (a secret learnt later is masked in older lines too).
//! Why global: the tracing subscriber is installed before any config or web
//! context exists, and there is one log per process.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use crate::redact;

/// Lines kept.
pub const MAX_LINES: usize = 300;
/// Bytes kept (all lines together).
pub const MAX_BYTES: usize = 96 * 1024;
/// Longest line kept; longer ones are cut.
pub const MAX_LINE_BYTES: usize = 2048;

/// The last lines and the secrets to mask in them.
#[derive(Default)]
pub struct RecentLog {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    lines: VecDeque<String>,
    bytes: usize,
    secrets: Vec<String>,
}

/// The process's [`RecentLog`].
pub fn global() -> &'static RecentLog {
    static L: OnceLock<RecentLog> = OnceLock::new();
    L.get_or_init(RecentLog::default)
}

/// Sets the secrets masked in stored and shown lines (the running config's).
pub fn set_secrets(secrets: Vec<String>) {
    global().inner.lock().expect("recent log lock").secrets = secrets;
}

impl RecentLog {
    /// Stores one line (scrubbed, cut to [`MAX_LINE_BYTES`]), dropping the
    /// oldest beyond the bounds.
    pub fn push(&self, line: &str) {
        let mut i = self.inner.lock().expect("recent log lock");
        let mut line = redact::redact_text(line.trim_end(), &i.secrets);
        if line.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        i.bytes += line.len();
        i.lines.push_back(line);
        while i.lines.len() > MAX_LINES || i.bytes > MAX_BYTES {
            let Some(old) = i.lines.pop_front() else {
                break;
            };
            i.bytes -= old.len();
        }
    }

    /// The kept lines, oldest first, scrubbed with the current secrets.
    pub fn lines(&self) -> Vec<String> {
        let i = self.inner.lock().expect("recent log lock");
        i.lines
            .iter()
            .map(|l| redact::redact_text(l, &i.secrets))
            .collect()
    }
}

/// A `tracing_subscriber` writer: one per event, stored on drop.
pub struct LineWriter(Vec<u8>);

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            global().push(&String::from_utf8_lossy(&self.0));
        }
    }
}

/// Makes a [`LineWriter`] for each event.
pub struct MakeLineWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeLineWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_scrubbed() {
        let log = RecentLog::default();
        log.inner.lock().unwrap().secrets = vec!["hunter22".into()];
        log.push("connecting to rtsp://admin:pw1@10.0.0.9/x with hunter22\n");
        let l = log.lines();
        assert_eq!(l.len(), 1);
        assert!(!l[0].contains("pw1") && !l[0].contains("hunter22"), "{l:?}");
        for i in 0..MAX_LINES + 10 {
            log.push(&format!("line {i}"));
        }
        let l = log.lines();
        assert_eq!(l.len(), MAX_LINES);
        assert_eq!(l.last().unwrap(), &format!("line {}", MAX_LINES + 9));
        log.push(&"x".repeat(10 * MAX_LINE_BYTES));
        for _ in 0..200 {
            log.push(&"y".repeat(MAX_LINE_BYTES));
        }
        let i = log.inner.lock().unwrap();
        assert!(i.bytes <= MAX_BYTES, "{}", i.bytes);
        assert!(i.lines.iter().all(|l| l.len() <= MAX_LINE_BYTES + 3));
    }
}
