//! A picture's small luma signature: a grid of sampled brightness values and
//! the picture's mean and contrast. Two signatures of the same picture match
//! even after a lossy re-encode; two pictures of a live camera do not, even
//! of a still scene, because sensor noise moves many samples by more than a
//! levels (the samples are single pixels, not block averages, so the noise
//! is not averaged away). A camera on a perfectly still, noise-free scene
//! (heavy noise reduction, high compression) can look frozen: that is why
//! `picture.frozen_after` spans minutes by default and can be set to `warn`.

use crate::preview::{H264Decoder, Yuv420, MAX_DECODE_PIXELS};
use crate::probe::Frame;

/// Samples across and down.
const GRID_W: usize = 48;
const GRID_H: usize = 27;
/// A sample moved by more than this many levels is a change...
const SAMPLE_TOLERANCE: u8 = 2;
/// ...and a picture with more than this share of changed samples is another picture.
const CHANGED_SHARE: f32 = 0.02;

/// See the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    pub width: u32,
    pub height: u32,
    /// Mean luma, 0–255 (as decoded: cameras send 16–235).
    pub mean: f32,
    /// Standard deviation of the samples: 0 for one flat colour.
    pub contrast: f32,
    samples: Vec<u8>,
}

impl Signature {
    /// From a luma plane (`stride` bytes per row).
    pub fn of_luma(width: usize, height: usize, stride: usize, y: &[u8]) -> Signature {
        let (gw, gh) = (GRID_W.min(width / 2).max(1), GRID_H.min(height / 2).max(1));
        let mut samples = Vec::with_capacity(gw * gh);
        for gy in 0..gh {
            let sy = ((2 * gy + 1) * height / (2 * gh)).min(height.saturating_sub(2));
            for gx in 0..gw {
                let sx = ((2 * gx + 1) * width / (2 * gw)).min(width.saturating_sub(2));
                let at =
                    |x: usize, y_: usize| u32::from(y.get(y_ * stride + x).copied().unwrap_or(0));
                let (x1, y1) = ((sx + 1).min(width - 1), (sy + 1).min(height - 1));
                let sum = at(sx, sy) + at(x1, sy) + at(sx, y1) + at(x1, y1);
                samples.push(((sum + 2) / 4) as u8);
            }
        }
        let n = samples.len().max(1) as f32;
        let mean = samples.iter().map(|&v| f32::from(v)).sum::<f32>() / n;
        let var = samples
            .iter()
            .map(|&v| (f32::from(v) - mean).powi(2))
            .sum::<f32>()
            / n;
        Signature {
            width: width as u32,
            height: height as u32,
            mean,
            contrast: var.sqrt(),
            samples,
        }
    }

    /// Is `other` the same picture (see the module docs)?
    pub fn same_picture(&self, other: &Signature) -> bool {
        if (self.width, self.height) != (other.width, other.height)
            || self.samples.len() != other.samples.len()
        {
            return false;
        }
        let changed = self
            .samples
            .iter()
            .zip(&other.samples)
            .filter(|(a, b)| a.abs_diff(**b) > SAMPLE_TOLERANCE)
            .count();
        (changed as f32) <= CHANGED_SHARE * self.samples.len() as f32
    }

    /// Decodes `frame` (a JPEG, or an H.264 key frame with `decoder`) to its
    /// signature. `Ok(None)`: a codec the box cannot decode (H.265). `dims`
    /// is the size the probe learnt, checked before anything is allocated.
    ///
    /// # Errors
    /// The picture is too large for the box or does not decode.
    pub fn of_frame(
        frame: &Frame,
        dims: Option<(u32, u32)>,
        decoder: &mut dyn H264Decoder,
    ) -> Result<Option<Signature>, String> {
        let too_big = |w: u64, h: u64| format!("{w}x{h} is larger than the box decodes");
        match frame.codec.as_str() {
            "jpeg" => {
                let luma = crate::probe::jpeg::decode_luma(&frame.data)?;
                Ok(Some(Signature::of_luma(
                    luma.width as usize,
                    luma.height as usize,
                    luma.width as usize,
                    &luma.pixels,
                )))
            }
            "h264" => {
                if let Some((w, h)) = dims {
                    if u64::from(w) * u64::from(h) > MAX_DECODE_PIXELS {
                        return Err(too_big(w.into(), h.into()));
                    }
                }
                let mut out = None;
                decoder.decode_keyframe(&frame.data, &mut |p: &Yuv420<'_>| {
                    if out.is_none() && (p.width * p.height) as u64 <= MAX_DECODE_PIXELS {
                        out = Some(Signature::of_luma(p.width, p.height, p.y_stride, p.y));
                    }
                })?;
                out.map(Some)
                    .ok_or_else(|| "the key frame decoded to no picture".into())
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`×`h` luma plane from `f(x, y)`.
    fn plane(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect()
    }

    /// A small deterministic noise source (xorshift), as a sensor adds.
    fn noise(seed: u32) -> impl FnMut() -> i16 {
        let mut s = seed.max(1);
        move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 9) as i16 - 4
        }
    }

    #[test]
    fn a_reencoded_picture_matches_and_a_live_one_does_not() {
        let scene = |x: usize, y: usize| ((x * 3 + y * 2) % 200) as u8 + 20;
        let a = Signature::of_luma(320, 240, 320, &plane(320, 240, scene));
        // The same picture with +1 of coding error on every other pixel.
        let b = Signature::of_luma(
            320,
            240,
            320,
            &plane(320, 240, |x, y| {
                scene(x, y).saturating_add(((x + y) % 2) as u8)
            }),
        );
        assert!(a.same_picture(&b));
        // The same still scene from a live sensor: noise of ±4 levels.
        let mut n = noise(7);
        let live: Vec<u8> = plane(320, 240, scene)
            .into_iter()
            .map(|v| (i16::from(v) + n()).clamp(0, 255) as u8)
            .collect();
        let c = Signature::of_luma(320, 240, 320, &live);
        assert!(!a.same_picture(&c), "sensor noise is a live picture");
        // Another size is another picture.
        let d = Signature::of_luma(640, 480, 640, &plane(640, 480, scene));
        assert!(!a.same_picture(&d));
    }

    #[test]
    fn mean_and_contrast_tell_black_from_a_scene() {
        let black = Signature::of_luma(64, 48, 64, &plane(64, 48, |_, _| 16));
        assert_eq!((black.mean, black.contrast), (16.0, 0.0));
        let scene = Signature::of_luma(64, 48, 64, &plane(64, 48, |x, _| (x * 4) as u8));
        assert!(scene.contrast > 50.0, "{}", scene.contrast);
    }

    #[test]
    fn decodes_jpeg_and_h264_and_says_nothing_for_h265() {
        let h264 = Frame {
            codec: "h264".into(),
            data: crate::preview::h264::tests::keyframe(320, 240),
        };
        let mut dec = crate::preview::h264::OpenH264;
        let s = Signature::of_frame(&h264, Some((320, 240)), &mut dec)
            .unwrap()
            .unwrap();
        assert_eq!((s.width, s.height), (320, 240));
        assert!(
            s.contrast > 20.0,
            "colour bars have contrast: {}",
            s.contrast
        );
        let mut jpeg = Vec::new();
        let img = image::GrayImage::from_fn(320, 240, |x, _| image::Luma([(x * 255 / 320) as u8]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        let jpeg = Frame {
            codec: "jpeg".into(),
            data: jpeg,
        };
        let j = Signature::of_frame(&jpeg, None, &mut dec).unwrap().unwrap();
        assert_eq!((j.width, j.height), (320, 240));
        assert!(
            (j.mean - 127.0).abs() < 3.0,
            "a left-to-right ramp: {}",
            j.mean
        );
        let h265 = Frame {
            codec: "h265".into(),
            data: vec![0, 0, 0, 1],
        };
        assert_eq!(Signature::of_frame(&h265, None, &mut dec), Ok(None));
        assert!(Signature::of_frame(&h264, Some((3840, 2160)), &mut dec)
            .unwrap_err()
            .contains("larger"));
    }
}
