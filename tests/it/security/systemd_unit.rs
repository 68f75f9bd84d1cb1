//! The systemd unit (issue 8): hardened as `systemd-analyze security`
//! scores it, and running as the unprivileged user the image creates.

use super::manifest_dir;

/// The appliance's unit: `systemd-analyze security --offline=true` scores it
/// (lower is better; 1.9 when written, 2.2 since the box camera's devices) and the service runs as the
/// unprivileged `streampulse` user that the Buildroot package creates with
/// a fixed uid that is not 0.
#[test]
fn systemd_unit_is_hardened_and_not_root() {
    let unit = manifest_dir().join("overlay/etc/systemd/system/streampulse.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("User="))
        .expect("the unit sets User=");
    assert_ne!(user, "root");
    assert!(!text.contains("DynamicUser="), "a fixed user owns /data");
    assert!(
        text.lines().any(|l| l == "DevicePolicy=closed"),
        "devices not closed by default"
    );
    let mk = std::fs::read_to_string(
        manifest_dir().join("buildroot/package/streampulse/streampulse.mk"),
    )
    .unwrap();
    let users = mk
        .split("define STREAMPULSE_USERS")
        .nth(1)
        .and_then(|r| r.split("endef").next())
        .expect("the package defines STREAMPULSE_USERS");
    let fields: Vec<&str> = users.split_whitespace().collect();
    assert_eq!(
        fields[0], user,
        "the unit's user is the one the package creates"
    );
    let uid: i64 = fields[1].parse().unwrap();
    assert!(uid > 0, "uid {uid}");
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze is missing: apt-get install systemd (make deps)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for streampulse.service:")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{report}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("systemd-analyze security: {score}");
    // 1.9 until the box camera (issue 21): camera devices instead of
    // PrivateDevices= (+0.2) and their device ACL (+0.1); what the ACL lets
    // through is asserted below and, under systemd, by the QEMU boot test.
    assert!(score <= 2.2, "exposure {score} (was 2.2):\n{report}");
    for must in [
        "✓ User=/DynamicUser=",
        "✓ NoNewPrivileges=",
        "✓ CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "✓ ProtectSystem=",
        "✓ ProtectHome=",
        "✓ RestrictNamespaces=~user",
    ] {
        assert!(report.contains(must), "missing {must:?}:\n{report}");
    }
    // The devices: the pseudo ones (DevicePolicy=closed) and the camera's
    // classes, nothing else (no block devices, no /dev/mem).
    let acl = report
        .lines()
        .find(|l| l.contains("DeviceAllow="))
        .unwrap_or_else(|| panic!("no DeviceAllow= line:\n{report}"));
    assert!(
        acl.contains("char-dma_heap:rw char-media:rw char-video4linux:rw"),
        "the device ACL is not the camera's classes only: {acl}"
    );
}
