//! A local camera's `capture:` block: the picture asked of the box's own
//! camera and, for `libcamera:`, the command that captures it (see
//! `probe::capture`). A `v4l2:///dev/videoN` camera is read directly
//! (`probe::v4l2`): `width`, `height` and `framerate` cap the frame size
//! chosen among those it offers and the JPEG rate; it has no command.
//!
//! The command is a template, split on whitespace (no shell, so no quoting)
//! with `{width}`, `{height}`, `{framerate}` and `{camera}` (the index in
//! `libcamera:N`, 0 when absent) filled in. The default runs the Pi's
//! `rpicam-vid` (rpicam-apps): `-t 0` runs until stopped, `--codec h264
//! --inline` repeats SPS/PPS at every key frame (a probe or viewer that
//! joins late can start), `--intra {framerate}` makes one key frame a second
//! (the probe's wait for a key frame stays short), `--nopreview`, `-o -`
//! writes to standard output.
//!
//! The program is one of [`ALLOWED_PROGRAMS`] (looked up in `PATH`) or a path
//! listed in the service's environment, `STREAMPULSE_CAPTURE_PROGRAMS`
//! (colon-separated): the config can come from the boot partition or a
//! restored backup, and must not be a way to run any program on the box.
//! The environment is the image's (the unit file), not the config's.

use serde::Deserialize;

use crate::probe::capture::Source;
use crate::probe::Capture;

/// The default capture command; see the module docs.
pub const DEFAULT_COMMAND: &str = "rpicam-vid -t 0 --camera {camera} --codec h264 --inline \
     --intra {framerate} --nopreview --width {width} --height {height} \
     --framerate {framerate} -o -";
/// Capture programs a config may name; others only through
/// [`PROGRAMS_ENV`].
pub const ALLOWED_PROGRAMS: [&str; 2] = ["rpicam-vid", "libcamera-vid"];
/// The environment variable listing more capture programs (full paths,
/// colon-separated), e.g. a test's stand-in.
pub const PROGRAMS_ENV: &str = "STREAMPULSE_CAPTURE_PROGRAMS";

/// Is `program` one a config may run (see the module docs)?
fn allowed(program: &str, extra: Option<&str>) -> bool {
    ALLOWED_PROGRAMS.contains(&program)
        || extra.is_some_and(|list| list.split(':').any(|p| !p.is_empty() && p == program))
}

/// Default picture: 1280×720 at 15 fps (the Pi's encoder manages 1080p30;
/// a monitor and a live grid do not need it).
pub const DEFAULT_WIDTH: u32 = 1280;
pub const DEFAULT_HEIGHT: u32 = 720;
pub const DEFAULT_FRAMERATE: u32 = 15;

/// `capture:` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    /// Pixels, even, 64 … 1920. Default 1280.
    pub width: Option<u32>,
    /// Pixels, even, 64 … 1080. Default 720.
    pub height: Option<u32>,
    /// Frames per second, 1 … 60. Default 15.
    pub framerate: Option<u32>,
    /// Command template. Default [`DEFAULT_COMMAND`].
    pub command: Option<String>,
}

/// What a local camera's URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// `libcamera:` or `libcamera:N`: the N-th camera libcamera lists.
    Libcamera(u32),
    /// `v4l2:///dev/videoN`.
    V4l2(String),
}

/// Parses a local camera's URL. The message starts with `url:`.
pub fn device(url: &url::Url) -> Result<Device, String> {
    match url.scheme() {
        "libcamera" => {
            let rest = url.path();
            if url.query().is_some() || url.fragment().is_some() || url.has_host() {
                return Err(format!(
                    "url: write libcamera: or libcamera:N (a camera index), not {url}"
                ));
            }
            if rest.is_empty() {
                return Ok(Device::Libcamera(0));
            }
            rest.parse::<u32>()
                .ok()
                .filter(|n| *n < 16)
                .map(Device::Libcamera)
                .ok_or_else(|| format!("url: libcamera:{rest}: the camera index must be 0 … 15"))
        }
        "v4l2" => {
            let path = url.path();
            let ok = url.host_str().is_none_or(str::is_empty)
                && path.starts_with("/dev/")
                && path.len() > 5
                && !path.contains("..")
                && url.query().is_none();
            if ok {
                Ok(Device::V4l2(path.to_owned()))
            } else {
                Err(format!(
                    "url: write v4l2:///dev/videoN (a device under /dev), not {url}"
                ))
            }
        }
        other => Err(format!("url: scheme {other:?} does not fit kind local")),
    }
}

/// Validates `capture:` for `device`. The message starts with the key.
pub fn from_raw(raw: Option<&RawCapture>, device: &Device) -> Result<Capture, String> {
    let empty = RawCapture::default();
    let raw = raw.unwrap_or(&empty);
    let width = raw.width.unwrap_or(DEFAULT_WIDTH);
    let height = raw.height.unwrap_or(DEFAULT_HEIGHT);
    let framerate = raw.framerate.unwrap_or(DEFAULT_FRAMERATE);
    if !(64..=1920).contains(&width) || !width.is_multiple_of(2) {
        return Err(format!(
            "capture.width: must be an even number of pixels, 64 … 1920 (got {width})"
        ));
    }
    if !(64..=1080).contains(&height) || !height.is_multiple_of(2) {
        return Err(format!(
            "capture.height: must be an even number of pixels, 64 … 1080 (got {height})"
        ));
    }
    if !(1..=60).contains(&framerate) {
        return Err(format!(
            "capture.framerate: must be 1 … 60 frames per second (got {framerate})"
        ));
    }
    let camera = match device {
        Device::Libcamera(camera) => *camera,
        Device::V4l2(path) => {
            if raw.command.is_some() {
                return Err(
                    "capture.command: applies to libcamera: streams only (a V4L2 \
                            camera is read directly)"
                        .into(),
                );
            }
            return Ok(Capture {
                source: Source::V4l2(path.clone()),
                width,
                height,
                framerate,
            });
        }
    };
    let template = raw.command.as_deref().unwrap_or(DEFAULT_COMMAND);
    let mut argv = Vec::new();
    for word in template.split_whitespace() {
        let filled = word
            .replace("{width}", &width.to_string())
            .replace("{height}", &height.to_string())
            .replace("{framerate}", &framerate.to_string())
            .replace("{camera}", &camera.to_string());
        if filled.contains('{') && filled.contains('}') {
            return Err(format!(
                "capture.command: unknown placeholder in {word:?} (known: {{width}}, {{height}}, \
                 {{framerate}}, {{camera}})"
            ));
        }
        argv.push(filled);
    }
    if argv.is_empty() {
        return Err("capture.command: must not be empty".into());
    }
    let extra = std::env::var(PROGRAMS_ENV).ok();
    if !allowed(&argv[0], extra.as_deref()) {
        return Err(format!(
            "capture.command: {:?} is not a capture program this box runs ({}; others only \
             through {PROGRAMS_ENV} in the service's environment)",
            argv[0],
            ALLOWED_PROGRAMS.join(", ")
        ));
    }
    Ok(Capture {
        source: Source::Command(argv),
        width,
        height,
        framerate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> Result<Device, String> {
        device(&url::Url::parse(s).unwrap())
    }

    #[test]
    fn urls_name_a_camera() {
        assert_eq!(dev("libcamera:"), Ok(Device::Libcamera(0)));
        assert_eq!(dev("libcamera:1"), Ok(Device::Libcamera(1)));
        assert_eq!(
            dev("v4l2:///dev/video0"),
            Ok(Device::V4l2("/dev/video0".into()))
        );
        for bad in [
            "libcamera:x",
            "libcamera:99",
            "libcamera://host/",
            "v4l2:///etc/passwd",
        ] {
            let e = dev(bad).unwrap_err();
            assert!(e.starts_with("url: "), "{bad}: {e}");
        }
    }

    #[test]
    fn default_command_is_rpicam_vid_with_the_numbers_filled_in() {
        let c = from_raw(None, &Device::Libcamera(1)).unwrap();
        assert!(
            matches!(&c.source, Source::Command(argv) if argv[0] == "rpicam-vid"),
            "{c:?}"
        );
        let line = c.command_line();
        for want in [
            "--camera 1",
            "--codec h264",
            "--inline",
            "--width 1280",
            "--height 720",
            "--framerate 15",
            "-o -",
        ] {
            assert!(line.contains(want), "{want} in {line}");
        }
    }

    #[test]
    fn only_known_capture_programs_run() {
        assert!(allowed("rpicam-vid", None));
        assert!(allowed("libcamera-vid", Some("")));
        for p in ["/bin/sh", "sh", "rpicam-vid2", "/usr/bin/rpicam-vid", ""] {
            assert!(!allowed(p, None), "{p}");
        }
        let extra = Some("/opt/standin:/usr/local/bin/cam");
        assert!(allowed("/opt/standin", extra));
        assert!(allowed("/usr/local/bin/cam", extra));
        assert!(!allowed("/opt/standin2", extra));
        assert!(!allowed("/opt", extra));
    }

    #[test]
    fn bad_values_name_their_key() {
        let raw = |w, f, cmd: Option<&str>| RawCapture {
            width: Some(w),
            height: None,
            framerate: Some(f),
            command: cmd.map(str::to_owned),
        };
        let d = Device::Libcamera(0);
        let e = from_raw(Some(&raw(641, 15, None)), &d).unwrap_err();
        assert!(e.starts_with("capture.width:"), "{e}");
        let e = from_raw(Some(&raw(640, 0, None)), &d).unwrap_err();
        assert!(e.starts_with("capture.framerate:"), "{e}");
        let e = from_raw(Some(&raw(640, 15, Some("cam {size}"))), &d).unwrap_err();
        assert!(e.starts_with("capture.command:"), "{e}");
        let e = from_raw(Some(&raw(640, 15, Some("  "))), &d).unwrap_err();
        assert!(e.starts_with("capture.command:"), "{e}");
        let e = from_raw(Some(&raw(640, 15, Some("/bin/sh -c reboot"))), &d).unwrap_err();
        assert!(
            e.starts_with("capture.command:") && e.contains("not a capture program"),
            "{e}"
        );
        let v = Device::V4l2("/dev/video0".into());
        let e = from_raw(Some(&raw(640, 15, Some("rpicam-vid -o -"))), &v).unwrap_err();
        assert!(e.starts_with("capture.command:"), "{e}");
        let e = from_raw(Some(&raw(641, 15, None)), &v).unwrap_err();
        assert!(e.starts_with("capture.width:"), "{e}");
    }

    #[test]
    fn v4l2_cameras_take_the_caps_and_no_command() {
        let v = Device::V4l2("/dev/video2".into());
        let c = from_raw(None, &v).unwrap();
        assert_eq!(c.source, Source::V4l2("/dev/video2".into()));
        assert_eq!((c.width, c.height, c.framerate), (1280, 720, 15));
        let raw = RawCapture {
            width: Some(640),
            height: Some(480),
            framerate: Some(5),
            command: None,
        };
        let c = from_raw(Some(&raw), &v).unwrap();
        assert_eq!((c.width, c.height, c.framerate), (640, 480, 5));
    }
}
