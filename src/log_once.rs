//! Third-party warnings about a stream, logged once per stream.
//!
//! retina warns about harmless camera quirks (e.g. a trailing `;` in the
//! SDP's fmtp: "Ignoring bad H.264 format-specific-params … key without
//! value") and does so at *every* session, so a 20 s heartbeat would write
//! the same line 4,320 times a day (into a RAM journal, or a card's). The
//! probes and the live view's camera sessions run inside a [`stream_span`];
//! [`OncePerStream`] lets each distinct third-party message through once per
//! stream — a changed message is a new one — and drops the repeats. Our own
//! events (target `streampulse…`) and anything outside a stream's span pass
//! untouched. The span also names the stream in the lines that do pass,
//! which retina's own text does not.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The span name [`OncePerStream`] looks for.
const SPAN: &str = "stream";

/// Distinct messages remembered per stream; beyond, the oldest is forgotten
/// (and would be logged again), so a message with a changing number in it
/// cannot grow memory.
const REMEMBERED_PER_STREAM: usize = 32;

/// The span a stream's camera work runs in (see the module docs).
pub fn stream_span(name: &str) -> tracing::Span {
    tracing::info_span!(SPAN, stream = %name)
}

/// The layer; see the module docs.
#[derive(Default)]
pub struct OncePerStream {
    seen: Mutex<HashMap<String, VecDeque<String>>>,
}

/// The stream name, kept in a [`stream_span`]'s extensions.
struct StreamName(String);

impl<S> Layer<S> for OncePerStream
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SPAN {
            return;
        }
        let mut v = FieldText::new("stream");
        attrs.record(&mut v);
        if let (Some(span), Some(name)) = (ctx.span(id), v.text) {
            span.extensions_mut().insert(StreamName(name));
        }
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        // Log records bridged from the `log` crate (retina's) have target
        // "log" here; ours start with the crate's name.
        if meta.target().starts_with("streampulse") || *meta.level() < Level::WARN {
            return true;
        }
        let Some(stream) = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|s| s.extensions().get::<StreamName>().map(|n| n.0.clone()))
        }) else {
            return true;
        };
        let mut v = FieldText::new("message");
        event.record(&mut v);
        let message = v.text.unwrap_or_default();
        self.first_time(&stream, message)
    }
}

impl OncePerStream {
    /// True the first time `message` is seen for `stream` (remembering it).
    fn first_time(&self, stream: &str, message: String) -> bool {
        let mut seen = self.seen.lock().expect("log_once lock");
        let list = seen.entry(stream.to_owned()).or_default();
        if list.contains(&message) {
            return false;
        }
        if list.len() == REMEMBERED_PER_STREAM {
            list.pop_front();
        }
        list.push_back(message);
        true
    }
}

/// Collects one field's value as text.
struct FieldText {
    name: &'static str,
    text: Option<String>,
}

impl FieldText {
    fn new(name: &'static str) -> Self {
        FieldText { name, text: None }
    }
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == self.name {
            self.text = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == self.name {
            let mut s = String::new();
            let _ = write!(s, "{value:?}");
            self.text = Some(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// The lines a subscriber with [`OncePerStream`] writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_quirk_is_logged_once_per_stream_and_again_when_it_changes() {
        let out = Lines::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(OncePerStream::default())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || w.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..5 {
                for cam in ["door", "yard"] {
                    let _g = stream_span(cam).entered();
                    tracing::warn!(target: "retina::codec::h264", "Ignoring bad fmtp: key without value");
                    tracing::warn!(target: "streampulse::probe", "our own warning");
                }
            }
            let _g = stream_span("door").entered();
            tracing::warn!(target: "retina::codec::h264", "Ignoring bad fmtp: no sprop");
            drop(_g);
            // Outside a stream's span: not ours to judge.
            tracing::warn!(target: "retina::client", "keepalive failed");
            tracing::warn!(target: "retina::client", "keepalive failed");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
        assert_eq!(count("key without value"), 2, "once per stream:\n{text}");
        assert_eq!(count("stream{stream=door}"), 5 + 1 + 1, "{text}");
        assert_eq!(count("no sprop"), 1, "a changed message is logged");
        assert_eq!(count("our own warning"), 10, "ours always pass");
        assert_eq!(count("keepalive failed"), 2, "outside a stream's span");
    }

    #[test]
    fn memory_per_stream_is_bounded() {
        let layer = OncePerStream::default();
        for i in 0..1000 {
            assert!(layer.first_time("cam", format!("seq {i}")));
        }
        assert_eq!(
            layer.seen.lock().unwrap()["cam"].len(),
            REMEMBERED_PER_STREAM
        );
    }
}
