//! Turning the frame a probe proved a stream with into a small JPEG for the
//! web page's "Check now" preview.
//!
//! Browsers cannot be asked to decode the camera's video: WebCodecs exists
//! only in secure contexts, and the appliance is opened over plain http at a
//! LAN address. So the box makes a plain JPEG itself:
//!
//! * JPEG (MJPEG over HTTP, snapshots, MJPEG over RTSP): the camera's own
//!   JPEG when it is already small, else decoded, scaled down, re-encoded.
//! * H.264: the key frame is decoded on the box by an [`H264Decoder`]
//!   ([`h264::OpenH264`], Cisco's decoder, bundled C++), converted from YUV
//!   to RGB while scaling down (a box filter, so the full-size RGB picture is
//!   never allocated), and JPEG-encoded with the image crate.
//! * H.265: no decoder small enough was found; the page says so honestly.
//!
//! Memory is bounded by refusing pictures over [`MAX_DECODE_PIXELS`]
//! (anything bigger than 1080p is a camera's main stream, and its sub-stream
//! is the right thing to monitor) and by the caller running one preview at a
//! time ([`crate::web::check`]). Measured here (x86_64, debug build): a 1080p
//! key frame decoded, scaled to 640x360 and encoded raised the peak RSS by
//! 29 MB and took 186 ms; the RSS fell back afterwards (the decoder is made
//! and dropped per frame). A 320x240 frame takes a few ms.

pub mod h264;

use std::io::Cursor;
use std::time::Instant;

use image::{ImageDecoder, RgbImage};

use crate::probe::Frame;

/// Longest side of a preview picture.
pub const MAX_PREVIEW_SIDE: u32 = 640;
/// Largest picture decoded (1920×1088, i.e. 1080p rounded to macroblocks).
pub const MAX_DECODE_PIXELS: u64 = 1920 * 1088;
/// A camera JPEG up to this size and [`MAX_PREVIEW_SIDE`] is shown as is.
const PASS_THROUGH_BYTES: usize = 256 * 1024;
/// JPEG quality of previews we encode.
const JPEG_QUALITY: u8 = 80;

/// A preview ready to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    /// A baseline JPEG.
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Size of the camera's picture.
    pub source_width: u32,
    pub source_height: u32,
    /// Time spent decoding, scaling and encoding.
    pub render_ms: u32,
    /// True when `jpeg` is the camera's own JPEG, unchanged.
    pub passthrough: bool,
}

/// A picture in planar YUV 4:2:0 as a decoder hands it out (borrowed).
#[derive(Clone, Copy, Debug)]
pub struct Yuv420<'a> {
    pub width: usize,
    pub height: usize,
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub uv_stride: usize,
}

/// Decodes one H.264 key frame. Behind a trait so another decoder (e.g. a
/// pure-Rust one) can replace Cisco's without touching the callers.
pub trait H264Decoder {
    /// Decodes `annexb` (SPS, PPS and the IDR slices, Annex B start codes)
    /// and calls `sink` with the picture.
    ///
    /// # Errors
    /// A message for the page when no picture came out.
    fn decode_keyframe(
        &mut self,
        annexb: &[u8],
        sink: &mut dyn FnMut(&Yuv420<'_>),
    ) -> Result<(), String>;
}

/// The preview size for a `w`×`h` picture: longest side at most
/// [`MAX_PREVIEW_SIDE`], aspect kept, never enlarged, never zero.
pub fn fit(w: u32, h: u32) -> (u32, u32) {
    let longest = w.max(h).max(1);
    if longest <= MAX_PREVIEW_SIDE {
        return (w.max(1), h.max(1));
    }
    let scale = |x: u32| {
        ((u64::from(x) * u64::from(MAX_PREVIEW_SIDE) + u64::from(longest) / 2) / u64::from(longest))
            .max(1) as u32
    };
    (scale(w), scale(h))
}

/// Converts YUV 4:2:0 (BT.601, limited range, as cameras send) to RGB while
/// shrinking to `out_w`×`out_h` by averaging each output pixel's source box.
pub fn yuv_to_rgb_scaled(p: &Yuv420<'_>, out_w: u32, out_h: u32) -> RgbImage {
    let (ow, oh) = (out_w.max(1) as usize, out_h.max(1) as usize);
    let mut img = RgbImage::new(ow as u32, oh as u32);
    for oy in 0..oh {
        let y0 = oy * p.height / oh;
        let y1 = ((oy + 1) * p.height / oh).max(y0 + 1).min(p.height);
        for ox in 0..ow {
            let x0 = ox * p.width / ow;
            let x1 = ((ox + 1) * p.width / ow).max(x0 + 1).min(p.width);
            let (mut ys, mut us, mut vs, mut n) = (0u32, 0u32, 0u32, 0u32);
            for sy in y0..y1 {
                let yrow = &p.y[sy * p.y_stride + x0..sy * p.y_stride + x1];
                let crow = (sy / 2) * p.uv_stride;
                for (i, &yv) in yrow.iter().enumerate() {
                    let cx = crow + (x0 + i) / 2;
                    ys += u32::from(yv);
                    us += u32::from(p.u[cx]);
                    vs += u32::from(p.v[cx]);
                    n += 1;
                }
            }
            let (y, u, v) = (
                ys as f32 / n as f32,
                us as f32 / n as f32 - 128.0,
                vs as f32 / n as f32 - 128.0,
            );
            let c = 1.164 * (y - 16.0);
            let px = |x: f32| x.round().clamp(0.0, 255.0) as u8;
            img.put_pixel(
                ox as u32,
                oy as u32,
                image::Rgb([
                    px(c + 1.596 * v),
                    px(c - 0.392 * u - 0.813 * v),
                    px(c + 2.017 * u),
                ]),
            );
        }
    }
    img
}

/// Encodes `img` as a JPEG.
pub fn encode_jpeg(img: &RgbImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(img)
        .map_err(|e| format!("cannot encode the preview: {e}"))?;
    Ok(out)
}

fn too_big(w: u64, h: u64) -> String {
    format!(
        "no preview: {w}x{h} is larger than the box decodes ({}x{} at most); \
         the camera's sub-stream is usually the better one to monitor",
        1920, 1088
    )
}

/// Makes the preview of `frame`, using `decoder` for H.264. `dims` is the
/// picture size the probe learnt (from the SPS), checked against
/// [`MAX_DECODE_PIXELS`] before the decoder allocates anything.
///
/// # Errors
/// A message for the page: H.265, too large, or not decodable.
pub fn render(
    frame: &Frame,
    dims: Option<(u32, u32)>,
    decoder: &mut dyn H264Decoder,
) -> Result<Picture, String> {
    let t = Instant::now();
    let ms = |t: Instant| u32::try_from(t.elapsed().as_millis()).unwrap_or(u32::MAX);
    match frame.codec.as_str() {
        "jpeg" => {
            let dec = image::codecs::jpeg::JpegDecoder::new(Cursor::new(&frame.data))
                .map_err(|e| format!("the camera's JPEG does not decode: {e}"))?;
            let (w, h) = dec.dimensions();
            if u64::from(w) * u64::from(h) > 4 * MAX_DECODE_PIXELS {
                return Err(too_big(w.into(), h.into()));
            }
            if w.max(h) <= MAX_PREVIEW_SIDE && frame.data.len() <= PASS_THROUGH_BYTES {
                return Ok(Picture {
                    jpeg: frame.data.clone(),
                    width: w,
                    height: h,
                    source_width: w,
                    source_height: h,
                    render_ms: ms(t),
                    passthrough: true,
                });
            }
            let img = image::DynamicImage::from_decoder(dec)
                .map_err(|e| format!("the camera's JPEG does not decode: {e}"))?;
            let (ow, oh) = fit(w, h);
            let small = img
                .resize_exact(ow, oh, image::imageops::FilterType::Triangle)
                .to_rgb8();
            drop(img);
            Ok(Picture {
                jpeg: encode_jpeg(&small)?,
                width: ow,
                height: oh,
                source_width: w,
                source_height: h,
                render_ms: ms(t),
                passthrough: false,
            })
        }
        "h264" => {
            if let Some((w, h)) = dims {
                if u64::from(w) * u64::from(h) > MAX_DECODE_PIXELS {
                    return Err(too_big(w.into(), h.into()));
                }
            }
            let mut out: Option<Result<(RgbImage, u32, u32), String>> = None;
            decoder.decode_keyframe(&frame.data, &mut |p| {
                if out.is_some() {
                    return;
                }
                let (w, h) = (p.width as u64, p.height as u64);
                out = Some(if w * h > MAX_DECODE_PIXELS {
                    Err(too_big(w, h))
                } else {
                    let (ow, oh) = fit(w as u32, h as u32);
                    Ok((yuv_to_rgb_scaled(p, ow, oh), w as u32, h as u32))
                });
            })?;
            let (img, sw, sh) = out.ok_or("the key frame decoded to no picture")??;
            Ok(Picture {
                jpeg: encode_jpeg(&img)?,
                width: img.width(),
                height: img.height(),
                source_width: sw,
                source_height: sh,
                render_ms: ms(t),
                passthrough: false,
            })
        }
        "h265" => Err(
            "no preview for H.265: the box has no H.265 decoder that fits it \
                       (the stream itself is checked all the same)"
                .into(),
        ),
        other => Err(format!("no preview for codec {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_and_never_enlarges() {
        assert_eq!(fit(1920, 1080), (640, 360));
        assert_eq!(fit(1080, 1920), (360, 640));
        assert_eq!(fit(320, 240), (320, 240));
        assert_eq!(fit(641, 1), (640, 1));
        assert_eq!(fit(0, 0), (1, 1));
    }

    #[test]
    fn yuv_conversion_of_flat_colours() {
        // 4x2 picture: left half white (Y 235), right half black (Y 16), no chroma.
        let y = [235, 235, 16, 16, 235, 235, 16, 16];
        let uv = [128u8, 128];
        let p = Yuv420 {
            width: 4,
            height: 2,
            y: &y,
            u: &uv,
            v: &uv,
            y_stride: 4,
            uv_stride: 2,
        };
        let img = yuv_to_rgb_scaled(&p, 2, 1);
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
        // Pure red in BT.601: Y 81, U 90, V 240.
        let (y, u, v) = ([81u8; 4], [90u8], [240u8]);
        let p = Yuv420 {
            width: 2,
            height: 2,
            y: &y,
            u: &u,
            v: &v,
            y_stride: 2,
            uv_stride: 1,
        };
        let px = yuv_to_rgb_scaled(&p, 1, 1).get_pixel(0, 0).0;
        assert!(px[0] > 240 && px[1] < 15 && px[2] < 15, "{px:?}");
    }

    struct NoDecoder;
    impl H264Decoder for NoDecoder {
        fn decode_keyframe(
            &mut self,
            _: &[u8],
            _: &mut dyn FnMut(&Yuv420<'_>),
        ) -> Result<(), String> {
            Err("no decoder in this test".into())
        }
    }

    #[test]
    fn jpeg_small_passes_through_large_is_scaled() {
        let img = RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let small = encode_jpeg(&img).unwrap();
        let f = Frame {
            codec: "jpeg".into(),
            data: small.clone(),
        };
        let p = render(&f, None, &mut NoDecoder).unwrap();
        assert!(p.passthrough);
        assert_eq!(p.jpeg, small);
        let big = RgbImage::from_fn(1280, 720, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let f = Frame {
            codec: "jpeg".into(),
            data: encode_jpeg(&big).unwrap(),
        };
        let p = render(&f, None, &mut NoDecoder).unwrap();
        assert!(!p.passthrough);
        assert_eq!((p.width, p.height, p.source_width), (640, 360, 1280));
        let back = image::load_from_memory(&p.jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (640, 360));
    }

    #[test]
    fn h265_and_garbage_say_why() {
        let f = Frame {
            codec: "h265".into(),
            data: vec![0, 0, 1, 0x40],
        };
        assert!(render(&f, None, &mut NoDecoder)
            .unwrap_err()
            .contains("H.265"));
        let f = Frame {
            codec: "jpeg".into(),
            data: b"nope".to_vec(),
        };
        assert!(render(&f, None, &mut NoDecoder).is_err());
    }
}
