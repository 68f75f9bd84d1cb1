//! One stream's loop: when to probe, and where each result goes.
//!
//! A loop sleeps until its next slot (jittered, so streams with the same
//! interval do not probe in step), takes a permit of the global cap, asks
//! the [`Prober`](super::Prober), and hands the outcome to the board
//! (debounce), the probe counters, the recorder and the transitions
//! broadcast, none of which can block it. [`super::Monitor`] starts and
//! aborts these loops; they end on their own at shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::{link, Ctx};
use crate::config::StreamConfig;
use crate::picture::{self, PictureState, PictureWatch};
use crate::probe;
use crate::shutdown;
use crate::state::Health;
use crate::store::recorder::{Record, FLAG_CLOCK_UNSYNCED};

/// A random duration in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    Duration::from_micros(fastrand::u64(0..max.as_micros().max(1) as u64))
}

/// Every how many probes one measures the key-frame interval.
const KEYFRAME_EVERY: u32 = 10;

/// Probes `sc` on its schedule until shutdown (or until aborted).
pub(super) async fn stream_loop(sc: StreamConfig, ctx: Arc<Ctx>, shutdown_rx: shutdown::Receiver) {
    let name: Arc<str> = Arc::from(sc.name.as_str());
    // Spread first probes over up to 3 s so a restart does not hit every camera at once.
    let mut next = Instant::now() + jitter(sc.interval.min(Duration::from_secs(3)));
    // The previous heartbeat's timestamp and monotonic time. A wall clock
    // behind it stepped back: the heartbeat is flagged like an unsynced one
    // and, unless NTP vouches for the new reading, stamped on the previous
    // timeline (plus the monotonic time since), so it is not filed among
    // older heartbeats: the history stays in the order it was taken.
    let mut prev: Option<(i64, Instant)> = None;
    // The key-frame interval is measured on the second probe and every
    // KEYFRAME_EVERY-th after it (waiting for a second key frame makes a
    // probe hold its permit longer).
    let mut measure = sc.target.clone();
    let mut probes = 0u32;
    let mut watch = PictureWatch::new(sc.picture);
    loop {
        tokio::select! {
            biased;
            _ = shutdown_rx.wait() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        let permit = tokio::select! {
            biased;
            _ = shutdown_rx.wait() => return,
            p = ctx.permits.acquire() => match p { Ok(p) => p, Err(_) => return },
        };
        let started = Instant::now();
        let wall_ms = ctx.clock.now_ms();
        let sync = ctx.sync.state(wall_ms);
        let (ts_ms, stepped_back) = match prev {
            Some((p_ts, p_at)) if wall_ms < p_ts => {
                let since = i64::try_from(started.duration_since(p_at).as_millis()).unwrap_or(0);
                let ts = if sync.kernel_synced {
                    wall_ms
                } else {
                    p_ts.saturating_add(since.max(1))
                };
                (ts, true)
            }
            _ => (wall_ms, false),
        };
        prev = Some((ts_ms, started));
        measure.measure_keyframe_interval = probes % KEYFRAME_EVERY == 1;
        probes = probes.wrapping_add(1);
        let check_picture = watch.due(started);
        let (outcome, frame) = tokio::select! {
            biased;
            _ = shutdown_rx.wait() => return,
            o = ctx.prober.probe(&sc.name, &measure, check_picture)
                .instrument(crate::log_once::stream_span(&sc.name)) => o,
        };
        drop(permit);
        let outcome = attribute(&ctx, &sc.target, outcome);
        let outcome = judge_picture(
            &ctx,
            &sc.name,
            &mut watch,
            outcome,
            frame,
            started,
            ts_ms,
            sync.trusted(),
        )
        .await;
        record(
            &ctx,
            &name,
            ts_ms,
            &outcome,
            !sync.trusted() || stepped_back,
            watch.state(),
        );

        // Next slot: keep the cadence (interval ± 10 %), never stack up.
        let spread = sc.interval / 10;
        next = started + sc.interval - spread + jitter(spread * 2);
        if next < Instant::now() {
            next = Instant::now() + Duration::from_millis(100);
        }
    }
}

/// A network failure while the box itself has no network is the box's
/// (`box_offline`), not the camera's (see `super::link`).
fn attribute(ctx: &Ctx, target: &probe::Target, outcome: probe::Outcome) -> probe::Outcome {
    let failure = match &outcome.result {
        Ok(()) => {
            if link::could_be_the_box(target, probe::Reason::Connect) {
                ctx.link.seen_online();
            }
            return outcome;
        }
        Err(f) if link::could_be_the_box(target, f.reason) => f,
        Err(_) => return outcome,
    };
    let Some(why) = ctx.link.offline() else {
        return outcome;
    };
    let message = format!(
        "the box has no network ({why}); not counted against the camera ({}: {})",
        failure.reason, failure.message
    );
    probe::Outcome {
        result: Err(probe::Failure::new(probe::Reason::BoxOffline, message)),
        ..outcome
    }
}

/// Runs the picture checks on an ok heartbeat (`crate::picture`): decodes
/// `frame` when the probe kept one (off the runtime, one decode at a time),
/// keeps it as the stream's last good picture when it is one, reads the
/// camera's clock offset, and turns the outcome into a failure when a
/// finding counts as down under the stream's `picture:` settings.
#[allow(clippy::too_many_arguments)]
async fn judge_picture(
    ctx: &Ctx,
    name: &str,
    watch: &mut PictureWatch,
    outcome: probe::Outcome,
    frame: Option<probe::Frame>,
    now: Instant,
    ts_ms: i64,
    box_synced: bool,
) -> probe::Outcome {
    if !outcome.is_ok() {
        return outcome;
    }
    if let Some(frame) = frame {
        let dims = outcome.media.width.zip(outcome.media.height);
        let joined =
            tokio::task::spawn_blocking(move || (picture::decode(&frame, dims), frame)).await;
        let (sig, frame) = match joined {
            Ok((sig, frame)) => (sig, Some(frame)),
            Err(e) => (Err(format!("the decoder failed: {e}")), None),
        };
        let decoded = matches!(sig, Ok(Some(_)));
        watch.observe(now, ts_ms, sig);
        let good = decoded && watch.state().verdict == picture::PictureVerdict::Ok;
        if let (true, Some(frame)) = (good, frame) {
            ctx.last_good
                .offer(name, picture::Kept { frame, dims, ts_ms });
        }
    }
    watch.observe_clock(outcome.media.camera_clock_offset_ms, box_synced);
    match watch.failure() {
        Some(f) => probe::Outcome {
            result: Err(f),
            ..outcome
        },
        None => outcome,
    }
}

fn record(
    ctx: &Ctx,
    name: &Arc<str>,
    ts_ms: i64,
    outcome: &probe::Outcome,
    unsynced: bool,
    picture: &PictureState,
) {
    ctx.probes_done.fetch_add(1, Ordering::Relaxed);
    ctx.probe_stats.observe(name, outcome);
    ctx.last_probe_ms
        .store(ctx.epoch.elapsed().as_millis() as i64, Ordering::Relaxed);
    let (transition, media_changed, health) = {
        let mut board = ctx.board.lock().expect("board lock");
        let Some(st) = board.get_mut(&**name) else {
            return;
        };
        if st.picture != *picture {
            st.picture = picture.clone();
        }
        if outcome.reason() == Some(probe::Reason::BoxOffline) {
            st.hold_while_box_offline(ts_ms, outcome, unsynced);
            return;
        }
        let before = st.media.clone();
        let t = st.apply(ts_ms, outcome, unsynced);
        let changed = !st.media.same_stored_facts(&before);
        (t, outcome.is_ok() && changed, st.health)
    };
    match &outcome.result {
        Ok(()) => {
            tracing::debug!(stream = %name, "ok in {} ms: {}", outcome.latency_ms, outcome.media.summary())
        }
        Err(f) => {
            tracing::debug!(stream = %name, "fail in {} ms: {}: {}", outcome.latency_ms, f.reason, f.message)
        }
    }
    ctx.recorder.send(Record::Heartbeat {
        stream: name.clone(),
        ts_ms,
        ok: outcome.is_ok(),
        latency_ms: outcome.latency_ms,
        reason: outcome.reason(),
        flags: if unsynced { FLAG_CLOCK_UNSYNCED } else { 0 },
    });
    if media_changed {
        ctx.recorder.send(Record::Media {
            stream: name.clone(),
            ts_ms,
            media: outcome.media.clone(),
        });
    }
    if let Some(t) = transition {
        match health {
            Health::Down => {
                tracing::warn!(stream = %name, "{} → down: {}", t.from.as_str(), t.message)
            }
            _ => {
                tracing::info!(stream = %name, "{} → {}: {}", t.from.as_str(), t.to.as_str(), t.message)
            }
        }
        // No receiver (MQTT and webhooks off) is not an error.
        let _ = ctx.transitions.send(t.clone());
        ctx.recorder.send(Record::Event(t));
    }
}
