//! `streampulse network apply` (the real binary) into temp dirs: the files
//! networkd, wpa_supplicant and the hostname script read, written once and
//! then left alone; `--reload` calls a stand-in `systemctl` that records its
//! arguments; the real systemd-networkd reads the generated files in a
//! network namespace, the real wpa_supplicant its config. And `check-config` on configs with `network:`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::util::{output_ok, streampulse, temp_dir};

const PSK: &str = "correct horse \"battery\" #staple";

fn config(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("config.yaml");
    std::fs::write(
        &p,
        format!(
            "streams: []\nnetwork:\n  hostname: Camera-Hall\n  ethernet:\n    address: 10.0.2.15/24\n    \
             gateway: 10.0.2.2\n    dns: [10.0.2.3]\n  wifi:\n    ssid: \"Caf\u{e9} \\\"Nord\\\"\"\n    \
             psk: '{PSK}'\n    country: gb\n"
        ),
    )
    .unwrap();
    p
}

fn apply(dir: &Path, config: &Path, reload: bool) -> std::process::Output {
    let mut cmd = streampulse();
    cmd.args(["network", "apply", "--config"])
        .arg(config)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--data-dir")
        .arg(dir.join("data"));
    if reload {
        // A stand-in systemctl first on PATH: it records its arguments.
        let bin = dir.join("stand-in-bin");
        std::fs::create_dir_all(&bin).unwrap();
        let sh = bin.join("systemctl");
        std::fs::write(
            &sh,
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\n",
                dir.join("systemctl.log").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        cmd.arg("--reload").env("PATH", path);
    }
    cmd.output().unwrap()
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// First run writes every file (the key only into the 0600 one) and asks
/// systemd to reload networkd, restart the supplicant and re-set the name;
/// the second run finds nothing to do and calls nothing.
#[test]
fn apply_writes_once_and_reloads_only_what_changed() {
    let t = temp_dir("network_apply");
    let cfg = config(t.path());
    let out = apply(t.path(), &cfg, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let net = t.path().join("run/systemd/network");
    let eth = read(net.join("10-streampulse-ethernet.network"));
    assert!(
        eth.contains("[Match]\nType=ether\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n"),
        "{eth}"
    );
    let wifi = read(net.join("10-streampulse-wifi.network"));
    assert!(
        wifi.contains("Name=wlan0") && wifi.contains("DHCP=yes"),
        "{wifi}"
    );
    let wpa_path = t.path().join("run/streampulse/wpa_supplicant-wlan0.conf");
    let wpa = read(&wpa_path);
    assert!(wpa.contains("country=GB\n"), "{wpa}");
    // "Café \"Nord\"" as hex: no quoting to get wrong.
    assert!(wpa.contains("\tssid=436166c3a920224e6f726422\n"), "{wpa}");
    assert!(wpa.contains(&format!("\tpsk=\"{PSK}\"\n")), "{wpa}");
    let mode = std::fs::metadata(&wpa_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(read(t.path().join("data/system/hostname")), "camera-hall\n");
    for f in [
        net.join("10-streampulse-ethernet.network"),
        net.join("10-streampulse-wifi.network"),
    ] {
        assert!(!read(&f).contains("horse"), "{}", f.display());
    }
    assert!(!stdout.contains("horse"), "{stdout}");
    assert_eq!(
        read(t.path().join("systemctl.log")),
        "--no-block try-reload-or-restart systemd-networkd.service\n\
         --no-block try-restart wpa_supplicant@wlan0.service\n\
         --no-block restart streampulse-hostname.service\n"
    );

    std::fs::remove_file(t.path().join("systemctl.log")).unwrap();
    let again = apply(t.path(), &cfg, true);
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "network: nothing changed\n"
    );
    assert!(
        !t.path().join("systemctl.log").exists(),
        "nothing to reload"
    );

    // Settings removed: back to the image's defaults; a broken config
    // leaves the files alone.
    std::fs::write(&cfg, "streams: []\n").unwrap();
    let removed = apply(t.path(), &cfg, false);
    let s = String::from_utf8_lossy(&removed.stdout);
    assert!(s.contains("removed") && s.contains("hostname"), "{s}");
    assert!(!net.join("10-streampulse-ethernet.network").exists());
    assert!(!read(&wpa_path).contains("network={"));
    std::fs::write(&cfg, "streams: []\nnetwork:\n  hostname: -bad\n").unwrap();
    let bad = apply(t.path(), &cfg, false);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("config.yaml:3:"));
}

/// No config at all (a fresh card before setup): the supplicant still gets
/// its (idle) file, nothing else is written.
#[test]
fn apply_without_a_config_writes_the_idle_supplicant_file() {
    let t = temp_dir("network_apply_none");
    let out = apply(t.path(), &t.path().join("missing.yaml"), false);
    assert!(out.status.success());
    let wpa = read(t.path().join("run/streampulse/wpa_supplicant-wlan0.conf"));
    assert!(
        wpa.contains("ctrl_interface=") && !wpa.contains("network={"),
        "{wpa}"
    );
    assert!(!t.path().join("run/systemd/network").exists());
    assert!(!t.path().join("data/system/hostname").exists());
}

/// `check-config` accepts `network:` and names the line of each bad key,
/// never quoting the Wi-Fi key.
#[test]
fn check_config_validates_network() {
    let t = temp_dir("network_check");
    let cfg = config(t.path());
    let out = output_ok(streampulse().arg("check-config").arg(&cfg));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "  network: hostname camera-hall, ethernet 10.0.2.15/24 via 10.0.2.2, \
             Wi-Fi \"Café \\\"Nord\\\"\" (WPA-PSK, GB) DHCP\n"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("horse"), "{stdout}");
    let head = "streams: []\nnetwork:\n";
    for (body, line, want) in [
        ("  hostname: a.b\n", 3, "network.hostname"),
        (
            "  ethernet: { address: 10.0.0.5/24, gateway: 10.9.0.1 }\n",
            3,
            "network.ethernet.gateway",
        ),
        (
            "  ethernet:\n    address: 300.0.0.5/24\n",
            4,
            "network.ethernet.address",
        ),
        (
            "  wifi:\n    ssid: x\n    psk: sekrit\n    country: GB\n",
            5,
            "network.wifi.psk",
        ),
        (
            "  wifi:\n    ssid: x\n    psk: sekrit-long\n    country: ZZ\n",
            6,
            "network.wifi.country",
        ),
        ("  wifi:\n    ssid: x\n    pks: sekrit-long\n", 5, "pks"),
    ] {
        std::fs::write(&cfg, format!("{head}{body}")).unwrap();
        let out = streampulse()
            .arg("check-config")
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}");
        assert!(
            err.contains(&format!("config.yaml:{line}:")) && err.contains(want),
            "{body}: {err}"
        );
        assert!(!err.contains("sekrit"), "{err}");
    }
}

/// With `ethernet: {}` (DHCP) the generated file says exactly what the
/// image's 20-wired.network says (comments aside), so choosing DHCP
/// explicitly changes nothing. (systemd has no offline checker for
/// .network files; the QEMU boot test is where networkd reads them.)
#[test]
fn dhcp_ethernet_file_is_the_image_default() {
    let t = temp_dir("network_dhcp");
    let cfg = t.path().join("config.yaml");
    std::fs::write(&cfg, "streams: []\nnetwork:\n  ethernet: {}\n").unwrap();
    assert!(apply(t.path(), &cfg, false).status.success());
    let settings = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        settings(read(
            t.path()
                .join("run/systemd/network/10-streampulse-ethernet.network")
        )),
        settings(read(
            crate::util::manifest_dir().join("overlay/etc/systemd/network/20-wired.network")
        ))
    );
}

/// The real systemd-networkd (this machine's, systemd 252 on Debian 12,
/// the QEMU test's too) reads the generated files in a network namespace
/// of its own and configures the static address and gateway on `eth0` (one
/// end of a veth pair), with no warning about any line of either file.
/// Root only (CI runs as root), like `netns.rs`. DHCP and Wi-Fi are not run.
#[test]
fn networkd_applies_the_generated_files() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (ip netns); CI runs as root"
    );
    let networkd = Path::new("/lib/systemd/systemd-networkd");
    assert!(
        networkd.exists(),
        "systemd-networkd is missing: apt-get install systemd (make deps)"
    );
    let t = temp_dir("network_networkd");
    let cfg = config(t.path());
    assert!(apply(t.path(), &cfg, false).status.success());

    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let ns = Ns(format!("sp-networkd-{}", std::process::id()));
    // The cable's other end, in a namespace of its own (no dummy driver
    // here; a veth end is "ether" too and would match the same file).
    let far = Ns(format!("sp-networkd-far-{}", std::process::id()));
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ip(&["netns", "add", &ns.0]);
    ip(&["netns", "add", &far.0]);
    ip(&[
        "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "p0", "netns", &far.0,
    ]);
    ip(&["-n", &far.0, "link", "set", "p0", "up"]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);

    // In a mount namespace of its own: a fresh /run/systemd holding only
    // our files, no D-Bus (so it cannot claim the host's network1 name),
    // and a read-only /sys, which tells networkd there is no udev to wait for.
    let script = format!(
        "mount -o remount,bind,ro /sys && mount -t tmpfs tmpfs /run/systemd && \
         mount -t tmpfs tmpfs /run/dbus && mkdir /run/systemd/network && \
         cp {}/*.network /run/systemd/network/ && exec {}",
        t.path().join("run/systemd/network").display(),
        networkd.display()
    );
    let log = std::fs::File::create(t.path().join("networkd.log")).unwrap();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let nd = Killed(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, "unshare", "-m", "sh", "-c", &script])
            .env("SYSTEMD_LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let routes = loop {
        let addr = ip(&["-n", &ns.0, "-4", "addr", "show", "eth0"]);
        let routes = ip(&["-n", &ns.0, "-4", "route"]);
        if addr.contains("inet 10.0.2.15/24") && routes.contains("default via 10.0.2.2 dev eth0") {
            break routes;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no static address after 20 s: {addr}{routes}\n{}",
            read(t.path().join("networkd.log"))
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(nd);
    let log = read(t.path().join("networkd.log"));
    let want = "eth0: Configuring with /run/systemd/network/10-streampulse-ethernet.network";
    assert!(log.contains(want), "{want}\n{log}");
    // Every file is parsed at start, matched or not (the Wi-Fi one has no
    // interface here); parse warnings are "FILE:LINE: ...".
    let warned: Vec<&str> = log.lines().filter(|l| l.contains(".network:")).collect();
    assert!(warned.is_empty(), "{warned:?}\n{routes}");
}

/// The real wpa_supplicant (Debian's 2.10) parses the generated file and
/// reads back exactly the SSID (quotes, `#`, UTF-8) and the passphrase's
/// length; the run then stops at the interface, which does not exist.
#[test]
fn wpa_supplicant_reads_the_generated_config() {
    let t = temp_dir("network_wpa");
    let cfg = config(t.path());
    assert!(apply(t.path(), &cfg, false).status.success());
    let out = crate::util::run_with_timeout(
        {
            let mut c = std::process::Command::new("wpa_supplicant");
            c.args(["-dd", "-D", "nl80211", "-i", "sp-nosuch0", "-c"])
                .arg(t.path().join("run/streampulse/wpa_supplicant-wlan0.conf"));
            c
        },
        std::time::Duration::from_secs(10),
    );
    let log = format!("{}{}", out.stdout, out.stderr);
    for want in [
        "country='GB'",
        "ssid='Caf\\xc3\\xa9 \\\"Nord\\\"'",
        &format!("PSK (ASCII passphrase) - hexdump_ascii(len={})", PSK.len()),
        "Failed to add interface sp-nosuch0",
    ] {
        assert!(log.contains(want), "{want}\n{log}");
    }
    assert!(
        !log.contains("failed to parse") && !log.contains(PSK),
        "{log}"
    );
}

/// The overlay's units, on a copy of this machine's systemd units (Debian
/// 12) with the binary in place: `systemd-analyze verify` of the whole boot
/// (multi-user.target) reports no ordering cycle and nothing about
/// streampulse-network.{service,path} or the supplicant (seen reporting a
/// cycle when the service was ordered after multi-user.target).
#[test]
fn overlay_network_units_verify_without_cycles() {
    let root = temp_dir("network_units");
    let r = root.path();
    let cp = |from: &Path, to: &Path| {
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cp {} {}", from.display(), to.display());
    };
    cp(&crate::util::manifest_dir().join("overlay/."), r);
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    std::fs::create_dir_all(r.join("usr/lib/systemd/system")).unwrap();
    cp(
        Path::new(env!("CARGO_BIN_EXE_streampulse")),
        &r.join("usr/bin/streampulse"),
    );
    cp(
        Path::new("/lib/systemd/system/."),
        &r.join("usr/lib/systemd/system"),
    );
    assert!(
        r.join("usr/lib/systemd/system/wpa_supplicant@.service")
            .exists(),
        "wpa_supplicant@.service is missing: apt-get install wpasupplicant (make deps)"
    );
    let target = r.join("usr/lib/systemd/system/multi-user.target");
    let out = crate::util::run_with_timeout(
        {
            let mut c = std::process::Command::new("systemd-analyze");
            c.arg("verify")
                .arg(format!("--root={}", r.display()))
                .arg(&target);
            c
        },
        std::time::Duration::from_secs(120),
    );
    let log = format!("{}{}", out.stdout, out.stderr);
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("cycle")
                || l.contains("streampulse-network")
                || l.contains("streampulse-update")
                || l.contains("wpa_supplicant")
        })
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

/// First boot: no `network:` in the data config yet, so the boot
/// partition's (not imported until the daemon starts, after the network)
/// is used, whatever else that file holds; once the config has network
/// settings, the boot file is the import's business only.
#[test]
fn apply_uses_the_boot_config_until_the_config_has_network_settings() {
    let t = temp_dir("network_boot");
    let boot = t.path().join("boot-config.yaml");
    std::fs::write(
        &boot,
        "admin_password: \"only the import knows this key\"\nstreams:\n  - {name: a, url: \"rtsp://h/x\"}\n\
         network:\n  wifi: {ssid: Home, psk: \"12345678\", country: DE}\n",
    )
    .unwrap();
    let data = t.path().join("config.yaml");
    let run = |config_text: Option<&str>| {
        match config_text {
            Some(text) => std::fs::write(&data, text).unwrap(),
            None => {
                let _ = std::fs::remove_file(&data);
            }
        }
        output_ok(
            streampulse()
                .args(["network", "apply", "--config"])
                .arg(&data)
                .arg("--boot-config")
                .arg(&boot)
                .arg("--run-dir")
                .arg(t.path().join("run"))
                .arg("--data-dir")
                .arg(t.path().join("data")),
        );
        read(t.path().join("run/streampulse/wpa_supplicant-wlan0.conf"))
    };
    for first_boot in [None, Some("streams: []\n")] {
        let wpa = run(first_boot);
        assert!(
            wpa.contains("country=DE") && wpa.contains("ssid=486f6d65"),
            "{wpa}"
        );
    }
    let wpa = run(Some("streams: []\nnetwork:\n  hostname: hall\n"));
    assert!(
        !wpa.contains("network={"),
        "the config's settings win: {wpa}"
    );
}
