//! JPEG framing and verification, shared by the MJPEG and snapshot probes.
//!
//! [`JpegFramer`] finds where a JPEG ends by walking its marker segments
//! (skipping each segment by its length, then scanning entropy-coded data for
//! the next real marker). Unlike searching for `FF D9`, this is not fooled by
//! an EXIF thumbnail's own end marker, and it does not depend on the multipart
//! boundary or `Content-Length`, which cheap cameras get wrong. It is
//! resumable: feeding a growing buffer costs O(total bytes), not O(n²).

/// Where the framer is inside the JPEG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a marker (`FF xx`).
    Marker,
    /// Inside entropy-coded data after SOS.
    Entropy,
}

/// Incremental JPEG end finder. Offsets are relative to the start of the
/// slice passed to [`JpegFramer::advance`], which must start at the SOI.
#[derive(Debug)]
pub struct JpegFramer {
    state: State,
    pos: usize,
}

/// Why bytes are not a JPEG.
#[derive(Debug, PartialEq, Eq)]
pub struct NotJpeg(pub String);

impl Default for JpegFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl JpegFramer {
    pub fn new() -> Self {
        JpegFramer {
            state: State::Marker,
            pos: 0,
        }
    }

    /// Scans `buf` (the bytes from the SOI on, possibly incomplete).
    /// Returns `Ok(Some(len))` once a complete JPEG of `len` bytes is present,
    /// `Ok(None)` if more bytes are needed.
    pub fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, NotJpeg> {
        if self.pos == 0 {
            if buf.len() < 2 {
                return Ok(None);
            }
            if buf[0] != 0xFF || buf[1] != 0xD8 {
                return Err(NotJpeg("does not start with a JPEG SOI marker".into()));
            }
            self.pos = 2;
        }
        loop {
            match self.state {
                State::Entropy => {
                    // Look for FF followed by something other than a stuffed 00 or RSTn.
                    let mut i = self.pos;
                    loop {
                        match memchr_ff(&buf[i..]) {
                            None => {
                                self.pos = buf.len();
                                return Ok(None);
                            }
                            Some(off) => {
                                let at = i + off;
                                if at + 1 >= buf.len() {
                                    self.pos = at; // need the byte after FF
                                    return Ok(None);
                                }
                                let next = buf[at + 1];
                                if next == 0x00 || (0xD0..=0xD7).contains(&next) || next == 0xFF {
                                    i = at + 1;
                                    continue;
                                }
                                self.pos = at;
                                self.state = State::Marker;
                                break;
                            }
                        }
                    }
                }
                State::Marker => {
                    let p = self.pos;
                    if p + 1 >= buf.len() {
                        return Ok(None);
                    }
                    if buf[p] != 0xFF {
                        return Err(NotJpeg(format!("expected a marker at byte {p}")));
                    }
                    let m = buf[p + 1];
                    match m {
                        0xFF => self.pos += 1, // fill byte
                        0xD9 => return Ok(Some(p + 2)),
                        0xD8 => return Err(NotJpeg(format!("second SOI at byte {p}"))),
                        0x01 | 0xD0..=0xD7 => self.pos += 2,
                        _ => {
                            if p + 3 >= buf.len() {
                                return Ok(None);
                            }
                            let len = u16::from_be_bytes([buf[p + 2], buf[p + 3]]) as usize;
                            if len < 2 {
                                return Err(NotJpeg(format!("bad segment length at byte {p}")));
                            }
                            if p + 2 + len > buf.len() {
                                return Ok(None);
                            }
                            self.pos = p + 2 + len;
                            if m == 0xDA {
                                self.state = State::Entropy;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn memchr_ff(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == 0xFF)
}

/// Finds the first JPEG start (`FF D8 FF`) in `buf`.
pub fn find_soi(buf: &[u8]) -> Option<usize> {
    buf.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF])
}

/// Facts from a decoded JPEG.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    /// Mean luma 0–255 (a black picture is near 16 or below).
    pub mean_luma: f32,
}

/// A JPEG's luma plane (`width` bytes per row).
#[derive(Clone, Debug, PartialEq)]
pub struct Luma {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Largest picture we agree to decode (pixels); bounds memory per decode.
pub const MAX_DECODE_PIXELS: u64 = 4096 * 3072;

/// Decodes `jpeg` to its luma plane, walking every scan's entropy-coded data
/// (the chroma blocks too: they are Huffman-decoded and discarded; only
/// their inverse DCT and the colour conversion are skipped), with bounded
/// memory. As lenient as the image crate's decoder (and browsers): damage
/// inside a scan decodes to grey blocks, not an error; what does not parse
/// as a JPEG is one.
pub fn decode_luma(jpeg: &[u8]) -> Result<Luma, String> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    // A JPEG's size fits in u16 each way; the pixel cap is checked below.
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX))
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    decoder
        .decode_headers()
        .map_err(|e| format!("not a decodable JPEG: {e}"))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or("not a decodable JPEG: no frame header")?;
    if width == 0 || height == 0 {
        return Err("JPEG has zero size".into());
    }
    if width as u64 * height as u64 > MAX_DECODE_PIXELS {
        return Err(format!("{width}x{height} is larger than this box decodes"));
    }
    let pixels = decoder
        .decode()
        .map_err(|e| format!("JPEG does not decode: {e}"))?;
    if pixels.len() != width * height {
        return Err(format!(
            "JPEG decoded to {} bytes for {width}x{height}",
            pixels.len()
        ));
    }
    Ok(Luma {
        width: width as u32,
        height: height as u32,
        pixels,
    })
}

/// Fully decodes `jpeg` to prove it is a picture ([`decode_luma`]).
pub fn decode(jpeg: &[u8]) -> Result<Decoded, String> {
    let luma = decode_luma(jpeg)?;
    let n = luma.pixels.len().max(1) as u64;
    let sum: u64 = luma.pixels.iter().map(|&v| u64::from(v)).sum();
    Ok(Decoded {
        width: luma.width,
        height: luma.height,
        mean_luma: sum as f32 / n as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `img` as a JPEG of quality 80, by the image crate's encoder.
    fn encode(img: &image::RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
            .encode_image(img)
            .unwrap();
        out
    }

    /// A real 16x8 JPEG.
    fn sample_jpeg() -> Vec<u8> {
        encode(&image::RgbImage::from_fn(16, 8, |x, y| {
            image::Rgb([x as u8 * 10, y as u8 * 20, 90])
        }))
    }

    #[test]
    fn frames_a_whole_jpeg_fed_byte_by_byte() {
        let j = sample_jpeg();
        let mut with_tail = j.clone();
        with_tail.extend_from_slice(b"\r\n--boundary\r\n");
        let mut f = JpegFramer::new();
        let mut found = None;
        for n in 0..=with_tail.len() {
            if let Some(end) = f.advance(&with_tail[..n]).unwrap() {
                found = Some(end);
                break;
            }
        }
        assert_eq!(found, Some(j.len()));
        let d = decode(&j).unwrap();
        assert_eq!((d.width, d.height), (16, 8));
    }

    #[test]
    fn thumbnail_end_marker_inside_app1_is_skipped() {
        let j = sample_jpeg();
        // Insert an APP1 segment holding a fake thumbnail ending in FF D9.
        let mut payload = vec![0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9];
        payload.extend_from_slice(b"pad");
        let len = (payload.len() + 2) as u16;
        let mut k = vec![0xFF, 0xD8, 0xFF, 0xE1];
        k.extend_from_slice(&len.to_be_bytes());
        k.extend_from_slice(&payload);
        k.extend_from_slice(&j[2..]);
        assert_eq!(JpegFramer::new().advance(&k).unwrap(), Some(k.len()));
    }

    #[test]
    fn truncated_jpeg_needs_more() {
        let j = sample_jpeg();
        assert_eq!(JpegFramer::new().advance(&j[..j.len() - 1]).unwrap(), None);
        assert!(decode(&j[..j.len() / 2]).is_err());
    }

    /// A 320x240 grey picture with detail everywhere (grey: the image
    /// crate's RGB-to-luma weights differ from JPEG's for colours).
    fn busy_jpeg() -> Vec<u8> {
        encode(&image::RgbImage::from_fn(320, 240, |x, y| {
            let v = ((x * 7) ^ (y * 3)) as u8;
            image::Rgb([v, v, v])
        }))
    }

    /// The luma plane is the picture's: the same as the image crate's full
    /// decode turned grey (within rounding), mean included.
    #[test]
    fn luma_matches_a_full_decode() {
        let j = busy_jpeg();
        let luma = decode_luma(&j).unwrap();
        let full = image::load_from_memory(&j).unwrap().to_luma8();
        assert_eq!((luma.width, luma.height), full.dimensions());
        let worst = luma
            .pixels
            .iter()
            .zip(full.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 3, "luma differs by up to {worst}");
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(JpegFramer::new().advance(b"<html>hello</html>").is_err());
        assert!(JpegFramer::new()
            .advance(&[0xFF, 0xD8, 0x00, 0x00])
            .is_err());
        assert_eq!(find_soi(b"xx\xff\xd8\xff\xe0"), Some(2));
        assert!(decode(b"\xff\xd8\xff\xd9").is_err());
    }
}

/// Property tests: arbitrary bytes never panic the framer or the reader, and
/// how a stream is split into reads never changes where a frame ends.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn real_jpeg(w: u32, h: u32) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 7]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn framer_never_panics_on_garbage(tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut buf = vec![0xFF, 0xD8];
            buf.extend_from_slice(&tail);
            let mut f = JpegFramer::new();
            if let Ok(Some(end)) = f.advance(&buf) {
                prop_assert!(end <= buf.len());
            }
        }

        #[test]
        fn split_points_do_not_matter(cuts in proptest::collection::vec(1usize..400, 1..20)) {
            let j = real_jpeg(24, 16);
            let mut f = JpegFramer::new();
            let mut n: usize = 0;
            let mut found = None;
            for c in cuts.iter().chain(std::iter::once(&usize::MAX)) {
                n = n.saturating_add(*c).min(j.len());
                if let Some(end) = f.advance(&j[..n]).unwrap() {
                    found = Some(end);
                    break;
                }
            }
            prop_assert_eq!(found, Some(j.len()));
        }

        #[test]
        fn reader_is_bounded_on_garbage(body in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            let cap = 4096;
            match crate::probe::http::read_one_jpeg(&mut &body[..], cap) {
                Ok(frame) => prop_assert!(frame.len() <= cap && frame.starts_with(&[0xFF, 0xD8])),
                Err(f) => prop_assert!(!f.message.is_empty()),
            }
        }

        #[test]
        fn decode_never_panics(mut j in Just(real_jpeg(16, 16)), flips in proptest::collection::vec((0usize..600, any::<u8>()), 0..8)) {
            for (at, v) in flips {
                let i = at % j.len();
                j[i] = v;
            }
            let _ = decode(&j);
        }
    }
}
