//! The appliance booted under `qemu-system-aarch64 -M virt` (TCG), offline.
//!
//! Run by `make qemu-test` (scripts/qemu-boot-test.sh), which builds the
//! static aarch64 binary and a kit from Debian's arm64 packages (kernel,
//! busybox, an initramfs that loads the virtio/ext4/vfat modules) and sets
//! `STREAMPULSE_QEMU_KIT` and `STREAMPULSE_AARCH64_BIN`. Ignored in a plain
//! `cargo test`: it needs that kit and takes about a minute.
//!
//! The image is assembled with the appliance's real genimage layout
//! (`buildroot/board/common/genimage-mbr.cfg.in`): a FAT partition holding a
//! `config.yaml`, a root filesystem with busybox, our static binary and the
//! files from `overlay/` (fstab, the systemd unit whose ExecStart= is what
//! runs), and an empty data partition. busybox's stand-in for systemd is
//! `scripts/qemu/rootfs-init`.
//!
//! Asserted: the boot `config.yaml` is imported (and renamed, password-free),
//! `/api/status` reports a real heartbeat from an RTSP camera served on the
//! host (reached through QEMU's user-mode gateway 10.0.2.2), the root is
//! mounted read-only, and after a power cycle of the same image the history
//! from the first boot is still there.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::image::{self, fat_ls, fat_read, partitions};
use super::util::{manifest_dir, temp_dir, RtspServer, PASSWORD, USER};

/// Bounds for one boot: TCG on a busy 2-core CI machine is slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

fn env_path(var: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: run `make qemu-test`"));
    assert!(p.exists(), "{var}={} does not exist", p.display());
    p
}

/// One running guest; killed on drop.
struct Guest {
    child: Child,
    stdin: ChildStdin,
    /// Every console line with when it arrived (since QEMU was started).
    console: Arc<Mutex<Vec<(Duration, String)>>>,
    lines_rx: mpsc::Receiver<String>,
    http: String,
    started: Instant,
    /// `sp_session=…` once logged in.
    session: Option<String>,
}

impl Guest {
    fn boot(kit: &Path, img: &Path) -> Guest {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let started = Instant::now();
        let mut child = Command::new("qemu-system-aarch64")
            .args(["-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "512"])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .arg("-no-reboot")
            .arg("-kernel")
            .arg(kit.join("vmlinuz"))
            .arg("-initrd")
            .arg(kit.join("initramfs.cpio.gz"))
            .args(["-append", "console=ttyAMA0 panic=-1 loglevel=4"])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=none,id=sd", img.display()))
            .args(["-device", "virtio-blk-pci,drive=sd"])
            .arg("-netdev")
            .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8000"))
            // No option ROM: the kernel is passed directly (and Debian ships
            // the ROM in ipxe-qemu, which the test does not need).
            .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
            .args(["-device", "virtio-rng-pci"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-aarch64 should start (apt-get install qemu-system-arm)");
        let stdin = child.stdin.take().unwrap();
        let console = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines_rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let console = console.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let line = line.trim_end_matches('\r').to_owned();
                    if std::env::var_os("STREAMPULSE_QEMU_VERBOSE").is_some() {
                        eprintln!("guest: {line}");
                    }
                    let _ = tx.send(line.clone());
                    console.lock().unwrap().push((started.elapsed(), line));
                }
            });
        }
        Guest {
            child,
            stdin,
            console,
            lines_rx,
            http: format!("http://127.0.0.1:{port}"),
            started,
            session: None,
        }
    }

    fn console_text(&self) -> String {
        let c = self.console.lock().unwrap();
        c.iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// When the first console line containing `needle` arrived.
    fn seen_at(&self, needle: &str) -> Option<Duration> {
        let c = self.console.lock().unwrap();
        c.iter().find(|(_, l)| l.contains(needle)).map(|(t, _)| *t)
    }

    /// Waits for a console line containing `needle` (fails fast on "FAIL").
    fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines_rx.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(l) if l.contains(needle) => return l,
                Ok(l) if l.contains("qemu-init: FAIL") => {
                    panic!("guest failed: {l}\nconsole:\n{}", self.console_text())
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "QEMU exited before {needle:?}; console:\n{}",
                    self.console_text()
                ),
                Err(_) if Instant::now() >= deadline => panic!(
                    "no console line with {needle:?} within {timeout:?}; console:\n{}",
                    self.console_text()
                ),
                Err(_) => {}
            }
        }
    }

    /// GET `path` as JSON (with the session, if logged in); None while the
    /// daemon is not answering yet.
    fn get(&self, path: &str) -> Option<Value> {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        );
        let mut req = agent.get(&format!("{}{path}", self.http));
        if let Some(c) = &self.session {
            req = req.header("Cookie", c);
        }
        let text = req.call().ok()?.body_mut().read_to_string().ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Logs in through the real login form (pre-session cookie + hidden
    /// field, then the session cookie from the redirect).
    fn login(&mut self, password: &str) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(60)))
                .http_status_as_error(false)
                .max_redirects(0)
                .build(),
        );
        let cookie = |r: &ureq::http::Response<ureq::Body>, name: &str| {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with(&format!("{name}=")))
                .map(|v| v.split(';').next().unwrap().to_owned())
        };
        let url = format!("{}/login", self.http);
        let mut r = agent.get(&url).call().expect("GET /login");
        let pre_cookie = cookie(&r, "sp_pre").expect("the login page sets sp_pre");
        let page = r.body_mut().read_to_string().unwrap();
        let pre = page
            .split("name=\"pre\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the login form has a pre field")
            .to_owned();
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("pre", &pre)
            .append_pair("password", password)
            .append_pair("next", "/")
            .finish();
        let r = agent
            .post(&url)
            .header("Cookie", &pre_cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form)
            .expect("POST /login");
        let session =
            cookie(&r, "sp_session").unwrap_or_else(|| panic!("login failed: {}", r.status()));
        self.session = Some(session);
    }

    /// Polls `path` until `pred` holds.
    fn wait_json(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut last = None;
        while Instant::now() < deadline {
            let console = self.console_text();
            if console.contains("qemu-init: FAIL") || console.contains("qemu-init: halt") {
                panic!("guest stopped while waiting for {what}; console:\n{console}");
            }
            if let Some(v) = self.get(path) {
                if pred(&v) {
                    return v;
                }
                last = Some(v);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "timed out waiting for {what}; last {path}: {last:?}\nconsole:\n{}",
            self.console_text()
        );
    }

    /// "poweroff" on the console: the guest stops the daemon, unmounts and halts.
    fn poweroff(mut self) {
        writeln!(self.stdin, "poweroff").unwrap();
        self.stdin.flush().unwrap();
        self.wait_line("qemu-init: halt", Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("QEMU did not exit after poweroff:\n{}", self.console_text());
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The root filesystem: busybox, our binary, overlay/, the init stand-in.
fn rootfs(dir: &Path, kit: &Path, bin: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in [
        "bin", "sbin", "usr/bin", "proc", "sys", "dev", "run", "tmp", "data", "boot", "var/lib",
        "etc",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(kit.join("busybox"), root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "mount", "umount", "mkdir", "cat", "echo", "grep", "sed", "awk", "cut", "tr",
        "findfs", "ip", "sleep", "kill", "touch", "rm", "sync", "poweroff", "uname", "ls",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::copy(bin, root.join("usr/bin/streampulse")).unwrap();
    std::fs::copy(
        manifest_dir().join("scripts/qemu/rootfs-init"),
        root.join("sbin/init"),
    )
    .unwrap();
    // overlay/ as Buildroot applies it (symlinks kept).
    image::run(
        Command::new("cp")
            .arg("-a")
            .arg(manifest_dir().join("overlay/."))
            .arg(&root),
    );
    let img = dir.join("rootfs.ext4");
    image::ext4_from_dir(&root, "rootfs", 64, &img);
    img
}

fn history_len(v: &Value) -> usize {
    v["heartbeats"].as_array().map_or(0, Vec::len)
}

#[test]
#[ignore = "needs the QEMU kit and the aarch64 binary: run `make qemu-test`"]
fn qemu_boot_imports_config_probes_and_keeps_history_across_reboot() {
    let kit = env_path("STREAMPULSE_QEMU_KIT");
    let bin = env_path("STREAMPULSE_AARCH64_BIN");
    let cam = RtspServer::start();
    let dir = temp_dir("qemu");
    let url = format!("rtsp://10.0.2.2:{}/digest", cam.port);
    // The box is set up from the card: a pre-hashed admin password (argon2,
    // made here) comes with the streams.
    let admin_pw = "qemu-test-admin-password";
    let hash = streampulse::web::auth::hash_password(admin_pw).unwrap();
    let config = format!(
        "admin_password_hash: '{hash}'\nheartbeat_seconds: 5\nstreams:\n- name: Porch\n  url: {url}\n  username: {USER}\n  password: {PASSWORD}\n  timeout: 5\n"
    );
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, &config).unwrap();
    let root = rootfs(dir.path(), &kit, &bin);
    let img = image::genimage_mbr(dir.path(), &[("config.yaml", &config_path)], &root);
    let (_, parts) = partitions(&img);
    let fat = parts[0].start;

    // First boot.
    let mut guest = Guest::boot(&kit, &img);
    guest.wait_line("qemu-init: root mounted ro", BOOT_TIMEOUT);
    guest.wait_line("qemu-init: root is read-only", Duration::from_secs(10));
    guest.wait_line("qemu-init: mounted /data", Duration::from_secs(30));
    guest.wait_line("qemu-init: started streampulse", Duration::from_secs(30));
    guest.wait_line("listening on http://", BOOT_TIMEOUT);
    guest.login(admin_pw);
    let status = guest.wait_json("/api/status", "a first ok heartbeat", |v| {
        v["Porch"]["status"] == "ok"
    });
    // Timeline from the console (arrival times of the lines, since QEMU started).
    let secs = |needle: &str| guest.seen_at(needle).map_or(f64::NAN, |d| d.as_secs_f64());
    eprintln!(
        "qemu: userspace at {:.1} s, web port bound at {:.1} s, first ok heartbeat (stream up) at {:.1} s; \
         seen in /api/status at {:.1} s (after an argon2 login under TCG)",
        secs("qemu-init: kernel"),
        secs("listening on http://"),
        secs("→ up"),
        guest.started.elapsed().as_secs_f64()
    );
    assert_eq!(status["Porch"]["codec"], "h264", "{status}");
    assert!(!status.to_string().contains(PASSWORD));
    let health = guest.get("/healthz").expect("/healthz answers");
    assert!(
        health["boot_config"]
            .as_str()
            .is_some_and(|s| s.starts_with("imported")),
        "{health}"
    );
    assert!(
        health["disk"]["total_bytes"].as_u64().unwrap() > 0,
        "{health}"
    );
    // A few more heartbeats, then a clean power-off.
    guest.wait_json(
        "/api/streams/Porch/history?since=0&until=99999999999999",
        "three heartbeats",
        |v| history_len(v) >= 3,
    );
    guest.poweroff();

    // The boot partition, read on the host: imported, renamed, password-free.
    let names = fat_ls(&img, fat);
    assert!(!names.iter().any(|n| n == "config.yaml"), "{names:?}");
    let applied = fat_read(&img, fat, "config.yaml.applied").expect("config.yaml.applied");
    assert!(applied.contains("name: Porch"), "{applied}");
    assert!(
        !applied.contains(PASSWORD),
        "password left on FAT:\n{applied}"
    );
    assert!(!applied.contains(&hash), "hash left on FAT:\n{applied}");

    // Second boot of the same image: history survived, nothing re-imported.
    let rebooted = Instant::now();
    let mut guest = Guest::boot(&kit, &img);
    guest.wait_line("listening on http://", BOOT_TIMEOUT);
    guest.login(admin_pw);
    let h = guest.wait_json(
        "/api/streams/Porch/history?since=0&until=99999999999999",
        "history from the first boot",
        |v| history_len(v) >= 3,
    );
    let before_reboot = h["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| {
            let ts = b["ts_ms"].as_i64().unwrap_or(i64::MAX);
            // Guest clock = host clock (PL031 RTC); compare against the reboot.
            let reboot_ms =
                jiff::Timestamp::now().as_millisecond() - rebooted.elapsed().as_millis() as i64;
            ts < reboot_ms
        })
        .count();
    assert!(before_reboot >= 3, "history lost across reboot: {h}");
    let health = guest.get("/healthz").expect("/healthz answers");
    assert!(
        health["boot_config"]
            .as_str()
            .is_some_and(|s| s.starts_with("nothing to import")),
        "{health}"
    );
    guest.wait_json("/api/status", "an ok heartbeat after reboot", |v| {
        v["Porch"]["status"] == "ok"
    });
    guest.poweroff();
}
