//! Hostile and broken cameras (issue #8): every probe ends within its
//! deadline with the right reason, in bounded memory, and a fleet of them
//! neither delays healthy streams nor leaks file descriptors.
//!
//! Two levels:
//! * one `streampulse probe --json --timeout 3` per case, measured from the
//!   outside: wall time to the verdict and the process's peak RSS (`ru_maxrss`
//!   as `/usr/bin/time` reports it, i.e. its VmHWM), asserted under
//!   [`PROBE_HWM_CEILING_KIB`];
//! * [`hostile_fleet_delays_no_one_and_leaks_no_fds`]: one `streampulse run`
//!   probing all of them every 5 s next to a real RTSP and a snapshot camera,
//!   with `/proc/<pid>/fd` counted before they are added and after they are
//!   removed again (hot reload), and VmHWM read from `/proc/<pid>/status`.
//!
//! Each line `hostile <case>: ...` on stderr is a measurement for
//! docs/HARDENING.md (`cargo test --test it hostile -- --nocapture`).
//! Hung DNS is in `netns.rs` (it needs a private network namespace).

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::App;
use super::fakes::{
    FakeEndlessJpegServer, FakeGarbageServer, FakeHttpCamera, FakeRtspCamera, FakeSilentServer,
    FakeStallMidFrameServer, HttpFault, RtspFault, SessionHog,
};
use super::util::{temp_dir, RtspServer, SnapshotServer, COMMAND_TIMEOUT, PASSWORD, USER};

/// `--timeout` of every hostile probe, in seconds.
const TIMEOUT_S: u64 = 3;

/// Allowed on top of the deadline for process start/exit on a loaded 2-core CI box.
const SLACK: Duration = Duration::from_secs(5);

/// Peak RSS allowed for one `streampulse probe` (debug build) of any hostile
/// camera. A healthy probe peaks near 10 MiB; the worst cases buffer a capped
/// amount on top: the HTTP reader stops at the 8 MiB frame cap (its Vec may
/// have doubled to 16 MiB), retina's ring buffer holds a 10 MiB header
/// (16 MiB ring, plus the old ring while it grows).
const PROBE_HWM_CEILING_KIB: u64 = 64 * 1024;

/// Peak RSS allowed for the daemon probing the whole hostile fleet (about 20
/// streams, several of the worst at once) plus two healthy ones.
const FLEET_HWM_CEILING_KIB: u64 = 128 * 1024;

/// One measured run of `streampulse probe --json`.
struct Measured {
    code: i32,
    v: Value,
    elapsed: Duration,
    /// Peak resident set of the probe process (`ru_maxrss`), KiB.
    hwm_kib: u64,
}

/// Runs `streampulse probe --json --timeout 3 <args>` and measures it.
fn probe_measured(args: &[&str]) -> Measured {
    // GNU time forks the probe from its own small process and reports the
    // child's ru_maxrss. wait4 on a child of this (big, multi-threaded) test
    // process would not do: exec records the spawning mm's high-water mark.
    let dir = temp_dir("probe-rss");
    let rss_file = dir.path().join("maxrss");
    let start = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_streampulse"))
        .args(["probe", "--json", "--timeout", &TIMEOUT_S.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning streampulse should succeed");
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait should succeed") {
            break status;
        }
        if start.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            panic!("probe {args:?} still running after {COMMAND_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    let code = status
        .code()
        .unwrap_or_else(|| panic!("probe {args:?} died by a signal; stderr:\n{stderr}"));
    let rss = std::fs::read_to_string(&rss_file).unwrap_or_default();
    let hwm_kib = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time: {rss:?}; stderr:\n{stderr}"));
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("probe {args:?}: stdout is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    Measured {
        code,
        v,
        elapsed,
        hwm_kib,
    }
}

/// Asserts a verdict among `reasons` ("ok" for success) within the deadline
/// and under the memory ceiling, and prints the measurement.
#[track_caller]
fn check(case: &str, m: &Measured, reasons: &[&str]) {
    let v = &m.v;
    let got = if v["status"] == "ok" {
        "ok"
    } else {
        v["reason"].as_str().unwrap_or("?")
    };
    eprintln!(
        "hostile {case}: {got} after {} ms (probe latency {} ms), VmHWM {} KiB; {}",
        m.elapsed.as_millis(),
        v["latency_ms"],
        m.hwm_kib,
        v["message"].as_str().unwrap_or("")
    );
    assert!(
        reasons.contains(&got),
        "{case}: expected {reasons:?}: {v:#}"
    );
    assert_eq!(m.code, if got == "ok" { 0 } else { 1 }, "{case}: exit code");
    assert!(
        m.elapsed < Duration::from_secs(TIMEOUT_S) + SLACK,
        "{case}: took {:?} with --timeout {TIMEOUT_S}: {v:#}",
        m.elapsed
    );
    assert!(
        v["latency_ms"]
            .as_u64()
            .is_some_and(|l| l <= TIMEOUT_S * 1000 + 1500),
        "{case}: the probe's own latency exceeds its deadline: {v:#}"
    );
    assert!(
        m.hwm_kib <= PROBE_HWM_CEILING_KIB,
        "{case}: peak RSS {} KiB over the {PROBE_HWM_CEILING_KIB} KiB ceiling",
        m.hwm_kib
    );
    let msg = v["message"].as_str().unwrap_or("");
    assert!(
        !msg.contains(PASSWORD),
        "{case}: password in message: {msg}"
    );
    assert!(
        msg.len() <= 400,
        "{case}: camera-controlled text not cut: {msg}"
    );
}

// ---------------------------------------------------------------- RTSP

/// Baseline for the ceilings: a healthy camera (the one-session fake, real H.264).
#[test]
fn healthy_fake_rtsp_camera_is_ok() {
    let cam = FakeRtspCamera::start(RtspFault::OneSession);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp good camera (baseline)", &m, &["ok"]);
    assert_eq!(m.v["media"]["codec"], "h264");
    assert_eq!(m.v["media"]["width"], 320);
}

#[test]
fn rtsp_accept_then_silence_times_out() {
    let fake = FakeSilentServer::start();
    let m = probe_measured(&[&fake.url("rtsp", "/live")]);
    check("rtsp accept-then-silence", &m, &["timeout"]);
}

#[test]
fn rtsp_binary_garbage_is_protocol() {
    let fake = FakeGarbageServer::start();
    let m = probe_measured(&[&fake.url("rtsp", "/live")]);
    check("rtsp binary garbage", &m, &["protocol"]);
}

#[test]
fn rtsp_garbage_headers_are_protocol() {
    let cam = FakeRtspCamera::start(RtspFault::GarbageHeaders);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp garbage headers", &m, &["protocol"]);
}

#[test]
fn rtsp_10mb_header_is_protocol_in_bounded_memory() {
    let cam = FakeRtspCamera::start(RtspFault::HugeHeader);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp 10 MiB header", &m, &["protocol"]);
}

#[test]
fn rtsp_endless_p_frames_without_keyframe_is_no_frame() {
    let cam = FakeRtspCamera::start(RtspFault::PFramesOnly);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp P-frames only", &m, &["no_frame"]);
    assert!(
        m.v["stages"]["play_ms"].is_u64(),
        "PLAY succeeded, so the failure is in the first-frame stage: {:#}",
        m.v
    );
}

/// Frames, but no key frame before the deadline (key frames further apart
/// than the timeout): the camera answers, so `no_frame` naming the frames,
/// not `timeout`.
#[test]
fn rtsp_p_frames_until_the_deadline_are_no_frame_not_timeout() {
    let cam = FakeRtspCamera::start(RtspFault::PFramesAt15Fps);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp P-frames at 15 fps", &m, &["no_frame"]);
    let message = m.v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("frames but no key frame within"),
        "{:#}",
        m.v
    );
}

/// A stream joined in the middle of a fragmented key frame: retina rejects
/// the first packets ("FU-A has start bit unset …"); the probe skips them and
/// proves the next clean key frame.
#[test]
fn rtsp_joined_mid_frame_skips_the_broken_fragments_and_is_ok() {
    let cam = FakeRtspCamera::start(RtspFault::JoinedMidFrame);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp joined mid-frame", &m, &["ok"]);
    assert_eq!(m.v["media"]["codec"], "h264");
}

/// Only broken fragments until the deadline: `no_frame`, naming the last
/// error and how many packets were skipped.
#[test]
fn rtsp_only_broken_fragments_is_no_frame_with_the_last_error() {
    let cam = FakeRtspCamera::start(RtspFault::FragmentsWithoutStart);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp fragments without start", &m, &["no_frame"]);
    let message = m.v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("damaged packets") && message.contains("start bit unset"),
        "{:#}",
        m.v
    );
}

#[test]
fn rtsp_endless_random_payloads_are_no_frame() {
    let cam = FakeRtspCamera::start(RtspFault::RandomPayload);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp random RTP payloads", &m, &["no_frame"]);
    assert!(
        m.v["stages"]["play_ms"].is_u64(),
        "PLAY succeeded, so the failure is in the first-frame stage: {:#}",
        m.v
    );
}

#[test]
fn rtsp_wrong_cseq_is_protocol() {
    let cam = FakeRtspCamera::start(RtspFault::WrongCseq);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp wrong CSeq", &m, &["protocol"]);
}

#[test]
fn rtsp_redirect_loop_is_protocol() {
    let cam = FakeRtspCamera::start(RtspFault::RedirectLoop);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp redirect loop", &m, &["protocol"]);
    assert!(
        m.v["message"].as_str().unwrap_or("").contains("302"),
        "the message names the redirect: {:#}",
        m.v
    );
    assert!(
        cam.stats
            .describes
            .load(std::sync::atomic::Ordering::Relaxed)
            <= 5,
        "the probe must not chase the loop"
    );
}

#[test]
fn rtsp_401_loop_with_changing_nonces_is_auth() {
    let cam = FakeRtspCamera::start(RtspFault::AuthLoop);
    let m = probe_measured(&[
        "--username",
        USER,
        "--password",
        PASSWORD,
        &cam.url("/live"),
    ]);
    check("rtsp 401 loop", &m, &["auth"]);
    assert!(
        cam.stats
            .describes
            .load(std::sync::atomic::Ordering::Relaxed)
            <= 4,
        "the probe must not chase fresh nonces forever"
    );
}

#[test]
fn rtsp_slowloris_times_out() {
    let cam = FakeRtspCamera::start(RtspFault::Slowloris);
    let m = probe_measured(&[&cam.url("/live")]);
    check("rtsp slowloris 1 B/s", &m, &["timeout"]);
}

/// A camera with a one-session limit that forgets a session only on TEARDOWN
/// (or its 60 s timeout): back-to-back probes both succeed only because each
/// one tears its session down; while someone else holds the session, the
/// probe fails with the camera's 453 named in the message.
#[test]
fn one_session_camera_admits_probe_after_probe() {
    use std::sync::atomic::Ordering::Relaxed;
    let cam = FakeRtspCamera::start(RtspFault::OneSession);
    let url = cam.url("/live");
    for round in 1..=2 {
        let m = probe_measured(&[&url]);
        check(
            &format!("rtsp one-session camera, probe {round}"),
            &m,
            &["ok"],
        );
    }
    assert_eq!(cam.stats.refused.load(Relaxed), 0, "no probe was refused");
    assert_eq!(
        cam.stats.teardowns.load(Relaxed),
        2,
        "one TEARDOWN per probe"
    );

    let hog = SessionHog::take(&url);
    let m = probe_measured(&[&url]);
    check("rtsp one-session camera, session taken", &m, &["protocol"]);
    let msg = m.v["message"].as_str().unwrap_or("");
    assert!(msg.contains("453"), "message names the 453: {msg}");
    assert!(cam.stats.refused.load(Relaxed) >= 1);
    hog.teardown();
    let m = probe_measured(&[&url]);
    check("rtsp one-session camera, session freed", &m, &["ok"]);
}

// ---------------------------------------------------------------- HTTP

#[test]
fn http_accept_then_silence_times_out() {
    let fake = FakeSilentServer::start();
    let m = probe_measured(&["--kind", "mjpeg", &fake.url("http", "/stream.mjpg")]);
    check("http accept-then-silence", &m, &["timeout"]);
}

#[test]
fn http_redirect_loop_is_protocol() {
    let cam = FakeHttpCamera::start(HttpFault::RedirectLoop);
    let m = probe_measured(&["--kind", "mjpeg", &cam.url()]);
    check("http redirect loop", &m, &["protocol"]);
    assert!(
        cam.requests.load(std::sync::atomic::Ordering::Relaxed) <= 5,
        "redirects are capped"
    );
}

#[test]
fn http_401_loop_with_changing_nonces_is_auth() {
    let cam = FakeHttpCamera::start(HttpFault::AuthLoop);
    let m = probe_measured(&[
        "--kind",
        "mjpeg",
        "--username",
        USER,
        "--password",
        PASSWORD,
        &cam.url(),
    ]);
    check("http 401 loop", &m, &["auth"]);
    assert_eq!(
        cam.requests.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "one try without, one with credentials"
    );
}

/// Frames are found by JPEG markers, not boundaries: a camera that forgets
/// its boundary still proves video.
#[test]
fn mjpeg_without_boundary_is_ok() {
    let cam = FakeHttpCamera::start(HttpFault::NoBoundary);
    let m = probe_measured(&["--kind", "mjpeg", &cam.url()]);
    check("mjpeg without boundary", &m, &["ok"]);
    assert_eq!(m.v["media"]["width"], 320);
}

#[test]
fn mjpeg_100mb_part_is_too_large() {
    let cam = FakeHttpCamera::start(HttpFault::HugePart);
    let m = probe_measured(&["--kind", "mjpeg", &cam.url()]);
    check("mjpeg 100 MB part", &m, &["too_large"]);
}

#[test]
fn mjpeg_never_ending_jpeg_is_timeout_or_too_large() {
    let fake = FakeEndlessJpegServer::start();
    let m = probe_measured(&["--kind", "mjpeg", &fake.url()]);
    check("mjpeg never-ending JPEG", &m, &["timeout", "too_large"]);
}

#[test]
fn mjpeg_stall_mid_frame_times_out() {
    let fake = FakeStallMidFrameServer::start();
    let m = probe_measured(&["--kind", "mjpeg", &fake.url()]);
    check("mjpeg stall mid-frame", &m, &["timeout"]);
}

#[test]
fn http_slowloris_times_out() {
    let cam = FakeHttpCamera::start(HttpFault::Slowloris);
    let m = probe_measured(&["--kind", "snapshot", &cam.url()]);
    check("http slowloris 1 B/s", &m, &["timeout"]);
}

// ---------------------------------------------------------------- the fleet

/// Open file descriptors of `pid`.
fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The smallest fd count seen over `window` (probes in flight hold sockets
/// for a moment; the minimum is what stays).
fn settled_fds(pid: i32, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut min = usize::MAX;
    while Instant::now() < end {
        min = min.min(fd_count(pid));
        thread::sleep(Duration::from_millis(50));
    }
    min
}

/// `VmHWM` of `pid` in KiB.
fn vm_hwm_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Every hostile camera at once in one `streampulse run`, every 5 s, with two
/// healthy cameras: each hostile stream gets its reason, the healthy ones keep
/// their cadence and fast probes, peak RSS stays under
/// [`FLEET_HWM_CEILING_KIB`], and removing the hostile streams (hot reload)
/// brings the fd count back to where it was before they were added.
#[test]
fn hostile_fleet_delays_no_one_and_leaks_no_fds() {
    let rtsp = RtspServer::start();
    let snap = SnapshotServer::start();
    let silent = FakeSilentServer::start();
    let garbage = FakeGarbageServer::start();
    let endless = FakeEndlessJpegServer::start();
    let stall = FakeStallMidFrameServer::start();
    let rtsp_fakes: Vec<(&str, FakeRtspCamera, &[&str])> = vec![
        (
            "r-garbage-headers",
            FakeRtspCamera::start(RtspFault::GarbageHeaders),
            &["protocol"],
        ),
        (
            "r-huge-header",
            FakeRtspCamera::start(RtspFault::HugeHeader),
            &["protocol"],
        ),
        (
            "r-wrong-cseq",
            FakeRtspCamera::start(RtspFault::WrongCseq),
            &["protocol"],
        ),
        (
            "r-redirect",
            FakeRtspCamera::start(RtspFault::RedirectLoop),
            &["protocol"],
        ),
        (
            "r-auth-loop",
            FakeRtspCamera::start(RtspFault::AuthLoop),
            &["auth"],
        ),
        (
            "r-p-frames",
            FakeRtspCamera::start(RtspFault::PFramesOnly),
            &["no_frame"],
        ),
        (
            "r-random",
            FakeRtspCamera::start(RtspFault::RandomPayload),
            &["no_frame"],
        ),
        (
            "r-slowloris",
            FakeRtspCamera::start(RtspFault::Slowloris),
            &["timeout"],
        ),
        (
            "r-one-session",
            FakeRtspCamera::start(RtspFault::OneSession),
            &["ok"],
        ),
    ];
    let http_fakes: Vec<(&str, FakeHttpCamera, &[&str])> = vec![
        (
            "h-redirect",
            FakeHttpCamera::start(HttpFault::RedirectLoop),
            &["protocol"],
        ),
        (
            "h-auth-loop",
            FakeHttpCamera::start(HttpFault::AuthLoop),
            &["auth"],
        ),
        (
            "h-no-boundary",
            FakeHttpCamera::start(HttpFault::NoBoundary),
            &["ok"],
        ),
        (
            "h-huge-part",
            FakeHttpCamera::start(HttpFault::HugePart),
            &["too_large"],
        ),
        (
            "h-slowloris",
            FakeHttpCamera::start(HttpFault::Slowloris),
            &["timeout"],
        ),
    ];
    let mut hostile: Vec<(String, String, &[&str])> = vec![
        ("r-silent".into(), silent.url("rtsp", "/live"), &["timeout"]),
        (
            "r-garbage".into(),
            garbage.url("rtsp", "/live"),
            &["protocol"],
        ),
        (
            "h-silent".into(),
            silent.url("http", "/stream.mjpg"),
            &["timeout"],
        ),
        (
            "h-endless-jpeg".into(),
            endless.url(),
            &["timeout", "too_large"],
        ),
        ("h-stall".into(), stall.url(), &["timeout"]),
    ];
    for (name, cam, reasons) in &rtsp_fakes {
        hostile.push((name.to_string(), cam.url("/live"), reasons));
    }
    for (name, cam, reasons) in &http_fakes {
        hostile.push((name.to_string(), cam.url(), reasons));
    }

    let dir = temp_dir("hostile-fleet");
    let config = dir.path().join("config.yaml");
    let data = dir.path().join("data");
    let healthy = format!(
        "heartbeat_seconds: 5\nmonitor:\n  max_concurrent_probes: 40\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n\
         streams:\n- name: healthy-rtsp\n  url: {}\n- name: healthy-snap\n  url: {}\n",
        rtsp.url("/h264"),
        snap.url("/snap.jpg"),
    );
    std::fs::write(&config, &healthy).unwrap();
    let app = App::start(&config, &data);
    let pid = app.pid();
    app.wait_status(Duration::from_secs(40), "healthy streams up", |v| {
        ["healthy-rtsp", "healthy-snap"]
            .iter()
            .all(|n| v[*n]["state"] == "up" && v[*n]["probes_total"].as_u64() >= Some(2))
    });
    let fds_before = settled_fds(pid, Duration::from_secs(2));

    // Add the fleet (hot reload). Auth-loop cameras get credentials.
    let mut full = healthy.clone();
    for (name, url, _) in &hostile {
        full.push_str(&format!(
            "- name: {name}\n  url: {url}\n  timeout: {TIMEOUT_S}\n"
        ));
        if name.ends_with("auth-loop") {
            full.push_str(&format!("  username: {USER}\n  password: {PASSWORD}\n"));
        }
        if name.starts_with("h-") {
            full.push_str("  kind: mjpeg\n");
        }
    }
    std::fs::write(&config, &full).unwrap();
    let fleet_start_ms = now_ms();
    let mut fds_max = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        fds_max = fds_max.max(fd_count(pid));
        let (_, v) = app.get("/api/status");
        if hostile
            .iter()
            .all(|(n, _, _)| v[n.as_str()]["probes_total"].as_u64() >= Some(3))
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet did not get 3 probes each within 60 s: {v:#}"
        );
        thread::sleep(Duration::from_millis(200));
    };
    let fleet_end_ms = now_ms();
    for (name, _, reasons) in &hostile {
        let s = &status[name.as_str()];
        let got = if s["status"] == "ok" {
            "ok"
        } else {
            s["reason"].as_str().unwrap_or("?")
        };
        eprintln!(
            "hostile fleet {name}: {got} in {} ms ({} probes, {} failed)",
            s["latency"], s["probes_total"], s["failures_total"]
        );
        assert!(
            reasons.contains(&got),
            "{name}: expected {reasons:?}: {s:#}"
        );
        assert!(
            s["latency"]
                .as_u64()
                .is_some_and(|l| l <= TIMEOUT_S * 1000 + 1500),
            "{name}: verdict later than its deadline: {s:#}"
        );
    }
    assert_eq!(
        status["r-one-session"]["failures_total"], 0,
        "every probe of the one-session camera got in (TEARDOWN works): {:#}",
        status["r-one-session"]
    );
    let hwm = vm_hwm_kib(pid);
    eprintln!("hostile fleet: VmHWM {hwm} KiB, fds {fds_before} before, up to {fds_max} during");

    // Remove the fleet again: whatever it held must be released.
    std::fs::write(&config, &healthy).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let fds_after = loop {
        // In-flight HTTP probes end at their own deadline, TEARDOWNs within 5 s.
        let n = settled_fds(pid, Duration::from_secs(2));
        if n <= fds_before + 2 || Instant::now() > deadline {
            break n;
        }
    };
    eprintln!("hostile fleet: fds {fds_after} after the fleet was removed");
    assert!(
        fds_after <= fds_before + 2,
        "fd leak: {fds_before} before the hostile fleet, {fds_after} after it was removed"
    );
    assert!(
        hwm <= FLEET_HWM_CEILING_KIB,
        "daemon peak RSS {hwm} KiB over the {FLEET_HWM_CEILING_KIB} KiB ceiling"
    );

    // The healthy streams, from the database: every probe while the fleet ran
    // was ok, fast, and on schedule.
    thread::sleep(Duration::from_millis(1500)); // one more commit
    let db = rusqlite::Connection::open(data.join("streampulse.db")).unwrap();
    let stored = super::util::stored_heartbeats(&db);
    for name in ["healthy-rtsp", "healthy-snap"] {
        let rows: Vec<(i64, bool, i64)> = stored
            .iter()
            .filter(|(n, h)| n == name && (fleet_start_ms..=fleet_end_ms).contains(&h.ts_ms))
            .map(|(_, h)| (h.ts_ms, h.ok, i64::from(h.latency_ms)))
            .collect();
        eprintln!(
            "hostile fleet {name}: latencies {:?} ms while the fleet ran",
            rows.iter().map(|r| r.2).collect::<Vec<_>>()
        );
        assert!(rows.len() >= 2, "{name}: too few heartbeats: {rows:?}");
        assert!(rows.iter().all(|r| r.1), "{name}: a probe failed: {rows:?}");
        // Far below the hostile deadline: nothing made a healthy probe wait.
        assert!(
            rows.iter().all(|r| r.2 < 2_000),
            "{name}: slow probes while the fleet ran: {rows:?}"
        );
        let gaps: Vec<i64> = rows.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(
            gaps.iter().all(|g| *g < 7_500),
            "{name}: cadence broken: gaps {gaps:?} ms"
        );
    }
    assert_eq!(app.terminate(), Some(0), "SIGTERM stops cleanly");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
