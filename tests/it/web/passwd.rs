//! `streampulse passwd`: a hash the login accepts, printed or written into
//! a config file; short passwords refused.

use std::process::Stdio;
use std::time::Duration;

use super::PASSWORD;
use crate::util::{streampulse, temp_dir};

/// `streampulse passwd` prints a hash the login accepts, or writes it into
/// a config file; short passwords are refused.
#[test]
fn passwd_command() {
    let run = |args: &[&str], stdin: &str| {
        let mut c = streampulse()
            .arg("passwd")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let out = run(&[], &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(streampulse::credentials::verify_password(PASSWORD, &hash));

    let dir = temp_dir("web_passwd");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "heartbeat_seconds: 20\nstreams: []\n").unwrap();
    let out = run(
        &["--config", cfg.to_str().unwrap()],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = streampulse::config::load(&cfg).unwrap();
    assert!(streampulse::credentials::verify_password(
        PASSWORD,
        c.admin_password_hash.as_deref().unwrap()
    ));
    assert_eq!(c.heartbeat, Duration::from_secs(20), "other settings kept");

    let out = run(&[], "short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least"));
}
