//! Real H.264 for the fake RTSP cameras: an ffmpeg/x264 clip of `testsrc`
//! ([`h264_clip`]) cut into NAL units, and RTP packetisation per RFC 6184
//! (single NAL units and FU-A) on an interleaved channel, so a fake camera
//! really proves a key frame, or really sends P-frames without one.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// One short H.264 clip of ffmpeg's `testsrc` (320x240, 15 fps, baseline, one
/// GOP), as NAL units without start codes.
pub struct H264Clip {
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
    /// The key frame (NAL type 5).
    pub idr: Vec<u8>,
    /// The non-IDR slices (NAL type 1) that follow it.
    pub p_frames: Vec<Vec<u8>>,
}

/// The clip, made once per test run with ffmpeg's libx264.
pub fn h264_clip() -> &'static H264Clip {
    static CLIP: OnceLock<H264Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-f", "lavfi"])
            .args(["-i", "testsrc=size=320x240:rate=15", "-frames:v", "15"])
            .args([
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-g", "15", "-bf", "0", "-f", "h264", "-"])
            .stdin(Stdio::null())
            .output()
            .expect("spawning ffmpeg should succeed (apt-get install ffmpeg)");
        assert!(out.status.success(), "ffmpeg made no H.264: {out:?}");
        let nals = split_annex_b(&out.stdout);
        let of = |t: u8| nals.iter().filter(move |n| n[0] & 0x1F == t).cloned();
        let clip = H264Clip {
            sps: of(7).next().expect("x264 writes an SPS"),
            pps: of(8).next().expect("x264 writes a PPS"),
            idr: of(5).next().expect("x264 starts with an IDR slice"),
            p_frames: of(1).collect(),
        };
        assert!(clip.p_frames.len() >= 10, "expected a GOP of P-frames");
        clip
    })
}

/// Splits an Annex B byte stream at its 3- and 4-byte start codes.
fn split_annex_b(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        let mut nal = &data[s..end];
        // A 4-byte start code leaves its leading zero on the previous NAL.
        while nal.last() == Some(&0) {
            nal = &nal[..nal.len() - 1];
        }
        if !nal.is_empty() {
            nals.push(nal.to_vec());
        }
    }
    nals
}

/// RTP state of one outgoing H.264 stream on interleaved channel 0.
pub struct RtpOut {
    pub seq: u16,
    pub ts: u32,
}

/// Largest RTP payload we send (FU-A above it).
const MAX_RTP_PAYLOAD: usize = 1400;

impl RtpOut {
    /// One interleaved RTP packet (`$`, channel 0, length, RTP header, payload).
    pub fn packet(&mut self, payload: &[u8], marker: bool) -> Vec<u8> {
        let mut rtp = Vec::with_capacity(12 + payload.len());
        rtp.push(0x80);
        rtp.push(96 | if marker { 0x80 } else { 0 });
        rtp.extend_from_slice(&self.seq.to_be_bytes());
        rtp.extend_from_slice(&self.ts.to_be_bytes());
        rtp.extend_from_slice(&0x5EED_CAFEu32.to_be_bytes());
        rtp.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        let mut out = vec![b'$', 0];
        out.extend_from_slice(&(rtp.len() as u16).to_be_bytes());
        out.extend_from_slice(&rtp);
        out
    }

    /// The FU-A fragments of `nal` after its first (the start bit never
    /// set): what a client that joins mid-frame receives first. `nal` is cut
    /// into at least two fragments.
    pub fn fu_a_without_start(&mut self, nal: &[u8]) -> Vec<u8> {
        let size = (MAX_RTP_PAYLOAD - 2).min(nal.len().div_ceil(2)).max(1);
        let chunks: Vec<&[u8]> = nal[1..].chunks(size).collect();
        let mut out = Vec::new();
        for (k, chunk) in chunks.iter().enumerate().skip(1) {
            let end = k + 1 == chunks.len();
            let mut p = vec![(nal[0] & 0xE0) | 28, (u8::from(end) << 6) | (nal[0] & 0x1F)];
            p.extend_from_slice(chunk);
            out.extend(self.packet(&p, end));
        }
        self.ts = self.ts.wrapping_add(90_000 / 15);
        out
    }

    /// One access unit (all NALs share a timestamp; the last packet carries the marker).
    pub fn access_unit(&mut self, nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, nal) in nals.iter().enumerate() {
            let last_nal = i + 1 == nals.len();
            if nal.len() <= MAX_RTP_PAYLOAD {
                out.extend(self.packet(nal, last_nal));
                continue;
            }
            // FU-A: indicator keeps F/NRI with type 28; header has S/E and the type.
            let chunks: Vec<&[u8]> = nal[1..].chunks(MAX_RTP_PAYLOAD - 2).collect();
            for (k, chunk) in chunks.iter().enumerate() {
                let start = k == 0;
                let end = k + 1 == chunks.len();
                let mut p = vec![
                    (nal[0] & 0xE0) | 28,
                    (u8::from(start) << 7) | (u8::from(end) << 6) | (nal[0] & 0x1F),
                ];
                p.extend_from_slice(chunk);
                out.extend(self.packet(&p, last_nal && end));
            }
        }
        self.ts = self.ts.wrapping_add(90_000 / 15);
        out
    }
}
