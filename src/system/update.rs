//! Installing an update bundle with RAUC (docs/UPDATES.md), the daemon's
//! side: a bundle uploaded on the System page (or with an `admin` API token),
//! or dropped on the boot partition as `update.raucb`, is streamed to
//! `<data>/update/`, handed to `rauc install` (RAUC's service writes the
//! slot that is not running, after checking the bundle's signature and
//! compatible), and the box reboots into it; the health gate
//! (`streampulse-mark-good`) keeps it or rolls back.
//!
//! The daemon never switches slots itself: RAUC does, and the D-Bus policy
//! lets the daemon's user call its installer and nothing else. The reboot is
//! asked of root by a file ([`REBOOT_REQUEST`]) that
//! `streampulse-update-reboot.path` watches; root reboots only when RAUC's
//! post-install handler noted a freshly installed slot.
//!
//! One install at a time; its progress is kept in memory for the page, its
//! result also in `<data>/update/last-result` (a boot-partition install
//! happens before anyone looks).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The bundle's name on the boot partition.
pub const BOOT_BUNDLE: &str = "update.raucb";
/// RAUC's configuration: updates are possible only where it exists.
const RAUC_SYSTEM_CONF: &str = "/etc/rauc/system.conf";
/// Asks root for a reboot (streampulse-update-reboot.path).
pub const REBOOT_REQUEST: &str = "reboot";
/// The health gate's note of a rolled-back update (mark-good writes it).
const LAST_FAILURE: &str = "last-failure";
/// The result of the last install this daemon ran.
const LAST_RESULT: &str = "last-result";
/// Where the bundle is kept while RAUC installs it.
const BUNDLE_FILE: &str = "upload.raucb";
/// Largest bundle accepted: a root filesystem image, compressed.
pub const MAX_BUNDLE_BYTES: u64 = 2 << 30;
/// Left free on the data partition beside the bundle: the database goes on.
const FREE_MARGIN: u64 = 32 << 20;

/// What an install is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Idle,
    /// The bundle is being received (upload, or copied from the boot partition).
    Receiving,
    /// RAUC checks and writes it.
    Installing,
    /// Written into the other slot; it runs after the next reboot.
    Installed,
    /// Installed, and the reboot into it was asked for.
    Rebooting,
    /// Not installed; nothing changed.
    Failed,
}

/// The install's progress, as `GET /system/update` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    /// RAUC's progress, 0–100.
    pub percent: u8,
    /// RAUC's last progress message, or why it failed.
    pub message: String,
    /// Where the bundle came from: "upload" or "boot partition".
    pub source: String,
    /// The installed bundle's version (from RAUC's post-install note).
    pub version: Option<String>,
    /// The slot it was written to ("A"/"B").
    pub slot: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

/// The health gate's note: an update that did not become healthy and was
/// rolled back (`/data/update/last-failure`, written by mark-good).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RolledBack {
    pub slot: String,
    pub version: String,
    pub reason: String,
    pub time: String,
}

/// The box's updater: one per daemon.
pub struct Updates {
    /// `<data>/update`.
    dir: PathBuf,
    /// Why updates cannot be installed here whatever RAUC says (degraded
    /// mode, no RAUC), if so.
    unavailable: Option<String>,
    /// The root slot RAUC says was booted ("A"/"B"), once known: the daemon
    /// cannot read the kernel command line itself (`ProcSubset=pid`).
    booted: Mutex<Option<String>>,
    progress: Arc<Mutex<Progress>>,
}

impl Updates {
    /// `data_dir`: the running data directory; `degraded`: it is the RAM
    /// fallback (updates need the data partition).
    pub fn new(data_dir: &Path, degraded: bool) -> Updates {
        let dir = data_dir.join("update");
        let unavailable = if degraded {
            Some("the data partition is not usable (degraded mode)".to_owned())
        } else {
            why_unavailable(Path::new(RAUC_SYSTEM_CONF))
        };
        let last = std::fs::read(dir.join(LAST_RESULT))
            .ok()
            .and_then(|b| serde_json::from_slice::<Progress>(&b).ok())
            // A result from before the reboot it asked for is history.
            .map(|mut p| {
                if matches!(
                    p.phase,
                    Phase::Rebooting | Phase::Installing | Phase::Receiving
                ) {
                    p.phase = Phase::Installed;
                }
                p
            })
            .unwrap_or_default();
        Updates {
            dir,
            unavailable,
            booted: Mutex::new(None),
            progress: Arc::new(Mutex::new(last)),
        }
    }

    /// Why updates are not possible on this box (a host run, degraded mode,
    /// a card RAUC cannot tell the booted slot of), or None.
    pub fn unavailable(&self) -> Option<String> {
        if let Some(why) = &self.unavailable {
            return Some(why.clone());
        }
        self.booted_slot()
            .err()
            .map(|e| format!("RAUC cannot tell which root slot is running: {e}"))
    }

    /// The root slot RAUC says was booted (`rauc status`, asked once).
    fn booted_slot(&self) -> Result<String, String> {
        let mut booted = self.booted.lock().unwrap();
        if let Some(slot) = &*booted {
            return Ok(slot.clone());
        }
        let out = super::command::output_within(
            Command::new("rauc").args(["status", "--output-format=json"]),
            RAUC_STATUS_TIMEOUT,
        )?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| format!("rauc status answered no JSON ({e}): {}", out.trim()))?;
        let slot = v["booted"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("rauc status names no booted slot: {}", out.trim()))?;
        *booted = Some(slot.to_owned());
        Ok(slot.to_owned())
    }

    /// What runs now, with the booted slot if RAUC told it.
    pub fn running(&self) -> Running {
        let mut r = running();
        if self.unavailable.is_none() {
            r.slot = self.booted_slot().ok();
        }
        r
    }

    pub fn progress(&self) -> Progress {
        self.progress.lock().unwrap().clone()
    }

    /// The health gate's rollback note, if there is one.
    pub fn rolled_back(&self) -> Option<RolledBack> {
        let bytes = std::fs::read(self.dir.join(LAST_FAILURE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Forgets the rollback note (the user has read it).
    pub fn dismiss_rolled_back(&self) -> Result<()> {
        match std::fs::remove_file(self.dir.join(LAST_FAILURE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("removing the rollback note")
            }
            _ => Ok(()),
        }
    }

    /// Claims the updater for one install; refused while one runs or where
    /// updates are not possible.
    pub fn begin(&self, source: &str, now_ms: i64) -> Result<(), String> {
        if let Some(why) = self.unavailable() {
            return Err(format!("updates cannot be installed here: {why}"));
        }
        let mut p = self.progress.lock().unwrap();
        if matches!(
            p.phase,
            Phase::Receiving | Phase::Installing | Phase::Rebooting
        ) {
            return Err(format!(
                "an update is already {}; wait until it is done",
                match p.phase {
                    Phase::Rebooting => "installed and the box is rebooting",
                    Phase::Receiving => "being received",
                    _ => "being installed",
                }
            ));
        }
        *p = Progress {
            phase: Phase::Receiving,
            message: "receiving the bundle".into(),
            source: source.into(),
            started_ms: now_ms,
            ..Progress::default()
        };
        Ok(())
    }

    /// Streams `len` bytes of `body` to the bundle file (never held in
    /// memory). On an error the claim is released and nothing changed.
    pub fn receive(&self, body: &mut dyn Read, len: u64, now_ms: i64) -> Result<(), String> {
        let r = self.write_bundle(body, len);
        if let Err(e) = &r {
            self.finish(Phase::Failed, e.clone(), now_ms);
        }
        r
    }

    fn write_bundle(&self, body: &mut dyn Read, len: u64) -> Result<(), String> {
        if len > MAX_BUNDLE_BYTES {
            return Err(format!(
                "the file is {} MiB, larger than any update bundle ({} MiB)",
                len >> 20,
                MAX_BUNDLE_BYTES >> 20
            ));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        if let Ok(u) = crate::store::disk::usage(&self.dir) {
            if u.free_bytes < len + FREE_MARGIN {
                return Err(format!(
                    "not enough free space on the data partition: {} MiB free, the bundle is {} MiB",
                    u.free_bytes >> 20,
                    len >> 20
                ));
            }
        }
        let part = self.dir.join(format!("{BUNDLE_FILE}.part"));
        let _ = std::fs::remove_file(&part);
        let mut write = || -> std::io::Result<u64> {
            // 0640: RAUC's service (root) reads it; nobody else needs to.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .open(&part)?;
            let n = std::io::copy(&mut body.take(len), &mut f)?;
            f.flush()?;
            f.sync_all()?;
            Ok(n)
        };
        let result = match write() {
            Ok(n) if n == len => std::fs::rename(&part, self.dir.join(BUNDLE_FILE))
                .map_err(|e| format!("could not store the bundle: {e}")),
            Ok(n) => Err(format!("the upload ended after {n} of {len} bytes")),
            Err(e) => Err(format!("could not store the bundle: {e}")),
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        result
    }

    /// Runs `rauc install` on the received bundle on a thread of its own;
    /// with `reboot`, asks for the reboot into the new slot when it is done.
    pub fn install(self: &Arc<Self>, reboot: bool, clock: crate::clock::SharedClock) {
        let me = self.clone();
        let failed_at = clock.clone();
        let spawned = std::thread::Builder::new()
            .name("update".into())
            .spawn(move || {
                let bundle = me.dir.join(BUNDLE_FILE);
                {
                    let mut p = me.progress.lock().unwrap();
                    p.phase = Phase::Installing;
                    p.message = "starting the installer".into();
                }
                let result = me.run_rauc(&bundle);
                let _ = std::fs::remove_file(&bundle);
                let now = clock.now_ms();
                match result {
                    Err(e) => {
                        tracing::warn!("update: not installed: {e}");
                        me.finish(Phase::Failed, e, now);
                    }
                    Ok(()) => {
                        let (slot, version) = pending_note();
                        {
                            let mut p = me.progress.lock().unwrap();
                            p.slot = slot.clone();
                            p.version = version.clone();
                            p.percent = 100;
                        }
                        let what = format!(
                            "version {} installed into slot {}",
                            version.as_deref().unwrap_or("?"),
                            slot.as_deref().unwrap_or("?")
                        );
                        tracing::warn!("update: {what}");
                        if reboot {
                            match me.request_reboot() {
                                Ok(()) => {
                                    me.finish(Phase::Rebooting, format!("{what}; rebooting"), now)
                                }
                                Err(e) => me.finish(
                                    Phase::Installed,
                                    format!("{what}; the reboot could not be asked for ({e:#}): it runs after the next restart"),
                                    now,
                                ),
                            }
                        } else {
                            me.finish(
                                Phase::Installed,
                                format!("{what}; it runs after the next reboot"),
                                now,
                            );
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            self.finish(
                Phase::Failed,
                format!("could not start the installer: {e}"),
                failed_at.now_ms(),
            );
        }
    }

    /// Asks root for a reboot into the installed slot.
    pub fn request_reboot(&self) -> Result<()> {
        let path = self.dir.join(REBOOT_REQUEST);
        std::fs::write(&path, b"update\n").with_context(|| format!("writing {}", path.display()))
    }

    /// `rauc install BUNDLE`, following its progress lines ("NN% message").
    fn run_rauc(&self, bundle: &Path) -> Result<(), String> {
        let mut child = Command::new("rauc")
            .arg("install")
            .arg(bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run rauc: {e}"))?;
        let stderr = child.stderr.take();
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut s) = stderr {
                let _ = s.by_ref().take(64 << 10).read_to_string(&mut text);
            }
            text
        });
        let mut other = Vec::new();
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match parse_progress(&line) {
                    Some((pct, msg)) => {
                        let mut p = self.progress.lock().unwrap();
                        p.percent = pct;
                        p.message = msg.to_owned();
                    }
                    None if !line.trim().is_empty() => other.push(line),
                    None => {}
                }
            }
        }
        let status = child.wait().map_err(|e| format!("waiting for rauc: {e}"))?;
        let errors = errors.join().unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let lines: Vec<&str> = errors
            .lines()
            .chain(other.iter().map(String::as_str))
            .collect();
        Err(install_error(&lines, &status.to_string()))
    }

    /// Ends the install with `phase` and `message`, and keeps the result.
    fn finish(&self, phase: Phase, message: String, now_ms: i64) {
        let snapshot = {
            let mut p = self.progress.lock().unwrap();
            p.phase = phase;
            p.message = message;
            p.finished_ms = Some(now_ms);
            p.clone()
        };
        let keep = || -> Result<()> {
            let tmp = self.dir.join(format!(".{LAST_RESULT}.tmp"));
            std::fs::write(&tmp, serde_json::to_vec(&snapshot)?)?;
            std::fs::rename(&tmp, self.dir.join(LAST_RESULT))?;
            Ok(())
        };
        if let Err(e) = keep() {
            tracing::warn!("update: could not keep the result: {e:#}");
        }
    }

    /// At start: takes a bundle dropped on the boot partition (`boot_dir`),
    /// copies it to the data partition, removes it from the boot partition
    /// (so it is installed once) and installs it, rebooting into it. Runs
    /// before the daemon reports ready: the boot partition is writable only
    /// until then.
    pub fn take_from_boot(
        self: &Arc<Self>,
        boot_dir: &Path,
        clock: crate::clock::SharedClock,
    ) -> Result<bool> {
        let path = boot_dir.join(BOOT_BUNDLE);
        let Ok(meta) = std::fs::metadata(&path) else {
            return Ok(false);
        };
        let now = clock.now_ms();
        if let Err(e) = self.begin("boot partition", now) {
            bail!("{} left on the boot partition: {e}", path.display());
        }
        let copied = std::fs::File::open(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|mut f| self.receive(&mut f, meta.len(), now));
        if let Err(e) = copied {
            bail!("{} not installed: {e}", path.display());
        }
        // Removed before the install: a bundle that fails is not retried at
        // every start (the reason is on the System page).
        if let Err(e) = std::fs::remove_file(&path) {
            let _ = std::fs::remove_file(self.dir.join(BUNDLE_FILE));
            self.finish(
                Phase::Failed,
                format!("could not remove it from the boot partition: {e}"),
                now,
            );
            bail!(
                "{} not installed: could not remove it from the boot partition (read-only?): {e}",
                path.display()
            );
        }
        tracing::warn!(
            "update: installing {} ({} MiB) from the boot partition; the box reboots when it is done",
            BOOT_BUNDLE,
            meta.len() >> 20
        );
        self.install(true, clock);
        Ok(true)
    }
}

/// What runs now: the daemon's version, the image's (`IMAGE_VERSION` in
/// `/etc/os-release`, which the image build sets) and the root slot
/// ([`Updates::running`] fills it in).
#[derive(Clone, Debug, Serialize)]
pub struct Running {
    pub version: &'static str,
    pub image_version: Option<String>,
    pub slot: Option<String>,
}

pub fn running() -> Running {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    Running {
        version: crate::VERSION,
        image_version: os
            .lines()
            .find_map(|l| l.strip_prefix("IMAGE_VERSION="))
            .map(|v| v.trim_matches('"').to_owned())
            .filter(|v| !v.is_empty()),
        slot: None,
    }
}

impl Running {
    /// "2.0.0 (StreamPulse 0.1.0)", or the daemon's version alone.
    pub fn describe(&self) -> String {
        match &self.image_version {
            Some(v) => format!("{v} (StreamPulse {})", self.version),
            None => format!("StreamPulse {}", self.version),
        }
    }
}

/// Why updates are not possible whatever RAUC says: it is not configured.
fn why_unavailable(system_conf: &Path) -> Option<String> {
    (!system_conf.exists()).then(|| {
        format!(
            "no updater on this system ({} is missing: not the appliance image)",
            system_conf.display()
        )
    })
}

/// Longest wait for `rauc status` (RAUC's service may be started for it).
const RAUC_STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why `rauc install` failed, from its output: RAUC's own reason (its
/// `LastError:` line) when it gave one, else its last lines (not its
/// state words `installing`/`idle`).
fn install_error(lines: &[&str], status: &str) -> String {
    let lines: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !matches!(*l, "installing" | "idle"))
        .collect();
    if let Some(reason) = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("LastError: "))
    {
        return reason.to_owned();
    }
    let tail = lines.len().saturating_sub(3);
    match lines.is_empty() {
        true => format!("rauc install {status}, with no message"),
        false => format!("rauc install {status}: {}", lines[tail..].join("; ")),
    }
}

/// RAUC's CLI progress line: `" 40% Copying image to rootfs.1"`.
fn parse_progress(line: &str) -> Option<(u8, &str)> {
    let (pct, msg) = line.trim_start().split_once("% ")?;
    let pct: u8 = pct.parse().ok()?;
    (pct <= 100).then_some((pct, msg.trim()))
}

/// The slot and version RAUC's post-install handler noted
/// (`/data/rauc/pending`, see overlay/usr/libexec/streampulse/update-installed).
fn pending_note() -> (Option<String>, Option<String>) {
    let text = std::fs::read_to_string("/data/rauc/pending").unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    (get("slot="), get("version="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        assert_eq!(
            parse_progress(" 40% Copying image to rootfs.1"),
            Some((40, "Copying image to rootfs.1"))
        );
        assert_eq!(
            parse_progress("100% Installing done."),
            Some((100, "Installing done."))
        );
        assert_eq!(parse_progress("  0% Installing"), Some((0, "Installing")));
        assert_eq!(parse_progress("installing"), None);
        assert_eq!(parse_progress("150% nonsense"), None);
        assert_eq!(
            parse_progress("Installing `/data/update/x.raucb` failed"),
            None
        );
    }

    #[test]
    fn install_errors_name_raucs_reason() {
        // As rauc 1.8 printed it for a bundle signed under another CA.
        let out = [
            "Installing `/data/update/upload.raucb` failed",
            "installing",
            "LastError: signature verification failed: Verify error: unable to get local issuer certificate",
            "idle",
        ];
        assert_eq!(
            install_error(&out, "exit status: 1"),
            "signature verification failed: Verify error: unable to get local issuer certificate"
        );
        assert_eq!(
            install_error(&["idle", "D-Bus error"], "exit status: 1"),
            "rauc install exit status: 1: D-Bus error"
        );
        assert_eq!(
            install_error(&[], "signal: 9 (SIGKILL)"),
            "rauc install signal: 9 (SIGKILL), with no message"
        );
    }

    #[test]
    fn unavailable_without_rauc() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("system.conf");
        let why = why_unavailable(&conf).unwrap();
        assert!(why.contains("no updater"), "{why}");
        std::fs::write(&conf, "[system]\n").unwrap();
        assert_eq!(why_unavailable(&conf), None);
    }

    #[test]
    fn refused_where_unavailable_and_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let u = Updates::new(dir.path(), true);
        let e = u.begin("upload", 1).unwrap_err();
        assert!(e.contains("degraded"), "{e}");

        let u = Updates {
            dir: dir.path().join("update"),
            unavailable: None,
            booted: Mutex::new(Some("A".into())),
            progress: Arc::default(),
        };
        u.begin("upload", 1).unwrap();
        let e = u.begin("upload", 2).unwrap_err();
        assert!(e.contains("already"), "{e}");
        // A short upload: refused, nothing left behind, the claim released.
        let e = u.receive(&mut &b"abc"[..], 10, 3).unwrap_err();
        assert!(e.contains("after 3 of 10 bytes"), "{e}");
        assert_eq!(u.progress().phase, Phase::Failed);
        assert!(!dir.path().join("update").join(BUNDLE_FILE).exists());
        let kept: Progress =
            serde_json::from_slice(&std::fs::read(dir.path().join("update/last-result")).unwrap())
                .unwrap();
        assert_eq!(kept.phase, Phase::Failed);
        u.begin("upload", 4).unwrap();
        u.receive(&mut &b"bundle"[..], 6, 5).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("update").join(BUNDLE_FILE)).unwrap(),
            b"bundle"
        );
    }

    #[test]
    fn rollback_note_is_read_and_dismissed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("update")).unwrap();
        std::fs::write(
            dir.path().join("update/last-failure"),
            r#"{"slot":"A","version":"2.0.1","reason":"not healthy","time":"2026-12-05T19:42:13Z"}"#,
        )
        .unwrap();
        let u = Updates::new(dir.path(), false);
        let r = u.rolled_back().unwrap();
        assert_eq!((r.slot.as_str(), r.version.as_str()), ("A", "2.0.1"));
        u.dismiss_rolled_back().unwrap();
        assert!(u.rolled_back().is_none());
        u.dismiss_rolled_back().unwrap();
    }
}
