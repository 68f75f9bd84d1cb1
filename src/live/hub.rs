//! The registry of live channels, and who may join one.
//!
//! The [`Hub`] maps each stream to its one [`Channel`] (one camera session,
//! however many viewers), admits viewers under the caps of `live:` in the
//! config ([`Hub::admit`]), starts an upstream for a channel that has none,
//! gives places back as viewers leave, and forgets a channel once its
//! upstream ended or lingered [`LINGER`] without viewers. It also reports
//! each stream's live status for `/api/live`. It owns no HTTP: a refusal is
//! a [`Refused`] that the web layer turns into its answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tracing::Instrument;

use super::channel::{Channel, UpState};
use super::slot::Slot;
use super::viewer::Ticket;
use super::{http, local, rtsp, thumbs, LINGER};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::probe::Kind;

/// Why [`Hub::admit`] refused a viewer. The message (`Display`) is shown to
/// the user as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `live.max_viewers: 0`.
    Off,
    /// No stream of that name in the config.
    NoSuchStream,
    /// An RTSP stream, and no runtime to run its upstream on.
    RtspUnavailable,
    /// Too many viewer threads are still closing.
    Closing,
    /// The stream has `cap` viewers already (`here` of them).
    StreamFull { here: usize, cap: u32 },
    /// The box has `cap` viewers already, all streams.
    BoxFull { cap: u32 },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Off => {
                f.write_str("The live view is turned off on this box (live.max_viewers: 0).")
            }
            Refused::NoSuchStream => f.write_str("no such stream"),
            Refused::RtspUnavailable => f.write_str("RTSP live view is not available here"),
            Refused::Closing => f.write_str(
                "Too many live connections are still closing; try again in a few seconds.",
            ),
            Refused::StreamFull { here, cap } => write!(
                f,
                "This camera already has {here} live viewer{} (live.max_viewers_per_stream: {cap}). \
                 Cameras allow few sessions; the box shares one among its viewers.",
                if *here == 1 { "" } else { "s" },
            ),
            Refused::BoxFull { cap } => write!(
                f,
                "All {cap} live views of this box are in use (live.max_viewers). \
                 Stop another live view first."
            ),
        }
    }
}

impl std::error::Error for Refused {}

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

pub(super) struct Entry {
    pub(super) ch: Arc<Channel>,
    viewers: usize,
    empty_since: Option<Instant>,
}

#[derive(Default)]
pub(super) struct HubState {
    pub(super) entries: HashMap<String, Entry>,
    /// Viewers admitted and not yet released, all streams.
    total: usize,
    /// Sessions opened by channels that have ended, per stream (for status).
    past_sessions: HashMap<String, u32>,
}

/// All live channels; one per daemon, created by `cmds::run` and shared by
/// the web GUI (viewers, the grid) and the monitor (its probes, see
/// `prober.rs`).
pub struct Hub {
    state: Mutex<HubState>,
    runtime: Option<tokio::runtime::Handle>,
    pub(super) clock: SharedClock,
    pub thumbs: Arc<thumbs::Thumbs>,
    /// Viewer threads alive (including detached ones still closing).
    pub(super) threads: Arc<AtomicUsize>,
    next_id: AtomicU64,
    me: Weak<Hub>,
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().expect("live hub lock")
    }

    fn arc(&self) -> Arc<Hub> {
        self.me.upgrade().expect("the hub is alive while used")
    }

    /// Admits a viewer of stream `name` under `cfg`'s caps, starting its
    /// upstream if none runs.
    ///
    /// # Errors
    /// Why not: an unknown stream, a cap reached or the live view off (the
    /// message says which, for the page).
    pub fn admit(&self, cfg: &Config, name: &str) -> Result<Ticket, Refused> {
        let caps = &cfg.live;
        if caps.max_viewers == 0 {
            return Err(Refused::Off);
        }
        let sc = cfg
            .streams
            .iter()
            .find(|s| s.name == name)
            .ok_or(Refused::NoSuchStream)?;
        if matches!(sc.target.kind, Kind::Rtsp | Kind::Local) && self.runtime.is_none() {
            return Err(Refused::RtspUnavailable);
        }
        // Detached viewers still closing hold threads too: bound them.
        let thread_cap = 2 * caps.max_viewers as usize + 4;
        if self.threads.load(Ordering::SeqCst) >= thread_cap {
            return Err(Refused::Closing);
        }
        let mut st = self.lock();
        let reuse = st.entries.get(name).is_some_and(|e| {
            e.ch.target == sc.target && !matches!(e.ch.state(), UpState::Closed(_))
        });
        // The camera's own cap first: it is the more specific reason.
        let here = if reuse { st.entries[name].viewers } else { 0 };
        if here >= caps.max_viewers_per_stream as usize {
            return Err(Refused::StreamFull {
                here,
                cap: caps.max_viewers_per_stream,
            });
        }
        if st.total >= caps.max_viewers as usize {
            return Err(Refused::BoxFull {
                cap: caps.max_viewers,
            });
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
        Ok(Ticket::new(
            self.arc(),
            ch,
            self.next_id.fetch_add(1, Ordering::Relaxed),
        ))
    }

    fn start_upstream(&self, ch: &Arc<Channel>) {
        let (ch, hub) = (ch.clone(), self.arc());
        match ch.target.kind {
            Kind::Rtsp => {
                let rt = self.runtime.as_ref().expect("checked in admit");
                let span = crate::log_once::stream_span(&ch.name);
                rt.spawn(rtsp::run(ch, hub).instrument(span));
            }
            Kind::Local => {
                let rt = self.runtime.as_ref().expect("checked in admit");
                let span = crate::log_once::stream_span(&ch.name);
                rt.spawn(local::run(ch, hub).instrument(span));
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
    pub(super) fn release(&self, ch: &Arc<Channel>, slot: &Slot) {
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
    pub(super) fn release_stalled(&self, ch: &Arc<Channel>, stalled: Vec<Arc<Slot>>) {
        for s in stalled {
            tracing::info!(stream = %ch.name, "live viewer stopped reading: detached");
            self.release(ch, &s);
        }
    }

    /// Asked by an upstream's read loop on each tick: `Some(Ok(()))` to end
    /// it (no viewer any more, see [`Hub::idle`]), `Some(Err)` when its
    /// `source` has sent nothing for [`super::UPSTREAM_SILENCE`] (it
    /// reconnects), `None` to read on.
    pub(super) fn tick_verdict(
        &self,
        ch: &Arc<Channel>,
        last_data: std::time::Instant,
        source: &str,
    ) -> Option<Result<(), String>> {
        if self.idle(ch) {
            return Some(Ok(()));
        }
        (last_data.elapsed() > super::UPSTREAM_SILENCE).then(|| {
            Err(format!(
                "no video from {source} for {} s",
                super::UPSTREAM_SILENCE.as_secs()
            ))
        })
    }

    /// Asked by an upstream: true (and the channel is forgotten) if it has
    /// had no viewer for [`LINGER`] or was replaced.
    pub(super) fn idle(&self, ch: &Arc<Channel>) -> bool {
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
    pub(super) fn fail(&self, ch: &Arc<Channel>, msg: String) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_before_the_split() {
        // The page shows these as they are; `web::live_page` adds the status.
        assert_eq!(
            Refused::StreamFull { here: 1, cap: 1 }.to_string(),
            "This camera already has 1 live viewer (live.max_viewers_per_stream: 1). \
             Cameras allow few sessions; the box shares one among its viewers."
        );
        assert_eq!(
            Refused::StreamFull { here: 2, cap: 2 }.to_string(),
            "This camera already has 2 live viewers (live.max_viewers_per_stream: 2). \
             Cameras allow few sessions; the box shares one among its viewers."
        );
        assert_eq!(
            Refused::BoxFull { cap: 3 }.to_string(),
            "All 3 live views of this box are in use (live.max_viewers). Stop another live view first."
        );
        assert_eq!(
            Refused::Off.to_string(),
            "The live view is turned off on this box (live.max_viewers: 0)."
        );
    }
}
