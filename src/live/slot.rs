//! One viewer's mailbox: at most one frame waits for a viewer, whatever its
//! speed. The upstream [`Slot::offer`]s every frame to every viewer and never
//! blocks; the viewer's thread [`Slot::take`]s and writes to its socket.
//!
//! * JPEG (MJPEG relay): latest wins. A frame still waiting when the next
//!   one arrives is replaced, so a slow viewer sees fewer frames, never
//!   older ones.
//! * H.264/H.265 fragments: every frame depends on the ones before it since
//!   the last key frame, so frames cannot be skipped one by one. When a
//!   frame finds the slot full, it is dropped and the viewer waits for the
//!   next key frame (which replaces whatever is waiting); the page then
//!   jumps over the gap.
//!
//! A viewer that takes nothing for [`STALL`] while frames wait is detached
//! by the upstream ([`Slot::stalled`]), so a vanished browser cannot keep a
//! camera session open; its thread ends when the socket's send timeout fires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A waiting frame older than this means the viewer stopped reading.
pub const STALL: Duration = Duration::from_secs(10);

/// What is offered to viewers.
#[derive(Debug, PartialEq)]
pub struct Item {
    /// Bytes to write as they are (a JPEG, or timing box + moof + mdat).
    pub data: Vec<u8>,
    /// A key frame (every JPEG is one).
    pub key: bool,
    /// Box receive time, Unix ms.
    pub recv_ms: f64,
    /// Camera capture time (RTCP sender reports), Unix ms.
    pub capture_ms: Option<f64>,
    /// The frame as the thumbnail and the monitor's shared probe want it
    /// (a JPEG, or an H.264 key frame in Annex B with SPS/PPS); filled only
    /// for key frames someone asked for.
    pub picture: Option<crate::probe::Frame>,
}

/// Why [`Slot::take`] returned without a frame.
#[derive(Debug, PartialEq)]
pub enum Taken {
    Item(Arc<Item>),
    /// Nothing arrived within the wait.
    Idle,
    /// Detached (stalled, or the upstream ended): stop.
    Closed,
}

#[derive(Debug, Default)]
struct Inner {
    item: Option<Arc<Item>>,
    /// Since when `item` waits.
    waiting_since: Option<Instant>,
    /// Dropping until the next key frame (fragments only).
    need_key: bool,
    closed: bool,
    /// Frames this viewer did not get.
    dropped: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Slot {
    inner: Mutex<Inner>,
    cv: Condvar,
    /// Set once the viewer's place was given back to the hub.
    released: AtomicBool,
}

impl Slot {
    pub fn new() -> Slot {
        Slot::default()
    }

    /// Offers `item`; `latest_wins` for JPEG, key-frame resync for
    /// fragments (see the module docs). Never blocks for long.
    pub fn offer(&self, item: &Arc<Item>, latest_wins: bool, now: Instant) {
        let mut g = self.inner.lock().expect("slot lock");
        if g.closed {
            return;
        }
        if latest_wins || item.key {
            if g.item.is_some() {
                g.dropped += 1;
            } else {
                g.waiting_since = Some(now);
            }
            g.item = Some(item.clone());
            g.need_key = false;
        } else if g.need_key || g.item.is_some() {
            g.need_key = true;
            g.dropped += 1;
            return;
        } else {
            g.item = Some(item.clone());
            g.waiting_since = Some(now);
        }
        drop(g);
        self.cv.notify_one();
    }

    /// Waits up to `wait` for a frame.
    pub fn take(&self, wait: Duration) -> Taken {
        let g = self.inner.lock().expect("slot lock");
        let (mut g, _) = self
            .cv
            .wait_timeout_while(g, wait, |g| g.item.is_none() && !g.closed)
            .expect("slot lock");
        if g.closed {
            return Taken::Closed;
        }
        match g.item.take() {
            Some(i) => {
                g.waiting_since = None;
                Taken::Item(i)
            }
            None => Taken::Idle,
        }
    }

    /// True if a frame has waited longer than [`STALL`].
    pub fn stalled(&self, now: Instant) -> bool {
        let g = self.inner.lock().expect("slot lock");
        g.waiting_since
            .is_some_and(|t| now.saturating_duration_since(t) > STALL)
    }

    /// Detaches the viewer: [`Slot::take`] returns [`Taken::Closed`].
    pub fn close(&self) {
        self.inner.lock().expect("slot lock").closed = true;
        self.cv.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().expect("slot lock").closed
    }

    /// Frames this viewer did not get.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().expect("slot lock").dropped
    }

    /// True the first time only: a viewer's place is given back once,
    /// whether its thread or a stall detection gets there first.
    pub fn mark_released(&self) -> bool {
        !self.released.swap(true, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u8, key: bool) -> Arc<Item> {
        Arc::new(Item {
            data: vec![n],
            key,
            recv_ms: 0.0,
            capture_ms: None,
            picture: None,
        })
    }

    fn take(s: &Slot) -> Option<u8> {
        match s.take(Duration::ZERO) {
            Taken::Item(i) => Some(i.data[0]),
            _ => None,
        }
    }

    #[test]
    fn jpeg_latest_wins_and_only_one_waits() {
        let s = Slot::new();
        let now = Instant::now();
        for n in 1..=5 {
            s.offer(&item(n, true), true, now);
        }
        assert_eq!(take(&s), Some(5));
        assert_eq!(take(&s), None, "never more than one frame waits");
        assert_eq!(s.dropped(), 4);
    }

    #[test]
    fn fragments_resync_on_the_next_key_frame() {
        let s = Slot::new();
        let now = Instant::now();
        s.offer(&item(1, true), false, now);
        s.offer(&item(2, false), false, now); // slot full: dropped, wait for a key
        assert_eq!(take(&s), Some(1));
        s.offer(&item(3, false), false, now); // still waiting for a key frame
        assert_eq!(take(&s), None);
        s.offer(&item(4, true), false, now);
        s.offer(&item(5, false), false, now); // full again
        s.offer(&item(6, true), false, now); // a key frame replaces the waiting one
        assert_eq!(take(&s), Some(6));
        s.offer(&item(7, false), false, now);
        assert_eq!(take(&s), Some(7), "in sync again");
        assert_eq!(s.dropped(), 4);
    }

    #[test]
    fn stall_and_close() {
        let s = Slot::new();
        let t0 = Instant::now();
        s.offer(&item(1, true), true, t0);
        assert!(!s.stalled(t0 + Duration::from_secs(1)));
        assert!(s.stalled(t0 + STALL + Duration::from_secs(1)));
        assert_eq!(take(&s), Some(1));
        assert!(!s.stalled(t0 + STALL * 2), "taking clears the stall");
        s.close();
        assert_eq!(s.take(Duration::from_secs(5)), Taken::Closed);
        s.offer(&item(2, true), true, t0);
        assert_eq!(s.take(Duration::ZERO), Taken::Closed);
    }

    #[test]
    fn take_wakes_on_offer() {
        let s = Arc::new(Slot::new());
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.take(Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(50));
        s.offer(&item(9, true), true, Instant::now());
        assert!(matches!(t.join().unwrap(), Taken::Item(i) if i.data == [9]));
    }
}
