//! [`LastGood`]: the last good picture of each stream, kept in memory under
//! a byte cap, so that when a stream goes down the evidence writer
//! (`crate::evidence`) can show what the camera saw before. Filled by the
//! picture checks (one frame per `picture.every`), never by every probe: the
//! card is not written to until a stream actually goes down.

use std::sync::Mutex;

use crate::byte_cache::ByteCache;
use crate::probe::Frame;

/// Bytes of frames kept for all streams together; the streams whose picture
/// was checked longest ago are dropped first (a 1080p H.264 key frame is
/// 100–300 KB, a 320x240 one about 10 KB).
pub const LAST_GOOD_CAP: usize = 4 * 1024 * 1024;

/// A kept frame: the camera's own bytes (a JPEG or an H.264 key frame), the
/// picture size the probe learnt and when it was taken (ms since epoch).
#[derive(Clone, Debug)]
pub struct Kept {
    pub frame: Frame,
    pub dims: Option<(u32, u32)>,
    pub ts_ms: i64,
}

/// See the module docs.
#[derive(Debug)]
pub struct LastGood(Mutex<ByteCache<Kept>>);

impl Default for LastGood {
    fn default() -> Self {
        LastGood(Mutex::new(ByteCache::new(LAST_GOOD_CAP)))
    }
}

impl LastGood {
    /// Keeps `kept` as `stream`'s last good picture.
    pub fn offer(&self, stream: &str, kept: Kept) {
        let bytes = kept.frame.data.len();
        self.lock().insert(stream, kept, bytes);
    }

    /// `stream`'s last good picture, if one is kept.
    pub fn get(&self, stream: &str) -> Option<Kept> {
        self.lock().get(stream).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByteCache<Kept>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
