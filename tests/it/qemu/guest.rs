//! [`Guest`]: one running QEMU guest booted from the card image, driven
//! through the test agent on a virtio-serial port (root shell commands) and
//! the GUI through QEMU's port forwards; its console is kept for failures.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::BOOT_TIMEOUT;
use crate::util::{between, manifest_dir};

/// One running guest; killed on drop.
pub(super) struct Guest {
    child: Child,
    /// Every console line (the serial port: kernel and systemd's status).
    console: Arc<Mutex<Vec<String>>>,
    agent: UnixStream,
    agent_rx: mpsc::Receiver<String>,
    next_id: u64,
    pub(super) http: String,
    /// The same GUI through the guest's port 80.
    pub(super) http80: String,
    /// `sp_session=…` once logged in.
    session: Option<String>,
}

impl Guest {
    /// Boots the card `img` through U-Boot (its boot script picks the root
    /// slot); a reboot ends QEMU (`-no-reboot`): the test fails on one it did
    /// not ask for.
    pub(super) fn boot(img: &Path, scratch: &Path) -> Guest {
        Guest::boot_with(img, scratch, false, &[])
    }

    /// Boots the card `img`: QEMU's `virt` machine runs Debian's U-Boot for
    /// it (`u-boot-qemu`), whose distro boot finds `boot.scr` on the FAT
    /// partition (scripts/qemu/boot.cmd), as a card's boot loader does. With
    /// `reboots`, a reboot of the guest restarts the machine (as on a box)
    /// instead of ending QEMU. `drives`: raw images attached as further
    /// virtio disks (`/dev/vdb`, …) after the card.
    pub(super) fn boot_with(
        img: &Path,
        scratch: &Path,
        reboots: bool,
        drives: &[std::path::PathBuf],
    ) -> Guest {
        let free_port = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (port, port80) = (free_port(), free_port());
        let sock = scratch.join("agent.sock");
        let _ = std::fs::remove_file(&sock);
        let uboot = std::env::var_os("STREAMPULSE_QEMU_UBOOT")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/usr/lib/u-boot/qemu_arm64/u-boot.bin".into());
        assert!(
            uboot.exists(),
            "{} is missing (apt-get install u-boot-qemu)",
            uboot.display()
        );
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(["-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "512"])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .arg("-bios")
            .arg(&uboot)
            .arg("-drive")
            .arg(format!("file={},format=raw,if=none,id=sd", img.display()))
            .args(["-device", "virtio-blk-pci,drive=sd"]);
        if !reboots {
            cmd.arg("-no-reboot");
        }
        for (i, d) in drives.iter().enumerate() {
            cmd.arg("-drive")
                .arg(format!(
                    "file={},format=raw,if=none,id=x{i},readonly=on",
                    d.display()
                ))
                .args(["-device", &format!("virtio-blk-pci,drive=x{i}")]);
        }
        let mut child = cmd
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8000,hostfwd=tcp:127.0.0.1:{port80}-:80"
            ))
            // No option ROM (Debian ships it in ipxe-qemu, which the test
            // does not need): U-Boot boots from the card, not the network.
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

    /// How many console lines contain `needle` so far.
    pub(super) fn console_count(&self, needle: &str) -> usize {
        self.console
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until the console has more than `seen` lines containing
    /// `needle` (e.g. U-Boot's banner after a reboot).
    pub(super) fn wait_console(&mut self, needle: &str, seen: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.console_count(needle) <= seen {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "QEMU exited ({st}) while waiting for {needle:?} on the console:\n{}",
                    self.console_text()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "no new {needle:?} on the console within {timeout:?}:\n{}",
                    self.console_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(super) fn console_text(&self) -> String {
        self.console.lock().unwrap().join("\n")
    }

    /// Runs `cmd` (one line of sh) as root in the guest through the agent:
    /// its exit status and its output (stdout and stderr).
    pub(super) fn sh_timeout(&mut self, cmd: &str, timeout: Duration) -> (i32, String) {
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
    pub(super) fn sh(&mut self, cmd: &str) -> String {
        let (rc, out) = self.sh_timeout(cmd, Duration::from_secs(60));
        if rc != 0 {
            self.fail(&format!("{cmd:?} exited with {rc}:\n{out}"));
        }
        out
    }

    /// Panics with `msg`, the guest's journal (if the agent still answers)
    /// and the console.
    /// The whole journal goes to target/qemu-journal.log.
    pub(super) fn fail(&mut self, msg: &str) -> ! {
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
    pub(super) fn show(&mut self, unit: &str, props: &[&str]) -> BTreeMap<String, String> {
        let ps: String = props.iter().map(|p| format!(" -p {p}")).collect();
        self.sh(&format!("systemctl show{ps} {unit}"))
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Waits until `unit` is active and running (for `Type=notify`: READY=1
    /// arrived); fails at once if it failed.
    pub(super) fn wait_running(
        &mut self,
        unit: &str,
        timeout: Duration,
    ) -> BTreeMap<String, String> {
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
    pub(super) fn journal_at(&mut self, unit: &str, needle: &str) -> Option<f64> {
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
    pub(super) fn get(&self, path: &str) -> Option<Value> {
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
    pub(super) fn status_of(&self, base: &str, path: &str) -> Option<u16> {
        let agent = anonymous_agent();
        let r = agent.get(&format!("{base}{path}")).call().ok()?;
        Some(r.status().as_u16())
    }

    /// The status and body of an anonymous `GET base + path` (redirects not
    /// followed).
    pub(super) fn page(&self, base: &str, path: &str) -> Option<(u16, String)> {
        let agent = anonymous_agent();
        let mut r = agent.get(&format!("{base}{path}")).call().ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_to_string().ok()?))
    }

    /// Logs in through the real login form (pre-session cookie + hidden
    /// field, then the session cookie from the redirect).
    pub(super) fn login(&mut self, password: &str) {
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
        let Some(pre_cookie) = cookie(&r, "sp_pre") else {
            let (status, location) = (r.status(), r.headers().get("location").cloned());
            self.fail(&format!(
                "GET /login set no sp_pre cookie: {status}, location {location:?}"
            ));
        };
        let page = r.body_mut().read_to_string().unwrap();
        let pre = between(&page, "name=\"pre\" value=\"", "\"")
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

    /// GET `path` with the session (logged in): status and body.
    pub(super) fn session_page(&self, path: &str) -> Option<(u16, String)> {
        let agent = anonymous_agent();
        let mut req = agent.get(&format!("{}{path}", self.http));
        if let Some(c) = &self.session {
            req = req.header("Cookie", c);
        }
        let mut r = req.call().ok()?;
        let status = r.status().as_u16();
        Some((status, r.body_mut().read_to_string().ok()?))
    }

    /// GET `path` with the session through the port forward (redirects
    /// not followed, error statuses returned), within `timeout`.
    fn session_get(&self, path: &str, timeout: Duration) -> ureq::http::Response<ureq::Body> {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .max_redirects(0)
                .build(),
        );
        let mut req = agent.get(&format!("{}{path}", self.http));
        if let Some(c) = &self.session {
            req = req.header("Cookie", c);
        }
        req.call()
            .unwrap_or_else(|e| panic!("GET {path} through the port forward: {e}"))
    }

    /// GET `path` with the session as bytes (a download): status and body.
    pub(super) fn session_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let mut r = self.session_get(path, Duration::from_secs(120));
        let status = r.status().as_u16();
        let body = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        (status, body)
    }

    /// The first `n` bytes of the answer to GET `path` with the session,
    /// for a stream that never ends (a live view): status, content type,
    /// bytes (fewer if it ended or 90 s passed).
    pub(super) fn session_stream(&self, path: &str, n: u64) -> (u16, String, Vec<u8>) {
        let mut r = self.session_get(path, Duration::from_secs(90));
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut body = Vec::new();
        let _ = r.body_mut().as_reader().take(n).read_to_end(&mut body);
        (status, content_type, body)
    }

    /// The session's CSRF token, from the System page's forms.
    fn csrf(&mut self) -> String {
        let page = self.session_page("/system");
        match &page {
            Some((200, body)) => between(body, "name=\"csrf\" value=\"", "\"")
                .map(str::to_owned)
                .unwrap_or_else(|| self.fail("no CSRF token on the System page")),
            _ => self.fail(&format!("GET /system: {page:?}")),
        }
    }

    /// POSTs the file `file` to `path` as the logged-in session, with the
    /// CSRF token in `X-CSRF-Token` (what app.js's upload forms do):
    /// status and body.
    pub(super) fn upload(&mut self, path: &str, file: &Path) -> (u16, String) {
        let csrf = self.csrf();
        let body = std::fs::read(file).unwrap();
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(600)))
                .http_status_as_error(false)
                .max_redirects(0)
                .build(),
        );
        let r = agent
            .post(&format!("{}{path}", self.http))
            .header("Cookie", self.session.as_deref().unwrap_or_default())
            .header("X-CSRF-Token", &csrf)
            .header("Content-Type", "application/octet-stream")
            .send(&body[..]);
        match r {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(e) => self.fail(&format!("POST {path} ({} bytes): {e}", body.len())),
        }
    }

    /// POSTs a form (with the session's CSRF token) to `path`: status and
    /// `Location`.
    pub(super) fn post_form(&mut self, path: &str) -> (u16, String) {
        let csrf = self.csrf();
        let agent = anonymous_agent();
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &csrf)
            .finish();
        let r = agent
            .post(&format!("{}{path}", self.http))
            .header("Cookie", self.session.as_deref().unwrap_or_default())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form);
        match r {
            Ok(r) => (
                r.status().as_u16(),
                r.headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            ),
            Err(e) => self.fail(&format!("POST {path}: {e}")),
        }
    }

    /// Polls `path` until `pred` holds.
    pub(super) fn wait_json(
        &mut self,
        path: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
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
    pub(super) fn poweroff(mut self) {
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

/// A client for anonymous GETs: 10 s, statuses as answers, no redirects.
fn anonymous_agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .max_redirects(0)
            .build(),
    )
}
