//! The HTTP server: a fixed pool of worker threads sharing one
//! `tiny_http::Server` (a Pi Zero has little RAM; no async web stack needed).
//!
//! Each worker calls [`serve`], which routes, answers with a content type on
//! every response, and logs once per request. Handlers return
//! `Result<Response, HttpError>` and the error becomes a JSON body in one place.
//! Readers only: the web never writes to the database.

pub mod api;
pub mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::monitor;
use crate::state::Board;
use crate::store::recorder::RecorderStats;
use crate::system::timesync::SyncSource;
use routes::Route;

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
    pub monitor: Option<Arc<monitor::Ctx>>,
    pub started: Instant,
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
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    /// The bound address (useful when listening on port 0).
    pub addr: SocketAddr,
}

impl WebHandle {
    /// Unblocks each worker once and joins them.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Binds `listen` and starts `workers` threads.
pub fn start(listen: &str, workers: usize, ctx: Arc<WebCtx>) -> Result<WebHandle> {
    let server = tiny_http::Server::http(listen)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!("cannot listen on {listen} (is another program using the port?)")
        })?;
    let addr = server
        .server_addr()
        .to_ip()
        .context("web server bound to a non-IP address")?;
    let server = Arc::new(server);
    let stopping = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let (server, ctx, stopping) = (server.clone(), ctx.clone(), stopping.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("web-{i}"))
                .spawn(move || worker(&server, &ctx, &stopping))
                .expect("spawning a web worker should succeed"),
        );
    }
    Ok(WebHandle {
        server,
        stopping,
        workers: handles,
        addr,
    })
}

fn worker(server: &tiny_http::Server, ctx: &WebCtx, stopping: &AtomicBool) {
    // One read-only SQLite connection per worker, opened on first use.
    let mut db: Option<rusqlite::Connection> = None;
    loop {
        match server.recv() {
            Ok(rq) => serve(ctx, &mut db, rq),
            Err(e) => {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                tracing::debug!("accept error: {e}");
            }
        }
    }
}

/// Answers one request.
pub fn serve(ctx: &WebCtx, db: &mut Option<rusqlite::Connection>, rq: Request) {
    let t = Instant::now();
    let method = rq.method().clone();
    let (path, query) = routes::split_query(rq.url());
    let route = Route::decode(path);
    let query = query.to_owned();
    let result = if method != Method::Get && method != Method::Head {
        Err(HttpError::new(405, "method not allowed"))
    } else {
        serve_inner(ctx, db, &route, &query)
    };
    let (status, body, ctype) = match result {
        Ok((body, ctype)) => (200, body, ctype),
        Err(e) => {
            let body = serde_json::to_vec(&serde_json::json!({ "error": e.public_msg }))
                .unwrap_or_default();
            (e.status, body, "application/json")
        }
    };
    tracing::debug!("{method} {route:?} {status} {:?}", t.elapsed());
    let resp = Response::from_data(body)
        .with_status_code(StatusCode(status))
        .with_header(header("Content-Type", ctype))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"));
    if let Err(e) = rq.respond(resp) {
        tracing::debug!("response not delivered: {e}");
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

fn serve_inner(
    ctx: &WebCtx,
    db: &mut Option<rusqlite::Connection>,
    route: &Route,
    query: &str,
) -> Result<(Vec<u8>, &'static str), HttpError> {
    let json = |v: serde_json::Value| {
        Ok((
            serde_json::to_vec_pretty(&v).unwrap_or_default(),
            "application/json",
        ))
    };
    match route {
        Route::Root => Ok((
            api::index_text(ctx).into_bytes(),
            "text/plain; charset=utf-8",
        )),
        Route::ApiStatus => json(api::status(ctx)),
        Route::ApiStreams => json(api::streams(ctx)),
        Route::Healthz => json(api::healthz(ctx)),
        Route::ApiStreamHistory(name) => {
            if db.is_none() {
                *db = Some(crate::store::open_read_only(&ctx.db_path).map_err(|e| {
                    tracing::error!("history: {e:#}");
                    HttpError::new(503, "database not available")
                })?);
            }
            json(api::history(
                ctx,
                db.as_ref().expect("opened above"),
                name,
                query,
            )?)
        }
        Route::NotFound => Err(HttpError::new(404, "not found")),
    }
}
