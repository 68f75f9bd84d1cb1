//! The one integration-test binary (ripgrep's layout): every module starts
//! real peers on loopback (GStreamer RTSP, ffmpeg, named fakes) and drives the
//! real `streampulse` binary.

mod app; // the `streampulse run` daemon under test, with its JSON API
mod cli; // check-config, --version
mod daemon; // end to end: status API, hot reload, crash safety, secrets
mod netns; // faults needing a private network namespace (a DNS server that never answers)
mod probes; // `streampulse probe` against real servers and named fakes
mod util; // peers: RTSP server, MJPEG/snapshot servers, fakes, temp dirs
