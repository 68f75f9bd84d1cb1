//! Real Mosquitto brokers for the MQTT tests, `mosquitto_sub` to read what
//! was published, and a test CA made with `openssl`.
//!
//! Every [`Broker`] has a plain TCP listener (which the tests also read from
//! with `mosquitto_sub`, so what the app sent over WebSockets or TLS is
//! observed the same way) plus the optional listeners under test. Ports come
//! from the OS; the broker runs without persistence (a restart loses retained
//! messages, as a broker without a disk would) and is killed on `Drop`. The
//! broker's own log (`connection_messages`) tells which port a client used.

#![allow(dead_code)] // not every test uses every helper

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::util::{closed_port, temp_dir};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A CA and a server certificate for 127.0.0.1/localhost, made by `openssl`.
pub struct TestCa {
    _dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("running openssl should succeed (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A fresh P-256 CA (valid 2 days) and a server certificate it signed.
    pub fn make() -> TestCa {
        let dir = temp_dir("mqtt-ca");
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=StreamPulse test CA",
        ];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &ca);
        let mut csr = vec!["req", "-new", "-subj", "/CN=127.0.0.1"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(d, &csr);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "server.crt",
            ],
        );
        TestCa {
            ca_cert: d.join("ca.crt"),
            server_cert: d.join("server.crt"),
            server_key: d.join("server.key"),
            _dir: dir,
        }
    }
}

/// Which listeners a broker has besides plain TCP, and whether it wants a login.
#[derive(Default)]
pub struct Spec<'a> {
    pub websockets: bool,
    /// TLS and WebSockets-over-TLS listeners with this CA's server certificate.
    pub tls: Option<&'a TestCa>,
    /// Only this user/password may connect (password file, no anonymous).
    pub login: Option<(&'a str, &'a str)>,
}

/// A running `mosquitto`.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    conf: PathBuf,
    pub tcp_port: u16,
    pub ws_port: Option<u16>,
    pub tls_port: Option<u16>,
    pub wss_port: Option<u16>,
    /// The login the observer (`mosquitto_sub`) uses.
    pub login: Option<(String, String)>,
}

impl Broker {
    /// Starts a broker per `spec`; retries with new ports if one was taken.
    pub fn start(spec: Spec) -> Broker {
        let dir = temp_dir("mosquitto");
        let d = dir.path().to_owned();
        if let Some((u, p)) = spec.login {
            let out = Command::new("mosquitto_passwd")
                .args(["-b", "-c"])
                .arg(d.join("passwd"))
                .args([u, p])
                .output()
                .expect("running mosquitto_passwd should succeed");
            assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        }
        for _ in 0..5 {
            let tcp_port = closed_port();
            let ws_port = spec.websockets.then(closed_port);
            let tls_port = spec.tls.map(|_| closed_port());
            let wss_port = spec.tls.map(|_| closed_port());
            let mut conf = String::new();
            // As root, mosquitto would switch to the `mosquitto` user, which
            // cannot read the test's private temp dir.
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                conf.push_str("user root\n");
            }
            conf.push_str(&format!(
                "persistence false\nlog_dest file {log}\nlog_type error\nlog_type warning\n\
                 log_type notice\nlog_type information\nconnection_messages true\n\
                 per_listener_settings false\n",
                log = d.join("mosquitto.log").display()
            ));
            if spec.login.is_some() {
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    d.join("passwd").display()
                ));
            } else {
                conf.push_str("allow_anonymous true\n");
            }
            conf.push_str(&format!("listener {tcp_port} 127.0.0.1\n"));
            if let Some(p) = ws_port {
                conf.push_str(&format!("listener {p} 127.0.0.1\nprotocol websockets\n"));
            }
            if let (Some(ca), Some(tls), Some(wss)) = (spec.tls, tls_port, wss_port) {
                let files = format!(
                    "cafile {}\ncertfile {}\nkeyfile {}\n",
                    ca.ca_cert.display(),
                    ca.server_cert.display(),
                    ca.server_key.display()
                );
                conf.push_str(&format!("listener {tls} 127.0.0.1\n{files}"));
                conf.push_str(&format!(
                    "listener {wss} 127.0.0.1\nprotocol websockets\n{files}"
                ));
            }
            let conf_path = d.join("mosquitto.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let ports: Vec<u16> = [Some(tcp_port), ws_port, tls_port, wss_port]
                .into_iter()
                .flatten()
                .collect();
            if let Some(child) = spawn(&conf_path, &ports) {
                return Broker {
                    child: Some(child),
                    dir,
                    conf: conf_path,
                    tcp_port,
                    ws_port,
                    tls_port,
                    wss_port,
                    login: spec.login.map(|(u, p)| (u.to_owned(), p.to_owned())),
                };
            }
        }
        panic!("mosquitto did not start after 5 attempts");
    }

    fn ports(&self) -> Vec<u16> {
        [
            Some(self.tcp_port),
            self.ws_port,
            self.tls_port,
            self.wss_port,
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// SIGKILL: the broker vanishes without a word (and loses retained messages).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same ports.
    pub fn restart(&mut self) {
        self.kill9();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(c) = spawn(&self.conf, &self.ports()) {
                self.child = Some(c);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not come back on its ports:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    fn login_args(&self, cmd: &mut Command) {
        if let Some((u, p)) = &self.login {
            cmd.args(["-u", u, "-P", p]);
        }
    }

    /// Publishes one message with `mosquitto_pub` (retained if asked).
    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.tcp_port.to_string(),
            "-q",
            "1",
        ])
        .args(["-t", topic, "-m", payload]);
        if retain {
            cmd.arg("-r");
        }
        self.login_args(&mut cmd);
        let run = super::util::run_with_timeout(cmd, Duration::from_secs(10));
        assert_eq!(run.code, 0, "mosquitto_pub failed: {}", run.stderr);
    }

    /// The retained messages under `filter` right now (topic → payload).
    pub fn retained(&self, filter: &str) -> BTreeMap<String, String> {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &self.tcp_port.to_string()])
            .args(["--retained-only", "-W", "2", "-t", filter, "-F", "%t %p"]);
        self.login_args(&mut cmd);
        let run = super::util::run_with_timeout(cmd, Duration::from_secs(15));
        run.stdout
            .lines()
            .filter_map(|l| l.split_once(' ').or(Some((l, ""))))
            .map(|(t, p)| (t.to_owned(), p.to_owned()))
            .collect()
    }
}

/// Starts mosquitto on `conf` and waits until every port accepts; None if it
/// exited (a port was taken in between) or took too long.
fn spawn(conf: &Path, ports: &[u16]) -> Option<Child> {
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning mosquitto should succeed (apt-get install mosquitto)");
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if ports
            .iter()
            .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            return Some(child);
        }
        thread::sleep(Duration::from_millis(30));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One message as `mosquitto_sub` printed it.
#[derive(Clone, Debug)]
pub struct Msg {
    pub retained: bool,
    pub topic: String,
    pub payload: String,
}

impl Msg {
    /// The payload as JSON (panics with the message if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.payload))
    }
}

/// A running `mosquitto_sub -t <filter>`, recording every message.
pub struct Sub {
    child: Child,
    msgs: Arc<Mutex<Vec<Msg>>>,
}

static READY_SEQ: AtomicU32 = AtomicU32::new(0);

impl Sub {
    /// Subscribes to `filter` (and a private marker topic) and returns once
    /// the subscription is live (the marker, published after, came back).
    pub fn start(broker: &Broker, filter: &str) -> Sub {
        let marker = format!(
            "streampulse-test/ready/{}-{}",
            std::process::id(),
            READY_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &broker.tcp_port.to_string()])
            .args(["-t", filter, "-t", &marker, "-F", "%r %t %p"]);
        broker.login_args(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning mosquitto_sub should succeed");
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let m2 = msgs.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let (flag, rest) = line.split_once(' ').unwrap_or((&line, ""));
                let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
                m2.lock().unwrap().push(Msg {
                    retained: flag == "1",
                    topic: topic.to_owned(),
                    payload: payload.to_owned(),
                });
            }
        });
        let sub = Sub { child, msgs };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            broker.publish(&marker, "ready", false);
            if sub.wait_quiet(Duration::from_millis(500), |m| m.topic == marker) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto_sub never got its marker"
            );
        }
        sub
    }

    fn wait_quiet(&self, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.msgs.lock().unwrap().iter().any(&pred) {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Every message so far.
    pub fn all(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    /// Messages so far on `topic`.
    pub fn on(&self, topic: &str) -> Vec<Msg> {
        self.all()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }

    /// Waits for the first message (counting from the start) that satisfies
    /// `pred`; panics with everything received after `timeout`.
    pub fn wait(&self, timeout: Duration, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.msgs.lock().unwrap().iter().find(|m| pred(m)) {
                return m.clone();
            }
            if Instant::now() > deadline {
                let got: Vec<String> = self
                    .all()
                    .iter()
                    .map(|m| format!("{} {} {}", u8::from(m.retained), m.topic, m.payload))
                    .collect();
                panic!(
                    "timed out waiting for {what}; received:\n{}",
                    got.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Like [`Sub::wait`], but only messages after the first `skip` ones count.
    pub fn wait_after(
        &self,
        skip: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Msg) -> bool,
    ) -> Msg {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .msgs
                .lock()
                .unwrap()
                .iter()
                .skip(skip)
                .find(|m| pred(m))
                .cloned();
            if let Some(m) = found {
                return m;
            }
            if Instant::now() > deadline {
                let got: Vec<String> = self.all()[skip.min(self.count())..]
                    .iter()
                    .map(|m| format!("{} {} {}", u8::from(m.retained), m.topic, m.payload))
                    .collect();
                panic!(
                    "timed out waiting for {what}; received since:\n{}",
                    got.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `pred` holds for all messages received so far (it sees
    /// them together, e.g. to pair a discovery config with a state topic);
    /// panics with everything received after `timeout`. Unlike
    /// [`Sub::wait`] it holds no lock while `pred` runs.
    pub fn wait_all(&self, timeout: Duration, what: &str, pred: impl Fn(&[Msg]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.all();
            if pred(&all) {
                return;
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = all
                    .iter()
                    .map(|m| format!("{} {:.160}", m.topic, m.payload))
                    .collect();
                panic!(
                    "timed out waiting for {what}; received:\n{}",
                    seen.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many messages arrived so far.
    pub fn count(&self) -> usize {
        self.msgs.lock().unwrap().len()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
