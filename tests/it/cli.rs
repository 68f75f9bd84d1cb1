//! The field engineer's CLI: `check-config` and `--version`.

use super::util::{streampulse, temp_dir};

#[test]
fn check_config_accepts_the_repo_config() {
    let out = streampulse()
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok: 7 streams"), "{text}");
    assert!(
        !text.contains("s3cret-Pa55"),
        "check-config prints a password: {text}"
    );
}

#[test]
fn check_config_names_file_line_and_column() {
    let dir = temp_dir("check_config_bad");
    let p = dir.path().join("config.yaml");
    std::fs::write(
        &p,
        "heartbeat_seconds: 10\nstreams:\n  - name: a\n    url: rtsp://u:pw@h/x\n    interval: 2\n",
    )
    .unwrap();
    let out = streampulse().arg("check-config").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.yaml:3:"),
        "error should point at the stream on line 3: {err}"
    );
    assert!(
        err.contains("interval") && err.contains("at least 5"),
        "{err}"
    );
    assert!(!err.contains(":pw@"), "{err}");
}

#[test]
fn version_prints() {
    let out = streampulse().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("streampulse "));
}
