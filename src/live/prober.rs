//! The live view answering the monitor's probes ([`Prober`]).
//!
//! A camera often allows one or two sessions. While a stream plays live,
//! the monitor's probe of it is answered from the live session: the next
//! key frame (or a JPEG that decodes) within the probe deadline, instead of
//! a second camera session; a single-client MJPEG camera stays "up" while
//! someone watches it. A stream nobody watches is probed as usual, keeping
//! the probe's frame when the live grid wants a thumbnail. `cmds::run`
//! hands the monitor this hub as its [`Prober`]; the monitor knows nothing
//! else about the live view.

use futures::future::BoxFuture;
use std::time::Instant;

use super::channel::{Output, ProofWaiter, UpState};
use super::hub::Hub;
use crate::monitor::Prober;
use crate::probe::{self, Failure, Frame, Kind, Outcome, Reason, Stages, Target};

impl Hub {
    /// The monitor's shared probe: if `name` plays live right now (same
    /// target), waits for its next key frame (or JPEG that decodes) instead
    /// of opening a second camera session. None: probe the camera as usual.
    async fn shared_probe(
        &self,
        name: &str,
        target: &Target,
        keep_frame: bool,
    ) -> Option<(Outcome, Option<Frame>)> {
        let (ch, rx) = {
            let st = self.lock();
            let e = st.entries.get(name)?;
            // The box's own camera has one reader: while its live capture
            // starts or restarts, wait for it rather than run a second
            // command that would find the device busy.
            let usable = match e.ch.state() {
                UpState::Playing => true,
                UpState::Connecting | UpState::Retrying(_) => target.kind == Kind::Local,
                UpState::Closed(_) => false,
            };
            if !e.ch.target.same_stream(target) || !usable {
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
        let mut kept = None;
        let result = match got {
            // The live session ended meanwhile: probe the camera.
            Ok(Err(_)) => return None,
            Err(_) => match ch.state() {
                // A box camera whose capture keeps dying: say how it died.
                UpState::Retrying(m) if target.kind == Kind::Local => Err(Failure::new(
                    Reason::Capture,
                    format!("the live capture is restarting: {m}"),
                )),
                _ => Err(Failure::new(
                    Reason::Timeout,
                    format!(
                        "no key frame within {:.1} s on the live session (the camera is watched \
                         live; its session is shared with the monitor)",
                        target.timeout.as_secs_f32()
                    ),
                )),
            },
            Ok(Ok(item)) => {
                media.frame_bytes = u32::try_from(item.data.len()).ok();
                let jpeg = match &item.picture {
                    Some(f) if f.codec == "jpeg" => Some(f.data.clone()),
                    None if matches!(ch.lock().output, Some(Output::Jpeg)) => {
                        Some(item.data.clone())
                    }
                    _ => None,
                };
                if keep_frame {
                    kept = match (&item.picture, &jpeg) {
                        (Some(f), _) => Some(f.clone()),
                        (None, Some(j)) => Some(Frame {
                            codec: "jpeg".into(),
                            data: j.clone(),
                        }),
                        _ => None,
                    };
                }
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
        let outcome = Outcome {
            result,
            latency_ms: wait_ms,
            stages: Stages {
                first_frame_ms: Some(wait_ms),
                ..Stages::default()
            },
            media,
        };
        Some((outcome, kept))
    }

    /// The monitor's probe of one stream (see the module docs): answered by a
    /// running live session if there is one; otherwise a normal probe, keeping
    /// its frame for a thumbnail when the grid wants one.
    async fn probe_for_monitor(
        &self,
        name: &str,
        target: &Target,
        keep_frame: bool,
    ) -> (Outcome, Option<Frame>) {
        if let Some(answer) = self.shared_probe(name, target, keep_frame).await {
            return answer;
        }
        let thumb = self.thumbs.wants(name);
        if !thumb && !keep_frame {
            return (probe::run(target).await, None);
        }
        let (outcome, frame) = probe::run_keeping_frame(target).await;
        if let (true, Some(f)) = (thumb, &frame) {
            let dims = outcome.media.width.zip(outcome.media.height);
            self.thumbs.offer(name, f.clone(), dims);
        }
        (outcome, frame.filter(|_| keep_frame))
    }
}

impl Prober for Hub {
    fn probe<'a>(
        &'a self,
        name: &'a str,
        target: &'a Target,
        keep_frame: bool,
    ) -> BoxFuture<'a, (Outcome, Option<Frame>)> {
        Box::pin(self.probe_for_monitor(name, target, keep_frame))
    }
}
