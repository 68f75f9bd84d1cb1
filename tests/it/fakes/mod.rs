//! Named fake peers, all in one place: each misbehaves in exactly one way
//! that no real server in TESTING.md can be made to on demand (garbage or
//! 10 MB RTSP headers, a wrong CSeq, redirect and 401 loops, P-frames
//! without a key frame, a 100 MB MJPEG part, 1 byte per second, a camera
//! that allows one session, markup in what a camera says), or stands where
//! no real peer can (a receiver that records what it was sent).
//!
//! Every fake runs on the one accept loop of [`listener`]: it listens on a
//! loopback port the OS picked, handles each connection in its own thread,
//! and stops (joining every thread) on drop. Real peers are in `util/`.

mod h264; // an x264 clip of testsrc cut into NAL units, RTP packetisation (RFC 6184)
mod http_cameras; // HTTP/MJPEG cameras with one fault each
mod listener; // the accept loop every fake runs on, and shared connection chores
mod markup_cameras; // HTTP and RTSP cameras that put markup in their answers
mod raw_tcp; // peers that speak no protocol: silent, garbage
mod recorder; // keeps what each connection sent (webhook receiver, "another host")
mod rtsp_camera; // RTSP cameras with one fault each, streaming real H.264
mod session_hog; // a raw RTSP client holding a single-session camera's session

pub use http_cameras::{FakeEndlessJpegServer, FakeHttpCamera, FakeStallMidFrameServer, HttpFault};
pub use markup_cameras::{FakeMarkupHttpCamera, FakeMarkupRtspCamera};
pub use raw_tcp::{FakeGarbageServer, FakeSilentServer};
pub use recorder::FakeRecorder;
pub use rtsp_camera::{FakeRtspCamera, RtspFault};
pub use session_hog::SessionHog;
