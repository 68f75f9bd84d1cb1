//! The real web-camera peer with authentication: lighttpd serving a JPEG
//! behind Basic and Digest auth and proxying an ffmpeg MJPEG stream behind
//! Digest, as IP cameras do.

use std::process::{Child, Command, Stdio};

use super::children::{terminate, wait_listening};
use super::jpeg::sample_jpeg;
use super::mjpeg_servers::MjpegServer;
use super::{free_port, temp_dir};

/// lighttpd (a real web server with Basic and Digest auth, as cameras use)
/// serving `snap.jpg` under `/basic/` (Basic) and `/digest/` (Digest), and
/// proxying `/digest-stream/stream.mjpg` to an ffmpeg MJPEG server behind
/// Digest auth. Credentials: `admin` / [`HTTP_PASSWORD`].
pub struct LighttpdServer {
    pub port: u16,
    child: Child,
    _mjpeg: MjpegServer,
    _dir: tempfile::TempDir,
}

/// Password of the lighttpd test server.
pub const HTTP_PASSWORD: &str = "s3cret-Pa55";

impl LighttpdServer {
    pub fn start() -> LighttpdServer {
        let mjpeg = MjpegServer::start();
        let dir = temp_dir("lighttpd");
        let www = dir.path().join("www");
        for sub in ["basic", "digest"] {
            std::fs::create_dir_all(www.join(sub)).unwrap();
            std::fs::write(www.join(sub).join("snap.jpg"), sample_jpeg()).unwrap();
        }
        // htdigest: user:realm:md5(user:realm:password); serves Basic and Digest.
        let ha1 = md5_hex(format!("admin:cam:{HTTP_PASSWORD}").as_bytes());
        std::fs::write(dir.path().join("htdigest"), format!("admin:cam:{ha1}\n")).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let conf = format!(
                r#"server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {port}
server.modules = ("mod_auth", "mod_authn_file", "mod_proxy")
server.errorlog = "{dir}/error.log"
server.pid-file = "{dir}/lighttpd.pid"
server.stream-response-body = 2
mimetype.assign = (".jpg" => "image/jpeg")
auth.backend = "htdigest"
auth.backend.htdigest.userfile = "{dir}/htdigest"
auth.require = (
  "/basic/" => ("method" => "basic", "realm" => "cam", "require" => "valid-user"),
  "/digest/" => ("method" => "digest", "realm" => "cam", "require" => "valid-user"),
  "/digest-stream/" => ("method" => "digest", "realm" => "cam", "require" => "valid-user"),
)
$HTTP["url"] =~ "^/digest-stream/" {{
  proxy.server = ("" => (("host" => "127.0.0.1", "port" => {mjpeg_port})))
}}
"#,
                www = www.display(),
                dir = dir.path().display(),
                mjpeg_port = mjpeg.port,
            );
            let conf_path = dir.path().join("lighttpd.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let mut child = Command::new("lighttpd")
                .arg("-D")
                .arg("-f")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning lighttpd should succeed (apt-get install lighttpd)");
            if wait_listening(&mut child, port) {
                return LighttpdServer {
                    port,
                    child,
                    _mjpeg: mjpeg,
                    _dir: dir,
                };
            }
            terminate(&mut child);
        }
        panic!("lighttpd did not start listening after 5 attempts");
    }

    /// `http://127.0.0.1:<port><path>` without credentials.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for LighttpdServer {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// MD5 as lowercase hex, via coreutils' `md5sum` (tests only; no crate needed).
fn md5_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
