//! `streampulse run`: the appliance's main loop.
//!
//! Start order: check the data directory (a RAM fallback if it is not
//! usable: degraded mode, src/system/data_dir.rs) → boot-config import → load config → open (and upgrade) the database → recorder
//! thread → tokio runtime → live view hub (the web GUI's viewers and the
//! monitor's prober) → web server (port bound) → MQTT publisher and
//! webhooks → monitor tasks → config reload loop. Stop order is the reverse:
//! monitor, pending RTSP TEARDOWNs, MQTT `offline`, webhooks, web workers,
//! recorder (commits its last batch). The first SIGINT/SIGTERM
//! stops gracefully; a second one exits at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::clock::timesync::{KernelSync, SyncSource};
use crate::config::{self, Config};
use crate::monitor::{self, Monitor};
use crate::store::{self, recorder, retention::Policy};
use crate::system::{self, watchdog};
use crate::{clock, live, shutdown, state, web};

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
    /// Overrides `web.listen` (e.g. `127.0.0.1:0` for a free port); give it
    /// several times to listen on several addresses (the first must bind).
    #[arg(long)]
    pub listen: Vec<String>,
    /// A `config.yaml` on the boot partition to merge into `--config`
    /// before loading it (after a `factory-reset` file beside it, if any):
    /// validated, written atomically, then replaced by a masked `.applied`
    /// copy (an invalid one stays, with a `.error` note). See docs/APPLIANCE.md.
    #[arg(long)]
    pub boot_config: Option<PathBuf>,
    /// Where to keep data when `--data-dir` is not usable (read-only,
    /// missing, not a directory): the daemon then runs degraded, says so on
    /// every page, in `/healthz` and in systemd's status, and runs from a
    /// copy of `--config` if that lies in the data dir. Without it an
    /// unusable data dir is an error. On the appliance: /run/streampulse-ram (RAM).
    #[arg(long)]
    pub fallback_data_dir: Option<PathBuf>,
    /// A file to write (holding the version) once the daemon has proven
    /// itself: database open, port bound, first heartbeat committed (or no
    /// stream enabled). An update's health gate waits for it before it
    /// marks a new root slot good (docs/UPDATES.md). On the appliance:
    /// /run/streampulse-ram/healthy.
    #[arg(long)]
    pub health_file: Option<PathBuf>,
}

fn policy(c: &Config) -> Policy {
    Policy {
        heartbeat_days: c.heartbeat_retention_days,
        rollup_days: c.rollup_retention_days,
    }
}

pub fn run(mut args: Args) -> Result<u8> {
    // Before the boot-config import: it merges into the config we run from.
    let chosen = system::data_dir::choose(
        &args.data_dir,
        &args.config,
        args.fallback_data_dir.as_deref(),
    )?;
    args.data_dir = chosen.data_dir;
    args.config = chosen.config;
    system::health::global().set_degraded(chosen.degraded);
    // A backup to restore (uploaded before a restart, or dropped on the
    // boot partition) first; then a boot config.yaml may still change it.
    system::restore::at_start(
        args.boot_config.as_deref().and_then(|b| b.parent()),
        &args.data_dir,
        &args.config,
    );
    if let Some(boot) = &args.boot_config {
        system::bootcfg::at_start(boot, &args.config, &args.data_dir, clock::real().now_ms());
    }
    // An update bundle dropped on the boot partition: taken (copied to
    // /data, removed from the card's FAT) before the daemon is ready, since
    // the boot partition is writable only until then; installed meanwhile.
    let updates = Arc::new(system::update::Updates::new(
        &args.data_dir,
        system::health::global().degraded().is_some(),
    ));
    if let Some(boot) = args.boot_config.as_deref().and_then(|b| b.parent()) {
        if let Err(e) = updates.take_from_boot(boot, clock::real()) {
            tracing::error!("update: {e:#}");
        }
    }
    let cfg = config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    mask_in_log(&cfg, &args.config);
    tracing::info!(
        "streampulse {} starting: {} streams from {}, data in {}",
        crate::VERSION,
        cfg.streams.len(),
        args.config.display(),
        args.data_dir.display()
    );
    let db_path = args.data_dir.join(store::DB_FILE);
    let conn = store::open(&db_path)?;
    let board = restored_board(&conn, &cfg, clock::real().now_ms());
    system::health::global().set_data_dir(&args.data_dir);
    let clock = clock::real();
    let sync: Arc<dyn SyncSource> = Arc::new(KernelSync);
    let recorder = recorder::start(
        conn,
        clock.clone(),
        cfg.commit_interval,
        cfg.heartbeat_flush,
        policy(&cfg),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // DNS lookups and HTTP probes run here; bounded so a hung resolver
        // cannot grow threads without limit.
        .max_blocking_threads(64)
        .thread_name("streampulse-rt")
        .enable_all()
        .build()
        .context("building the tokio runtime")?;

    let shared_cfg = Arc::new(RwLock::new(Arc::new(cfg.clone())));
    let config_error = Arc::new(Mutex::new(None));
    let (shutdown_tx, shutdown_rx) = shutdown::channel();

    let result = rt.block_on(async {
        // The live view: its camera sessions serve the web GUI's viewers and
        // answer the monitor's probes of streams watched live (one camera
        // session, not two).
        let live = live::Hub::new(Some(tokio::runtime::Handle::current()), clock.clone());
        let ctx = Arc::new(monitor::Ctx::new(
            board.clone(),
            recorder.sender(),
            clock.clone(),
            sync.clone(),
            cfg.max_concurrent_probes,
            live.clone(),
        ));
        let web_ctx = Arc::new(web::WebCtx {
            board: board.clone(),
            config: shared_cfg.clone(),
            config_error: config_error.clone(),
            db_path: db_path.clone(),
            clock: clock.clone(),
            sync: sync.clone(),
            recorder_stats: recorder.stats.clone(),
            heartbeat_tail: recorder.tail.clone(),
            rollup_cache: Default::default(),
            monitor: Some(ctx.clone()),
            started: Instant::now(),
            gui: web::Gui::new(
                &args.config,
                &args.data_dir,
                clock.clone(),
                Some(tokio::runtime::Handle::current()),
                live.clone(),
                updates.clone(),
            ),
        });
        let listen = if args.listen.is_empty() {
            &cfg.web_listen
        } else {
            &args.listen
        };
        let web = web::start(listen, cfg.web_workers, web_ctx.clone())?;
        for a in &web.addrs {
            tracing::info!("listening on http://{a}");
        }

        let mut monitor = Monitor::new(ctx, cfg.max_concurrent_probes, shutdown_rx.clone());
        // Readers of state changes, subscribed before the first probe; the
        // monitor's broadcast is bounded, so neither can ever slow it down.
        let transitions = monitor.ctx().transitions.clone();
        let report = crate::report::Source::new(board.clone(), shared_cfg.clone()).with_box_facts(
            box_facts(
                clock.clone(),
                sync.clone(),
                args.data_dir.clone(),
                config_error.clone(),
            ),
        );
        let mut mqtt = crate::mqtt::MqttHandle::start(&cfg, report, transitions.clone());
        let evidence = crate::evidence::start(
            crate::evidence::dir(&args.data_dir),
            &transitions,
            monitor.ctx().last_good.clone(),
        );
        let mut notifier = crate::webhooks::NotifyHandle::start(&cfg, transitions);
        monitor.apply(&cfg);

        // DB open and port bound: tell systemd (if it supervises us) and
        // ping its watchdog only while the loop, recorder and probes progress.
        let loop_ticks = Arc::new(AtomicU64::new(0));
        let watchdog = watchdog::start_for_run(
            watchdog::RunProgress {
                loop_ticks: loop_ticks.clone(),
                monitor: monitor.ctx().clone(),
                recorder: recorder.stats.clone(),
                config: shared_cfg.clone(),
                board: board.clone(),
            },
            shutdown_rx.clone(),
        );
        if let Some(w) = &watchdog {
            system::health::global().set_watchdog(w.report.clone());
        }
        let health_file = args.health_file.clone().map(|path| {
            system::health_file::start(
                path,
                recorder.stats.clone(),
                shared_cfg.clone(),
                shutdown_rx.clone(),
            )
        });
        let system_thread = system::health::start(
            system::health::global(),
            shared_cfg.clone(),
            recorder.sender(),
            clock.clone(),
            shutdown_rx.clone(),
        );

        let mut reloader = config::Reloader::new(&args.config);
        let signals = wait_for_signal();
        tokio::pin!(signals);
        let mut restart = false;
        loop {
            loop_ticks.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = &mut signals => break,
                // A restored backup waits for the next start.
                _ = web_ctx.gui.restart.notified() => {
                    tracing::warn!("restarting to apply a restored backup");
                    restart = true;
                    break;
                }
                _ = tokio::time::sleep(RELOAD_POLL) => {}
                // The web GUI wrote config.yaml: read it now.
                _ = web_ctx.gui.reload_now.notified() => {}
            }
            match reloader.poll() {
                None => {}
                Some(Ok(new)) => {
                    mask_in_log(&new, &args.config);
                    tracing::info!("config reloaded: {} streams", new.streams.len());
                    monitor.apply(&new);
                    // Reconnects only if the mqtt: section changed.
                    mqtt.apply(&new).await;
                    notifier.apply(&new);
                    // Tightened if the data partition is filling up.
                    let p = system::health::global().effective_policy(policy(&new));
                    recorder.sender().send(recorder::Record::Retention(p));
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
        if let Some(w) = &watchdog {
            w.stopping();
        }
        drop(shutdown_tx);
        live.shutdown();
        monitor.stop().await;
        crate::probe::rtsp::wait_for_teardowns(Duration::from_secs(3)).await;
        // Retained `offline` on the availability topic, then DISCONNECT.
        mqtt.stop().await;
        notifier.stop();
        evidence.abort();
        if let Some(h) = health_file {
            h.abort();
        }
        // Both threads return at their next wait once shutdown is signalled.
        if let Some(w) = watchdog {
            w.join();
        }
        let _ = system_thread.join();
        Ok::<_, anyhow::Error>((web, restart))
    });
    let (web, restart) = result?;
    web.stop();
    rt.shutdown_timeout(Duration::from_secs(2));
    recorder.stop();
    tracing::info!("stopped");
    if restart {
        return Err(restart_in_place());
    }
    Ok(0)
}

/// The board as the streams were when the daemon last ran (from the
/// database), so a restart is not a state change for MQTT, webhooks and
/// the pages; [`Monitor::apply`] keeps these entries for the same camera.
/// A database that cannot answer only costs the restore.
fn restored_board(conn: &rusqlite::Connection, cfg: &Config, now_ms: i64) -> state::Board {
    let board = state::new_board();
    let wanted: Vec<store::last_state::Wanted> = cfg
        .streams
        .iter()
        .map(|s| store::last_state::Wanted {
            name: &s.name,
            kind: s.target.kind,
            url_redacted: &s.url_redacted,
        })
        .collect();
    match store::last_state::last_states(conn, &wanted, now_ms) {
        Ok(mut found) => {
            let mut b = board.lock().expect("board lock");
            // A disabled stream shows `disabled`, not its old health.
            for sc in cfg.streams.iter().filter(|s| s.enabled) {
                if let Some(r) = found.remove(&sc.name) {
                    b.insert(sc.name.clone(), state::StreamState::restored(sc, r));
                }
            }
            tracing::info!(
                "restored the last state of {} of {} streams",
                b.len(),
                cfg.streams.len()
            );
        }
        Err(e) => {
            tracing::warn!("could not read the streams' last state ({e}); starting from unknown")
        }
    }
    board
}

/// What MQTT's box entities show, read when it publishes (every interval):
/// the clock's sync state, the data partition's free space, and whether
/// the config on disk failed to load (a flag: the error may quote the file).
fn box_facts(
    clock: clock::SharedClock,
    sync: Arc<dyn SyncSource>,
    data_dir: PathBuf,
    config_error: Arc<Mutex<Option<String>>>,
) -> crate::report::BoxFactsFn {
    Arc::new(move || {
        let now_ms = clock.now_ms();
        crate::report::BoxFacts {
            now_ms,
            clock_synced: Some(sync.state(now_ms).trusted()),
            disk_free_percent: store::disk::usage(&data_dir).ok().map(|u| u.free_percent()),
            config_error: config_error.lock().expect("config_error lock").is_some(),
        }
    })
}

/// Replaces this process with a fresh start of the same command (same PID:
/// under systemd the service stays active, its watchdog allows the few
/// seconds a start takes). Returns only if that failed; the error then ends
/// the process, and systemd's `Restart=` starts it again.
fn restart_in_place() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return anyhow::anyhow!("restart: cannot find this program: {e}"),
    };
    let err = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::anyhow!("restart: could not run {}: {err}", exe.display())
}

/// Masks `cfg`'s secrets (read from its file at `path`) in the kept log.
fn mask_in_log(cfg: &Config, path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    system::recent_log::set_secrets(cfg.secrets(&text));
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
