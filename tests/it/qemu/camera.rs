//! The box's own camera under systemd (issue 21): a V4L2 webcam from the
//! kernel's `vivid` test driver (Debian's arm64 kernel; the initramfs loads
//! it, like a USB webcam plugged in at boot), watched and relayed by the
//! daemon inside the unit's sandbox.
//!
//! Asserted: udev gives `/dev/video0` to group `video` (0660) and the daemon
//! runs in that group; the unit's device filter (`DevicePolicy=closed` +
//! `DeviceAllow=`) lets the service's cgroup open the camera and refuses
//! everything else even to root (the disk, `/dev/mem`); the stream is up
//! with a real frame; its live stream through the port forward carries
//! pictures that decode at the stream's size; vivid's "Disconnect" control
//! (a simulated USB unplug; the device stays gone while a handle is open)
//! takes the stream down with reason `capture`, and it comes back once the
//! device is reconnected.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::checks::proc_field;
use super::guest::Guest;

/// The stream's name on the test card.
pub(super) const CAMERA: &str = "Box camera";

/// The camera's entry under `streams:` in the card's config.yaml. Small and
/// slow: the guest is emulated (TCG), and vivid draws every frame on its CPU.
pub(super) fn camera_config() -> String {
    format!(
        "- name: {CAMERA}\n  url: v4l2:///dev/video0\n  interval: 10\n  timeout: 10\n  capture:\n    width: 320\n    height: 240\n    framerate: 5\n"
    )
}

/// `cmd` run as root inside the daemon's cgroup (where the unit's device
/// filter applies) and mount namespace: its exit status and output.
fn in_unit(guest: &mut Guest, pid: &str, cmd: &str) -> (i32, String) {
    let cgroup = guest.sh("systemctl show -P ControlGroup streampulse.service");
    guest.sh_timeout(
        &format!(
            "sh -c 'echo $$ >/sys/fs/cgroup{cgroup}/cgroup.procs && exec nsenter -t {pid} -m -- {cmd}'"
        ),
        Duration::from_secs(30),
    )
}

/// The camera node belongs to group video, the daemon is in it, and the
/// unit's device filter lets the camera through and nothing else.
pub(super) fn assert_device_policy(guest: &mut Guest, pid: &str) {
    let node = guest.sh("stat -c '%G %a' /dev/video0");
    assert_eq!(node, "video 660", "udev's rule for /dev/video0");
    let video_gid = guest.sh("getent group video | cut -d: -f3");
    let status = guest.sh(&format!("cat /proc/{pid}/status"));
    assert!(
        proc_field(&status, "Groups")
            .split_whitespace()
            .any(|g| g == video_gid),
        "the daemon is not in group video ({video_gid}): SupplementaryGroups=\n{status}"
    );
    let (rc, out) = in_unit(guest, pid, "dd if=/dev/video0 of=/dev/null count=0");
    assert_eq!(rc, 0, "the unit's device filter refuses the camera: {out}");
    for dev in ["/dev/vda", "/dev/mem"] {
        let (rc, out) = in_unit(guest, pid, &format!("dd if={dev} of=/dev/null count=1"));
        assert!(
            rc != 0 && out.contains("Operation not permitted"),
            "the unit's device filter lets root in the service open {dev} (rc {rc}): {out}"
        );
    }
    eprintln!("qemu: device filter: the service opens /dev/video0; /dev/vda and /dev/mem refused");
}

/// The stream's entry in `/api/status`, once `pred` holds.
fn wait_camera(guest: &mut Guest, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let status = guest.wait_json("/api/status", what, |v| pred(&v[CAMERA]));
    status[CAMERA].clone()
}

/// JPEG parts of a multipart live stream (`Content-Length` per part).
fn jpeg_parts(body: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(he) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..he]);
        let Some(n) = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        else {
            break;
        };
        if rest.len() < he + 4 + n {
            break;
        }
        parts.push(&rest[he + 4..he + 4 + n]);
        rest = &rest[he + 4 + n..];
    }
    parts
}

/// The camera is watched (up, with a real frame), plays live through the
/// port forward, goes down when unplugged and comes back.
pub(super) fn assert_box_camera(guest: &mut Guest) {
    let started = Instant::now();
    let cam = wait_camera(guest, "the box camera up", |c| c["status"] == "ok");
    eprintln!(
        "qemu: box camera (vivid) up {:.0} s after the daemon ran: {cam}",
        started.elapsed().as_secs_f64()
    );
    let (w, h) = (
        cam["width"].as_u64().unwrap_or(0),
        cam["height"].as_u64().unwrap_or(0),
    );
    assert!(
        (1..=320).contains(&w) && (1..=240).contains(&h),
        "the picture size is within capture's 320x240 cap: {cam}"
    );

    // Live, as a browser or an NVR on the LAN gets it.
    let path = format!("/live/{}/stream", CAMERA.replace(' ', "%20"));
    let (code, content_type, body) = guest.session_stream(&path, 256 * 1024);
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    assert!(
        content_type.starts_with("multipart/x-mixed-replace"),
        "the box camera's live stream is MJPEG: {content_type}"
    );
    let parts = jpeg_parts(&body);
    assert!(
        parts.len() >= 3,
        "{} JPEG parts in {} bytes",
        parts.len(),
        body.len()
    );
    for jpeg in &parts {
        let d = streampulse::probe::jpeg::decode(jpeg).expect("live JPEGs decode");
        assert_eq!((u64::from(d.width), u64::from(d.height)), (w, h));
    }
    eprintln!(
        "qemu: box camera live: {} JPEGs of {w}x{h} through the port forward",
        parts.len()
    );

    // Unplugged: vivid's Disconnect button; a handle held open keeps the
    // device gone (vivid reconnects when its last user closes it).
    let holder = guest.sh("sleep 1000 3</dev/video0 >/dev/null 2>&1 & echo $!");
    guest.sh("v4l2-ctl -d /dev/video0 --set-ctrl disconnect=1");
    let unplugged = Instant::now();
    let down = wait_camera(guest, "the unplugged camera down", |c| {
        c["status"] == "fail" && c["reason"] == "capture"
    });
    eprintln!(
        "qemu: box camera unplugged: failing {:.0} s later: {}",
        unplugged.elapsed().as_secs_f64(),
        down["message"]
    );
    guest.sh(&format!("kill {holder}"));
    let replugged = Instant::now();
    wait_camera(guest, "the camera back after the replug", |c| {
        c["status"] == "ok"
    });
    eprintln!(
        "qemu: box camera back {:.0} s after the replug",
        replugged.elapsed().as_secs_f64()
    );
}
