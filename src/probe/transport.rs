//! The RTP transport of an RTSP stream, and what each stream taught us.
//!
//! `transport: auto` (the default) does what ffmpeg's RTSP client does: ask
//! for RTP interleaved in the RTSP connection (TCP: through NAT and
//! firewalls, no loss) and, when the server refuses that transport
//! (`461 Unsupported Transport`, as older cameras and UDP-only servers
//! answer), ask again over UDP on the same session — and the reverse for a
//! server that only takes TCP. What worked is remembered per stream URL
//! ([`Learned`]) and asked for first next time, by the probe and the live
//! view alike; a stream that needed UDP tries TCP first again every
//! [`RETRY_TCP_EVERY`] sessions, in case the camera changed. `tcp` and `udp`
//! force one and never fall back.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The configured RTP transport of an RTSP stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP first, the other when the server refuses one; see the module docs.
    #[default]
    Auto,
    /// Interleaved in the RTSP TCP connection; works through NAT and firewalls.
    Tcp,
    /// RTP over UDP.
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Auto => "auto",
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }

    /// The other of TCP and UDP (`Auto` has none).
    fn other(self) -> Transport {
        match self {
            Transport::Tcp => Transport::Udp,
            Transport::Udp => Transport::Tcp,
            Transport::Auto => Transport::Auto,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Transport::Auto),
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            o => Err(format!(
                "unknown transport {o:?}; expected auto, tcp or udp"
            )),
        }
    }
}

/// A stream that needed UDP asks for TCP first again after this many
/// sessions (at a 20 s heartbeat: about every 7 minutes).
pub const RETRY_TCP_EVERY: u32 = 20;

/// What `auto` learned about one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Learned {
    /// The transport the last session got.
    works: Transport,
    /// Sessions since TCP was last asked for first.
    since_tcp_tried: u32,
}

/// Per-stream memory of `auto` (keyed by the URL without credentials).
#[derive(Default)]
pub struct Memory(Mutex<HashMap<String, Learned>>);

impl Memory {
    /// The transports to ask for, in order, for a stream configured with
    /// `configured`: one when forced, two for `auto`.
    pub fn order(&self, url: &str, configured: Transport) -> Vec<Transport> {
        if configured != Transport::Auto {
            return vec![configured];
        }
        let mut map = self.0.lock().expect("transport memory lock");
        let first = match map.get_mut(url) {
            None => Transport::Tcp,
            Some(l) if l.works == Transport::Udp => {
                l.since_tcp_tried += 1;
                if l.since_tcp_tried >= RETRY_TCP_EVERY {
                    l.since_tcp_tried = 0;
                    Transport::Tcp
                } else {
                    Transport::Udp
                }
            }
            Some(l) => l.works,
        };
        vec![first, first.other()]
    }

    /// Records that a session of `url` got `used`.
    pub fn worked(&self, url: &str, used: Transport) {
        let mut map = self.0.lock().expect("transport memory lock");
        let l = map.entry(url.to_owned()).or_insert(Learned {
            works: used,
            since_tcp_tried: 0,
        });
        l.works = used;
    }
}

/// The process's memory, shared by the probe and the live view.
pub fn memory() -> &'static Memory {
    static MEMORY: std::sync::OnceLock<Memory> = std::sync::OnceLock::new();
    MEMORY.get_or_init(Memory::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_transports_never_fall_back() {
        let m = Memory::default();
        assert_eq!(m.order("rtsp://a/", Transport::Tcp), [Transport::Tcp]);
        assert_eq!(m.order("rtsp://a/", Transport::Udp), [Transport::Udp]);
    }

    #[test]
    fn auto_starts_with_tcp_then_remembers_udp_and_retries_tcp_now_and_then() {
        let m = Memory::default();
        let url = "rtsp://cam/udp-only";
        assert_eq!(
            m.order(url, Transport::Auto),
            [Transport::Tcp, Transport::Udp]
        );
        m.worked(url, Transport::Udp);
        let mut tcp_first = 0;
        for _ in 0..(3 * RETRY_TCP_EVERY) {
            let order = m.order(url, Transport::Auto);
            assert_eq!(order.len(), 2);
            if order[0] == Transport::Tcp {
                tcp_first += 1;
            }
            // TCP is refused again each time.
            m.worked(url, Transport::Udp);
        }
        assert_eq!(
            tcp_first, 3,
            "TCP retried once every {RETRY_TCP_EVERY} sessions"
        );
        // Once TCP works again, it stays first.
        m.worked(url, Transport::Tcp);
        for _ in 0..5 {
            assert_eq!(m.order(url, Transport::Auto)[0], Transport::Tcp);
        }
        // Other streams are unaffected.
        assert_eq!(m.order("rtsp://other/", Transport::Auto)[0], Transport::Tcp);
    }

    #[test]
    fn parses_and_prints() {
        for t in [Transport::Auto, Transport::Tcp, Transport::Udp] {
            assert_eq!(t.as_str().parse::<Transport>(), Ok(t));
        }
        assert!("quic"
            .parse::<Transport>()
            .unwrap_err()
            .contains("auto, tcp or udp"));
        assert_eq!(Transport::default(), Transport::Auto);
    }
}
