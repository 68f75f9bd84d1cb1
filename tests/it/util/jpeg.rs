//! JPEG material made once per run with ffmpeg: a real picture, its header
//! alone (what a camera sends before the picture data), an undecodable copy,
//! and filler that can never end a JPEG. Real peers serve them and named
//! fakes build their misbehaviour from them.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A real baseline JPEG of ffmpeg's 320x240 `testsrc` (about 9 KB), made once per run.
pub fn sample_jpeg() -> &'static [u8] {
    static JPEG: OnceLock<Vec<u8>> = OnceLock::new();
    JPEG.get_or_init(|| {
        let out = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240",
            ])
            .args(["-frames:v", "1", "-f", "mjpeg", "-"])
            .stdin(Stdio::null())
            .output()
            .expect("spawning ffmpeg should succeed (apt-get install ffmpeg)");
        assert!(
            out.status.success() && out.stdout.starts_with(&[0xFF, 0xD8]),
            "ffmpeg made no JPEG: {out:?}"
        );
        out.stdout
    })
}

/// Offsets of the JPEG segments of `jpeg` up to and including SOS: `(marker, start, end)`
/// where `start` is the 0xFF of the marker and `end` is one past the segment.
fn jpeg_segments(jpeg: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut segments = Vec::new();
    let mut pos = 2; // after SOI
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF {
        let marker = jpeg[pos + 1];
        let end = pos + 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        segments.push((marker, pos, end));
        if marker == 0xDA {
            break; // entropy-coded data follows
        }
        pos = end;
    }
    assert_eq!(
        segments.last().map(|s| s.0),
        Some(0xDA),
        "sample JPEG has no SOS segment"
    );
    segments
}

/// [`sample_jpeg`] up to and including its SOS header: what a camera sends before the
/// entropy-coded picture data.
pub fn jpeg_header() -> &'static [u8] {
    let jpeg = sample_jpeg();
    let (_, _, sos_end) = *jpeg_segments(jpeg)
        .last()
        .expect("checked in jpeg_segments");
    &jpeg[..sos_end]
}

/// [`sample_jpeg`] with width and height in its SOF set to 0: every marker is in place
/// (SOI ... EOI), but no decoder can make a picture of it.
pub fn corrupt_jpeg() -> Vec<u8> {
    let mut jpeg = sample_jpeg().to_vec();
    let (_, start, _) = *jpeg_segments(&jpeg)
        .iter()
        .find(|(m, _, _)| (0xC0..=0xC2).contains(m))
        .expect("sample JPEG has a SOF0..SOF2 segment");
    // FF Cx, length (2), precision (1), height (2), width (2)
    jpeg[start + 5..start + 9].fill(0);
    jpeg
}

/// Entropy-coded-looking filler that never contains 0xFF: no marker (so no EOI), no boundary.
pub fn filler(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0x20 + (i % 0x50) as u8).collect()
}
