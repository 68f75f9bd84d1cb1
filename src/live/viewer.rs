//! One client's stream: a viewer admitted by the hub, on its own thread.
//!
//! A [`Ticket`] holds a viewer's place (its one-frame [`Slot`] in the
//! channel and its count against the caps) from admission until it is
//! dropped. [`Ticket::start`] moves it to a dedicated thread that waits for
//! the camera's first frame, then sends what the channel publishes: JPEGs as
//! `multipart/x-mixed-replace` parts, or fragmented MP4 (init segment, then
//! one `moof` + `mdat` per frame), with a keep-alive when the camera is
//! silent. The viewer produces the body only; the HTTP answer around it
//! (status line, headers, chunked framing) is the web layer's [`Sink`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::channel::{Channel, Output};
use super::hub::Hub;
use super::slot::{Item, Slot, Taken};
use super::{fmp4, BOUNDARY, KEEPALIVE};

/// What a stream is, for the head of its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// `multipart/x-mixed-replace; boundary=…` or `video/mp4; codecs="…"`.
    pub content_type: String,
    /// `jpeg`, or the RFC 6381 codec of an H.26x stream.
    pub codec: String,
    /// The box's clock when the stream started (unix ms), for the page's
    /// latency figures.
    pub box_now_ms: i64,
}

/// Where a viewer's stream goes: the client's socket, framed by the web
/// layer. Called from the viewer's thread only; an error means the client
/// is gone and ends the viewer.
pub trait Sink: Send + 'static {
    /// No picture came from the camera (`msg` says why): an error answer
    /// instead of a stream.
    fn refuse(&mut self, msg: &str) -> std::io::Result<()>;
    /// The head of the stream, before any [`Sink::piece`].
    fn begin(&mut self, head: &Head) -> std::io::Result<()>;
    /// One piece of the body, made of `parts` (one HTTP chunk).
    fn piece(&mut self, parts: &[&[u8]]) -> std::io::Result<()>;
    /// The end of the body (the live session ended).
    fn end(&mut self) -> std::io::Result<()>;
    /// Sends what was written so far.
    fn flush(&mut self) -> std::io::Result<()>;
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

impl Ticket {
    /// A viewer of `ch` (already counted by the hub), with a fresh slot.
    pub(super) fn new(hub: Arc<Hub>, ch: Arc<Channel>, id: u64) -> Ticket {
        Ticket {
            hub,
            ch,
            slot: Arc::new(Slot::new()),
            id,
        }
    }

    /// Sends the stream to `sink` on a viewer thread, so the web worker
    /// that admitted it is free at once; see the module docs.
    pub fn start(self, sink: impl Sink) {
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
                match t.run(sink) {
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

    fn run(&self, mut out: impl Sink) -> std::io::Result<()> {
        let until = Instant::now() + self.ch.target.timeout + Duration::from_secs(5);
        let output = match self.ch.wait_ready(until) {
            Ok(o) => o,
            Err(msg) => {
                out.refuse(&msg)?;
                return out.flush();
            }
        };
        let first = self.ch.attach(&self.slot);
        let (content_type, codec) = match &output {
            Output::Jpeg => (
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
                "jpeg".to_owned(),
            ),
            Output::Fmp4 { codec, .. } => (format!("video/mp4; codecs=\"{codec}\""), codec.clone()),
        };
        out.begin(&Head {
            content_type,
            codec: codec.clone(),
            box_now_ms: self.hub.clock.now_ms(),
        })?;
        tracing::info!(stream = %self.ch.name, "live viewer {} started ({codec})", self.id);
        let jpeg = matches!(output, Output::Jpeg);
        if let Output::Fmp4 { init, .. } = &output {
            out.piece(&[init])?;
        }
        let mut last: Option<Arc<Item>> = None;
        for item in first {
            send_item(&mut out, &item, jpeg)?;
            last = Some(item);
        }
        out.flush()?;
        loop {
            match self.slot.take(KEEPALIVE) {
                Taken::Item(item) => {
                    send_item(&mut out, &item, jpeg)?;
                    last = Some(item);
                }
                Taken::Idle => {
                    // A keep-alive: the last JPEG again, or an MP4 `free` box.
                    match (&last, jpeg) {
                        (Some(item), true) => send_item(&mut out, item, true)?,
                        _ => out.piece(&[&fmp4::FREE_BOX])?,
                    }
                }
                Taken::Closed => {
                    out.end()?;
                    return out.flush();
                }
            }
            out.flush()?;
        }
    }
}

/// One frame as a piece of the body: an fMP4 fragment as is, a JPEG as a
/// multipart part with its size and timing headers.
fn send_item(out: &mut impl Sink, item: &Item, jpeg: bool) -> std::io::Result<()> {
    if !jpeg {
        return out.piece(&[&item.data]);
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
    out.piece(&[head.as_bytes(), &item.data, b"\r\n"])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the pieces it is given.
    #[derive(Default)]
    struct Pieces(Vec<Vec<u8>>);

    impl Sink for Pieces {
        fn refuse(&mut self, _msg: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn begin(&mut self, _head: &Head) -> std::io::Result<()> {
            Ok(())
        }
        fn piece(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
            self.0.push(parts.concat());
            Ok(())
        }
        fn end(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn item(capture_ms: Option<f64>) -> Item {
        Item {
            data: b"JPEG".to_vec(),
            key: true,
            recv_ms: 1_700_000_000_123.0,
            capture_ms,
            picture: None,
        }
    }

    #[test]
    fn a_jpeg_is_one_multipart_part_and_a_fragment_goes_as_is() {
        let mut out = Pieces::default();
        send_item(&mut out, &item(None), true).unwrap();
        send_item(&mut out, &item(Some(1_700_000_000_100.25)), true).unwrap();
        send_item(&mut out, &item(None), false).unwrap();
        assert_eq!(
            String::from_utf8(out.0[0].clone()).unwrap(),
            "--spframe\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\
             X-Recv-Ms: 1700000000123\r\n\r\nJPEG\r\n"
        );
        assert_eq!(
            String::from_utf8(out.0[1].clone()).unwrap(),
            "--spframe\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\
             X-Recv-Ms: 1700000000123\r\nX-Capture-Ms: 1700000000100.2\r\n\r\nJPEG\r\n"
        );
        assert_eq!(out.0[2], b"JPEG");
    }
}
