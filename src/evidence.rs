//! Evidence of an outage: when a stream goes down, the last good picture
//! the picture checks kept of it (`picture::LastGood`: at most one
//! `picture.every` old) is written to `<data>/evidence/` as a small JPEG,
//! beside a JSON record of the failure (when, reason, the stage the probe
//! stopped in, its message). The stream page shows them together, and the
//! down webhook and MQTT state link to them.
//!
//! The card is written only when a stream goes down, never per heartbeat:
//! one JPEG (a 640-pixel preview, tens of KB) and one record per stream,
//! each replacing the stream's previous ones, and the directory as a whole
//! held under [`CAP_BYTES`] (the oldest outages' files removed first). The
//! writer reads the monitor's transitions broadcast, like the webhooks; the
//! decode runs off the runtime under the picture checks' one-decode lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::broadcast;

use crate::picture::LastGood;
use crate::state::{Health, Transition};

/// The directory under the data directory.
pub const DIR: &str = "evidence";
/// Bytes the directory may hold.
pub const CAP_BYTES: u64 = 16 * 1024 * 1024;

/// What went wrong, as the evidence record keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub stream: String,
    /// When the stream went down (ms since epoch).
    pub down_ms: i64,
    pub reason: Option<String>,
    /// The stage the failing probe stopped in (`DESCRIBE`, `first frame`, …).
    pub failed_stage: Option<String>,
    pub message: String,
    /// When the kept picture was taken; None: no good picture was kept
    /// (picture checks off, H.265, or none yet).
    pub picture_ms: Option<i64>,
}

/// `<data>/evidence`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

/// The file stem of `stream`'s evidence: a digest of the name, so any
/// name (slashes, dots, unicode) makes a safe file name.
fn stem(stream: &str) -> String {
    let d = sha2::Sha256::digest(stream.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The JPEG of `stream`'s last outage, if one was kept.
pub fn jpeg_path(dir: &Path, stream: &str) -> PathBuf {
    dir.join(format!("{}.jpg", stem(stream)))
}

fn record_path(dir: &Path, stream: &str) -> PathBuf {
    dir.join(format!("{}.json", stem(stream)))
}

/// `stream`'s last outage record, if any (a record of another stream that
/// happens to share the digest is not returned).
pub fn read(dir: &Path, stream: &str) -> Option<Record> {
    let bytes = std::fs::read(record_path(dir, stream)).ok()?;
    serde_json::from_slice::<Record>(&bytes)
        .ok()
        .filter(|r| r.stream == stream)
}

/// Starts the writer on the runtime: it ends when the broadcast closes.
pub fn start(
    dir: PathBuf,
    transitions: &broadcast::Sender<Transition>,
    last_good: Arc<LastGood>,
) -> tokio::task::JoinHandle<()> {
    let mut rx = transitions.subscribe();
    tokio::spawn(async move {
        loop {
            let t = match rx.recv().await {
                Ok(t) => t,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("evidence: {n} state changes missed (too many at once)");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if t.to != Health::Down {
                continue;
            }
            let (dir, last_good) = (dir.clone(), last_good.clone());
            let stream = t.stream.clone();
            let written =
                tokio::task::spawn_blocking(move || write(&dir, &t, last_good.as_ref())).await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(stream = %stream, "evidence not saved: {e:#}"),
                Err(e) => tracing::warn!(stream = %stream, "evidence not saved: {e}"),
            }
        }
    })
}

/// Writes `t`'s record and the stream's last good picture, then trims the
/// directory to [`CAP_BYTES`].
fn write(dir: &Path, t: &Transition, last_good: &LastGood) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let kept = last_good.get(&t.stream);
    let jpeg = kept.as_ref().and_then(|k| {
        crate::picture::render_jpeg(&k.frame, k.dims)
            .inspect_err(|e| tracing::debug!(stream = %t.stream, "no evidence picture: {e}"))
            .ok()
            .map(|j| (j, k.ts_ms))
    });
    let jpg = jpeg_path(dir, &t.stream);
    match &jpeg {
        Some((bytes, _)) => crate::atomic_file::write_atomic(&jpg, bytes, None)?,
        // An older outage's picture must not pass for this one's.
        None => {
            let _ = std::fs::remove_file(&jpg);
        }
    }
    let record = Record {
        stream: t.stream.clone(),
        down_ms: t.ts_ms,
        reason: t.reason.map(|r| r.as_str().to_owned()),
        failed_stage: t.failed_stage.map(str::to_owned),
        message: t.message.clone(),
        picture_ms: jpeg.as_ref().map(|(_, ts)| *ts),
    };
    let json = serde_json::to_vec_pretty(&record)?;
    crate::atomic_file::write_atomic(&record_path(dir, &t.stream), &json, None)?;
    trim(dir, CAP_BYTES);
    Ok(())
}

/// Removes the oldest files until the directory holds at most `cap` bytes.
fn trim(dir: &Path, cap: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok().filter(|m| m.is_file())?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= cap {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::picture::Kept;
    use crate::probe::{Frame, Reason};

    fn down(stream: &str, ts_ms: i64) -> Transition {
        Transition {
            stream: stream.into(),
            ts_ms,
            from: Health::Up,
            to: Health::Down,
            reason: Some(Reason::Connect),
            message: "cannot connect".into(),
            picture: crate::picture::PictureVerdict::Ok,
            failed_stage: Some("connect"),
        }
    }

    #[test]
    fn a_down_stream_gets_its_last_good_picture_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let last_good = LastGood::default();
        last_good.offer(
            "door/1",
            Kept {
                frame: Frame {
                    codec: "h264".into(),
                    data: crate::preview::h264::tests::keyframe(320, 240),
                },
                dims: Some((320, 240)),
                ts_ms: 1_000,
            },
        );
        write(dir.path(), &down("door/1", 5_000), &last_good).unwrap();
        let r = read(dir.path(), "door/1").unwrap();
        assert_eq!(
            (
                r.down_ms,
                r.reason.as_deref(),
                r.failed_stage.as_deref(),
                r.picture_ms
            ),
            (5_000, Some("connect"), Some("connect"), Some(1_000))
        );
        let jpeg = std::fs::read(jpeg_path(dir.path(), "door/1")).unwrap();
        let img = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (320, 240));
        // A stream with no kept picture: a record, and no stale picture.
        write(dir.path(), &down("yard", 6_000), &last_good).unwrap();
        assert_eq!(read(dir.path(), "yard").unwrap().picture_ms, None);
        assert!(!jpeg_path(dir.path(), "yard").exists());
        assert_eq!(read(dir.path(), "nobody"), None);
    }

    #[test]
    fn the_directory_is_trimmed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            std::fs::write(dir.path().join(name), vec![0u8; 1000]).unwrap();
            let t =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(i as u64 + 1);
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(name))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        trim(dir.path(), 2000);
        assert!(!dir.path().join("a").exists());
        assert!(dir.path().join("b").exists() && dir.path().join("c").exists());
    }
}
