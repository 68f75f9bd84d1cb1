//! Runs the real `streampulse run` daemon for end-to-end tests: a temp data
//! dir, a config file the test writes, `--listen 127.0.0.1:0`, and the bound
//! address read from the log. Killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// API token every daemon started here accepts (seeded into its data dir),
/// and that [`App::get`]/[`App::get_text`] send: the JSON API needs a login
/// or a token unless the config says `web.public_status: true`. Its scope
/// is `admin`, so it opens the live view too.
pub const TEST_TOKEN: &str = "sp_integration-tests-0123456789abcdefghijklmnop";

/// Makes every daemon started on `data_dir` accept [`TEST_TOKEN`].
pub fn seed_test_token(data_dir: &Path) {
    streampulse::web::auth::seed_token(
        data_dir,
        "integration tests",
        TEST_TOKEN,
        streampulse::web::auth::Scope::Admin,
    )
    .expect("seeding the test API token should succeed");
}

/// A running daemon.
/// `streampulse` that hears only the test's fake systemd (the variables a
/// real systemd may have given this test process are removed), and the
/// environment `env` with logging at info.
pub fn under_test_systemd<'a>(
    env: &[(&'a str, &'a str)],
) -> (std::process::Command, Vec<(&'a str, &'a str)>) {
    let mut cmd = super::util::streampulse();
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    let env = std::iter::once(("RUST_LOG", "info"))
        .chain(env.iter().copied())
        .collect();
    (cmd, env)
}

pub struct App {
    child: Child,
    pub addr: String,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl App {
    /// Starts `streampulse run` on `config` with data in `data_dir`.
    pub fn start(config: &Path, data_dir: &Path) -> App {
        Self::start_with_env(config, data_dir, &[])
    }

    /// Like [`App::start`] with extra environment variables (e.g. libfaketime's).
    pub fn start_with_env(config: &Path, data_dir: &Path, env: &[(&str, &str)]) -> App {
        Self::start_with_args(config, data_dir, &[], env)
    }

    /// Like [`App::start_with_env`] with extra `run` arguments (e.g. `--boot-config`).
    pub fn start_with_args(
        config: &Path,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> App {
        Self::launch(super::util::streampulse(), config, data_dir, args, env)
    }

    /// Like [`App::start`] in a UTS namespace of its own whose hostname is
    /// `hostname` (`unshare --uts`, root): the box's name can then be
    /// changed under the running daemon with [`App::rename`].
    pub fn start_with_hostname(config: &Path, data_dir: &Path, hostname: &str) -> App {
        let mut cmd = std::process::Command::new("unshare");
        cmd.args([
            "--uts",
            "sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
            hostname,
        ])
        .arg(env!("CARGO_BIN_EXE_streampulse"));
        Self::launch(cmd, config, data_dir, &[], &[])
    }

    /// Sets the hostname of the daemon's UTS namespace (see
    /// [`App::start_with_hostname`]), as `network.hostname` renames the box.
    pub fn rename(&self, hostname: &str) {
        let ok = std::process::Command::new("nsenter")
            .args([
                "-t",
                &self.child.id().to_string(),
                "-u",
                "hostname",
                hostname,
            ])
            .status()
            .expect("nsenter should run")
            .success();
        assert!(ok, "renaming the daemon's UTS namespace to {hostname}");
    }

    /// Seeds the test token and runs `cmd run …` (cmd: the binary, or a
    /// wrapper that execs it with the arguments that follow), with
    /// `RUST_LOG=debug` unless `env` says otherwise.
    pub fn launch(
        cmd: std::process::Command,
        config: &Path,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> App {
        Self::launch_with_token_in(data_dir, cmd, config, data_dir, args, env)
    }

    /// Like [`App::launch`], with the test token seeded into `token_dir`:
    /// the directory the daemon will really use (e.g. its
    /// `--fallback-data-dir` when `data_dir` cannot be written).
    pub fn launch_with_token_in(
        token_dir: &Path,
        mut cmd: std::process::Command,
        config: &Path,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> App {
        seed_test_token(token_dir);
        let mut child = cmd
            .args(["run", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("streampulse should start");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "streampulse did not report its address; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        App { child, addr, log }
    }

    /// GET `path` and parse JSON; returns (status, body).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        );
        let mut resp = agent
            .get(&format!("http://{}{path}", self.addr))
            .header("Authorization", &format!("Bearer {TEST_TOKEN}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// Raw body text of GET `path`.
    pub fn get_text(&self, path: &str) -> String {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        );
        agent
            .get(&format!("http://{}{path}", self.addr))
            .header("Authorization", &format!("Bearer {TEST_TOKEN}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    /// Polls `/api/status` until `pred` holds; panics with the last answer after `timeout`.
    pub fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, v) = self.get("/api/status");
            if pred(&v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last /api/status:\n{v:#}\nlog tail:\n{}",
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn log_tail(&self, n: usize) -> String {
        let l = self.log.lock().unwrap();
        l[l.len().saturating_sub(n)..].join("\n")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!(
            "streampulse did not stop within 20 s of SIGTERM; log:\n{}",
            self.log_tail(30)
        );
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
