//! `streampulse run`: the appliance's main loop.
//!
//! Start order: load config → open (and upgrade) the database → recorder
//! thread → tokio runtime → web server (port bound) → monitor tasks → config
//! reload loop. Stop order is the reverse: monitor, pending RTSP TEARDOWNs,
//! web workers, recorder (commits its last batch). The first SIGINT/SIGTERM
//! stops gracefully; a second one exits at once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::{self, Config};
use crate::monitor::{self, Monitor};
use crate::store::{self, recorder, retention::Policy};
use crate::system::timesync::{KernelSync, SyncSource};
use crate::{clock, shutdown, state, web};

/// How often the config file is checked for edits.
const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (on the appliance: on the data partition).
    #[arg(long, default_value = "config.yaml")]
    pub config: PathBuf,
    /// Where the database lives (on the appliance: the data partition).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Overrides `web.listen` (e.g. `127.0.0.1:0` for a free port).
    #[arg(long)]
    pub listen: Option<String>,
}

fn policy(c: &Config) -> Policy {
    Policy {
        heartbeat_days: c.heartbeat_retention_days,
        rollup_days: c.rollup_retention_days,
    }
}

pub fn run(args: Args) -> Result<u8> {
    let cfg = config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(
        "streampulse {} starting: {} streams from {}, data in {}",
        crate::VERSION,
        cfg.streams.len(),
        args.config.display(),
        args.data_dir.display()
    );
    if cfg.has_mqtt_block {
        tracing::info!("config has an mqtt: block; this build does not publish to MQTT yet");
    }
    let db_path = args.data_dir.join(store::DB_FILE);
    let conn = store::open(&db_path)?;
    let clock = clock::real();
    let sync: Arc<dyn SyncSource> = Arc::new(KernelSync);
    let recorder = recorder::start(conn, clock.clone(), cfg.commit_interval, policy(&cfg));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // DNS lookups and HTTP probes run here; bounded so a hung resolver
        // cannot grow threads without limit.
        .max_blocking_threads(64)
        .thread_name("streampulse-rt")
        .enable_all()
        .build()
        .context("building the tokio runtime")?;

    let board = state::new_board();
    let shared_cfg = Arc::new(RwLock::new(Arc::new(cfg.clone())));
    let config_error = Arc::new(Mutex::new(None));
    let (shutdown_tx, shutdown_rx) = shutdown::channel();

    let result = rt.block_on(async {
        let ctx = Arc::new(monitor::Ctx::new(
            board.clone(),
            recorder.sender(),
            clock.clone(),
            sync.clone(),
            cfg.max_concurrent_probes,
        ));
        let web_ctx = Arc::new(web::WebCtx {
            board: board.clone(),
            config: shared_cfg.clone(),
            config_error: config_error.clone(),
            db_path: db_path.clone(),
            clock: clock.clone(),
            sync: sync.clone(),
            recorder_stats: recorder.stats.clone(),
            monitor: Some(ctx.clone()),
            started: Instant::now(),
        });
        let listen = args
            .listen
            .clone()
            .unwrap_or_else(|| cfg.web_listen.clone());
        let web = web::start(&listen, cfg.web_workers, web_ctx)?;
        tracing::info!("listening on http://{}", web.addr);

        let mut monitor = Monitor::new(ctx, cfg.max_concurrent_probes, shutdown_rx.clone());
        monitor.apply(&cfg);

        let mut reloader = config::Reloader::new(&args.config);
        let signals = wait_for_signal();
        tokio::pin!(signals);
        loop {
            tokio::select! {
                _ = &mut signals => break,
                _ = tokio::time::sleep(RELOAD_POLL) => {}
            }
            match reloader.poll() {
                None => {}
                Some(Ok(new)) => {
                    tracing::info!("config reloaded: {} streams", new.streams.len());
                    monitor.apply(&new);
                    recorder
                        .sender()
                        .send(recorder::Record::Retention(policy(&new)));
                    *shared_cfg.write().expect("config lock") = Arc::new(new);
                    *config_error.lock().expect("config_error lock") = None;
                }
                Some(Err(e)) => {
                    tracing::error!("config not reloaded, the previous one keeps running: {e}");
                    *config_error.lock().expect("config_error lock") = Some(e.to_string());
                }
            }
        }
        tracing::info!("stopping");
        drop(shutdown_tx);
        monitor.stop().await;
        crate::probe::rtsp::wait_for_teardowns(Duration::from_secs(3)).await;
        Ok::<_, anyhow::Error>(web)
    });
    let web = result?;
    web.stop();
    rt.shutdown_timeout(Duration::from_secs(2));
    recorder.stop();
    tracing::info!("stopped");
    Ok(0)
}

/// Resolves on the first SIGINT/SIGTERM; a second one exits immediately.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).expect("installing a SIGTERM handler should succeed");
    let mut int =
        signal(SignalKind::interrupt()).expect("installing a SIGINT handler should succeed");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}
