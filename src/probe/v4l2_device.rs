//! The one place that speaks V4L2: a thin wrapper over the `linuxvideo`
//! crate (pure Rust ioctls, no bindgen, so it builds static for musl on
//! aarch64 and armv7). Everything else (`v4l2.rs`, the probe, the live
//! view) sees only the plain types here, so the crate can be swapped
//! without touching them.
//!
//! Blocking: every call here may block (STREAMON can take a while on a UVC
//! camera); callers run it on their own thread, never on the async runtime.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use linuxvideo::format::{FrameIntervals, FrameSizes, PixFormat, PixelFormat};
use linuxvideo::stream::ReadStream;
use linuxvideo::{BufType, CapabilityFlags, Device, Fract};

/// What failed, for the message (`v4l2::describe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Opening the device node and asking what it is (VIDIOC_QUERYCAP).
    Open,
    /// Listing formats and sizes (VIDIOC_ENUM_FMT, ENUM_FRAMESIZES).
    Query,
    /// Setting the format or starting the stream (S_FMT, REQBUFS, STREAMON).
    Start,
    /// Waiting for or taking a filled buffer (poll, VIDIOC_DQBUF).
    Dequeue,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Open => "opening it",
            Op::Query => "asking for its formats",
            Op::Start => "starting the capture",
            Op::Dequeue => "reading a frame",
        }
    }
}

/// A failed V4L2 call.
#[derive(Debug)]
pub struct DeviceError {
    pub op: Op,
    pub err: io::Error,
}

fn at(op: Op) -> impl FnOnce(io::Error) -> DeviceError {
    move |err| DeviceError { op, err }
}

/// The frame sizes a format offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sizes {
    /// A list (UVC webcams, vivid's webcam input).
    Discrete(Vec<(u32, u32)>),
    /// Any size in a range, by steps.
    Range {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
    },
}

/// One format the device offers (VIDIOC_ENUM_FMT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The fourcc, e.g. `*b"YUYV"`, `*b"MJPG"`, `*b"H264"`.
    pub fourcc: [u8; 4],
    /// The driver's name for it.
    pub description: String,
    pub sizes: Sizes,
}

/// An open capture device, not streaming yet.
pub struct Opened {
    device: Device,
    /// The device's name (VIDIOC_QUERYCAP card), for messages and logs.
    pub card: String,
}

/// Opens `path` and checks it is a streaming video capture device.
///
/// # Errors
/// `Open`: the OS error (ENOENT, EBUSY, EACCES, …); ENOTTY for a node that
/// is not V4L2; EINVAL (made up here) for one that cannot stream video in.
pub fn open(path: &str) -> Result<Opened, DeviceError> {
    let device = Device::open(path).map_err(at(Op::Open))?;
    let caps = device.capabilities().map_err(at(Op::Open))?;
    let dev_caps = caps.device_capabilities();
    if !dev_caps.contains(CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::STREAMING) {
        return Err(DeviceError {
            op: Op::Open,
            err: io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    Ok(Opened {
        card: caps.card().to_owned(),
        device,
    })
}

impl Opened {
    /// The formats the device offers for video capture, in its order.
    ///
    /// # Errors
    /// `Query`: an ioctl failed (ENODEV once unplugged).
    pub fn offers(&self) -> Result<Vec<Offer>, DeviceError> {
        let mut offers = Vec::new();
        for desc in self.device.formats(BufType::VIDEO_CAPTURE) {
            let desc = desc.map_err(at(Op::Query))?;
            let fourcc = desc.pixel_format().as_fourcc();
            let sizes = match self.device.frame_sizes(desc.pixel_format()) {
                Ok(FrameSizes::Discrete(list)) => {
                    Sizes::Discrete(list.iter().map(|s| (s.width(), s.height())).collect())
                }
                Ok(FrameSizes::Stepwise(s) | FrameSizes::Continuous(s)) => Sizes::Range {
                    min: (s.min_width(), s.min_height()),
                    max: (s.max_width(), s.max_height()),
                    step: (s.step_width().max(1), s.step_height().max(1)),
                },
                // Some drivers list no sizes: whatever S_FMT settles on.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Sizes::Discrete(Vec::new()),
                Err(e) => return Err(at(Op::Query)(e)),
            };
            offers.push(Offer {
                fourcc,
                description: desc.description().to_owned(),
                sizes,
            });
        }
        Ok(offers)
    }

    /// Sets `fourcc` at `width`×`height` (the driver may adjust both),
    /// asks for `fps` frames per second where the driver allows it, and
    /// starts streaming (memory-mapped buffers).
    ///
    /// # Errors
    /// `Start`: S_FMT, REQBUFS, QBUF or STREAMON failed (EBUSY when another
    /// program streams from it).
    pub fn start(
        self,
        fourcc: [u8; 4],
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Streaming, DeviceError> {
        let pixel_format = PixelFormat::from_fourcc(fourcc);
        let fastest = self
            .device
            .frame_intervals(pixel_format, width, height)
            .ok()
            .map(|i: FrameIntervals| i.min());
        let capture = self
            .device
            .video_capture(PixFormat::new(width, height, pixel_format))
            .map_err(at(Op::Start))?;
        let format = capture.format();
        if format.pixel_format() != pixel_format {
            return Err(DeviceError {
                op: Op::Start,
                err: io::Error::other(format!(
                    "the driver set {} instead of {}",
                    fourcc_str(format.pixel_format().as_fourcc()),
                    fourcc_str(fourcc)
                )),
            });
        }
        // Not below the fastest the camera offers; a driver without
        // VIDIOC_S_PARM keeps its own rate (JPEGs above `fps` are dropped).
        let want = Fract::new(1, fps.max(1));
        let interval = match fastest {
            Some(min) if min.as_f32() > want.as_f32() => min,
            _ => want,
        };
        let frame_interval = capture.set_frame_interval(interval).ok();
        let (width, height) = (format.width(), format.height());
        let bytes_per_line = format.bytes_per_line();
        let stream = capture.into_stream().map_err(at(Op::Start))?;
        set_nonblocking(stream.as_raw_fd()).map_err(at(Op::Start))?;
        Ok(Streaming {
            stream,
            fourcc,
            width,
            height,
            bytes_per_line,
            fps: frame_interval
                .filter(|f| f.numerator() > 0)
                .map(|f| f.denominator() as f32 / f.numerator() as f32),
        })
    }
}

/// DQBUF must not block: the capture thread waits in `poll` with a timeout,
/// so it notices its stop flag even when the camera sends nothing.
fn set_nonblocking(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A device streaming frames; dropping it stops the stream (STREAMOFF),
/// unmaps the buffers and closes the device.
pub struct Streaming {
    stream: ReadStream,
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    /// Bytes per row of a raw format (0 for compressed ones).
    pub bytes_per_line: u32,
    /// The frame rate the driver settled on, if it said.
    pub fps: Option<f32>,
}

/// One filled buffer, copied out of the driver's memory.
pub struct Buffer {
    /// The used bytes (`bytesused`).
    pub data: Vec<u8>,
    /// V4L2_BUF_FLAG_ERROR: the driver says the frame may be damaged.
    pub damaged: bool,
}

impl Streaming {
    /// Waits up to `wait` for the next frame: `Ok(None)` if none came.
    ///
    /// # Errors
    /// `Dequeue`: ENODEV once the camera is unplugged, EPIPE/EIO when the
    /// driver gave up.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Buffer>, DeviceError> {
        let mut pfd = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(at(Op::Dequeue)(e));
        }
        if n == 0 {
            return Ok(None);
        }
        // POLLERR/POLLHUP too: DQBUF then says why (ENODEV when unplugged).
        match self.stream.dequeue(|view| {
            Ok(Buffer {
                damaged: view.is_error(),
                data: view.to_vec(),
            })
        }) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(at(Op::Dequeue)(e)),
        }
    }
}

/// A fourcc as text, e.g. "YUYV".
pub fn fourcc_str(fourcc: [u8; 4]) -> String {
    String::from_utf8_lossy(&fourcc).trim_end().to_owned()
}
