//! Reconnecting a live channel's upstream while viewers remain: the one
//! policy both upstreams follow, the RTSP one on tokio and the MJPEG/snapshot
//! one on its own blocking thread. Each writes the loop itself (it alone
//! knows how to sleep):
//!
//! ```text
//! let mut retry = Retry::new(&ch, &hub, "session");
//! while retry.start_session() {
//!     let result = session(..);
//!     for pause in retry.lost(result) { sleep(pause) }
//! }
//! ```
//!
//! A lost session is reopened after a backoff (1 s, doubling to 8 s) that
//! ends early when the channel goes idle. An upstream that never played
//! gives up after [`super::START_ATTEMPTS`], so waiting viewers are told why
//! instead of waiting for ever; one that played keeps trying.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Channel, Hub, UpState};

/// How often a backoff asks whether the channel went idle.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// One upstream's sessions; see the module docs.
pub(super) struct Retry<'a> {
    ch: &'a Arc<Channel>,
    hub: &'a Hub,
    /// What the log calls one session ("stream", "session").
    what: &'static str,
    /// Sessions lost so far.
    attempt: u32,
    /// Set when the upstream is over: idle (closed) or failed for good.
    over: bool,
}

impl<'a> Retry<'a> {
    pub(super) fn new(ch: &'a Arc<Channel>, hub: &'a Hub, what: &'static str) -> Self {
        Retry {
            ch,
            hub,
            what,
            attempt: 0,
            over: false,
        }
    }

    /// True (and the channel counts a new session) unless the upstream is over.
    pub(super) fn start_session(&mut self) -> bool {
        if !self.over {
            self.ch.session_opened();
        }
        !self.over
    }

    /// After a session (Ok when the channel went idle, Err(message) when
    /// lost): the pauses to sleep before the next one. None at all when the
    /// upstream is over: closed, or failed for good and its viewers told.
    pub(super) fn lost(&mut self, result: Result<(), String>) -> Backoff<'_, 'a> {
        let ch = self.ch;
        let until = Instant::now();
        let msg = match result {
            Ok(()) => {
                self.close();
                return Backoff { retry: self, until };
            }
            Err(m) => m,
        };
        self.attempt += 1;
        if !ch.ever_played() && self.attempt >= super::START_ATTEMPTS {
            tracing::info!(stream = %ch.name, "live view failed: {msg}");
            self.hub.fail(ch, msg);
            self.over = true;
            return Backoff { retry: self, until };
        }
        tracing::info!(stream = %ch.name, "live {} lost ({msg}); reconnecting", self.what);
        ch.set_state(UpState::Retrying(msg));
        let until = until + Duration::from_millis(500 * 2u64.pow(self.attempt.min(4)));
        Backoff { retry: self, until }
    }

    fn close(&mut self) {
        let ch = self.ch;
        tracing::info!(stream = %ch.name, "live {} closed (no viewers)", self.what);
        ch.set_state(UpState::Closed(String::new()));
        self.over = true;
    }
}

/// The pauses of one backoff ([`Retry::lost`]); ends when its time is up or
/// the channel went idle (which closes it).
pub(super) struct Backoff<'r, 'a> {
    retry: &'r mut Retry<'a>,
    until: Instant,
}

impl Iterator for Backoff<'_, '_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.retry.over || Instant::now() >= self.until {
            return None;
        }
        if self.retry.hub.idle(self.retry.ch) {
            self.retry.close();
            return None;
        }
        Some(IDLE_POLL)
    }
}
