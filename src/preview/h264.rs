//! [`OpenH264`]: Cisco's OpenH264 decoder (the `openh264` crate builds its
//! bundled C++ source, so no system library or download is involved).
//!
//! A new decoder is made for every key frame and dropped right after, so
//! its buffers (tens of MB for 1080p) are held only while one preview is
//! being made, never between previews.

use openh264::decoder::{DecodedYUV, Decoder};
use openh264::formats::YUVSource;

use super::{H264Decoder, Yuv420};

/// Decodes H.264 key frames with OpenH264.
#[derive(Debug, Default)]
pub struct OpenH264;

fn view<'a>(p: &'a DecodedYUV<'a>) -> Yuv420<'a> {
    let (width, height) = p.dimensions();
    let (ys, us, _) = p.strides();
    Yuv420 {
        width,
        height,
        y: p.y(),
        u: p.u(),
        v: p.v(),
        y_stride: ys,
        uv_stride: us,
    }
}

impl H264Decoder for OpenH264 {
    fn decode_keyframe(
        &mut self,
        annexb: &[u8],
        sink: &mut dyn FnMut(&Yuv420<'_>),
    ) -> Result<(), String> {
        let mut dec = Decoder::new().map_err(|e| format!("cannot start the H.264 decoder: {e}"))?;
        let mut got = false;
        let mut last_err = None;
        for nal in openh264::nal_units(annexb) {
            match dec.decode(nal) {
                Ok(Some(p)) => {
                    sink(&view(&p));
                    got = true;
                    break;
                }
                Ok(None) => {}
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        if !got {
            let rest = dec
                .flush_remaining()
                .map_err(|e| format!("the H.264 key frame does not decode: {e}"))?;
            if let Some(p) = rest.first() {
                sink(&view(p));
                got = true;
            }
        }
        if got {
            Ok(())
        } else {
            Err(match last_err {
                Some(e) => format!("the H.264 key frame does not decode: {e}"),
                None => "the H.264 key frame gave no picture".into(),
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openh264::encoder::Encoder;
    use openh264::formats::{RgbSliceU8, YUVBuffer};

    /// An H.264 key frame (Annex B with SPS/PPS) of `w`×`h` colour bars,
    /// made by OpenH264's encoder.
    pub(crate) fn keyframe(w: usize, h: usize) -> Vec<u8> {
        let bars: [[u8; 3]; 4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
        let mut rgb = Vec::with_capacity(w * h * 3);
        for _y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&bars[x * 4 / w]);
            }
        }
        let yuv = YUVBuffer::from_rgb_source(RgbSliceU8::new(&rgb, (w, h)));
        let mut enc = Encoder::new().unwrap();
        enc.encode(&yuv).unwrap().to_vec()
    }

    #[test]
    fn decodes_a_keyframe_to_the_right_colours() {
        let data = keyframe(320, 240);
        let frame = crate::probe::Frame {
            codec: "h264".into(),
            data,
        };
        let p = super::super::render(&frame, Some((320, 240)), &mut OpenH264).unwrap();
        assert_eq!((p.width, p.height), (320, 240));
        let img = image::load_from_memory(&p.jpeg).unwrap().to_rgb8();
        let at = |x: u32| img.get_pixel(x, 120).0;
        let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) < 40);
        assert!(close(at(40), [255, 0, 0]), "red bar: {:?}", at(40));
        assert!(close(at(120), [0, 255, 0]), "green bar: {:?}", at(120));
        assert!(close(at(200), [0, 0, 255]), "blue bar: {:?}", at(200));
        assert!(close(at(280), [255, 255, 255]), "white bar: {:?}", at(280));
    }

    #[test]
    fn refuses_oversized_and_garbage() {
        let frame = crate::probe::Frame {
            codec: "h264".into(),
            data: vec![0, 0, 0, 1, 0x65, 1, 2, 3],
        };
        assert!(
            super::super::render(&frame, Some((3840, 2160)), &mut OpenH264)
                .unwrap_err()
                .contains("larger than")
        );
        assert!(super::super::render(&frame, None, &mut OpenH264).is_err());
    }
}
