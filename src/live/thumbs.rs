//! Grid thumbnails: the last good picture of each stream, made from frames
//! the box receives anyway (the monitor's probes, live sessions), never from
//! an extra camera session.
//!
//! Pictures cost CPU (an H.264 key frame is decoded on the box), so they
//! are made only on demand: while someone has looked at the live grid in
//! the last [`WANTED_FOR`], and at most once per `live.thumbnail_seconds`
//! per stream. Rendering runs on its own short-lived thread, one at a time
//! for the whole box (a second offer while one renders is skipped: the next
//! probe brings another frame). Kept JPEGs are capped at [`MAX_KEPT_BYTES`].

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::byte_cache::ByteCache;
use crate::clock::SharedClock;
use crate::probe::Frame;

/// How long one look at the grid keeps thumbnails coming.
pub const WANTED_FOR: Duration = Duration::from_secs(600);
/// JPEGs kept at most (all streams together).
pub const MAX_KEPT_BYTES: usize = 16 << 20;

/// One stream's thumbnail.
#[derive(Clone, Debug)]
pub struct Thumb {
    /// Changes with every new picture (URLs carry it, so caches can keep them).
    pub version: u64,
    /// When the frame arrived, ms since the epoch.
    pub ts_ms: i64,
    at: Instant,
    /// The JPEG, or why there is none (e.g. H.265).
    pub picture: Result<Arc<Vec<u8>>, String>,
}

/// See the module docs.
pub struct Thumbs {
    /// Thumbnails by stream name, capped at [`MAX_KEPT_BYTES`].
    kept: Mutex<ByteCache<Thumb>>,
    seen: Mutex<Option<Instant>>,
    busy: Arc<AtomicBool>,
    interval_secs: AtomicU32,
    next_version: AtomicU64,
    clock: SharedClock,
}

impl Thumbs {
    pub fn new(clock: SharedClock) -> Arc<Thumbs> {
        Arc::new(Thumbs {
            kept: Mutex::new(ByteCache::new(MAX_KEPT_BYTES)),
            seen: Mutex::new(None),
            busy: Arc::new(AtomicBool::new(false)),
            interval_secs: AtomicU32::new(60),
            next_version: AtomicU64::new(1),
            clock,
        })
    }

    /// Someone looks at the grid; `interval_secs` is `live.thumbnail_seconds`.
    pub fn seen(&self, interval_secs: u32) {
        self.interval_secs.store(interval_secs, Ordering::Relaxed);
        *self.seen.lock().expect("thumbs lock") = Some(Instant::now());
    }

    /// True if a frame of `name` offered now would be turned into a thumbnail.
    pub fn wants(&self, name: &str) -> bool {
        let recently_seen = self
            .seen
            .lock()
            .expect("thumbs lock")
            .is_some_and(|t| t.elapsed() < WANTED_FOR);
        if !recently_seen || self.busy.load(Ordering::Relaxed) {
            return false;
        }
        let every = Duration::from_secs(self.interval_secs.load(Ordering::Relaxed).into());
        match self.kept.lock().expect("thumbs lock").get(name) {
            None => true,
            Some(t) => t.at.elapsed() >= every,
        }
    }

    /// The thumbnail of `name`, if any.
    pub fn get(&self, name: &str) -> Option<Thumb> {
        self.kept.lock().expect("thumbs lock").get(name).cloned()
    }

    /// Turns `frame` (of a `dims` picture, if known) into the thumbnail of
    /// `name` in the background, if [`Thumbs::wants`] it and no other render
    /// runs.
    pub fn offer(self: &Arc<Self>, name: &str, frame: Frame, dims: Option<(u32, u32)>) {
        if !self.wants(name) {
            return;
        }
        if self
            .busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        let (me, name) = (self.clone(), name.to_owned());
        let ts_ms = self.clock.now_ms();
        let spawned = std::thread::Builder::new()
            .name("live-thumb".into())
            .spawn(move || {
                let picture =
                    crate::preview::render(&frame, dims, &mut crate::preview::h264::OpenH264)
                        .map(|p| Arc::new(p.jpeg));
                drop(frame);
                if let Err(m) = &picture {
                    tracing::debug!(stream = %name, "no thumbnail: {m}");
                }
                me.keep(&name, ts_ms, picture);
                me.busy.store(false, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.busy.store(false, Ordering::SeqCst);
        }
    }

    /// Stores a rendered thumbnail (also used by tests).
    pub fn keep(&self, name: &str, ts_ms: i64, picture: Result<Arc<Vec<u8>>, String>) {
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let bytes = picture.as_ref().map(|p| p.len()).unwrap_or(0);
        let thumb = Thumb {
            version,
            ts_ms,
            at: Instant::now(),
            picture,
        };
        self.kept
            .lock()
            .expect("thumbs lock")
            .insert(name, thumb, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_frame() -> Frame {
        let img = image::RgbImage::from_pixel(64, 48, image::Rgb([200, 30, 30]));
        Frame {
            codec: "jpeg".into(),
            data: crate::preview::encode_jpeg(&img).unwrap(),
        }
    }

    fn wait_idle(t: &Thumbs) {
        for _ in 0..200 {
            if !t.busy.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("render did not finish");
    }

    #[test]
    fn only_while_the_grid_is_watched_and_at_most_once_per_interval() {
        let t = Thumbs::new(crate::clock::real());
        assert!(!t.wants("a"), "nobody looked at the grid");
        t.offer("a", jpeg_frame(), None);
        wait_idle(&t);
        assert!(t.get("a").is_none());

        t.seen(60);
        assert!(t.wants("a"));
        t.offer("a", jpeg_frame(), None);
        wait_idle(&t);
        let first = t.get("a").expect("a thumbnail");
        assert_eq!(&first.picture.as_ref().unwrap()[..2], &[0xFF, 0xD8]);
        assert!(!t.wants("a"), "refreshed at most once per interval");
        assert!(t.wants("b"));

        t.offer(
            "h",
            Frame {
                codec: "h265".into(),
                data: vec![],
            },
            None,
        );
        wait_idle(&t);
        let h = t.get("h").unwrap();
        assert!(h.picture.unwrap_err().contains("H.265"));
        assert!(h.version > first.version);
    }

    #[test]
    fn kept_bytes_are_capped() {
        let t = Thumbs::new(crate::clock::real());
        let big = Arc::new(vec![0u8; MAX_KEPT_BYTES / 3 + 1]);
        for n in ["a", "b", "c", "d"] {
            t.keep(n, 0, Ok(big.clone()));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(t.get("a").is_none(), "the oldest went first");
        assert!(t.get("d").is_some());
    }
}
