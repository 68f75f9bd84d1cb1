//! The appliance booted under `qemu-system-aarch64 -M virt` (TCG), offline,
//! with real systemd.
//!
//! Run by `make qemu-test` (scripts/qemu-boot-test.sh), which builds the
//! static aarch64 binary and a kit from Debian's arm64 packages (the kernel;
//! an initramfs that loads the virtio/ext4/vfat modules and switches to the
//! card's root; a minimal Debian userland with systemd, networkd, resolved,
//! timesyncd, udev, e2fsprogs and dosfstools, given what Buildroot does at
//! build time by `scripts/qemu/rootfs-customize`: the `streampulse` user
//! (990), an empty machine-id, systemd's presets, `/var` as a tmpfs filled
//! from a factory copy) and sets `STREAMPULSE_QEMU_KIT` and
//! `STREAMPULSE_AARCH64_BIN`. Ignored in a plain `cargo test`: it needs that
//! kit and takes a few minutes.
//!
//! The image is assembled with the appliance's real genimage layout
//! (`buildroot/board/common/genimage-mbr.cfg.in`): a FAT partition holding a
//! `config.yaml`, a read-only root with that userland, our static binary at
//! `/usr/bin/streampulse` and `overlay/` copied unmodified (fstab, the units,
//! grow-data, networkd/resolved/timesyncd/journald settings, tmpfiles), and an
//! empty data partition; the disk is made larger than the image, as a card is.
//!
//! Test scaffolding that the product image does not have: a root command
//! agent (`scripts/qemu/sp-test-agent`, started by `sp-test-agent.service`)
//! on a virtio-serial port, through which the test runs `systemctl show`,
//! reads `/proc/<pid>/status`, `findmnt`, `journalctl`, sends `kill -STOP`
//! and powers off with `systemctl poweroff`. Everything else is the card's.
//!
//! Asserted, under systemd: `streampulse.service` reaches active/running
//! (`Type=notify`: READY arrived) with the daemon's status text; its main
//! process runs as `streampulse` (990) with the sandbox applied (no new
//! privileges, a seccomp filter, no capabilities); root is mounted read-only
//! and `/data` read-write; grow-data and `x-systemd.growfs` grew the data
//! partition and its filesystem to the end of the disk; networkd got
//! 10.0.2.15 by DHCP from QEMU's user network and the GUI answers through the
//! port forward; resolved and timesyncd run; the boot `config.yaml` is
//! imported (and renamed, password-free); `/api/status` reports a real
//! heartbeat from an RTSP camera served on the host (reached through QEMU's
//! gateway 10.0.2.2); a `SIGSTOP`ped daemon is killed by systemd's watchdog
//! and restarted; no unit failed. Finding the box: the hostname is the unique
//! default (`streampulse-` + the MAC's last 4 hex digits), the address is on
//! the serial console, the GUI answers on port 80 too, the static address
//! from the boot `config.yaml` (`network.ethernet`) is what networkd applied
//! (no DHCP lease), and the journal is on `/data`. After a clean power-off, a
//! `config.yaml` holding only `admin_password:` is dropped on the card: on the
//! second boot the history from the first is still there, the new password
//! logs in, nothing is re-grown, and the previous boot's journal is readable.
//! A `factory-reset` file on the card makes the third boot open `/setup`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::image::{self, fat_ls, fat_read, fat_write, partitions};
use super::util::{manifest_dir, temp_dir, RtspServer, PASSWORD, USER};

/// Bounds for one boot: TCG on a busy 2-core CI machine is slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// How much larger the "card" is than the image.
const CARD_EXTRA: u64 = 256 << 20;
/// streampulse.service's `WatchdogSec=` (overlay/, checked below).
const WATCHDOG: Duration = Duration::from_secs(60);

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
    /// Every console line (the serial port: kernel and systemd's status).
    console: Arc<Mutex<Vec<String>>>,
    agent: UnixStream,
    agent_rx: mpsc::Receiver<String>,
    next_id: u64,
    http: String,
    /// The same GUI through the guest's port 80.
    http80: String,
    /// `sp_session=…` once logged in.
    session: Option<String>,
}

impl Guest {
    fn boot(kit: &Path, img: &Path, scratch: &Path) -> Guest {
        let free_port = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (port, port80) = (free_port(), free_port());
        let sock = scratch.join("agent.sock");
        let _ = std::fs::remove_file(&sock);
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
            .arg(format!(
                "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8000,hostfwd=tcp:127.0.0.1:{port80}-:80"
            ))
            // No option ROM: the kernel is passed directly (and Debian ships
            // the ROM in ipxe-qemu, which the test does not need).
            .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
            .args(["-device", "virtio-rng-pci"])
            // The test agent's port (scripts/qemu/sp-test-agent).
            .args(["-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=agent,path={},server=on,wait=off",
                sock.display()
            ))
            .args(["-device", "virtserialport,chardev=agent,name=sp.agent"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-aarch64 should start (apt-get install qemu-system-arm)");
        let console = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let console = console.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let line = line.trim_end_matches('\r').to_owned();
                    if std::env::var_os("STREAMPULSE_QEMU_VERBOSE").is_some() {
                        eprintln!("guest: {line}");
                    }
                    console.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let agent = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("QEMU's agent socket: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let (tx, agent_rx) = mpsc::channel();
        let reader = agent.try_clone().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Guest {
            child,
            console,
            agent,
            agent_rx,
            next_id: 1,
            http: format!("http://127.0.0.1:{port}"),
            http80: format!("http://127.0.0.1:{port80}"),
            session: None,
        }
    }

    fn console_text(&self) -> String {
        self.console.lock().unwrap().join("\n")
    }

    /// Runs `cmd` (one line of sh) as root in the guest through the agent:
    /// its exit status and its output (stdout and stderr).
    fn sh_timeout(&mut self, cmd: &str, timeout: Duration) -> (i32, String) {
        assert!(!cmd.contains('\n'), "one line per command: {cmd:?}");
        let id = self.next_id;
        self.next_id += 1;
        writeln!(self.agent, "{id} {cmd}").expect("writing to the agent");
        let deadline = Instant::now() + timeout;
        let (begin, end) = (
            format!("@@sp-agent-begin {id}"),
            format!("@@sp-agent-end {id} "),
        );
        let mut out: Option<Vec<String>> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.agent_rx.recv_timeout(left) {
                Ok(l) if l == begin => out = Some(Vec::new()),
                Ok(l) if l.starts_with(&end) && out.is_some() => {
                    let rc = l[end.len()..].trim().parse().unwrap_or(-1);
                    return (rc, out.unwrap().join("\n").trim().to_owned());
                }
                Ok(l) => {
                    if let Some(o) = out.as_mut() {
                        o.push(l);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "QEMU exited while running {cmd:?}; console:\n{}",
                    self.console_text()
                ),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "the guest did not answer {cmd:?} within {timeout:?}; console:\n{}",
                    self.console_text()
                ),
            }
        }
    }

    /// Runs `cmd` in the guest; it must succeed. Returns its output.
    fn sh(&mut self, cmd: &str) -> String {
        let (rc, out) = self.sh_timeout(cmd, Duration::from_secs(60));
        if rc != 0 {
            self.fail(&format!("{cmd:?} exited with {rc}:\n{out}"));
        }
        out
    }

    /// Panics with `msg`, the guest's journal (if the agent still answers)
    /// and the console.
    /// The whole journal goes to target/qemu-journal.log.
    fn fail(&mut self, msg: &str) -> ! {
        let journal = self
            .sh_timeout(
                "journalctl -b --no-pager -o short-monotonic",
                Duration::from_secs(60),
            )
            .1;
        let saved = manifest_dir().join("target/qemu-journal.log");
        let _ = std::fs::write(&saved, &journal);
        let tail: Vec<&str> = journal.lines().rev().take(100).collect();
        panic!(
            "{msg}\n--- console:\n{}\n--- journal (last lines; all of it in {}):\n{}",
            self.console_text(),
            saved.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    /// `systemctl show -p …` as a map.
    fn show(&mut self, unit: &str, props: &[&str]) -> BTreeMap<String, String> {
        let ps: String = props.iter().map(|p| format!(" -p {p}")).collect();
        self.sh(&format!("systemctl show{ps} {unit}"))
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Waits until `unit` is active and running (for `Type=notify`: READY=1
    /// arrived); fails at once if it failed.
    fn wait_running(&mut self, unit: &str, timeout: Duration) -> BTreeMap<String, String> {
        let deadline = Instant::now() + timeout;
        // The first command also waits for the agent to come up.
        self.sh_timeout("true", BOOT_TIMEOUT);
        loop {
            let s = self.show(
                unit,
                &["ActiveState", "SubState", "Result", "MainPID", "NRestarts"],
            );
            if s["ActiveState"] == "active" && s["SubState"] == "running" {
                return s;
            }
            // Boot finished (running or degraded) without it: a dependency
            // failed (e.g. data.mount), nothing will start it any more.
            let (_, state) = self.sh_timeout("systemctl is-system-running", BOOT_TIMEOUT);
            let booted = state == "running" || state == "degraded";
            if s["ActiveState"] == "failed"
                || (booted && s["ActiveState"] == "inactive")
                || Instant::now() > deadline
            {
                self.fail(&format!("{unit} is not running: {s:?}, system {state}"));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Seconds since the kernel started at which the first journal line of
    /// `unit` containing `needle` was logged (`-o short-monotonic`).
    fn journal_at(&mut self, unit: &str, needle: &str) -> Option<f64> {
        let out = self.sh(&format!(
            "journalctl -b --no-pager -o short-monotonic -u {unit}"
        ));
        out.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.trim_start_matches('[').split(']').next())
            .and_then(|t| t.trim().parse().ok())
    }

    /// GET `path` as JSON (with the session, if logged in); None while the
    /// daemon is not answering.
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

    /// The status of an anonymous `GET base + path` (redirects not followed).
    fn status_of(&self, base: &str, path: &str) -> Option<u16> {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .max_redirects(0)
                .build(),
        );
        let r = agent.get(&format!("{base}{path}")).call().ok()?;
        Some(r.status().as_u16())
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
        let mut r = agent
            .get(&url)
            .call()
            .expect("GET /login through the port forward");
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
    fn wait_json(&mut self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "QEMU exited ({st}) while waiting for {what}; console:\n{}",
                    self.console_text()
                );
            }
            if let Some(v) = self.get(path) {
                if pred(&v) {
                    return v;
                }
                last = Some(v);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.fail(&format!(
            "timed out waiting for {what}; last {path}: {last:?}"
        ));
    }

    /// A clean power-off through systemd: units stopped, filesystems
    /// unmounted, then the machine halts (QEMU exits).
    fn poweroff(mut self) {
        writeln!(self.agent, "0 systemctl --no-block poweroff").unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // Console threads may still be draining the last lines.
                std::thread::sleep(Duration::from_millis(200));
                let console = self.console_text();
                assert!(
                    console.contains("reboot: Power down"),
                    "QEMU exited without a kernel power-down:\n{console}"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the guest did not power off within 120 s:\n{}",
            self.console_text()
        );
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The root filesystem: the kit's Debian userland, overlay/ unmodified, our
/// binary, and the test agent (test scaffolding, see the module doc).
fn rootfs(dir: &Path, kit: &Path, bin: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    // -a: owners (root, systemd-timesync, …), modes and symlinks as built.
    image::run(
        Command::new("cp")
            .arg("-a")
            .arg(kit.join("rootfs"))
            .arg(&root),
    );
    // overlay/ as Buildroot applies it (symlinks kept).
    image::run(
        Command::new("cp")
            .arg("-a")
            .arg(manifest_dir().join("overlay/."))
            .arg(&root),
    );
    image::run(
        Command::new("install")
            .args(["-m", "0755"])
            .arg(bin)
            .arg(root.join("usr/bin/streampulse")),
    );
    let scaffold = manifest_dir().join("scripts/qemu");
    image::run(
        Command::new("install")
            .args(["-D", "-m", "0755"])
            .arg(scaffold.join("sp-test-agent"))
            .arg(root.join("usr/libexec/sp-test-agent")),
    );
    let units = root.join("etc/systemd/system");
    std::fs::copy(
        scaffold.join("sp-test-agent.service"),
        units.join("sp-test-agent.service"),
    )
    .unwrap();
    std::fs::create_dir_all(units.join("sysinit.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "../sp-test-agent.service",
        units.join("sysinit.target.wants/sp-test-agent.service"),
    )
    .unwrap();
    let used_mib: u32 = image::run(Command::new("du").args(["-sm"]).arg(&root))
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("du -sm prints a size");
    let img = dir.join("rootfs.ext4");
    image::ext4_from_dir(&root, "rootfs", used_mib + used_mib / 4 + 32, &img);
    img
}

fn history_len(v: &Value) -> usize {
    v["heartbeats"].as_array().map_or(0, Vec::len)
}

/// `Key:` line of a `/proc/<pid>/status`, whitespace-normalised.
fn proc_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: in /proc/<pid>/status:\n{status}"))
        .trim()
}

/// The daemon runs as its own user with the unit's sandbox applied, on a
/// read-only root with `/data` mounted.
fn assert_sandboxed(guest: &mut Guest, pid: &str) {
    let status = guest.sh(&format!("cat /proc/{pid}/status"));
    for key in ["Uid", "Gid"] {
        let ids: Vec<&str> = proc_field(&status, key).split_whitespace().collect();
        assert!(
            ids.iter().all(|id| *id == "990"),
            "streampulse runs with {key} {ids:?}, not the streampulse user (990): User=/Group= not applied\n{status}"
        );
    }
    assert_eq!(
        proc_field(&status, "NoNewPrivs"),
        "1",
        "NoNewPrivileges= not applied:\n{status}"
    );
    assert_eq!(
        proc_field(&status, "Seccomp"),
        "2",
        "no seccomp filter (SystemCallFilter=) on the daemon:\n{status}"
    );
    for key in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(
            proc_field(&status, key),
            "0000000000000000",
            "{key}: the daemon has capabilities (CapabilityBoundingSet= is empty):\n{status}"
        );
    }
    let root_opts = guest.sh("findmnt -no OPTIONS /");
    assert!(
        root_opts.split(',').any(|o| o == "ro"),
        "root is not mounted read-only: {root_opts}"
    );
    let data = guest.sh("findmnt -no FSTYPE,OPTIONS /data");
    assert!(
        data.starts_with("ext4 ") && data.contains("rw,") && data.contains("noexec"),
        "/data is not the card's ext4 data partition (fstab): {data:?}"
    );
    let boot = guest.sh("findmnt -no FSTYPE /boot");
    assert_eq!(boot, "vfat", "/boot is not the card's FAT partition");
    // Inside the daemon's mount namespace: /var is read-only
    // (ProtectSystem=strict; outside it is a writable tmpfs) and there are
    // no disks in /dev (PrivateDevices=).
    guest.sh("touch /var/.sp-write-test && rm /var/.sp-write-test");
    for (cmd, what) in [
        (
            "touch /var/.sp-write-test",
            "write to /var (ProtectSystem=strict)",
        ),
        (
            "test -e /dev/vda",
            "see the disk /dev/vda (PrivateDevices=)",
        ),
    ] {
        let (rc, out) = guest.sh_timeout(
            &format!("nsenter -t {pid} -m -- {cmd}"),
            Duration::from_secs(30),
        );
        assert_ne!(rc, 0, "the daemon's namespace can {what}: {out}");
    }
}

/// networkd configured the wired link by DHCP from QEMU's user network;
/// resolved and timesyncd run.
fn assert_network(guest: &mut Guest) {
    let addrs = guest.sh("ip -4 -o addr show scope global");
    assert!(
        addrs.contains("inet 10.0.2.15/24"),
        "no DHCP address from QEMU's user network (networkd, 20-wired.network): {addrs}"
    );
    let routes = guest.sh("ip -4 route show default");
    assert!(
        routes.contains("default via 10.0.2.2"),
        "no default route via QEMU's gateway: {routes}"
    );
    for unit in ["systemd-networkd", "systemd-resolved", "systemd-timesyncd"] {
        let s = guest.show(unit, &["ActiveState", "SubState"]);
        if (s["ActiveState"].as_str(), s["SubState"].as_str()) != ("active", "running") {
            guest.fail(&format!(
                "{unit} does not run (enabled by systemd's presets on the card): {s:?}"
            ));
        }
    }
}

/// grow-data grew the data partition to the end of the disk and systemd-growfs
/// (x-systemd.growfs) its filesystem: much larger than in the image.
fn assert_data_grown(guest: &mut Guest, data_in_image: u64) {
    let s = guest.show("streampulse-grow-data.service", &["ActiveState", "Result"]);
    let log = guest.sh("journalctl -b --no-pager -o cat -u streampulse-grow-data.service");
    assert_eq!(
        (s["ActiveState"].as_str(), s["Result"].as_str()),
        ("active", "success"),
        "streampulse-grow-data.service:\n{log}"
    );
    assert!(
        log.contains("grow-data: growing"),
        "grow-data did not grow on first boot:\n{log}"
    );
    let part = guest.sh("basename $(findmnt -no SOURCE /data)");
    let disk = guest.sh(&format!(
        "basename $(readlink -f /sys/class/block/{part}/..)"
    ));
    let sectors = |g: &mut Guest, f: String| -> u64 {
        g.sh(&format!("cat {f}")).parse().expect("a sector count")
    };
    let start = sectors(guest, format!("/sys/class/block/{part}/start"));
    let size = sectors(guest, format!("/sys/class/block/{part}/size"));
    let disk_size = sectors(guest, format!("/sys/class/block/{disk}/size"));
    assert_eq!(
        start + size,
        disk_size,
        "the data partition {part} does not end at the end of {disk}"
    );
    let fs_bytes: u64 = guest
        .sh("df -B1 --output=size /data | tail -n 1")
        .trim()
        .parse()
        .unwrap();
    assert!(
        fs_bytes > data_in_image + CARD_EXTRA * 3 / 4,
        "/data's filesystem was not grown (x-systemd.growfs): {fs_bytes} bytes, image had {data_in_image}"
    );
    let growfs = guest.show("systemd-growfs@data.service", &["Result"]);
    assert_eq!(growfs["Result"], "success", "systemd-growfs@data.service");
}

/// `kill -STOP` the daemon: its watchdog pings stop, systemd kills it after
/// `WatchdogSec=` and restarts it; the web port answers again.
fn assert_watchdog_restarts(guest: &mut Guest, admin_pw: &str) {
    let unit = "streampulse.service";
    let before = guest.show(unit, &["MainPID", "NRestarts", "WatchdogUSec"]);
    assert_eq!(
        before["WatchdogUSec"], "1min",
        "streampulse.service's WatchdogSec= changed: update WATCHDOG"
    );
    let pid = before["MainPID"].clone();
    guest.sh(&format!("kill -STOP {pid}"));
    let stopped = Instant::now();
    let deadline = stopped + WATCHDOG + Duration::from_secs(150);
    let after = loop {
        let s = guest.show(unit, &["ActiveState", "SubState", "MainPID", "NRestarts"]);
        if s["MainPID"] != pid
            && s["MainPID"] != "0"
            && s["ActiveState"] == "active"
            && s["SubState"] == "running"
        {
            break s;
        }
        if Instant::now() > deadline {
            guest.fail(&format!(
                "a SIGSTOPped daemon was not restarted within WatchdogSec + 150 s: {s:?}"
            ));
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let took = stopped.elapsed();
    let restarts = |s: &BTreeMap<String, String>| s["NRestarts"].parse::<u32>().unwrap();
    assert_eq!(
        restarts(&after),
        restarts(&before) + 1,
        "{before:?} → {after:?}"
    );
    // The daemon pings every WatchdogSec/2: the last ping before the stop
    // was at most that long ago.
    assert!(
        took >= WATCHDOG / 2,
        "restarted after {took:?}, before the watchdog could have fired"
    );
    let log = guest.sh(&format!("journalctl -b --no-pager -o cat -u {unit}"));
    assert!(
        log.contains("Watchdog timeout"),
        "the restart was not the watchdog's:\n{log}"
    );
    guest.login(admin_pw);
    guest.wait_json("/api/status", "an ok heartbeat after the restart", |v| {
        v["Porch"]["status"] == "ok"
    });
    eprintln!(
        "qemu: watchdog: SIGSTOP → killed and running again (pid {pid} → {}) after {:.0} s, web port answers",
        after["MainPID"],
        took.as_secs_f64()
    );
}

/// Finding the box and its settings from the card: the unique default
/// hostname (`streampulse-` + the last 4 hex digits of the wired MAC, no
/// serial number on QEMU's virt board), the address on the console, the GUI
/// on port 80, the static address from the boot `config.yaml` applied by
/// `streampulse-network.service` (not DHCP), and the journal on `/data`.
fn assert_findable(guest: &mut Guest) {
    // The wired interface under udev's predictable name (enp0s1 here).
    let iface = guest.sh(
        "for i in /sys/class/net/*; do [ -e $i/device ] && [ $(cat $i/type) = 1 ] && basename $i; done | head -n 1",
    );
    let iface = iface.trim().to_owned();
    let mac = guest.sh(&format!("cat /sys/class/net/{iface}/address"));
    let hex: String = mac.trim().chars().filter(char::is_ascii_hexdigit).collect();
    let want = format!("streampulse-{}", &hex[hex.len() - 4..]);
    assert_eq!(guest.sh("hostname").trim(), want, "unique default hostname");
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = format!("http://{want}.local");
    while !guest.console_text().contains(&line) {
        if Instant::now() > deadline {
            guest.fail(&format!("no {line:?} on the serial console (console-url)"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let http80 = guest.http80.clone();
    assert_eq!(
        guest.status_of(&http80, "/healthz"),
        Some(200),
        "the GUI on the guest's port 80"
    );
    let net = guest.sh(&format!("networkctl status {iface} --no-pager || true"));
    assert!(
        net.contains("10-streampulse-ethernet.network"),
        "the static address from the boot config.yaml is not what networkd applied:\n{net}"
    );
    let leases = guest.sh("ls /run/systemd/netif/leases/ 2>/dev/null | wc -l");
    assert_eq!(leases.trim(), "0", "a static address takes no DHCP lease");
    let journal = guest.sh("findmnt -n -o SOURCE /var/log/journal || true");
    assert!(
        journal.contains("/log/journal"),
        "the journal is not on /data: {journal:?}"
    );
}

#[test]
#[ignore = "needs the QEMU kit and the aarch64 binary: run `make qemu-test`"]
fn qemu_boot_imports_config_probes_and_keeps_history_across_reboot() {
    let test_started = Instant::now();
    let kit = env_path("STREAMPULSE_QEMU_KIT");
    let bin = env_path("STREAMPULSE_AARCH64_BIN");
    let cam = RtspServer::start();
    let dir = temp_dir("qemu");
    let url = format!("rtsp://10.0.2.2:{}/digest", cam.port);
    // The box is set up from the card: a pre-hashed admin password (argon2,
    // made here) comes with the streams.
    let admin_pw = "qemu-test-admin-password";
    let hash = streampulse::credentials::hash_password(admin_pw).unwrap();
    // A static address on QEMU's user network (what a camera LAN without
    // DHCP needs), applied before networkd starts.
    let config = format!(
        "admin_password_hash: '{hash}'\nheartbeat_seconds: 5\nstreams:\n- name: Porch\n  url: {url}\n  username: {USER}\n  password: {PASSWORD}\n  timeout: 5\n\
         network:\n  ethernet:\n    address: 10.0.2.15/24\n    gateway: 10.0.2.2\n    dns: [10.0.2.3]\n"
    );
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, &config).unwrap();
    let root = rootfs(dir.path(), &kit, &bin);
    let img = image::genimage_mbr(dir.path(), &[("config.yaml", &config_path)], &root);
    let (_, parts) = partitions(&img);
    let fat = parts[0].start;
    let data_in_image = parts[2].size;
    // Flashed onto a card larger than the image.
    let card_len = {
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        let len = f.metadata().unwrap().len() + CARD_EXTRA;
        f.set_len(len).unwrap();
        len
    };
    eprintln!(
        "qemu: image assembled in {:.0} s",
        test_started.elapsed().as_secs_f64()
    );

    // First boot.
    let boot_started = Instant::now();
    let mut guest = Guest::boot(&kit, &img, dir.path());
    let svc = guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    let running_after = boot_started.elapsed();
    guest.login(admin_pw);
    let status = guest.wait_json("/api/status", "a first ok heartbeat", |v| {
        v["Porch"]["status"] == "ok"
    });
    let unit = "streampulse.service";
    let t_ready = guest.journal_at(unit, "Started ");
    let t_listen = guest.journal_at(unit, "listening on http://");
    let t_up = guest.journal_at(unit, "→ up");
    let startup = guest.sh("systemd-analyze time || true");
    eprintln!(
        "qemu: under systemd, since the kernel started: web port bound at {:.1} s, READY (unit started) at {:.1} s, \
         first ok heartbeat at {:.1} s (boot to first heartbeat); the test saw the unit running {:.1} s after QEMU started\n\
         qemu: {startup}",
        t_listen.unwrap_or(f64::NAN),
        t_ready.unwrap_or(f64::NAN),
        t_up.unwrap_or(f64::NAN),
        running_after.as_secs_f64(),
    );
    assert!(t_up.is_some(), "no '→ up' line in the daemon's journal");
    let text = guest.show(unit, &["StatusText"]);
    assert!(
        text["StatusText"].contains("streams:"),
        "the daemon's STATUS= did not reach systemd: {text:?}"
    );
    assert_eq!(status["Porch"]["codec"], "h264", "{status}");
    assert!(!status.to_string().contains(PASSWORD));

    assert_sandboxed(&mut guest, &svc["MainPID"]);
    assert_network(&mut guest);
    assert_findable(&mut guest);
    assert_data_grown(&mut guest, data_in_image);
    let health = guest.get("/healthz").expect("/healthz answers");
    assert!(
        health["boot_config"]
            .as_str()
            .is_some_and(|s| s.starts_with("imported")),
        "{health}"
    );
    assert!(
        health["disk"]["total_bytes"].as_u64().unwrap() > data_in_image + CARD_EXTRA / 2,
        "the daemon does not see the grown /data: {health}"
    );
    guest.wait_json(
        "/api/streams/Porch/history?since=0&until=99999999999999",
        "three heartbeats",
        |v| history_len(v) >= 3,
    );
    let failed = guest.sh("systemctl --failed --no-legend --plain");
    if !failed.trim().is_empty() {
        guest.fail(&format!("failed units on the box: {failed}"));
    }
    let first_boot = boot_started.elapsed();
    guest.poweroff();

    // Read on the host: the boot partition imported, renamed, password-free;
    // the data partition ends at the end of the card.
    let names = fat_ls(&img, fat);
    assert!(!names.iter().any(|n| n == "config.yaml"), "{names:?}");
    let applied = fat_read(&img, fat, "config.yaml.applied").expect("config.yaml.applied");
    assert!(applied.contains("name: Porch"), "{applied}");
    assert!(
        !applied.contains(PASSWORD),
        "password left on FAT:\n{applied}"
    );
    assert!(!applied.contains(&hash), "hash left on FAT:\n{applied}");
    let (_, parts) = partitions(&img);
    assert_eq!(parts[2].start + parts[2].size, card_len, "{parts:?}");

    // Forgot the password: a config.yaml holding only the new one, dropped on
    // the card from a PC (no shell on the box).
    let new_pw = "a-new-password-from-the-card";
    fat_write(
        &img,
        fat,
        "config.yaml",
        &format!("admin_password: {new_pw}\n"),
        dir.path(),
    );

    // Second boot of the same card: history survived, the password reset.
    let rebooted = Instant::now();
    let mut guest = Guest::boot(&kit, &img, dir.path());
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    guest.login(new_pw);
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
            .is_some_and(|s| s.starts_with("imported") && s.contains("new admin password")),
        "{health}"
    );
    let boots = guest.sh("journalctl --list-boots --no-pager | wc -l");
    assert!(
        boots.trim().parse::<u32>().unwrap_or(0) >= 2,
        "the journal on /data did not keep the first boot: {boots}"
    );
    let previous = guest.sh("journalctl -b -1 --no-pager -o cat -u streampulse.service");
    assert!(
        previous.contains("listening on http://"),
        "the daemon's log from the previous boot:\n{previous}"
    );
    let log = guest.sh("journalctl -b --no-pager -o cat -u streampulse-grow-data.service");
    assert!(
        log.contains("already ends at the end"),
        "grow-data on the second boot:\n{log}"
    );
    guest.wait_json("/api/status", "an ok heartbeat after reboot", |v| {
        v["Porch"]["status"] == "ok"
    });
    // Last: a killed daemon loses the heartbeats it had not flushed yet.
    assert_watchdog_restarts(&mut guest, new_pw);
    let second_boot = rebooted.elapsed();
    guest.poweroff();

    // Factory reset from the card: the third boot opens first-boot setup.
    fat_write(&img, fat, "factory-reset", "", dir.path());
    let guest = Guest::boot(&kit, &img, dir.path());
    let mut guest = guest;
    guest.wait_running("streampulse.service", BOOT_TIMEOUT);
    let http = guest.http.clone();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    while guest.status_of(&http, "/setup") != Some(200) {
        if Instant::now() > deadline {
            guest.fail("/setup did not open after the factory reset");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let health = guest.get("/healthz").expect("/healthz answers");
    assert!(
        health["boot_config"]
            .as_str()
            .is_some_and(|s| s.starts_with("factory reset")),
        "{health}"
    );
    guest.poweroff();
    let names = fat_ls(&img, fat);
    assert!(
        names.iter().any(|n| n == "factory-reset.done")
            && !names.iter().any(|n| n == "factory-reset"),
        "{names:?}"
    );
    eprintln!(
        "qemu: first boot (with checks) {:.0} s, second boot (with the watchdog) {:.0} s, test total {:.0} s",
        first_boot.as_secs_f64(),
        second_boot.as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );
}
