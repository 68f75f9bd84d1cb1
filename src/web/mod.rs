//! The HTTP server: a fixed pool of worker threads serving one
//! `tiny_http::Server` per listen address (a Pi Zero has little RAM; no async web stack needed),
//! serving the web GUI (askama pages), the JSON API and `/metrics`.
//!
//! Each worker calls [`serve`] ([`handler::serve`]), which reads the request
//! (body capped), checks that it names this box ([`host`]), routes it ([`routes`]), decides who is asking and whether
//! they may ([`auth`]: admin password, sessions, CSRF, API tokens), runs
//! the handler ([`pages`], [`api`], [`metrics`]) and answers with a content
//! type and security headers, logging once per request.
//!
//! The web never writes to the database. It changes the configuration only
//! through [`crate::config::edit`] (validated, atomic write of `config.yaml`),
//! which the daemon's reload loop then applies ([`Gui::reload_now`]).

pub mod api;
pub mod auth;
pub mod availability;
pub mod backup;
pub mod chart;
pub mod check;
pub mod export;
pub mod handler;
pub mod host;
pub mod live_page;
pub mod metrics;
pub mod pages;
pub mod routes;
pub mod system_page;
pub mod update;
pub mod write_api;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use tiny_http::Request;

use crate::clock::timesync::SyncSource;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::monitor;
use crate::state::Board;
use crate::store::recorder::RecorderStats;

/// What handlers read. Everything is shared with the monitor side.
pub struct WebCtx {
    pub board: Board,
    pub config: Arc<RwLock<Arc<Config>>>,
    /// The last config reload error, shown until a good file replaces it.
    pub config_error: Arc<Mutex<Option<String>>>,
    pub db_path: PathBuf,
    pub clock: SharedClock,
    pub sync: Arc<dyn SyncSource>,
    pub recorder_stats: Arc<RecorderStats>,
    /// Heartbeats the recorder has not written yet; history reads merge them.
    pub heartbeat_tail: Arc<crate::store::blocks::Tail>,
    /// The availability figures' rollup sums, kept for the hour.
    pub rollup_cache: crate::store::availability::RollupCache,
    pub monitor: Option<Arc<monitor::Ctx>>,
    pub started: Instant,
    /// The web GUI's own state: sessions, tokens, the config editor, checks.
    pub gui: Gui,
}

/// State of the web GUI, shared by the worker threads.
pub struct Gui {
    pub sessions: auth::Sessions,
    pub limiter: auth::LoginLimiter,
    pub tokens: auth::ApiTokens,
    /// `config.yaml`, edited by the settings and stream pages.
    pub config_file: crate::config::edit::ConfigFile,
    /// "Check now" runs and their kept pictures.
    pub checks: check::Checks,
    /// Notified after the GUI wrote `config.yaml`; the reload loop then
    /// reads it at once instead of at its next poll.
    pub reload_now: Arc<tokio::sync::Notify>,
    /// Notified after a backup was staged for restoring: the daemon stops
    /// and starts again, which applies it (`system::restore`).
    pub restart: Arc<tokio::sync::Notify>,
    /// The live view: camera relays and grid thumbnails.
    pub live: Arc<crate::live::Hub>,
    /// The names requests may carry in `Host` (besides `web.allowed_hosts`).
    pub names: host::BoxNames,
    /// Where the evidence of outages is kept (`crate::evidence`).
    pub evidence_dir: std::path::PathBuf,
    /// Update bundles: their install and the rollback note.
    pub updates: Arc<crate::system::update::Updates>,
}

impl Gui {
    /// `config_path` is the file the daemon runs from, `data_dir` holds the
    /// API tokens, `runtime` runs "Check now" probes, `live` is the daemon's
    /// live view (shared with the monitor, see `cmds::run`).
    pub fn new(
        config_path: &std::path::Path,
        data_dir: &std::path::Path,
        clock: SharedClock,
        runtime: Option<tokio::runtime::Handle>,
        live: Arc<crate::live::Hub>,
        updates: Arc<crate::system::update::Updates>,
    ) -> Gui {
        Gui {
            sessions: auth::Sessions::new(clock.clone()),
            live,
            limiter: auth::LoginLimiter::new(clock),
            tokens: auth::ApiTokens::load(data_dir),
            config_file: crate::config::edit::ConfigFile::new(config_path),
            checks: check::Checks::new(runtime),
            reload_now: Arc::new(tokio::sync::Notify::new()),
            restart: Arc::new(tokio::sync::Notify::new()),
            names: host::BoxNames::read(),
            evidence_dir: crate::evidence::dir(data_dir),
            updates,
        }
    }
}

/// An error answer.
#[derive(Debug)]
pub struct HttpError {
    pub status: u16,
    pub public_msg: String,
}

impl HttpError {
    pub fn new(status: u16, msg: impl Into<String>) -> Self {
        HttpError {
            status,
            public_msg: msg.into(),
        }
    }
}

/// A running server.
pub struct WebHandle {
    servers: Vec<Arc<tiny_http::Server>>,
    stopping: Arc<AtomicBool>,
    /// One acceptor per listener, then the workers.
    threads: Vec<JoinHandle<()>>,
    /// The first bound address (useful when listening on port 0).
    pub addr: SocketAddr,
    /// Every bound address, in the order given.
    pub addrs: Vec<SocketAddr>,
}

impl WebHandle {
    /// Unblocks each acceptor; the workers end when the last one has gone.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for s in &self.servers {
            s.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Binds every address of `listen` and starts `workers` threads serving
/// all of them.
///
/// One `tiny_http::Server` per address, each with one small acceptor thread
/// handing its requests to one shared pool of `workers` (so a second
/// listener costs a thread, not a second pool, on a 512 MB Pi). The first
/// address must bind (an error otherwise, as with a single address); a later
/// one that cannot (port 80 on a host without the appliance's sysctl, or
/// taken) is logged as an error and shown in `/healthz` (`web.listen_failed`),
/// and the box stays reachable on the others.
pub fn start(listen: &[String], workers: usize, ctx: Arc<WebCtx>) -> Result<WebHandle> {
    let mut servers = Vec::with_capacity(listen.len());
    let mut addrs = Vec::with_capacity(listen.len());
    let mut failed = Vec::new();
    for (i, l) in listen.iter().enumerate() {
        match bind(l) {
            Ok((server, addr)) => {
                servers.push(Arc::new(server));
                addrs.push(addr);
            }
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                tracing::error!("{e:#}; the web GUI stays reachable on {}", listen[0]);
                failed.push((l.clone(), format!("{e:#}")));
            }
        }
    }
    crate::system::health::global()
        .set_web_listen(addrs.iter().map(|a| a.to_string()).collect(), failed);
    // Rendezvous: a request waits in its listener's queue until a worker is
    // free, as it did with one server and workers calling `recv` directly.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Request>(0);
    let rx = Arc::new(Mutex::new(rx));
    let stopping = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::with_capacity(servers.len() + workers);
    for (i, server) in servers.iter().enumerate() {
        let (server, tx, stopping) = (server.clone(), tx.clone(), stopping.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("web-accept-{i}"))
                .stack_size(64 * 1024)
                .spawn(move || accept(&server, &tx, &stopping))
                .expect("spawning a web acceptor should succeed"),
        );
    }
    drop(tx);
    for i in 0..workers {
        let (rx, ctx) = (rx.clone(), ctx.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("web-{i}"))
                .spawn(move || worker(&rx, &ctx))
                .expect("spawning a web worker should succeed"),
        );
    }
    Ok(WebHandle {
        servers,
        stopping,
        threads,
        addr: addrs[0],
        addrs,
    })
}

/// One listening `tiny_http::Server` on `listen` and its bound address.
fn bind(listen: &str) -> Result<(tiny_http::Server, SocketAddr)> {
    let listener = std::net::TcpListener::bind(listen).with_context(|| {
        format!("cannot listen on {listen} (is another program using the port?)")
    })?;
    set_nodelay(&listener);
    set_send_timeout(&listener, SEND_TIMEOUT);
    let server = tiny_http::Server::from_listener_with_limits(listener, None, limits())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot serve on {listen}"))?;
    let addr = server
        .server_addr()
        .to_ip()
        .context("web server bound to a non-IP address")?;
    Ok((server, addr))
}

/// Sets TCP_NODELAY on the listening socket; Linux copies it to every
/// accepted connection. tiny_http writes a reply in 1 KiB pieces, and without
/// it the last piece of every keep-alive reply waited for the client's delayed
/// ACK: `/api/status` took 44 ms instead of < 1 ms (measured by `make bench`).
fn set_nodelay(listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("TCP_NODELAY: {}", std::io::Error::last_os_error());
    }
}

/// A read from a client that makes no progress for this long fails, and an
/// idle keep-alive connection is closed after it.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// A request's head and body must arrive within this from its first byte.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// Longest request head (request line and headers) accepted; beyond: 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Connections open at once; beyond: 503 and close. Each costs a thread
/// (tiny_http reads every connection on its own thread).
pub const MAX_CONNECTIONS: usize = 256;
/// Connections open at once from one address (a browser opens about 6; the
/// live grid one more per camera shown): one noisy host cannot take them all.
pub const MAX_CONNECTIONS_PER_IP: usize = 64;

/// What one client may hold (tiny_http has no limits of its own; see
/// `vendor/tiny_http/PATCHED.md`): bodies up to [`handler::MAX_BODY_BYTES`]
/// arrive completely on the connection's own thread before a worker sees
/// the request, so a client trickling its request ties up only that
/// thread, for at most [`REQUEST_TIMEOUT`], never one of the N workers.
/// Unread bodies (refused with 413) are skipped up to 1 MiB on that thread,
/// or the connection is closed.
fn limits() -> tiny_http::Limits {
    tiny_http::Limits {
        read_timeout: Some(READ_TIMEOUT),
        request_timeout: Some(REQUEST_TIMEOUT),
        max_head_bytes: MAX_HEAD_BYTES,
        buffer_body_bytes: handler::MAX_BODY_BYTES,
        max_skip_bytes: 1024 * 1024,
        max_connections: MAX_CONNECTIONS,
        max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
    }
}

/// A write to a client that makes no progress for this long fails.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Sets SO_SNDTIMEO on the listening socket; Linux copies it to every
/// accepted connection (tiny_http has no timeouts of its own). A browser
/// whose network vanished mid-response then costs a thread for at most
/// this long: a live viewer ([`crate::live`]) ends, a worker is free again.
fn set_send_timeout(listener: &std::net::TcpListener, d: std::time::Duration) {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid socket fd and a timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("SO_SNDTIMEO: {}", std::io::Error::last_os_error());
    }
}

/// Hands `server`'s requests to the workers until [`WebHandle::stop`].
fn accept(
    server: &tiny_http::Server,
    tx: &std::sync::mpsc::SyncSender<Request>,
    stopping: &AtomicBool,
) {
    loop {
        match server.recv() {
            Ok(rq) => {
                if tx.send(rq).is_err() {
                    return;
                }
            }
            Err(e) => {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                tracing::debug!("accept error: {e}");
            }
        }
    }
}

/// Serves requests until every acceptor has ended.
fn worker(rx: &Mutex<std::sync::mpsc::Receiver<Request>>, ctx: &WebCtx) {
    // One read-only SQLite connection per worker, opened on first use.
    let mut db: Option<rusqlite::Connection> = None;
    loop {
        // The lock is held only while waiting; serving runs without it.
        let rq = rx.lock().expect("web queue lock").recv();
        match rq {
            Ok(rq) => serve(ctx, &mut db, rq),
            Err(_) => return,
        }
    }
}

/// Answers one request; see [`handler::serve`].
pub fn serve(ctx: &WebCtx, db: &mut Option<rusqlite::Connection>, rq: Request) {
    handler::serve(ctx, db, rq)
}
