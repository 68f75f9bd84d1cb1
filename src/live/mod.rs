//! Live view: cameras relayed to browsers, never transcoded on the box.
//!
//! * **MJPEG** cameras (and snapshot URLs, polled, and MJPEG over RTSP):
//!   JPEGs are relayed as they come, as `multipart/x-mixed-replace` (the
//!   page draws them on a canvas; the URL also plays in an `<img>`).
//! * **RTSP H.264** (and H.265): retina depacketizes, [`fmp4`] wraps every
//!   frame in its own `moof` + `mdat`, and the page feeds them to Media
//!   Source Extensions. MSE exists on plain-http LAN origins; WebCodecs does
//!   not (secure contexts only). Nothing is decoded for the viewers: H.265
//!   plays where the browser's MSE has HEVC, and the page says so honestly
//!   where it has not (Debian's Chromium); the box has no H.265 decoder to
//!   fall back on.
//!
//! # One camera session per stream
//!
//! A [`Channel`] holds the one upstream connection of a stream, shared by
//! all its viewers: a camera that allows 2 sessions sees the monitor's
//! short probe plus at most this one. While a channel plays, the monitor's
//! probe of that stream is answered from it ([`probe_for_monitor`]: the
//! next key frame, or JPEG that decodes, within the probe deadline), so a
//! single-client MJPEG camera stays "up" while someone watches it. The last
//! viewer leaving closes the upstream after [`LINGER`] (a reload does not
//! reconnect to the camera).
//!
//! # Threads: why viewers never hold a web worker
//!
//! tiny_http's workers are few (`web.workers`, default 4) and a streaming
//! response would hold one for as long as someone watches. So the handler
//! only decides (login, caps) and hands the socket over
//! ([`tiny_http::Request::into_writer`]) to a **dedicated viewer thread**;
//! the worker is free at once. Viewer threads block on their socket, never
//! on each other or on the camera: an upstream offers each frame to every
//! viewer's one-frame [`slot::Slot`] and moves on, so a slow viewer gets
//! fewer frames (MJPEG) or skips to the next key frame (H.26x) and holds at
//! most one frame in memory. The number of viewer threads is bounded by
//! `live.max_viewers` (plus detached ones still closing, also bounded).
//! The web server sets a send timeout on its sockets, so a viewer whose
//! network vanished is gone within seconds; one that stops reading is
//! detached after [`slot::STALL`]. Upstreams: RTSP on the daemon's tokio
//! runtime (retina is async), MJPEG/snapshots on one blocking thread each
//! (ureq, with a per-read timeout).
//!
//! # Latency
//!
//! Every frame carries the box's receive time and, where the camera's RTCP
//! sender reports map RTP time to wall time, its capture time; the page
//! shows camera→box, box→screen and glass-to-glass per tile (see
//! [`fmp4::timing_box`] and the `X-Recv-Ms`/`X-Capture-Ms` part headers).

pub mod fmp4;
mod http;
pub mod page;
mod reconnect;
mod rtsp;
pub mod slot;
pub mod thumbs;

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::probe::{self, Failure, Kind, MediaFacts, Outcome, Reason, Stages, Target};
use crate::web::handler::security_header_lines;
use crate::web::HttpError;
use slot::{Item, Slot, Taken};

/// An upstream stays open this long after its last viewer left.
pub const LINGER: Duration = Duration::from_secs(2);
/// A viewer with nothing to send writes a keep-alive this often (so a
/// closed browser is noticed even while the camera is silent).
pub const KEEPALIVE: Duration = Duration::from_secs(2);
/// An upstream with no data for this long reconnects.
pub const UPSTREAM_SILENCE: Duration = Duration::from_secs(5);
/// Attempts to start an upstream before waiting viewers are told it failed.
const START_ATTEMPTS: u32 = 3;
/// A key frame and the frames after it, kept so a new viewer starts at
/// once; dropped (until the next key frame) beyond these.
const GOP_MAX_BYTES: usize = 4 << 20;
const GOP_MAX_FRAMES: usize = 300;
/// Multipart boundary of the MJPEG relay.
pub const BOUNDARY: &str = "spframe";

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
    fn label(&self) -> (&'static str, &str) {
        match self {
            UpState::Connecting => ("connecting", ""),
            UpState::Playing => ("playing", ""),
            UpState::Retrying(m) => ("retrying", m),
            UpState::Closed(m) => ("closed", m),
        }
    }
}

/// The proof a monitor probe waits for.
struct ProofWaiter(tokio::sync::oneshot::Sender<Arc<Item>>);

#[derive(Default)]
struct ChanInner {
    state: Option<UpState>,
    output: Option<Output>,
    slots: Vec<Arc<Slot>>,
    /// Since the last key frame (H.26x), or the last JPEG.
    gop: Vec<Arc<Item>>,
    gop_bytes: usize,
    proof_waiters: Vec<ProofWaiter>,
    facts: MediaFacts,
    /// (arrival, bytes) of recent frames, for fps and bit rate.
    recent: VecDeque<(Instant, usize)>,
    frames: u64,
    /// Frames dropped for viewers that have left.
    dropped_gone: u64,
    camera_to_box_ms: Option<f64>,
    /// Upstream connections opened so far.
    sessions: u32,
    played: bool,
}

/// One stream's upstream and its viewers; see the module docs.
pub struct Channel {
    pub name: String,
    pub target: Target,
    inner: Mutex<ChanInner>,
    ready: Condvar,
}

impl Channel {
    fn new(name: &str, target: &Target) -> Arc<Channel> {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, ChanInner> {
        self.inner.lock().expect("channel lock")
    }

    fn state(&self) -> UpState {
        self.lock().state.clone().unwrap_or(UpState::Connecting)
    }

    fn set_state(&self, s: UpState) {
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

    fn session_opened(&self) {
        self.lock().sessions += 1;
    }

    fn ever_played(&self) -> bool {
        self.lock().played
    }

    fn set_output(&self, out: Output) {
        let mut g = self.lock();
        if g.output.as_ref() != Some(&out) {
            g.output = Some(out);
            g.gop.clear();
            g.gop_bytes = 0;
        }
    }

    fn update_facts(&self, f: impl FnOnce(&mut MediaFacts)) {
        f(&mut self.lock().facts);
    }

    fn set_camera_to_box(&self, ms: Option<f64>) {
        self.lock().camera_to_box_ms = ms;
    }

    /// True if the next key frame should carry a picture (a monitor probe
    /// waits for one, or the grid wants a thumbnail).
    fn picture_wanted(&self, thumbs: &thumbs::Thumbs) -> bool {
        !self.lock().proof_waiters.is_empty() || thumbs.wants(&self.name)
    }

    /// Offers `item` to every viewer (see [`slot`]), keeps it for new
    /// viewers, answers waiting monitor probes; returns the viewers found
    /// stalled (detached here; the caller releases them from the hub).
    fn publish(&self, item: Item) -> Vec<Arc<Slot>> {
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
    fn wait_ready(&self, until: Instant) -> Result<Output, String> {
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
    fn attach(&self, slot: &Arc<Slot>) -> Vec<Arc<Item>> {
        let mut g = self.lock();
        g.slots.push(slot.clone());
        g.gop.clone()
    }

    fn detach(&self, slot: &Arc<Slot>) {
        let mut g = self.lock();
        let before = g.slots.len();
        g.slots.retain(|s| !Arc::ptr_eq(s, slot));
        if g.slots.len() != before {
            g.dropped_gone += slot.dropped();
        }
    }
}

/// Status of one stream's live session, for `/api/live`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveStatus {
    pub viewers: usize,
    /// `idle`, `connecting`, `playing`, `retrying` or `closed`.
    pub state: &'static str,
    pub message: String,
    pub fps: Option<f64>,
    pub kbps: Option<f64>,
    /// Frames viewers did not get because they were slow.
    pub dropped: u64,
    pub camera_to_box_ms: Option<f64>,
    /// Camera sessions the live view opened for this stream so far.
    pub sessions: u32,
}

struct Entry {
    ch: Arc<Channel>,
    viewers: usize,
    empty_since: Option<Instant>,
}

#[derive(Default)]
struct HubState {
    entries: HashMap<String, Entry>,
    /// Viewers admitted and not yet released, all streams.
    total: usize,
    /// Sessions opened by channels that have ended, per stream (for status).
    past_sessions: HashMap<String, u32>,
}

/// All live channels; one per daemon, in [`crate::web::Gui`].
pub struct Hub {
    state: Mutex<HubState>,
    runtime: Option<tokio::runtime::Handle>,
    clock: SharedClock,
    pub thumbs: Arc<thumbs::Thumbs>,
    /// Viewer threads alive (including detached ones still closing).
    threads: Arc<AtomicUsize>,
    next_id: AtomicU64,
    me: Weak<Hub>,
}

/// A viewer admitted by [`Hub::admit`]; [`Ticket::start`] hands it the socket.
pub struct Ticket {
    hub: Arc<Hub>,
    ch: Arc<Channel>,
    slot: Arc<Slot>,
    id: u64,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket(live-{} {:?})", self.id, self.ch.name)
    }
}

impl Drop for Ticket {
    /// A ticket never started (or whose thread ended) gives its place back.
    fn drop(&mut self) {
        self.ch.detach(&self.slot);
        self.slot.close();
        self.hub.release(&self.ch, &self.slot);
    }
}

impl Hub {
    /// `runtime` runs RTSP upstreams (None: RTSP live view unavailable).
    pub fn new(runtime: Option<tokio::runtime::Handle>, clock: SharedClock) -> Arc<Hub> {
        Arc::new_cyclic(|me| Hub {
            state: Mutex::new(HubState::default()),
            runtime,
            thumbs: thumbs::Thumbs::new(clock.clone()),
            clock,
            threads: Arc::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(1),
            me: me.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().expect("live hub lock")
    }

    fn arc(&self) -> Arc<Hub> {
        self.me.upgrade().expect("the hub is alive while used")
    }

    /// Admits a viewer of stream `name` under `cfg`'s caps, starting its
    /// upstream if none runs.
    ///
    /// # Errors
    /// 404 for an unknown stream, 503 when a cap is reached or the live view
    /// is off (the message says which, for the page).
    pub fn admit(&self, cfg: &Config, name: &str) -> Result<Ticket, HttpError> {
        let caps = &cfg.live;
        if caps.max_viewers == 0 {
            return Err(HttpError::new(
                503,
                "The live view is turned off on this box (live.max_viewers: 0).",
            ));
        }
        let sc = cfg
            .streams
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| HttpError::new(404, "no such stream"))?;
        if sc.target.kind == Kind::Rtsp && self.runtime.is_none() {
            return Err(HttpError::new(503, "RTSP live view is not available here"));
        }
        // Detached viewers still closing hold threads too: bound them.
        let thread_cap = 2 * caps.max_viewers as usize + 4;
        if self.threads.load(Ordering::SeqCst) >= thread_cap {
            return Err(HttpError::new(
                503,
                "Too many live connections are still closing; try again in a few seconds.",
            ));
        }
        let mut st = self.lock();
        let reuse = st.entries.get(name).is_some_and(|e| {
            e.ch.target == sc.target && !matches!(e.ch.state(), UpState::Closed(_))
        });
        // The camera's own cap first: it is the more specific reason.
        let here = if reuse { st.entries[name].viewers } else { 0 };
        if here >= caps.max_viewers_per_stream as usize {
            return Err(HttpError::new(
                503,
                format!(
                    "This camera already has {here} live viewer{} (live.max_viewers_per_stream: {}). \
                     Cameras allow few sessions; the box shares one among its viewers.",
                    if here == 1 { "" } else { "s" },
                    caps.max_viewers_per_stream
                ),
            ));
        }
        if st.total >= caps.max_viewers as usize {
            return Err(HttpError::new(
                503,
                format!(
                    "All {} live views of this box are in use (live.max_viewers). \
                     Stop another live view first.",
                    caps.max_viewers
                ),
            ));
        }
        if reuse {
            let e = st.entries.get_mut(name).expect("checked above");
            e.viewers += 1;
            e.empty_since = None;
        } else {
            let ch = Channel::new(name, &sc.target);
            if let Some(old) = st.entries.insert(
                name.to_owned(),
                Entry {
                    ch: ch.clone(),
                    viewers: 1,
                    empty_since: None,
                },
            ) {
                *st.past_sessions.entry(name.to_owned()).or_default() += old.ch.lock().sessions;
                old.ch
                    .set_state(UpState::Closed("the stream's settings changed".into()));
            }
            self.start_upstream(&ch);
        }
        st.total += 1;
        let ch = st.entries[name].ch.clone();
        drop(st);
        Ok(Ticket {
            hub: self.arc(),
            ch,
            slot: Arc::new(Slot::new()),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        })
    }

    fn start_upstream(&self, ch: &Arc<Channel>) {
        let (ch, hub) = (ch.clone(), self.arc());
        match ch.target.kind {
            Kind::Rtsp => {
                let rt = self.runtime.as_ref().expect("checked in admit");
                rt.spawn(rtsp::run(ch, hub));
            }
            Kind::Mjpeg | Kind::Snapshot => {
                let name = format!("live-up-{}", ch.name.chars().take(6).collect::<String>());
                let ch2 = ch.clone();
                if std::thread::Builder::new()
                    .name(name)
                    .spawn(move || http::run(ch2, hub))
                    .is_err()
                {
                    ch.set_state(UpState::Closed("cannot start a thread".into()));
                }
            }
        }
    }

    /// Gives a viewer's place back (once per slot).
    fn release(&self, ch: &Arc<Channel>, slot: &Slot) {
        if !slot.mark_released() {
            return;
        }
        let mut st = self.lock();
        st.total = st.total.saturating_sub(1);
        if let Some(e) = st.entries.get_mut(&ch.name) {
            if Arc::ptr_eq(&e.ch, ch) {
                e.viewers = e.viewers.saturating_sub(1);
                if e.viewers == 0 {
                    e.empty_since = Some(Instant::now());
                }
            }
        }
    }

    /// Releases viewers an upstream found stalled.
    fn release_stalled(&self, ch: &Arc<Channel>, stalled: Vec<Arc<Slot>>) {
        for s in stalled {
            tracing::info!(stream = %ch.name, "live viewer stopped reading: detached");
            self.release(ch, &s);
        }
    }

    /// Asked by an upstream: true (and the channel is forgotten) if it has
    /// had no viewer for [`LINGER`] or was replaced.
    fn idle(&self, ch: &Arc<Channel>) -> bool {
        let mut st = self.lock();
        let Some(e) = st.entries.get(&ch.name) else {
            return true;
        };
        if !Arc::ptr_eq(&e.ch, ch) {
            return true;
        }
        if matches!(ch.state(), UpState::Closed(_)) {
            st.entries.remove(&ch.name);
            return true;
        }
        if e.viewers == 0 && e.empty_since.is_some_and(|t| t.elapsed() >= LINGER) {
            let sessions = ch.lock().sessions;
            *st.past_sessions.entry(ch.name.clone()).or_default() += sessions;
            st.entries.remove(&ch.name);
            return true;
        }
        false
    }

    /// An upstream gave up: forget the channel and tell its viewers.
    fn fail(&self, ch: &Arc<Channel>, msg: String) {
        {
            let mut st = self.lock();
            if st
                .entries
                .get(&ch.name)
                .is_some_and(|e| Arc::ptr_eq(&e.ch, ch))
            {
                let sessions = ch.lock().sessions;
                *st.past_sessions.entry(ch.name.clone()).or_default() += sessions;
                st.entries.remove(&ch.name);
            }
        }
        ch.set_state(UpState::Closed(msg));
    }

    /// Ends every live session (daemon shutdown).
    pub fn shutdown(&self) {
        let chans: Vec<_> = self.lock().entries.drain().map(|(_, e)| e.ch).collect();
        for ch in chans {
            ch.set_state(UpState::Closed("the box is shutting down".into()));
        }
    }

    /// Live viewers now, all streams.
    pub fn viewers(&self) -> usize {
        self.lock().total
    }

    /// The live status of `name` (idle when nobody watches).
    pub fn status(&self, name: &str) -> LiveStatus {
        let st = self.lock();
        let past = st.past_sessions.get(name).copied().unwrap_or(0);
        let Some(e) = st.entries.get(name) else {
            return LiveStatus {
                viewers: 0,
                state: "idle",
                message: String::new(),
                fps: None,
                kbps: None,
                dropped: 0,
                camera_to_box_ms: None,
                sessions: past,
            };
        };
        let viewers = e.viewers;
        let ch = e.ch.clone();
        drop(st);
        let g = ch.lock();
        let (state, message) = g
            .state
            .as_ref()
            .map(|s| s.label())
            .unwrap_or(("connecting", ""));
        let (fps, kbps) = match (g.recent.front(), g.recent.back()) {
            (Some(a), Some(b)) if g.recent.len() >= 2 && b.0 > a.0 => {
                let secs = b.0.duration_since(a.0).as_secs_f64();
                let bytes: usize = g.recent.iter().skip(1).map(|(_, n)| n).sum();
                (
                    Some((g.recent.len() - 1) as f64 / secs),
                    Some(bytes as f64 * 8.0 / 1000.0 / secs),
                )
            }
            _ => (None, None),
        };
        LiveStatus {
            viewers,
            state,
            message: message.to_owned(),
            fps,
            kbps,
            dropped: g.dropped_gone + g.slots.iter().map(|s| s.dropped()).sum::<u64>(),
            camera_to_box_ms: g.camera_to_box_ms,
            sessions: past + g.sessions,
        }
    }

    /// The monitor's shared probe: if `name` plays live right now (same
    /// target), waits for its next key frame (or JPEG that decodes) instead
    /// of opening a second camera session. None: probe the camera as usual.
    async fn shared_probe(&self, name: &str, target: &Target) -> Option<Outcome> {
        let (ch, rx) = {
            let st = self.lock();
            let e = st.entries.get(name)?;
            if e.ch.target != *target || e.ch.state() != UpState::Playing {
                return None;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            e.ch.lock().proof_waiters.push(ProofWaiter(tx));
            (e.ch.clone(), rx)
        };
        let t = Instant::now();
        let got = tokio::time::timeout(target.timeout, rx).await;
        let wait_ms = u32::try_from(t.elapsed().as_millis()).unwrap_or(u32::MAX);
        let mut media = ch.lock().facts.clone();
        let result = match got {
            // The live session ended meanwhile: probe the camera.
            Ok(Err(_)) => return None,
            Err(_) => Err(Failure::new(
                Reason::Timeout,
                format!(
                    "no key frame within {:.1} s on the live session (the camera is watched live; \
                     its session is shared with the monitor)",
                    target.timeout.as_secs_f32()
                ),
            )),
            Ok(Ok(item)) => {
                media.frame_bytes = u32::try_from(item.data.len()).ok();
                let jpeg = match &item.picture {
                    Some(f) if f.codec == "jpeg" => Some(f.data.clone()),
                    None if matches!(ch.lock().output, Some(Output::Jpeg)) => {
                        Some(item.data.clone())
                    }
                    _ => None,
                };
                match jpeg {
                    Some(j) => {
                        let decoded = tokio::task::spawn_blocking(move || probe::jpeg::decode(&j))
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                        match decoded {
                            Ok(d) => {
                                media.width = Some(d.width);
                                media.height = Some(d.height);
                                Ok(())
                            }
                            Err(m) => Err(Failure::new(Reason::BadFrame, m)),
                        }
                    }
                    None => Ok(()),
                }
                .inspect(|_| {
                    if let Some(f) = item.picture.clone() {
                        self.thumbs.offer(name, f, media.width.zip(media.height));
                    }
                })
            }
        };
        tracing::debug!(stream = %name, "monitor probe answered by the live session in {wait_ms} ms");
        Some(Outcome {
            result,
            latency_ms: wait_ms,
            stages: Stages {
                first_frame_ms: Some(wait_ms),
                ..Stages::default()
            },
            media,
        })
    }
}

/// The monitor's probe of one stream (see the module docs): answered by a
/// running live session if there is one; otherwise a normal probe, keeping
/// its frame for a thumbnail when the grid wants one.
pub async fn probe_for_monitor(hub: Option<&Arc<Hub>>, name: &str, target: &Target) -> Outcome {
    let Some(hub) = hub else {
        return probe::run(target).await;
    };
    if let Some(o) = hub.shared_probe(name, target).await {
        return o;
    }
    if !hub.thumbs.wants(name) {
        return probe::run(target).await;
    }
    let (outcome, frame) = probe::run_keeping_frame(target).await;
    if let Some(f) = frame {
        let dims = outcome.media.width.zip(outcome.media.height);
        hub.thumbs.offer(name, f, dims);
    }
    outcome
}

impl Ticket {
    /// Takes over the request's socket on a viewer thread; see the module docs.
    pub fn start(self, rq: tiny_http::Request) {
        let chunked = *rq.http_version() >= tiny_http::HTTPVersion(1, 1);
        let writer = rq.into_writer();
        let threads = self.hub.threads.clone();
        threads.fetch_add(1, Ordering::SeqCst);
        let name = format!("live-{}", self.id);
        let spawned = std::thread::Builder::new()
            .name(name)
            .stack_size(256 * 1024)
            .spawn(move || {
                let t = self;
                let id = t.id;
                let n = t.ch.name.clone();
                match t.run(writer, chunked) {
                    Ok(()) => tracing::debug!(stream = %n, "live viewer {id} ended"),
                    Err(e) => tracing::debug!(stream = %n, "live viewer {id} left: {e}"),
                }
                drop(t);
                threads.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a live viewer thread: {e}");
            // The ticket (moved into the failed closure) was dropped: place given back.
        }
    }

    fn run(&self, mut w: Box<dyn Write + Send>, chunked: bool) -> std::io::Result<()> {
        let until = Instant::now() + self.ch.target.timeout + Duration::from_secs(5);
        let output = match self.ch.wait_ready(until) {
            Ok(o) => o,
            Err(msg) => {
                let body =
                    serde_json::json!({ "error": format!("No live picture: {msg}") }).to_string();
                write!(
                    w,
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nCache-Control: no-store\r\n{}\
                     Connection: close\r\n\r\n{body}",
                    body.len(),
                    security_header_lines()
                )?;
                return w.flush();
            }
        };
        let first = self.ch.attach(&self.slot);
        let mut out = Out { w, chunked };
        let (ctype, codec) = match &output {
            Output::Jpeg => (
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
                "jpeg".to_owned(),
            ),
            Output::Fmp4 { codec, .. } => (format!("video/mp4; codecs=\"{codec}\""), codec.clone()),
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nX-Live-Codec: {codec}\r\n\
             X-Box-Now-Ms: {}\r\nCache-Control: no-store\r\n{}{}Connection: close\r\n\r\n",
            self.hub.clock.now_ms(),
            security_header_lines(),
            if chunked {
                "Transfer-Encoding: chunked\r\n"
            } else {
                ""
            }
        );
        out.w.write_all(head.as_bytes())?;
        tracing::info!(stream = %self.ch.name, "live viewer {} started ({codec})", self.id);
        let jpeg = matches!(output, Output::Jpeg);
        if let Output::Fmp4 { init, .. } = &output {
            out.chunk(&[init])?;
        }
        let mut last: Option<Arc<Item>> = None;
        for item in first {
            out.item(&item, jpeg)?;
            last = Some(item);
        }
        out.w.flush()?;
        loop {
            match self.slot.take(KEEPALIVE) {
                Taken::Item(item) => {
                    out.item(&item, jpeg)?;
                    last = Some(item);
                }
                Taken::Idle => {
                    // A keep-alive: the last JPEG again, or an MP4 `free` box.
                    match (&last, jpeg) {
                        (Some(item), true) => out.item(item, true)?,
                        _ => out.chunk(&[&fmp4::FREE_BOX])?,
                    }
                }
                Taken::Closed => {
                    if out.chunked {
                        out.w.write_all(b"0\r\n\r\n")?;
                    }
                    return out.w.flush();
                }
            }
            out.w.flush()?;
        }
    }
}

/// A viewer's socket, with HTTP chunking when the client speaks 1.1.
struct Out {
    w: Box<dyn Write + Send>,
    chunked: bool,
}

impl Out {
    fn chunk(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.chunked {
            write!(self.w, "{len:x}\r\n")?;
        }
        for p in parts {
            self.w.write_all(p)?;
        }
        if self.chunked {
            self.w.write_all(b"\r\n")?;
        }
        Ok(())
    }

    fn item(&mut self, item: &Item, jpeg: bool) -> std::io::Result<()> {
        if !jpeg {
            return self.chunk(&[&item.data]);
        }
        let mut head = format!(
            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Recv-Ms: {}\r\n",
            item.data.len(),
            item.recv_ms
        );
        if let Some(c) = item.capture_ms {
            head.push_str(&format!("X-Capture-Ms: {c:.1}\r\n"));
        }
        head.push_str("\r\n");
        self.chunk(&[head.as_bytes(), &item.data, b"\r\n"])
    }
}

/// Unix ms of an NTP timestamp (RTCP sender reports).
fn ntp_to_unix_ms(ntp: u64) -> f64 {
    const NTP_UNIX_OFFSET_SECS: f64 = 2_208_988_800.0;
    let secs = (ntp >> 32) as f64 - NTP_UNIX_OFFSET_SECS;
    let frac = (ntp & 0xFFFF_FFFF) as f64 / 4_294_967_296.0;
    (secs + frac) * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_conversion() {
        // 2024-01-01T00:00:00.5Z
        let unix = 1_704_067_200u64;
        let ntp = ((unix + 2_208_988_800) << 32) | (1u64 << 31);
        assert_eq!(ntp_to_unix_ms(ntp), 1_704_067_200_500.0);
    }
}
