//! Picture verdicts: a camera can deliver frames and still be useless. The
//! monitor asks for the proving frame now and then (`picture.every`), and
//! [`PictureWatch`] judges it:
//!
//! * **frozen**: the picture has not changed over `frozen_after` checks
//!   ([`Signature::same_picture`]: sampled luma, tolerant of re-encoding, not
//!   of a live sensor's noise);
//! * **black** / **blank**: dark and flat, or one flat colour (lens
//!   covered, night without IR, a dead sensor, a "no signal" screen); a flat
//!   picture is not also judged frozen;
//! * **camera clock**: the wall clock in the camera's RTCP sender reports
//!   (`MediaFacts::camera_clock_offset_ms`) differs from the box's
//!   synchronised clock by more than `clock_tolerance`.
//!
//! JPEG decodes with the image crate and H.264 key frames with the bundled
//! decoder (`crate::preview::h264`); H.265 stays `unknown`. One decode runs at
//! a time on the box ([`decode`]), so memory stays bounded by one picture.
//! Each finding counts as down, warns or is off per stream
//! ([`crate::config::picture`]).

mod last_good;
mod signature;
mod watch;

pub use last_good::{Kept, LastGood, LAST_GOOD_CAP};
pub use signature::Signature;
pub use watch::{
    clock_detail, clock_offset_words, ClockVerdict, PictureState, PictureVerdict, PictureWatch,
};

use std::sync::Mutex;

use crate::probe::Frame;

/// One decode at a time, box-wide (a 1080p key frame holds tens of MB
/// while it decodes).
static DECODING: Mutex<()> = Mutex::new(());

/// Decodes `frame` to its signature, blocking; call it off the async
/// runtime (`spawn_blocking`). See [`Signature::of_frame`].
pub fn decode(frame: &Frame, dims: Option<(u32, u32)>) -> Result<Option<Signature>, String> {
    let _one = DECODING.lock().unwrap_or_else(|e| e.into_inner());
    Signature::of_frame(frame, dims, &mut crate::preview::h264::OpenH264)
}

/// A small JPEG of `frame` (the preview's rendering), blocking, under the
/// same one-decode-at-a-time lock as [`decode`].
pub fn render_jpeg(frame: &Frame, dims: Option<(u32, u32)>) -> Result<Vec<u8>, String> {
    let _one = DECODING.lock().unwrap_or_else(|e| e.into_inner());
    crate::preview::render(frame, dims, &mut crate::preview::h264::OpenH264).map(|p| p.jpeg)
}
