//! The box's own camera as a child process: a capture command (by default
//! the Pi's `rpicam-vid`) that writes H.264 Annex B to its standard output.
//!
//! Why a process and not a library: libcamera is C++ with its own IPA
//! modules, and `rpicam-vid` already drives the Pi's hardware H.264 encoder
//! where the board has one; a child keeps all of that out of our static
//! binary, and a test stands in for it with ffmpeg. The command is run
//! without a shell (argv split on whitespace), killed when its handle is
//! dropped, and the tail of its standard error is kept for the failure
//! message ("no cameras available", "Device or resource busy").

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdout, Command};

use super::{Failure, Reason};

/// Bytes of the command's standard error kept for a failure message.
const STDERR_TAIL_BYTES: usize = 600;

/// How a stream's local camera is captured (validated from `capture:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Where the pictures come from.
    pub source: Source,
    /// Pixels asked of the camera (`libcamera:`), or the most a V4L2
    /// camera's frame size may have (its largest size within the cap).
    pub width: u32,
    pub height: u32,
    /// Frames per second asked of the camera (a V4L2 camera's JPEGs above
    /// it are dropped); also the live view's clock (a raw H.264 stream
    /// carries no timestamps).
    pub framerate: u32,
}

/// Where a local camera's pictures come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `libcamera:`: a command and its arguments, placeholders filled in,
    /// never run through a shell; it writes H.264 Annex B.
    Command(Vec<String>),
    /// `v4l2:///dev/videoN`: the device, read directly (`probe::v4l2`).
    V4l2(String),
}

impl Capture {
    /// The command as one line (or the device path), for messages (it holds
    /// no secrets: it is the config's template with numbers filled in).
    pub fn command_line(&self) -> String {
        match &self.source {
            Source::Command(argv) => argv.join(" "),
            Source::V4l2(path) => path.clone(),
        }
    }
}

/// A running capture command; killed on drop.
pub struct Running {
    child: Child,
    stdout: ChildStdout,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    program: String,
}

/// Starts `cap`'s command.
///
/// # Errors
/// `capture`: the program does not exist or cannot be run, or `cap` names
/// a V4L2 device (no command).
pub fn spawn(cap: &Capture) -> Result<Running, Failure> {
    let Source::Command(argv) = &cap.source else {
        return Err(Failure::new(
            Reason::Capture,
            "a V4L2 camera has no capture command",
        ));
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Failure::new(Reason::Capture, "the capture command is empty"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                "not found (is it installed, and on PATH?)".to_owned()
            } else {
                format!("cannot be started: {e}")
            };
            Failure::new(
                Reason::Capture,
                format!("capture command {program:?} {what}"),
            )
        })?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let stderr_tail = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(keep_tail(stderr, stderr_tail.clone()));
    Ok(Running {
        child,
        stdout,
        stderr_tail,
        program: program.clone(),
    })
}

/// Reads `from` to its end, keeping its last [`STDERR_TAIL_BYTES`].
async fn keep_tail(mut from: impl AsyncRead + Unpin, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut t = tail.lock().expect("stderr tail lock");
        t.extend_from_slice(&buf[..n]);
        let excess = t.len().saturating_sub(STDERR_TAIL_BYTES);
        t.drain(..excess);
    }
}

impl Running {
    /// Reads the next bytes of the picture stream; 0 at its end.
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stdout.read(buf).await
    }

    /// The last lines the command wrote to its standard error, on one line.
    pub fn stderr_tail(&self) -> String {
        let t = self.stderr_tail.lock().expect("stderr tail lock");
        let text = String::from_utf8_lossy(&t);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let from = lines.len().saturating_sub(3);
        lines[from..].join(" | ")
    }

    /// Why the picture stream ended: waits (briefly) for the command's exit
    /// status and names it with its last error lines.
    pub async fn ended(&mut self) -> Failure {
        let status =
            tokio::time::timeout(std::time::Duration::from_secs(2), self.child.wait()).await;
        // Let the stderr reader catch the last lines.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let how = match status {
            Ok(Ok(s)) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Some(c), _) => format!("exited with status {c}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                _ => format!("ended ({s})"),
            },
            Ok(Err(e)) => format!("ended (its status is unknown: {e})"),
            Err(_) => "closed its output".to_owned(),
        };
        let tail = self.stderr_tail();
        let msg = if tail.is_empty() {
            format!("capture command {:?} {how}", self.program)
        } else {
            format!("capture command {:?} {how}: {tail}", self.program)
        };
        Failure::new(Reason::Capture, msg)
    }

    /// The command's process id (tests kill it to see the failure).
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }
}
