//! [`PictureWatch`]: one stream's picture checks over time, and the verdicts
//! readers see ([`PictureState`]). Pure: timestamps come in, no I/O.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::Signature;
use crate::config::picture::{Action, PictureConfig};
use crate::probe::{Failure, Reason};

/// Below this mean luma (and [`BLACK_CONTRAST`]) a picture is black. Cameras
/// send black as 16.
const BLACK_MEAN: f32 = 40.0;
const BLACK_CONTRAST: f32 = 10.0;
/// Below this contrast a picture is one flat colour (blank).
const BLANK_CONTRAST: f32 = 4.0;

/// What the last picture check found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PictureVerdict {
    /// Not checked yet, not decodable here (H.265), or checks are off.
    #[default]
    Unknown,
    Ok,
    Frozen,
    Black,
    Blank,
}

impl PictureVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            PictureVerdict::Unknown => "unknown",
            PictureVerdict::Ok => "ok",
            PictureVerdict::Frozen => "frozen",
            PictureVerdict::Black => "black",
            PictureVerdict::Blank => "blank",
        }
    }

    pub const ALL: [PictureVerdict; 5] = [
        PictureVerdict::Unknown,
        PictureVerdict::Ok,
        PictureVerdict::Frozen,
        PictureVerdict::Black,
        PictureVerdict::Blank,
    ];
}

/// The camera's clock against the box's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockVerdict {
    /// No sender report seen, the box's clock is not synchronised, or off.
    #[default]
    Unknown,
    Ok,
    Off,
}

impl ClockVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockVerdict::Unknown => "unknown",
            ClockVerdict::Ok => "ok",
            ClockVerdict::Off => "off",
        }
    }
}

/// What readers show of a stream's picture checks.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PictureState {
    pub verdict: PictureVerdict,
    /// Why, in words: "unchanged over 4 checks (3 min)", "mean luma 16".
    pub detail: String,
    /// When the picture was last checked (ms since epoch).
    pub checked_ms: Option<i64>,
    /// Mean luma (0–255) and contrast of the last checked picture.
    pub mean_luma: Option<f32>,
    pub contrast: Option<f32>,
    pub camera_clock: ClockVerdict,
    /// The camera's clock minus the box's, from its last sender report.
    pub camera_clock_offset_ms: Option<i64>,
}

/// See the module docs.
#[derive(Debug)]
pub struct PictureWatch {
    cfg: PictureConfig,
    last_check: Option<Instant>,
    /// The picture the current run of unchanged checks started with, the
    /// run's length and when it started.
    reference: Option<(Signature, u32, i64)>,
    state: PictureState,
}

impl PictureWatch {
    pub fn new(cfg: PictureConfig) -> Self {
        PictureWatch {
            cfg,
            last_check: None,
            reference: None,
            state: PictureState::default(),
        }
    }

    pub fn state(&self) -> &PictureState {
        &self.state
    }

    /// Does the next probe need the frame decoded? Every `picture.every`;
    /// on every heartbeat while the picture is not ok, so a recovery shows
    /// at once.
    pub fn due(&self, now: Instant) -> bool {
        if !self.cfg.decodes() {
            return false;
        }
        let bad = matches!(
            self.state.verdict,
            PictureVerdict::Frozen | PictureVerdict::Black | PictureVerdict::Blank
        );
        match self.last_check {
            None => true,
            Some(t) => bad || now.duration_since(t) + Duration::from_millis(500) >= self.cfg.every,
        }
    }

    /// Takes one check's result: the signature, `Ok(None)` for a codec the
    /// box cannot decode, or why the decode failed.
    pub fn observe(&mut self, now: Instant, ts_ms: i64, sig: Result<Option<Signature>, String>) {
        self.last_check = Some(now);
        self.state.checked_ms = Some(ts_ms);
        let sig = match sig {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.set(
                    PictureVerdict::Unknown,
                    "not decoded on the box (H.265)".into(),
                );
                return;
            }
            Err(e) => {
                self.set(PictureVerdict::Unknown, format!("not checked: {e}"));
                return;
            }
        };
        self.state.mean_luma = Some(round1(sig.mean));
        self.state.contrast = Some(round1(sig.contrast));
        let flat = if sig.mean < BLACK_MEAN && sig.contrast < BLACK_CONTRAST {
            Some(PictureVerdict::Black)
        } else if sig.contrast < BLANK_CONTRAST {
            Some(PictureVerdict::Blank)
        } else {
            None
        };
        if let Some(v) = flat {
            self.reference = None;
            let what = if v == PictureVerdict::Black {
                "black"
            } else {
                "one flat colour"
            };
            self.set(
                v,
                format!(
                    "the picture is {what} (mean luma {:.0}, contrast {:.1})",
                    sig.mean, sig.contrast
                ),
            );
            return;
        }
        let run = match self.reference.take() {
            Some((r, n, since)) if r.same_picture(&sig) => (r, n + 1, since),
            _ => (sig, 1, ts_ms),
        };
        let (n, since) = (run.1, run.2);
        self.reference = Some(run);
        if n >= self.cfg.frozen_after && self.cfg.frozen != Action::Off {
            let mins = (ts_ms - since).max(0) as f64 / 60_000.0;
            self.set(
                PictureVerdict::Frozen,
                format!("the picture has not changed over {n} checks ({mins:.1} min)"),
            );
        } else {
            self.set(PictureVerdict::Ok, String::new());
        }
    }

    /// Takes a measured camera clock offset (`None`: no sender report this
    /// time: the last verdict stands). `box_synced`: the box's own clock is
    /// trustworthy, without which no verdict is possible.
    pub fn observe_clock(&mut self, offset_ms: Option<i64>, box_synced: bool) {
        let Some(offset) = offset_ms else {
            return;
        };
        self.state.camera_clock_offset_ms = Some(offset);
        self.state.camera_clock = if self.cfg.camera_clock == Action::Off || !box_synced {
            ClockVerdict::Unknown
        } else if offset.unsigned_abs() > self.cfg.clock_tolerance.as_millis() as u64 {
            ClockVerdict::Off
        } else {
            ClockVerdict::Ok
        };
    }

    /// The finding that makes an ok heartbeat count as failed under this
    /// stream's `picture:` settings, if any.
    pub fn failure(&self) -> Option<Failure> {
        let s = &self.state;
        let picture = match s.verdict {
            PictureVerdict::Frozen if self.cfg.frozen == Action::Down => Some(Reason::Frozen),
            PictureVerdict::Black if self.cfg.black == Action::Down => Some(Reason::Black),
            PictureVerdict::Blank if self.cfg.black == Action::Down => Some(Reason::Blank),
            _ => None,
        };
        if let Some(r) = picture {
            return Some(Failure::new(r, s.detail.clone()));
        }
        if s.camera_clock == ClockVerdict::Off && self.cfg.camera_clock == Action::Down {
            return Some(Failure::new(Reason::CameraClock, clock_detail(s)));
        }
        None
    }

    fn set(&mut self, verdict: PictureVerdict, detail: String) {
        let off = |a: Action| a == Action::Off;
        let verdict = match verdict {
            PictureVerdict::Black | PictureVerdict::Blank if off(self.cfg.black) => {
                PictureVerdict::Ok
            }
            v => v,
        };
        self.state.verdict = verdict;
        self.state.detail = if verdict == PictureVerdict::Ok {
            String::new()
        } else {
            detail
        };
    }
}

/// "the camera's clock is 2 h 0 min ahead of the box's".
pub fn clock_detail(s: &PictureState) -> String {
    match s.camera_clock_offset_ms {
        Some(off) => format!("the camera's clock is {}", clock_offset_words(off)),
        None => "the camera sent no sender report".into(),
    }
}

/// "2 h 0 min ahead of the box's", "1.5 s behind the box's".
pub fn clock_offset_words(offset_ms: i64) -> String {
    let secs = offset_ms.unsigned_abs() / 1000;
    let amount = if secs >= 3600 {
        format!("{} h {} min", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{} min {} s", secs / 60, secs % 60)
    } else {
        format!("{:.1} s", offset_ms.unsigned_abs() as f64 / 1000.0)
    };
    let side = if offset_ms >= 0 { "ahead of" } else { "behind" };
    format!("{amount} {side} the box's")
}

fn round1(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(f: impl Fn(usize, usize) -> u8) -> Signature {
        let y: Vec<u8> = (0..240)
            .flat_map(|y| (0..320).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Signature::of_luma(320, 240, 320, &y)
    }

    fn scene(shift: usize) -> Signature {
        sig(move |x, y| (((x + shift) * 5 + y) % 220) as u8 + 20)
    }

    #[test]
    fn frozen_after_the_configured_checks_and_back_at_once() {
        let cfg = PictureConfig {
            frozen_after: 3,
            ..PictureConfig::default()
        };
        let mut w = PictureWatch::new(cfg);
        let t0 = Instant::now();
        for i in 0..2 {
            w.observe(t0, i * 60_000, Ok(Some(scene(0))));
            assert_eq!(w.state().verdict, PictureVerdict::Ok);
            assert!(w.failure().is_none());
        }
        w.observe(t0, 120_000, Ok(Some(scene(0))));
        assert_eq!(w.state().verdict, PictureVerdict::Frozen);
        assert_eq!(w.failure().unwrap().reason, Reason::Frozen);
        assert!(
            w.state().detail.contains("3 checks (2.0 min)"),
            "{}",
            w.state().detail
        );
        assert!(w.due(t0), "a frozen picture is checked on every heartbeat");
        w.observe(t0, 130_000, Ok(Some(scene(40))));
        assert_eq!(w.state().verdict, PictureVerdict::Ok);
        assert!(!w.due(t0 + Duration::from_secs(10)));
        assert!(w.due(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn black_warns_by_default_and_counts_when_asked() {
        let mut w = PictureWatch::new(PictureConfig::default());
        let t0 = Instant::now();
        w.observe(t0, 0, Ok(Some(sig(|_, _| 16))));
        assert_eq!(w.state().verdict, PictureVerdict::Black);
        assert!(w.failure().is_none(), "black only warns by default");
        let mut w = PictureWatch::new(PictureConfig {
            black: Action::Down,
            ..PictureConfig::default()
        });
        w.observe(t0, 0, Ok(Some(sig(|_, _| 128))));
        assert_eq!(w.state().verdict, PictureVerdict::Blank);
        assert_eq!(w.failure().unwrap().reason, Reason::Blank);
        // Flat pictures are never also frozen.
        for i in 1..10 {
            w.observe(t0, i, Ok(Some(sig(|_, _| 128))));
        }
        assert_eq!(w.state().verdict, PictureVerdict::Blank);
    }

    #[test]
    fn h265_and_decode_errors_are_unknown() {
        let mut w = PictureWatch::new(PictureConfig::default());
        w.observe(Instant::now(), 0, Ok(None));
        assert_eq!(w.state().verdict, PictureVerdict::Unknown);
        assert!(w.state().detail.contains("H.265"));
        w.observe(Instant::now(), 0, Err("too big".into()));
        assert_eq!(w.state().verdict, PictureVerdict::Unknown);
        assert!(w.failure().is_none());
    }

    #[test]
    fn camera_clock_needs_a_synced_box() {
        let mut w = PictureWatch::new(PictureConfig {
            camera_clock: Action::Down,
            ..PictureConfig::default()
        });
        w.observe_clock(Some(7_200_000), false);
        assert_eq!(w.state().camera_clock, ClockVerdict::Unknown);
        w.observe_clock(Some(7_200_000), true);
        assert_eq!(w.state().camera_clock, ClockVerdict::Off);
        let f = w.failure().unwrap();
        assert_eq!(f.reason, Reason::CameraClock);
        assert_eq!(
            f.message,
            "the camera's clock is 2 h 0 min ahead of the box's"
        );
        w.observe_clock(None, true);
        assert_eq!(
            w.state().camera_clock,
            ClockVerdict::Off,
            "no report: the verdict stands"
        );
        w.observe_clock(Some(-1_500), true);
        assert_eq!(w.state().camera_clock, ClockVerdict::Ok);
    }
}
