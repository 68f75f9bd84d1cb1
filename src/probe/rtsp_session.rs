//! The RTSP session steps both RTSP users share: the probe ([`super::rtsp`]:
//! one key frame, then TEARDOWN) and the live view's relay (`crate::live`:
//! frames for as long as someone watches).
//!
//! * retina has no timeouts of its own: each request (DESCRIBE, SETUP, PLAY)
//!   runs under the caller's [`Handshake::deadline`], and a request not
//!   answered in time fails as the caller words it ([`Handshake::late`]).
//! * credentials go in [`SessionOptions::creds`], never in the URL.
//! * only the chosen video track is SETUP ([`pick_video_stream`]): audio (e.g.
//!   Opus) that retina cannot depacketize would otherwise fail the session.
//! * that SETUP asks for the stream's transport: a forced one, or for `auto`
//!   TCP or UDP, then the other when the server refuses it (`transport.rs`).
//!
//! What differs stays with the callers: the probe times each stage and wants
//! Annex B frames (`FrameFormat::SIMPLE`), with each request bounded by the
//! stage deadline; the live view wants MP4 framing and gives each request the
//! stream's whole probe timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use retina::client::{
    Described, InitialSequenceNumberPolicy, PlayOptions, Playing, Session, SessionGroup,
    SessionOptions, SetupOptions, TcpTransportOptions, TeardownPolicy, UdpTransportOptions,
};
use retina::codec::{FrameFormat, VideoParameters};

use super::{Failure, MediaFacts, Reason, Stage, Transport};
use crate::redact::Credentials;

/// Session options: `creds` (if any), the TEARDOWN `group` the caller awaits
/// after dropping the session, and TEARDOWN always sent.
pub(crate) fn session_options(
    creds: Option<&Credentials>,
    group: Arc<SessionGroup>,
    user_agent: String,
) -> SessionOptions {
    let creds = creds.map(|c| retina::client::Credentials {
        username: c.username.clone(),
        password: c.password.clone(),
    });
    SessionOptions::default()
        .creds(creds)
        .session_group(group)
        .user_agent(user_agent)
        .teardown(TeardownPolicy::Always)
}

/// How one caller runs the requests of a session.
pub(crate) struct Handshake {
    /// Longest wait for the answer to each request.
    pub deadline: Duration,
    /// The failure of a request (the [`Stage`] says which) not answered
    /// within `deadline`.
    pub late: fn(Duration, Stage) -> Failure,
}

impl Handshake {
    /// DESCRIBE (its own TCP connection included).
    pub async fn describe(
        &self,
        url: &url::Url,
        options: SessionOptions,
    ) -> Result<Session<Described>, Failure> {
        self.request(Stage::Describe, Session::describe(url.clone(), options))
            .await
    }

    /// SETUP of the one track `stream_i` of `url`, its frames framed as
    /// `format`, over `transport`: a forced one, or for `auto` the one that
    /// worked last and then the other when the server refuses it with 461
    /// (`super::transport`). Returns the transport the session got.
    pub async fn setup(
        &self,
        session: &mut Session<Described>,
        stream_i: usize,
        url: &url::Url,
        transport: Transport,
        format: FrameFormat,
    ) -> Result<Transport, Failure> {
        let memory = super::transport::memory();
        let order = memory.order(url.as_str(), transport);
        let mut refused = Vec::new();
        for &t in &order {
            let rtp = match t {
                Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
                _ => retina::client::Transport::Tcp(TcpTransportOptions::default()),
            };
            let options = SetupOptions::default().transport(rtp).frame_format(format);
            let answer =
                match tokio::time::timeout(self.deadline, session.setup(stream_i, options)).await {
                    Ok(answer) => answer,
                    Err(_) => return Err((self.late)(self.deadline, Stage::Setup)),
                };
            match answer {
                Ok(()) => {
                    if transport == Transport::Auto {
                        memory.worked(url.as_str(), t);
                    }
                    return Ok(t);
                }
                // 461 Unsupported Transport: ask for the other one (auto).
                Err(e) if e.status_code() == Some(461) && order.len() > 1 => {
                    refused.push(t.as_str().to_uppercase());
                }
                Err(e) => return Err(classify(&e, "SETUP")),
            }
        }
        Err(Failure::new(
            Reason::Protocol,
            format!(
                "SETUP: RTSP 461 (transport not offered) over {}: the server takes neither",
                refused.join(" and ")
            ),
        ))
    }

    /// PLAY. Servers shared by several clients (GStreamer's shared media) may
    /// start mid-sequence; a first key frame is all either caller needs.
    pub async fn play(&self, session: Session<Described>) -> Result<Session<Playing>, Failure> {
        let options = PlayOptions::default().initial_seq(InitialSequenceNumberPolicy::Ignore);
        self.request(Stage::Play, session.play(options)).await
    }

    async fn request<T>(
        &self,
        stage: Stage,
        answer: impl Future<Output = Result<T, retina::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.deadline, answer).await {
            Ok(result) => result.map_err(|e| classify(&e, request_name(stage))),
            Err(_) => Err((self.late)(self.deadline, stage)),
        }
    }
}

/// The RTSP request a session stage waits for.
pub(crate) fn request_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Describe => "DESCRIBE",
        Stage::Setup => "SETUP",
        _ => "PLAY",
    }
}

/// Picks the first video track retina can depacketize; returns its index and
/// the SDP frame rate.
pub(crate) fn pick_video_stream(
    streams: &[retina::client::Stream],
) -> Result<(usize, Option<f32>), Failure> {
    let mut seen = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        let enc = s.encoding_name();
        if matches!(s.media(), "video" | "image") && matches!(enc, "h264" | "h265" | "jpeg") {
            return Ok((i, s.framerate()));
        }
        seen.push(format!("{}/{}", s.media(), enc));
    }
    let msg = if seen.is_empty() {
        "the stream description lists no tracks".to_owned()
    } else {
        format!(
            "no H.264, H.265 or JPEG video track (found: {})",
            seen.join(", ")
        )
    };
    Err(Failure::new(Reason::NoVideo, msg))
}

pub(crate) fn codec_name(encoding: &str) -> &'static str {
    match encoding {
        "h264" => "h264",
        "h265" => "h265",
        "jpeg" => "jpeg",
        _ => "unknown",
    }
}

pub(crate) fn learn(media: &mut MediaFacts, v: &VideoParameters) {
    let (w, h) = v.pixel_dimensions();
    if w > 0 && h > 0 {
        media.width = Some(w);
        media.height = Some(h);
    }
    if media.codec.as_deref() != Some("jpeg") {
        media.rfc6381 = Some(v.rfc6381_codec().to_owned());
    }
    // retina gives seconds per frame as a fraction (e.g. (1, 15) or (6000, 90000)).
    if let Some((num, den)) = v.frame_rate() {
        if num > 0 {
            media.fps = Some(den as f32 / num as f32);
        }
    }
}

/// Maps a retina error to a reason. `retina::Error` is opaque: only the RTSP
/// status is exposed, so transport errors are told apart by their text.
pub(crate) fn classify(e: &retina::Error, during: &str) -> Failure {
    let text = first_line(&e.to_string());
    // A 2xx "error" is retina rejecting what came with a success (e.g. no
    // usable SDP after a 10 MB header): its own text says what.
    if let Some(status) = e.status_code().filter(|s| !(200..300).contains(s)) {
        let reason = match status {
            401 | 403 => Reason::Auth,
            404 => Reason::NotFound,
            _ => Reason::Protocol,
        };
        let hint = match status {
            401 => " (wrong or missing username/password)",
            301 | 302 | 303 | 307 | 308 => {
                " (redirect; not followed: configure the URL it points to)"
            }
            453 | 503 => " (the camera refuses another session: session limit reached?)",
            461 => " (transport not offered: `transport: auto` asks for the other)",
            _ => "",
        };
        return Failure::new(reason, format!("{during}: RTSP {status}{hint}"));
    }
    let lower = text.to_ascii_lowercase();
    let reason = if lower.contains("unable to connect") {
        Reason::Connect
    } else if lower.contains("failed to lookup") || lower.contains("name or service") {
        Reason::Dns
    } else {
        Reason::Protocol
    };
    Failure::new(reason, format!("{during}: {text}"))
}

pub(crate) fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    // Camera-supplied text can be long; keep messages short.
    line.chars().take(300).collect()
}

/// Is `e` about one RTP packet (a depacketization error: a fragment without
/// its start, a malformed NAL unit) rather than the session? retina's error
/// is opaque; its packet errors, and only those, end with the packet's
/// context (`pkt: …`), and after one the session goes on.
pub(crate) fn is_packet_error(e: &retina::Error) -> bool {
    e.to_string().lines().any(|l| l.starts_with("pkt: "))
}

/// Seconds from the NTP era (1900) to the Unix epoch.
const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

/// The camera's wall clock minus the box's, in ms, from the sender report
/// in `pkt` (RTCP SR: the camera's NTP time when it sent it). None when
/// `pkt` has no sender report, or one with a zero NTP time (no clock).
pub(crate) fn sender_report_offset_ms(pkt: &retina::rtcp::ReceivedCompoundPacket) -> Option<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let ntp = pkt
        .pkts()
        .find_map(|p| p.as_sender_report().ok().flatten())?
        .ntp_timestamp()
        .0;
    if ntp == 0 {
        return None;
    }
    let secs = (ntp >> 32) as i64 - NTP_UNIX_OFFSET_SECS;
    let frac_ms = (((ntp & 0xffff_ffff) * 1000) >> 32) as i64;
    Some(secs * 1000 + frac_ms - now.as_millis() as i64)
}
