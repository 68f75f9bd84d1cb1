//! The one question the monitor asks: "probe this stream now".
//!
//! The scheduler does not care who answers. Without a live view the answer
//! is a plain probe ([`DirectProber`], one camera session per heartbeat);
//! with one, `cmds::run` hands the monitor the live hub, which answers from
//! a camera session it already holds for its viewers (so a camera that
//! allows one session stays "up" while someone watches it). Tests answer
//! with a fake. The trait lives here, not in the live view, so the monitor
//! depends on nothing that reads its results.

use futures::future::BoxFuture;

use crate::probe::{self, Frame, Outcome, Target};

/// Answers the monitor's probes; see the module docs.
pub trait Prober: Send + Sync {
    /// Probes stream `name` at `target`, within the target's deadline
    /// ([`Target::timeout`]): the outcome always comes back (a hung camera
    /// is a `timeout` failure, never a hung future). With `keep_frame`, the
    /// frame that proved the stream alive comes back too, for the picture
    /// checks (`crate::picture`).
    fn probe<'a>(
        &'a self,
        name: &'a str,
        target: &'a Target,
        keep_frame: bool,
    ) -> BoxFuture<'a, (Outcome, Option<Frame>)>;
}

/// Probes the camera itself, every time ([`probe::run`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct DirectProber;

impl Prober for DirectProber {
    fn probe<'a>(
        &'a self,
        _name: &'a str,
        target: &'a Target,
        keep_frame: bool,
    ) -> BoxFuture<'a, (Outcome, Option<Frame>)> {
        Box::pin(async move {
            if keep_frame {
                probe::run_keeping_frame(target).await
            } else {
                (probe::run(target).await, None)
            }
        })
    }
}
