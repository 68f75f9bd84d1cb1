//! One camera session shared by all the viewers of a stream.
//!
//! A [`Channel`] is what an upstream (`rtsp.rs`, `http.rs`) feeds and what
//! viewers (`viewer.rs`) and the monitor's shared probe
//! (`prober.rs`) read: the upstream's state, the output format, the
//! frames since the last key frame (so a new viewer starts at once), the
//! one-frame [`Slot`] of each viewer and the probes waiting for a proof.
//! It never blocks on a viewer: [`Channel::publish`] offers each frame to
//! every slot and moves on. Which channels exist, and who may join one, is
//! the hub's business ([`super::Hub`]).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::slot::{Item, Slot};
use super::thumbs;
use crate::probe::{MediaFacts, Target};

/// A key frame and the frames after it, kept so a new viewer starts at
/// once; dropped (until the next key frame) beyond these.
const GOP_MAX_BYTES: usize = 4 << 20;
const GOP_MAX_FRAMES: usize = 300;

/// What a channel sends its viewers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// JPEGs, as `multipart/x-mixed-replace`.
    Jpeg,
    /// Fragmented MP4: the init segment, and the codec (RFC 6381).
    Fmp4 { init: Arc<Vec<u8>>, codec: String },
}

/// Where an upstream is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpState {
    Connecting,
    Playing,
    /// Lost; reconnecting (the message says why).
    Retrying(String),
    /// Ended for good (the message says why; empty when idle).
    Closed(String),
}

impl UpState {
    pub(super) fn label(&self) -> (&'static str, &str) {
        match self {
            UpState::Connecting => ("connecting", ""),
            UpState::Playing => ("playing", ""),
            UpState::Retrying(m) => ("retrying", m),
            UpState::Closed(m) => ("closed", m),
        }
    }
}

/// The proof a monitor probe waits for.
pub(super) struct ProofWaiter(pub(super) tokio::sync::oneshot::Sender<Arc<Item>>);

#[derive(Default)]
pub(super) struct ChanInner {
    pub(super) state: Option<UpState>,
    pub(super) output: Option<Output>,
    pub(super) slots: Vec<Arc<Slot>>,
    /// Since the last key frame (H.26x), or the last JPEG.
    pub(super) gop: Vec<Arc<Item>>,
    pub(super) gop_bytes: usize,
    pub(super) proof_waiters: Vec<ProofWaiter>,
    pub(super) facts: MediaFacts,
    /// (arrival, bytes) of recent frames, for fps and bit rate.
    pub(super) recent: VecDeque<(Instant, usize)>,
    pub(super) frames: u64,
    /// Frames dropped for viewers that have left.
    pub(super) dropped_gone: u64,
    pub(super) camera_to_box_ms: Option<f64>,
    /// Upstream connections opened so far.
    pub(super) sessions: u32,
    pub(super) played: bool,
}

/// One stream's upstream and its viewers; see the module docs.
pub struct Channel {
    pub name: String,
    pub target: Target,
    inner: Mutex<ChanInner>,
    ready: Condvar,
}

impl Channel {
    pub(super) fn new(name: &str, target: &Target) -> Arc<Channel> {
        Arc::new(Channel {
            name: name.to_owned(),
            target: target.clone(),
            inner: Mutex::new(ChanInner {
                state: Some(UpState::Connecting),
                ..ChanInner::default()
            }),
            ready: Condvar::new(),
        })
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, ChanInner> {
        self.inner.lock().expect("channel lock")
    }

    pub(super) fn state(&self) -> UpState {
        self.lock().state.clone().unwrap_or(UpState::Connecting)
    }

    pub(super) fn set_state(&self, s: UpState) {
        let closed = matches!(s, UpState::Closed(_));
        let mut g = self.lock();
        g.state = Some(s);
        if closed {
            for sl in g.slots.drain(..) {
                sl.close();
            }
            g.proof_waiters.clear();
        }
        drop(g);
        self.ready.notify_all();
    }

    pub(super) fn session_opened(&self) {
        self.lock().sessions += 1;
    }

    pub(super) fn ever_played(&self) -> bool {
        self.lock().played
    }

    pub(super) fn set_output(&self, out: Output) {
        let mut g = self.lock();
        if g.output.as_ref() != Some(&out) {
            g.output = Some(out);
            g.gop.clear();
            g.gop_bytes = 0;
        }
    }

    pub(super) fn update_facts(&self, f: impl FnOnce(&mut MediaFacts)) {
        f(&mut self.lock().facts);
    }

    pub(super) fn set_camera_to_box(&self, ms: Option<f64>) {
        self.lock().camera_to_box_ms = ms;
    }

    /// True if the next key frame should carry a picture (a monitor probe
    /// waits for one, or the grid wants a thumbnail).
    pub(super) fn picture_wanted(&self, thumbs: &thumbs::Thumbs) -> bool {
        !self.lock().proof_waiters.is_empty() || thumbs.wants(&self.name)
    }

    /// Offers `item` to every viewer (see [`super::slot`]), keeps it for new
    /// viewers, answers waiting monitor probes; returns the viewers found
    /// stalled (detached here; the caller releases them from the hub).
    pub(super) fn publish(&self, item: Item) -> Vec<Arc<Slot>> {
        let now = Instant::now();
        let item = Arc::new(item);
        let mut g = self.lock();
        let latest_wins = matches!(g.output, Some(Output::Jpeg));
        let first = !g.played;
        g.played = true;
        if g.state != Some(UpState::Playing) {
            g.state = Some(UpState::Playing);
        }
        g.frames += 1;
        g.recent.push_back((now, item.data.len()));
        while g.recent.len() > 64
            || g.recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3))
        {
            g.recent.pop_front();
        }
        if latest_wins || item.key {
            g.gop.clear();
            g.gop_bytes = 0;
        }
        if latest_wins
            || !g.gop.is_empty()
            || item.key
                && g.gop_bytes + item.data.len() <= GOP_MAX_BYTES
                && g.gop.len() < GOP_MAX_FRAMES
        {
            if g.gop_bytes + item.data.len() > GOP_MAX_BYTES || g.gop.len() >= GOP_MAX_FRAMES {
                g.gop.clear();
                g.gop_bytes = 0;
            } else {
                g.gop_bytes += item.data.len();
                g.gop.push(item.clone());
            }
        }
        let mut stalled = Vec::new();
        g.slots.retain(|s| {
            if s.is_closed() {
                return false;
            }
            if s.stalled(now) {
                s.close();
                stalled.push(s.clone());
                return false;
            }
            s.offer(&item, latest_wins, now);
            true
        });
        for s in &stalled {
            g.dropped_gone += s.dropped();
        }
        if item.key {
            for w in g.proof_waiters.drain(..) {
                let _ = w.0.send(item.clone());
            }
        }
        drop(g);
        if first {
            self.ready.notify_all();
        }
        stalled
    }

    /// Waits until the upstream delivered its first frame; returns what to
    /// send, or why the camera could not be played.
    pub(super) fn wait_ready(&self, until: Instant) -> Result<Output, String> {
        let mut g = self.lock();
        loop {
            match (&g.state, &g.output, g.played) {
                (Some(UpState::Closed(m)), _, _) => {
                    return Err(if m.is_empty() {
                        "the live session ended".into()
                    } else {
                        m.clone()
                    })
                }
                (_, Some(out), true) => return Ok(out.clone()),
                _ => {}
            }
            let now = Instant::now();
            if now >= until {
                return Err(match &g.state {
                    Some(UpState::Retrying(m)) => m.clone(),
                    _ => "no picture from the camera in time".into(),
                });
            }
            g = self
                .ready
                .wait_timeout(g, until - now)
                .expect("channel lock")
                .0;
        }
    }

    /// Registers a viewer; returns what it must send first.
    pub(super) fn attach(&self, slot: &Arc<Slot>) -> Vec<Arc<Item>> {
        let mut g = self.lock();
        g.slots.push(slot.clone());
        g.gop.clone()
    }

    pub(super) fn detach(&self, slot: &Arc<Slot>) {
        let mut g = self.lock();
        let before = g.slots.len();
        g.slots.retain(|s| !Arc::ptr_eq(s, slot));
        if g.slots.len() != before {
            g.dropped_gone += slot.dropped();
        }
    }
}
