//! Issue 8, faults on the store side, against the real daemon and a real
//! snapshot camera (Python's http.server) on loopback:
//!
//! * power loss: 100 SIGKILLs at random moments while the recorder commits
//!   every second; after each one the database passes `integrity_check`,
//!   nothing committed is gone, at most the last batch is, and the next start
//!   is clean;
//! * a full data partition (a small tmpfs, filled by a filler file): the
//!   monitor keeps probing and serving, the error is visible, nothing is
//!   corrupted, and recording resumes without a restart once space is back;
//!   with old history on the card, the emergency prune makes room by itself.
//!
//! Clock jumps in the retention path are covered by unit tests in
//! `src/store/retention.rs` and `src/store/recorder.rs` and end to end by
//! `outages.rs` (history order, retention under a forward jump).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::app::App;
use super::util::{temp_dir, SnapshotServer};
use super::web::{log_in, set_up, Browser, PASSWORD};

/// The shortest heartbeat the config accepts (`heartbeat_seconds` ≥ 5): the
/// write rate comes from the number of streams instead.
const HEARTBEAT_S: u64 = 5;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

/// A config with `n` snapshot streams on `snap`, every [`HEARTBEAT_S`], one
/// commit a second, plus `extra` top-level YAML.
fn snapshot_config(snap: &SnapshotServer, n: usize, extra: &str) -> String {
    let mut text = format!(
        "heartbeat_seconds: {HEARTBEAT_S}\nmonitor:\n  commit_seconds: 1\n  heartbeat_flush_seconds: 1\n  max_concurrent_probes: 32\n{extra}streams:\n"
    );
    for i in 0..n {
        // A query string per stream: distinct URLs, same real JPEG.
        text.push_str(&format!(
            "- name: s{i}\n  url: {}?s={i}\n  kind: snapshot\n  timeout: 4\n",
            snap.url("snap.jpg")
        ));
    }
    text
}

/// The recorder's counters from `/healthz`.
#[derive(Clone, Debug, Default)]
struct Rec {
    committed: u64,
    commit_errors: u64,
    dropped: u64,
}

fn recorder(h: &Value) -> Rec {
    let r = &h["recorder"];
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    Rec {
        committed: n("heartbeats_committed"),
        commit_errors: n("commit_errors"),
        dropped: n("dropped"),
    }
}

fn healthz(app: &App) -> Value {
    let (code, h) = app.get("/healthz");
    assert_eq!(code, 200, "/healthz: {h}");
    h
}

/// Per stream: heartbeats taken by this process and the last one's time.
fn taken(status: &Value) -> BTreeMap<String, (u64, Option<i64>)> {
    status
        .as_object()
        .unwrap_or_else(|| panic!("/api/status is not an object: {status}"))
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                (s["probes_total"].as_u64().unwrap_or(0), s["ts_ms"].as_i64()),
            )
        })
        .collect()
}

fn total_taken(status: &Value) -> u64 {
    taken(status).values().map(|(n, _)| n).sum()
}

/// Opens the database read-only, so a crashed state is checked as it is
/// (a read-only connection neither checkpoints nor deletes the WAL).
fn open_ro(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", db.display()))
}

fn integrity(db: &Path) -> String {
    open_ro(db)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("integrity_check of {}: {e}", db.display()))
}

/// Stored heartbeats per stream name with `ts_ms >= since`.
fn stored_since(db: &Path, since: i64) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (name, h) in super::util::stored_heartbeats(&open_ro(db)) {
        if h.ts_ms >= since {
            *counts.entry(name).or_insert(0) += 1;
        }
    }
    counts
}

fn count(db: &Path, sql: &str) -> u64 {
    open_ro(db)
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Polls `/healthz` until `pred` holds on it; panics after `timeout`.
fn wait_healthz(app: &App, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let h = healthz(app);
        if pred(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last /healthz:\n{h:#}\nlog tail:\n{}",
            notable_log(app, 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The daemon's log without its per-probe DEBUG lines, last `n` lines.
fn notable_log(app: &App, n: usize) -> String {
    let log = app.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" DEBUG ")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" ERROR ")).collect()
}

fn percentile(sorted: &[u128], p: usize) -> u128 {
    sorted[(sorted.len() - 1) * p / 100]
}

/// Power loss, 100 times: 100 snapshot streams every 5 s (≈ 20 heartbeats/s),
/// one commit a second. Each round starts the daemon on the database the
/// last SIGKILL left, waits for its first commit, kills it at a random
/// moment 50–1100 ms later, and checks the files as the kill left them:
/// `integrity_check` is ok, every heartbeat `/healthz` reported committed is
/// stored, and at most the last batch is lost. A stream probes every
/// 4.5–5.5 s and a batch spans 1 s, so per stream at most its newest
/// heartbeat may be missing, and only one taken within the last 4 s.
/// The next round's start proves the daemon starts cleanly (no ERROR line).
#[test]
fn power_loss_sigkill_rounds_lose_at_most_the_last_batch() {
    const STREAMS: usize = 100;
    // Fewer rounds for a quick look: STREAMPULSE_FAULTS_KILLS=10.
    let rounds: usize = std::env::var("STREAMPULSE_FAULTS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let snap = SnapshotServer::start();
    let dir = temp_dir("power_loss");
    let config = dir.path().join("config.yaml");
    let data = dir.path().join("data");
    let db = data.join("streampulse.db");
    std::fs::write(&config, snapshot_config(&snap, STREAMS, "")).unwrap();

    let t_all = Instant::now();
    let mut to_first_commit = Vec::new();
    let mut round_ms = Vec::new();
    let (mut to_listen, mut check_ms) = (Vec::new(), Vec::new());
    let (mut max_lost, mut total_lost, mut total_stored) = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        let t_round = Instant::now();
        let since = now_ms();
        let app = App::start(&config, &data);
        to_listen.push(t_round.elapsed().as_millis());
        let log = app.log.clone();
        wait_healthz(&app, Duration::from_secs(60), "the first commit", |h| {
            recorder(h).committed > 0
        });
        to_first_commit.push(t_round.elapsed().as_millis());
        // The next commit comes 1 s after the first: 50–1100 ms covers the
        // whole cycle, including kills in the middle of a commit.
        std::thread::sleep(Duration::from_millis(fastrand::u64(50..=1100)));
        // What the daemon showed just before the kill.
        let (_, status) = app.get("/api/status");
        let rec = recorder(&healthz(&app));
        let kill_ms = now_ms();
        app.kill9();
        let t_check = Instant::now();
        let log = log.lock().unwrap().join("\n");

        let check = integrity(&db);
        assert_eq!(check, "ok", "round {round}: integrity_check");
        let stored = stored_since(&db, since);
        let n_stored: u64 = stored.values().sum();
        assert!(
            n_stored >= rec.committed,
            "round {round}: /healthz reported {} heartbeats committed, {n_stored} stored",
            rec.committed
        );
        let mut lost = 0;
        for (name, (n, last_ts)) in taken(&status) {
            let got = stored.get(&name).copied().unwrap_or(0);
            let missing = n.saturating_sub(got);
            lost += missing;
            assert!(
                missing <= 1,
                "round {round}: {name}: {n} heartbeats taken, {got} stored (more than the last batch lost)"
            );
            // Only the newest heartbeat may be missing, and only a recent
            // one: commit every 1 s, plus 3 s of slack for a loaded machine
            // (the stream's previous heartbeat is ≥ 4.5 s older).
            if missing == 1 {
                let last = last_ts.unwrap_or(0);
                assert!(
                    last > kill_ms - 4_000,
                    "round {round}: {name}: the heartbeat taken {} ms before the kill is lost",
                    kill_ms - last
                );
            }
        }
        let errors = error_lines(&log);
        assert!(
            errors.is_empty(),
            "round {round}: the daemon logged errors:\n{}",
            errors.join("\n")
        );
        max_lost = max_lost.max(lost);
        total_lost += lost;
        total_stored += n_stored;
        check_ms.push(t_check.elapsed().as_millis());
        round_ms.push(t_round.elapsed().as_millis());
    }
    // The last kill's files still start a daemon that records.
    let app = App::start(&config, &data);
    wait_healthz(
        &app,
        Duration::from_secs(60),
        "a commit after the last kill",
        |h| recorder(h).committed > 0,
    );
    assert_eq!(app.terminate(), Some(0), "clean stop after {rounds} kills");
    assert_eq!(integrity(&db), "ok", "after the final clean stop");

    for v in [
        &mut to_first_commit,
        &mut round_ms,
        &mut to_listen,
        &mut check_ms,
    ] {
        v.sort_unstable();
    }
    eprintln!(
        "power loss: {rounds} SIGKILLs in {:.1} s; per kill: median {} ms, max {} ms \
         (start to listening: median {} ms; to first commit: median {} ms, p90 {} ms, max {} ms; \
         checks after the kill: median {} ms); heartbeats stored {total_stored}, \
         lost {total_lost} in all, at most {max_lost} in one kill ({STREAMS} streams every {HEARTBEAT_S} s, commit every 1 s)",
        t_all.elapsed().as_secs_f64(),
        percentile(&round_ms, 50),
        round_ms.last().unwrap(),
        percentile(&to_listen, 50),
        percentile(&to_first_commit, 50),
        percentile(&to_first_commit, 90),
        to_first_commit.last().unwrap(),
        percentile(&check_ms, 50),
    );
}

/// A small tmpfs mounted for one test; unmounted (lazily) on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB at `path`, or None if this process may
    /// not mount (not root, or no CAP_SYS_ADMIN in a container).
    fn mount(path: &Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("creating the mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("running mount(8)");
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs at {} ({}): run the tests as root",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    fn free_bytes(&self) -> u64 {
        streampulse::store::disk::usage(&self.path)
            .expect("statvfs of the tmpfs")
            .free_bytes
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes `path` (appending) until the filesystem is full; returns the bytes
/// written. Like a runaway log file: the space is really used, not sparse.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening the filler {}: {e}", path.display()));
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let buf = vec![0x5a_u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("writing the filler {}: {e}", path.display()),
            }
        }
    }
    let _ = f.sync_all();
    written
}

/// The data partition fills up under a running daemon (40 snapshot streams
/// every 5 s, commit every second) and stays full: a filler file takes every
/// free byte, again after the recorder released its space reserve. While
/// full the monitor keeps probing, `/api/status` and `/healthz` answer,
/// `/healthz` shows the failing commits (and `disk.pressure: critical`), and
/// the database passes `integrity_check`. Then the filler is deleted and,
/// without a restart, recording resumes: the heartbeats held in memory
/// meanwhile are committed (none dropped), and a clean stop leaves every
/// heartbeat taken in the database.
#[test]
fn data_partition_full_keeps_monitoring_and_recovers_without_restart() {
    const STREAMS: usize = 40;
    let dir = temp_dir("disk_full");
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("data"), 24) else {
        return;
    };
    let data = tmpfs.path.clone();
    let db = data.join("streampulse.db");
    let snap = SnapshotServer::start();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, snapshot_config(&snap, STREAMS, "")).unwrap();
    let app = App::start(&config, &data);
    wait_healthz(&app, Duration::from_secs(60), "heartbeats committed", |h| {
        recorder(h).committed >= STREAMS as u64
    });
    assert!(
        data.join("streampulse.reserve").exists(),
        "the space reserve is in place on a roomy partition"
    );

    let mut browser = Browser::new(&app);
    set_up(&mut browser);
    assert_eq!(log_in(&mut browser, PASSWORD, "/").status, 303);
    assert!(!browser.get("/").text().contains("not being saved"));

    // Fill the partition; the recorder's first failing commit releases its
    // reserve, which the filler then takes as well.
    let filler = data.join("filler");
    let t_full = Instant::now();
    let mut filled = fill(&filler);
    let h = wait_healthz(&app, Duration::from_secs(60), "a failing commit", |h| {
        recorder(h).commit_errors > 0
    });
    eprintln!(
        "disk full: first commit error {} ms after filling: {}",
        t_full.elapsed().as_millis(),
        h["recorder"]
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while data.join("streampulse.reserve").exists() {
        assert!(Instant::now() < deadline, "the reserve was never released");
        std::thread::sleep(Duration::from_millis(100));
    }
    filled += fill(&filler);
    eprintln!(
        "disk full: filler {} MiB, {} bytes free",
        filled >> 20,
        tmpfs.free_bytes()
    );

    // Full, for a while: probing and serving go on, the error shows.
    let (_, before) = app.get("/api/status");
    let rec0 = recorder(&healthz(&app));
    let full_for = Instant::now();
    let status = app.wait_status(
        Duration::from_secs(60),
        "every stream probed twice more on a full disk",
        |v| {
            taken(v)
                .iter()
                .all(|(s, (n, _))| *n >= taken(&before)[s].0 + 2)
        },
    );
    assert!(
        taken(&status).keys().all(|s| status[s]["status"] == "ok"),
        "a full disk does not make a camera fail: {status:#}"
    );
    if filler.exists() {
        // The filler grows again if anything freed space meanwhile.
        filled += fill(&filler);
    }
    // Commits may still land for a while in the WAL file's existing room
    // (the recorder restarts the WAL after each commit on a full
    // partition); once the WAL would have to grow, they fail.
    let h = wait_healthz(
        &app,
        Duration::from_secs(90),
        "commits failing on the full disk",
        |h| recorder(h).commit_errors > rec0.commit_errors && h["recorder"]["ok"] == false,
    );
    let rec1 = recorder(&h);
    eprintln!(
        "disk full for {:.1} s: {} heartbeats taken, recorder {rec0:?} → {}, disk {}",
        full_for.elapsed().as_secs_f64(),
        total_taken(&status),
        h["recorder"],
        h["disk"]
    );
    assert!(
        rec1.commit_errors > rec0.commit_errors,
        "commits keep failing (and are retried) while the disk is full: {}",
        h["recorder"]
    );
    assert_eq!(
        h["disk"]["pressure"], "critical",
        "/healthz shows the full partition: {}",
        h["disk"]
    );
    // The recorder's error state, in /healthz and on the dashboard.
    assert_eq!(h["recorder"]["ok"], false, "{}", h["recorder"]);
    let e = h["recorder"]["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("full") || e.contains("I/O error"),
        "/healthz recorder.error: {e:?}"
    );
    let dash = browser.get("/");
    assert_eq!(dash.status, 200);
    assert!(
        dash.text().contains("Heartbeats are not being saved"),
        "the dashboard says recording fails"
    );
    let page = app.get_text("/");
    assert!(!page.is_empty(), "the web GUI still answers");
    assert_eq!(integrity(&db), "ok", "integrity_check while full");
    assert!(
        error_lines(&app.log_text()).len() < 40,
        "failing commits are retried with backoff, not logged in a tight loop:\n{}",
        notable_log(&app, 60)
    );

    // Space comes back: recording resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let t_back = Instant::now();
    let resumed = wait_healthz(
        &app,
        Duration::from_secs(90),
        "commits after space came back",
        |h| {
            let r = recorder(h);
            r.committed > rec1.committed + STREAMS as u64
        },
    );
    eprintln!(
        "space back: recording resumed after {} ms: {}",
        t_back.elapsed().as_millis(),
        resumed["recorder"]
    );
    assert_eq!(resumed["recorder"]["ok"], true, "{}", resumed["recorder"]);
    assert!(!browser.get("/").text().contains("not being saved"));
    // Everything taken while full was kept in memory and is now stored.
    let (_, status) = app.get("/api/status");
    let taken_now = total_taken(&status);
    std::thread::sleep(Duration::from_secs(3));
    let stored: u64 = stored_since(&db, 0).values().sum();
    assert!(
        stored + STREAMS as u64 >= taken_now,
        "{stored} heartbeats stored, {taken_now} taken: more than one batch missing after recovery"
    );
    let rec2 = recorder(&healthz(&app));
    assert_eq!(rec2.dropped, 0, "nothing dropped during a short outage");
    // The space reserve is back for the next time.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("streampulse.reserve").exists() {
        assert!(
            Instant::now() < deadline,
            "the space reserve was not re-created; log:\n{}",
            notable_log(&app, 40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (_, last) = app.get("/api/status");
    let taken_last = total_taken(&last);
    assert_eq!(app.terminate(), Some(0), "clean stop");
    assert_eq!(integrity(&db), "ok", "integrity_check after the stop");
    let stored: u64 = stored_since(&db, 0).values().sum();
    assert!(
        stored >= taken_last,
        "after a clean stop: {stored} heartbeats stored, {taken_last} taken"
    );
    eprintln!(
        "disk full: {stored} heartbeats stored of {taken_last}+ taken, filler peaked at {} MiB",
        filled >> 20
    );
}

/// A full data partition whose database holds an old, rolled-up day of
/// heartbeats: the recorder makes room by itself (docs/ARCHITECTURE.md "Storage": it
/// releases its reserve, runs retention and, with nothing past the policy,
/// prunes the oldest rolled-up day; freed pages are reused), so recording
/// goes on while the filler stays. The old day's hourly rollups remain.
#[test]
fn data_partition_full_prunes_the_oldest_day_and_keeps_recording() {
    const STREAMS: usize = 40;
    const OLD_ROWS: i64 = 300_000;
    let dir = temp_dir("disk_full_prune");
    // Roomy at first (≥ 256 MiB and 20 % free: no retention pressure, so the
    // configured 30 days keep the old day), then filled at once.
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("data"), 320) else {
        return;
    };
    let data = tmpfs.path.clone();
    let db = data.join("streampulse.db");
    // One day of history ten days ago (≈ 1.2 MiB packed), inside a 30-day policy.
    // Hour-aligned: one day is then exactly 144 heartbeat windows, what one
    // emergency prune takes.
    let day0 = now_ms() - 10 * 86_400_000;
    let day0 = day0 - day0 % 3_600_000;
    {
        let mut c = streampulse::store::open(&db).expect("creating the database");
        let tx = c.transaction().unwrap();
        tx.execute(
            "INSERT INTO streams (name, kind, url_redacted, created_ms) VALUES ('old', 'snapshot', 'http://127.0.0.1/', ?1)",
            [day0],
        )
        .unwrap();
        use streampulse::store::blocks::{insert, Block, Heartbeat};
        let mut block: Option<Block> = None;
        for i in 0..OLD_ROWS {
            let hb = Heartbeat {
                ts_ms: day0 + i * 86_400_000 / OLD_ROWS,
                ok: true,
                latency_ms: 20 + (i % 100) as u32,
                reason: None,
                flags: 0,
            };
            if !block.as_mut().is_some_and(|b| b.try_push(&hb)) {
                if let Some(b) = block.replace(Block::new(&hb)) {
                    insert(&tx, 1, &b).unwrap();
                }
            }
        }
        insert(&tx, 1, &block.unwrap()).unwrap();
        tx.commit().unwrap();
    }
    let snap = SnapshotServer::start();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        snapshot_config(&snap, STREAMS, "retention:\n  heartbeat_days: 30\n"),
    )
    .unwrap();
    let app = App::start(&config, &data);
    wait_healthz(&app, Duration::from_secs(60), "heartbeats committed", |h| {
        recorder(h).committed >= STREAMS as u64
    });

    let filler = data.join("filler");
    fill(&filler);
    wait_healthz(&app, Duration::from_secs(60), "a failing commit", |h| {
        recorder(h).commit_errors > 0
    });
    // Take back whatever the reserve and the prune freed outside the file.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(
        &db,
        "SELECT count(*) FROM heartbeat_blocks WHERE stream_id = 1",
    ) > 0
    {
        assert!(
            Instant::now() < deadline,
            "the oldest day was not pruned; log tail:\n{}",
            notable_log(&app, 40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    fill(&filler);
    let free = tmpfs.free_bytes();
    let rec0 = recorder(&healthz(&app));
    // Still full (the filler stays), yet commits go on in the freed pages.
    let h = wait_healthz(
        &app,
        Duration::from_secs(60),
        "commits on the full partition after the prune",
        |h| recorder(h).committed >= rec0.committed + 2 * STREAMS as u64,
    );
    let rec1 = recorder(&h);
    eprintln!(
        "disk full, old day pruned: {free} bytes free, recorder {}, log: {:?}",
        h["recorder"],
        app.log_text()
            .lines()
            .filter(|l| l.contains("data partition full"))
            .collect::<Vec<_>>()
    );
    assert!(
        filler.exists() && tmpfs.free_bytes() < 1 << 20,
        "the partition is still full"
    );
    assert_eq!(rec1.dropped, 0, "nothing dropped");
    let rollups = count(&db, "SELECT count(*) FROM rollups WHERE stream_id = 1");
    assert!(
        rollups >= 24,
        "the pruned day's hourly rollups stay: {rollups}"
    );
    assert_eq!(app.terminate(), Some(0), "clean stop");
    assert_eq!(integrity(&db), "ok", "integrity_check after the stop");
}
