//! A `v4l2:///dev/videoN` camera (a USB UVC webcam) as a source of
//! pictures: the device is opened and read on a dedicated thread, and its
//! frames come out as H.264 Annex B or JPEG over a small bounded channel
//! ([`Capturing`]). Used by the probe (`local.rs`) and the live view
//! (`live::local`); the V4L2 calls themselves are in `v4l2_device.rs`.
//!
//! The format is chosen by what the device offers ([`choose`]), never
//! re-encoding what the camera already compresses: H.264 is passed through
//! (the same Annex B path as `libcamera:`), MJPEG/JPEG is passed through
//! (a browser and our decoder both read UVC's Huffman-table-less MJPEG),
//! and only a YUYV-only camera is JPEG-encoded here ([`yuyv_to_jpeg`]), at
//! the largest size within `capture.width`×`capture.height` and at most
//! `capture.framerate` frames a second (JPEGs above it are dropped).
//!
//! Why a std thread per open device and not the tokio blocking pool: the
//! thread lives as long as the capture (minutes while someone watches) and
//! spends its time in `poll`; it must not hold one of the pool's threads.
//! Dropping the [`Capturing`] handle stops it within [`POLL_WAIT`] and the
//! device is closed as the thread ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::capture::Capture;
use super::v4l2_device::{self, DeviceError, Offer, Op, Sizes};
use super::{Failure, Reason};

/// The capture thread looks at its stop flag at least this often.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// Frames waiting for the async side; more are dropped (JPEG) or wait
/// (H.264, whose frames depend on each other).
const QUEUE: usize = 2;
/// Quality of the JPEGs made from YUYV: a monitor's picture checks and a
/// live tile, not an archive.
const JPEG_QUALITY: u8 = 75;

/// How the chosen format becomes pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// The camera's H.264, passed through as Annex B.
    H264,
    /// The camera's MJPEG or JPEG, passed through.
    Jpeg,
    /// Raw YUYV 4:2:2, JPEG-encoded on the box.
    Yuyv,
}

impl Encoding {
    fn of(fourcc: [u8; 4]) -> Option<Encoding> {
        match &fourcc {
            b"H264" => Some(Encoding::H264),
            b"MJPG" | b"JPEG" => Some(Encoding::Jpeg),
            b"YUYV" => Some(Encoding::Yuyv),
            _ => None,
        }
    }

    /// The codec the pictures are in (the media facts' `codec`).
    pub fn codec(self) -> &'static str {
        match self {
            Encoding::H264 => "h264",
            Encoding::Jpeg | Encoding::Yuyv => "jpeg",
        }
    }
}

/// The format and size to ask of the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub fourcc: [u8; 4],
    pub encoding: Encoding,
    pub width: u32,
    pub height: u32,
}

/// Picks the format (H.264, else MJPEG/JPEG, else YUYV) and its largest
/// size within `max` (the smallest offered when none fits).
///
/// # Errors
/// None of the three is offered: the message lists what is.
pub fn choose(offers: &[Offer], max: (u32, u32)) -> Result<Choice, String> {
    let rank = |e: Encoding| match e {
        Encoding::H264 => 0,
        Encoding::Jpeg => 1,
        Encoding::Yuyv => 2,
    };
    let best = offers
        .iter()
        .filter_map(|o| Encoding::of(o.fourcc).map(|e| (e, o)))
        .min_by_key(|(e, _)| rank(*e));
    let Some((encoding, offer)) = best else {
        return Err(format!(
            "offers no format StreamPulse reads (H.264, MJPEG or YUYV); it offers: {}",
            offered(offers)
        ));
    };
    let (width, height) = size_within(&offer.sizes, max);
    Ok(Choice {
        fourcc: offer.fourcc,
        encoding,
        width,
        height,
    })
}

/// The formats offered, for messages: "YUYV (YUYV 4:2:2), RGB3 (…)".
pub fn offered(offers: &[Offer]) -> String {
    if offers.is_empty() {
        return "nothing".into();
    }
    offers
        .iter()
        .map(|o| format!("{} ({})", v4l2_device::fourcc_str(o.fourcc), o.description))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The largest size (by area) within `max`; the smallest when none fits;
/// `max` itself when the driver lists none (it adjusts on S_FMT).
fn size_within(sizes: &Sizes, max: (u32, u32)) -> (u32, u32) {
    match sizes {
        Sizes::Discrete(list) => {
            let area = |s: &&(u32, u32)| u64::from(s.0) * u64::from(s.1);
            list.iter()
                .filter(|s| s.0 <= max.0 && s.1 <= max.1)
                .max_by_key(area)
                .or_else(|| list.iter().min_by_key(area))
                .copied()
                .unwrap_or(max)
        }
        Sizes::Range {
            min,
            max: top,
            step,
        } => {
            let fit = |lo: u32, hi: u32, step: u32, cap: u32| {
                if cap <= lo {
                    lo
                } else {
                    let v = hi.min(cap);
                    v - (v - lo) % step
                }
            };
            (
                fit(min.0, top.0, step.0, max.0),
                fit(min.1, top.1, step.1, max.1),
            )
        }
    }
}

/// Encodes one YUYV 4:2:2 frame (`stride` bytes a row) as a JPEG.
///
/// # Errors
/// The frame is shorter than `stride`×`height` (the driver's `bytesused`
/// says it is incomplete), or the encoder failed.
pub fn yuyv_to_jpeg(data: &[u8], width: u32, height: u32, stride: u32) -> Result<Vec<u8>, String> {
    let (w, h) = (width as usize, height as usize);
    let stride = (stride as usize).max(w * 2);
    let need = stride * (h.saturating_sub(1)) + w * 2;
    if w == 0 || h == 0 || data.len() < need {
        return Err(format!(
            "an incomplete YUYV frame: {} bytes of the {} a {width}x{height} frame has",
            data.len(),
            stride * h
        ));
    }
    let mut rgb = vec![0u8; w * h * 3];
    for (y, out) in rgb.chunks_exact_mut(w * 3).enumerate() {
        let row = &data[y * stride..y * stride + w * 2];
        for (x, px) in out.chunks_exact_mut(3).enumerate() {
            let pair = &row[(x / 2) * 4..(x / 2) * 4 + 4];
            let luma = if x % 2 == 0 { pair[0] } else { pair[2] };
            px.copy_from_slice(&ycbcr_to_rgb(luma, pair[1], pair[3]));
        }
    }
    let mut out = Vec::with_capacity(w * h / 4);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode(&rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("cannot encode the frame as JPEG: {e}"))?;
    Ok(out)
}

/// BT.601 limited range (what UVC cameras send), in integer arithmetic.
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(cb) - 128;
    let e = i32::from(cr) - 128;
    let clamp = |v: i32| ((v + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// A failed V4L2 call as the probe's failure: each cause a user can act on
/// gets its own words.
pub fn describe(path: &str, e: &DeviceError) -> Failure {
    let msg = match (e.op, e.err.raw_os_error()) {
        (Op::Open, Some(libc::ENOENT)) => format!(
            "no such device {path} (is the camera plugged in? the service sees only the \
             devices its unit lets it see)"
        ),
        (_, Some(libc::EBUSY)) => format!(
            "{path} is busy while {}: another program has it open",
            e.op.as_str()
        ),
        (_, Some(libc::EACCES | libc::EPERM)) => format!(
            "permission denied opening {path}: the service's device policy must allow \
             video devices (DeviceAllow=char-video4linux) and its user must be in the \
             video group"
        ),
        (_, Some(libc::ENODEV | libc::ENXIO)) => format!(
            "{path} was disconnected while {} (unplugged?)",
            e.op.as_str()
        ),
        (Op::Open, Some(libc::ENOTTY)) => format!("{path} is not a V4L2 device"),
        (Op::Open, Some(libc::EINVAL)) => {
            format!("{path} is not a video capture device (no streaming video input)")
        }
        _ => format!("{path}: {}: {}", e.op.as_str(), e.err),
    };
    Failure::new(Reason::Capture, msg)
}

/// What the capture thread found once streaming.
#[derive(Clone, Debug)]
pub struct Started {
    /// The device's name (e.g. "vivid", "HD Pro Webcam C920").
    pub card: String,
    /// The chosen fourcc, e.g. "YUYV".
    pub fourcc: String,
    pub encoding: Encoding,
    /// The size the driver settled on.
    pub width: u32,
    pub height: u32,
    /// The frame rate delivered: the driver's, capped by `capture.framerate`
    /// for JPEGs.
    pub fps: f32,
    /// Every format offered, for the log.
    pub offered: String,
}

/// What comes out of the capture thread, in order: `Started` once, then
/// pictures (and notes of damaged frames).
#[derive(Debug)]
pub enum Event {
    Started(Started),
    /// One frame's H.264 Annex B bytes (split with `annexb::Splitter`).
    H264(Vec<u8>),
    /// One complete JPEG (still to be decoded by whoever needs proof).
    Jpeg(Vec<u8>),
    /// A frame was skipped, and why.
    Damaged(String),
}

/// A device being read on its own thread; see the module docs. Dropping
/// it stops the thread, which closes the device.
pub struct Capturing {
    rx: mpsc::Receiver<Result<Event, Failure>>,
    stop: Arc<AtomicBool>,
    path: String,
}

impl Capturing {
    /// Starts the capture thread for `path` with `cap`'s limits.
    ///
    /// # Errors
    /// `capture`: the thread could not be started.
    pub fn start(path: &str, cap: &Capture) -> Result<Capturing, Failure> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, c, s) = (path.to_owned(), cap.clone(), stop.clone());
        let name = format!("v4l2-{}", path.trim_start_matches("/dev/"));
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                if let Err(f) = run(&p, &c, &s, &tx) {
                    let _ = tx.blocking_send(Err(f));
                }
            })
            .map_err(|e| {
                Failure::new(
                    Reason::Capture,
                    format!("cannot start a capture thread for {path}: {e}"),
                )
            })?;
        Ok(Capturing {
            rx,
            stop,
            path: path.to_owned(),
        })
    }

    /// The next event; the failure that ended the capture once it ended.
    pub async fn next(&mut self) -> Result<Event, Failure> {
        match self.rx.recv().await {
            Some(r) => r,
            None => Err(Failure::new(
                Reason::Capture,
                format!("the capture thread of {} ended", self.path),
            )),
        }
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The capture thread's body: open, choose, stream until stopped. Ok when
/// stopped (or nobody listens any more).
fn run(
    path: &str,
    cap: &Capture,
    stop: &AtomicBool,
    tx: &mpsc::Sender<Result<Event, Failure>>,
) -> Result<(), Failure> {
    let fail = |e: DeviceError| describe(path, &e);
    let opened = v4l2_device::open(path).map_err(fail)?;
    let offers = opened.offers().map_err(fail)?;
    let choice = choose(&offers, (cap.width, cap.height)).map_err(|m| {
        Failure::new(
            Reason::Capture,
            format!("{path} ({}) {m}", opened.card.trim()),
        )
    })?;
    let card = opened.card.trim().to_owned();
    let mut dev = opened
        .start(choice.fourcc, choice.width, choice.height, cap.framerate)
        .map_err(fail)?;
    let rate = cap.framerate.max(1) as f32;
    let fps = match (choice.encoding, dev.fps) {
        (Encoding::H264, Some(f)) => f,
        (_, Some(f)) => f.min(rate),
        (_, None) => rate,
    };
    let started = Started {
        card,
        fourcc: v4l2_device::fourcc_str(dev.fourcc),
        encoding: choice.encoding,
        width: dev.width,
        height: dev.height,
        fps,
        offered: offered(&offers),
    };
    if tx.blocking_send(Ok(Event::Started(started))).is_err() {
        return Ok(());
    }
    let mut pacer = Pacer::new(cap.framerate);
    while !stop.load(Ordering::Relaxed) {
        let Some(buf) = dev.next(POLL_WAIT).map_err(fail)? else {
            continue;
        };
        if buf.damaged {
            let note = "the driver flagged a frame as damaged (V4L2_BUF_FLAG_ERROR)".to_owned();
            if send_or_drop(tx, Event::Damaged(note)) {
                return Ok(());
            }
            continue;
        }
        let event = match choice.encoding {
            // Every H.264 frame is needed to decode the next: never dropped.
            Encoding::H264 => {
                if tx.blocking_send(Ok(Event::H264(buf.data))).is_err() {
                    return Ok(());
                }
                continue;
            }
            _ if !pacer.due(Instant::now()) => continue,
            Encoding::Jpeg if !buf.data.starts_with(&[0xFF, 0xD8]) => Event::Damaged(format!(
                "a {}-byte frame that does not start like a JPEG",
                buf.data.len()
            )),
            Encoding::Jpeg => Event::Jpeg(buf.data),
            Encoding::Yuyv => {
                match yuyv_to_jpeg(&buf.data, dev.width, dev.height, dev.bytes_per_line) {
                    Ok(j) => Event::Jpeg(j),
                    Err(m) => Event::Damaged(m),
                }
            }
        };
        if send_or_drop(tx, event) {
            return Ok(());
        }
    }
    Ok(())
}

/// Offers `event` without waiting (a busy reader loses a JPEG, not the
/// camera's pace); true when nobody listens any more.
fn send_or_drop(tx: &mpsc::Sender<Result<Event, Failure>>, event: Event) -> bool {
    matches!(
        tx.try_send(Ok(event)),
        Err(mpsc::error::TrySendError::Closed(_))
    )
}

/// Keeps at most `fps` frames a second: a frame is due when its time has
/// come, with a little slack so a camera at exactly the cap loses none.
struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    fn new(fps: u32) -> Pacer {
        Pacer {
            interval: Duration::from_secs(1) / fps.max(1),
            next: None,
        }
    }

    fn due(&mut self, now: Instant) -> bool {
        let slack = self.interval / 8;
        match self.next {
            Some(next) if now + slack < next => false,
            Some(next) => {
                // After a pause (a lagging thread draining queued buffers),
                // the next frame is one interval from now, not at once.
                let after = next + self.interval;
                self.next = Some(if now >= after {
                    now + self.interval
                } else {
                    after
                });
                true
            }
            None => {
                self.next = Some(now + self.interval);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(fourcc: &[u8; 4], sizes: Sizes) -> Offer {
        Offer {
            fourcc: *fourcc,
            description: String::from_utf8_lossy(fourcc).into_owned(),
            sizes,
        }
    }

    fn webcam_sizes() -> Sizes {
        Sizes::Discrete(vec![
            (320, 180),
            (640, 360),
            (640, 480),
            (1280, 720),
            (1920, 1080),
        ])
    }

    #[test]
    fn compressed_formats_win_over_raw() {
        let yuyv = offer(b"YUYV", webcam_sizes());
        let mjpg = offer(b"MJPG", webcam_sizes());
        let h264 = offer(b"H264", webcam_sizes());
        let c = choose(&[yuyv.clone(), mjpg.clone(), h264], (1280, 720)).unwrap();
        assert_eq!((c.encoding, c.fourcc), (Encoding::H264, *b"H264"));
        let c = choose(&[yuyv.clone(), mjpg], (1280, 720)).unwrap();
        assert_eq!(c.encoding, Encoding::Jpeg);
        let c = choose(&[offer(b"RGB3", webcam_sizes()), yuyv], (1280, 720)).unwrap();
        assert_eq!(c.encoding, Encoding::Yuyv);
    }

    #[test]
    fn largest_size_within_the_cap() {
        let yuyv = [offer(b"YUYV", webcam_sizes())];
        let c = choose(&yuyv, (1280, 720)).unwrap();
        assert_eq!((c.width, c.height), (1280, 720));
        let c = choose(&yuyv, (640, 480)).unwrap();
        assert_eq!((c.width, c.height), (640, 480));
        // 640x480 has more pixels than 640x360, both fit 800x600.
        let c = choose(&yuyv, (800, 600)).unwrap();
        assert_eq!((c.width, c.height), (640, 480));
        // None fits: the smallest.
        let c = choose(&yuyv, (64, 64)).unwrap();
        assert_eq!((c.width, c.height), (320, 180));
        let range = [offer(
            b"YUYV",
            Sizes::Range {
                min: (48, 32),
                max: (1920, 1080),
                step: (16, 8),
            },
        )];
        let c = choose(&range, (1000, 700)).unwrap();
        assert_eq!((c.width, c.height), (992, 696));
    }

    #[test]
    fn no_usable_format_lists_what_is_offered() {
        let e = choose(
            &[
                offer(b"RGB3", webcam_sizes()),
                offer(b"NV12", webcam_sizes()),
            ],
            (1280, 720),
        )
        .unwrap_err();
        assert!(e.contains("RGB3 (RGB3), NV12 (NV12)"), "{e}");
        let e = choose(&[], (1280, 720)).unwrap_err();
        assert!(e.contains("offers: nothing"), "{e}");
    }

    /// A YUYV frame: luma a left-to-right ramp, chroma neutral.
    fn ramp(width: u32, height: u32) -> Vec<u8> {
        let mut f = Vec::new();
        for _ in 0..height {
            for x in (0..width).step_by(2) {
                let y0 = (16 + x * 219 / width) as u8;
                let y1 = (16 + (x + 1) * 219 / width) as u8;
                f.extend_from_slice(&[y0, 128, y1, 128]);
            }
        }
        f
    }

    #[test]
    fn yuyv_becomes_a_jpeg_with_the_same_picture() {
        let (w, h) = (64, 48);
        let frame = ramp(w, h);
        let jpeg = yuyv_to_jpeg(&frame, w, h, w * 2).unwrap();
        let luma = crate::probe::jpeg::decode_luma(&jpeg).expect("our decoder reads it");
        assert_eq!((luma.width, luma.height), (w, h));
        // Limited-range Y 16…235 becomes full-range 0…255 through RGB.
        for (x, y) in [(2, 10), (32, 24), (60, 40)] {
            let src = f32::from(frame[(y * w as usize + x) * 2]);
            let want = (src - 16.0) * 255.0 / 219.0;
            let got = f32::from(luma.pixels[y * w as usize + x]);
            assert!((got - want).abs() < 8.0, "({x},{y}): {got} vs {want}");
        }
    }

    #[test]
    fn short_yuyv_frame_is_damaged() {
        let frame = ramp(64, 48);
        let e = yuyv_to_jpeg(&frame[..frame.len() - 1], 64, 48, 128).unwrap_err();
        assert!(e.contains("incomplete YUYV frame"), "{e}");
    }

    #[test]
    fn colours_convert_as_bt601() {
        assert_eq!(ycbcr_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(ycbcr_to_rgb(235, 128, 128), [255, 255, 255]);
        let [r, g, b] = ycbcr_to_rgb(81, 90, 240);
        assert!(r > 240 && g < 10 && b < 10, "red: {r} {g} {b}");
    }

    #[test]
    fn errors_name_their_cause() {
        let e = |op, errno| {
            describe(
                "/dev/video0",
                &DeviceError {
                    op,
                    err: std::io::Error::from_raw_os_error(errno),
                },
            )
        };
        let cases = [
            (Op::Open, libc::ENOENT, "is the camera plugged in?"),
            (Op::Start, libc::EBUSY, "another program has it open"),
            (Op::Open, libc::EACCES, "video group"),
            (Op::Open, libc::EPERM, "device policy"),
            (
                Op::Dequeue,
                libc::ENODEV,
                "was disconnected while reading a frame",
            ),
            (Op::Open, libc::ENOTTY, "not a V4L2 device"),
            (Op::Open, libc::EINVAL, "not a video capture device"),
            (Op::Dequeue, libc::EIO, "reading a frame"),
        ];
        for (op, errno, words) in cases {
            let f = e(op, errno);
            assert_eq!(f.reason, Reason::Capture, "{f:?}");
            assert!(
                f.message.contains("/dev/video0") && f.message.contains(words),
                "{op:?} {errno}: {f:?}"
            );
        }
    }

    #[test]
    fn pacer_keeps_the_rate() {
        let mut p = Pacer::new(5);
        let t0 = Instant::now();
        // A 30 fps camera for 2 s: about 10 frames kept.
        let kept = (0..60)
            .filter(|i| p.due(t0 + Duration::from_millis(i * 1000 / 30)))
            .count();
        assert!((9..=11).contains(&kept), "{kept}");
        // A camera at the cap loses none.
        let mut p = Pacer::new(15);
        let kept = (0..30)
            .filter(|i| p.due(t0 + Duration::from_millis(i * 1000 / 15)))
            .count();
        assert_eq!(kept, 30);
        // Seen in QEMU: frames late, then a burst of queued ones 10 ms
        // apart; the burst must not all go out (at 5 fps: one per 200 ms).
        let mut p = Pacer::new(5);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(p.due(at(0)));
        assert!(p.due(at(450)));
        assert!(!p.due(at(460)) && !p.due(at(470)) && !p.due(at(600)));
        assert!(p.due(at(650)));
    }
}
