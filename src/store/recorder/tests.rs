//! The recorder thread end to end on a real SQLite file.

use super::queue::QUEUE;
use super::*;
use crate::clock::SimulatedClock;

/// A recorder on a fresh database file in a temp dir (kept alive by the
/// returned guard), with the given commit interval and heartbeat flush.
fn recorder_on_file(
    clock: SharedClock,
    commit: Duration,
    flush: Duration,
) -> (tempfile::TempDir, std::path::PathBuf, RecorderHandle) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let conn = crate::store::open(&path).unwrap();
    let rec = start(conn, clock, commit, flush, Policy::default());
    (dir, path, rec)
}

#[test]
fn batches_and_flushes_on_stop() {
    let clock: SharedClock = Arc::new(SimulatedClock::new(1_800_000_000_000));
    // Long intervals: only stop() can have written these.
    let (_dir, path, rec) =
        recorder_on_file(clock, Duration::from_secs(3600), Duration::from_secs(600));
    let tx = rec.sender();
    tx.send(Record::Stream {
        name: "a".into(),
        kind: Kind::Rtsp,
        url_redacted: "rtsp://h/x".into(),
    });
    for i in 0..10 {
        tx.send(Record::Heartbeat {
            stream: "a".into(),
            ts_ms: 1_800_000_000_000 + i * 1000,
            ok: i % 2 == 0,
            latency_ms: 100,
            reason: (i % 2 == 1).then_some(Reason::Timeout),
            flags: 0,
        });
    }
    drop(tx);
    rec.stop();
    let c = crate::store::open(&path).unwrap();
    let hbs = blocks::load(&c, 1, 0, i64::MAX).unwrap();
    assert_eq!(hbs.len(), 10);
    assert_eq!(hbs.iter().filter(|h| h.reason.is_some()).count(), 5);
}

fn stream(name: &str) -> Record {
    Record::Stream {
        name: name.into(),
        kind: Kind::Snapshot,
        url_redacted: "http://h/x".into(),
    }
}

fn heartbeat(i: i64) -> Record {
    Record::Heartbeat {
        stream: "a".into(),
        ts_ms: 1_800_000_000_000 + i * 1000,
        ok: true,
        latency_ms: 10,
        reason: None,
        flags: 0,
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Failing commits (an I/O error, as a card that hiccups gives) are
/// retried with backoff on a reopened connection; the error shows in the
/// stats meanwhile, and once commits work every held heartbeat is stored.
#[test]
fn io_errors_are_retried_on_a_reopened_connection_and_nothing_is_lost() {
    let clock: SharedClock = Arc::new(SimulatedClock::new(1_800_000_000_000));
    let (_dir, path, rec) =
        recorder_on_file(clock, Duration::from_millis(50), Duration::from_millis(50));
    rec.stats.inject_io_errors.store(2, Ordering::SeqCst);
    let tx = rec.sender();
    tx.send(stream("a"));
    for i in 0..10 {
        tx.send(heartbeat(i));
    }
    let st = rec.stats.clone();
    wait_until("the first failed commit", || {
        st.commit_errors.load(Ordering::SeqCst) >= 1
    });
    assert!(st.failing(), "the error state shows");
    let j = st.json();
    assert_eq!(j["ok"], false, "{j}");
    assert!(j["error"].as_str().unwrap().contains("I/O error"), "{j}");
    assert_eq!(st.heartbeats_committed.load(Ordering::SeqCst), 0);
    // Retries wait for their backoff: 1 s, then 2 s (not every 50 ms).
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(st.commit_errors.load(Ordering::SeqCst), 1, "backoff");
    assert_eq!(st.backlog.load(Ordering::SeqCst), 11, "held in memory");
    for i in 10..20 {
        tx.send(heartbeat(i));
    }
    wait_until("commits working again", || {
        st.heartbeats_committed.load(Ordering::SeqCst) == 20
    });
    assert_eq!(st.commit_errors.load(Ordering::SeqCst), 2);
    assert!(
        st.reopens.load(Ordering::SeqCst) >= 1,
        "reopened after an I/O error"
    );
    assert!(!st.failing());
    assert_eq!(st.json()["error"], serde_json::Value::Null);
    assert_eq!(st.dropped.load(Ordering::SeqCst), 0);
    drop(tx);
    rec.stop();
    let c = crate::store::open(&path).unwrap();
    assert_eq!(blocks::load(&c, 1, 0, i64::MAX).unwrap().len(), 20);
}

/// With the default flush, a heartbeat is readable at once through the
/// tail, but written only when its window has ended (plus the slack);
/// state changes are committed every commit interval meanwhile.
#[test]
fn heartbeats_wait_for_their_window_and_events_do_not() {
    let t0 = 1_800_000_000_000 - 1_800_000_000_000 % blocks::WINDOW_MS;
    let sim = Arc::new(SimulatedClock::new(t0 + 1000));
    let clock: SharedClock = sim.clone();
    let (_dir, path, rec) =
        recorder_on_file(clock, Duration::from_millis(50), Duration::from_secs(600));
    let tx = rec.sender();
    tx.send(stream("a"));
    let at = |i: i64| Record::Heartbeat {
        stream: "a".into(),
        ts_ms: t0 + i * 15_000,
        ok: true,
        latency_ms: 10,
        reason: None,
        flags: 0,
    };
    for i in 0..45 {
        tx.send(at(i)); // 40 in the first window, 5 in the next
    }
    tx.send(Record::Event(crate::state::Transition {
        stream: "a".into(),
        ts_ms: t0 + 2000,
        from: crate::state::Health::Unknown,
        to: crate::state::Health::Up,
        reason: None,
        message: "first frame".into(),
        picture: crate::picture::PictureVerdict::Unknown,
        failed_stage: None,
    }));
    let tail = rec.tail.clone();
    wait_until("the tail to hold them", || tail.len() == 45);
    let reader = crate::store::open_read_only(&path).unwrap();
    let events = || -> i64 {
        reader
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap()
    };
    let stored = || blocks::load(&reader, 1, 0, i64::MAX).unwrap().len();
    wait_until("the event committed", || events() == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stored(), 0, "the window has not ended");
    assert_eq!(
        tail.heartbeats("a", t0, t0 + 2 * blocks::WINDOW_MS).len(),
        45
    );
    // The window ends; 20 s later its block is written, the next stays.
    sim.advance(blocks::WINDOW_MS - 1000 + FLUSH_SLACK_MS);
    wait_until("the ended window written", || stored() == 40);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stored(), 40);
    assert_eq!(tail.len(), 5);
    assert_eq!(rec.stats.heartbeats_committed.load(Ordering::SeqCst), 40);
    let rows: i64 = reader
        .query_row("SELECT count(*) FROM heartbeat_blocks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "one row for the window");
    drop(tx);
    rec.stop();
    assert_eq!(stored(), 45, "stop writes the rest");
}

/// The backlog held while commits fail is bounded: the oldest
/// heartbeats go (counted), stream rows stay so later heartbeats still
/// find their stream.
#[test]
fn backlog_drops_oldest_heartbeats_and_keeps_stream_rows() {
    let stats = RecorderStats::default();
    let mut pending = vec![stream("a")];
    pending.extend((0..QUEUE as i64 + 10).map(heartbeat));
    pending.push(stream("b"));
    bound_backlog(&mut pending, &stats);
    assert_eq!(pending.len(), QUEUE);
    assert_eq!(stats.dropped.load(Ordering::SeqCst), 12);
    assert!(matches!(&pending[0], Record::Stream { name, .. } if name == "a"));
    assert!(matches!(&pending[1], Record::Heartbeat { ts_ms, .. } if *ts_ms == 1_800_000_012_000));
    assert!(matches!(pending.last(), Some(Record::Stream { name, .. }) if name == "b"));
    // Nothing to trim: untouched.
    bound_backlog(&mut pending, &stats);
    assert_eq!(pending.len(), QUEUE);
}

/// Retention's clock is anchored when the recorder starts: a wall clock
/// stepped forward two days before the first pass does not drag it along.
#[test]
fn retention_clock_is_anchored_at_start() {
    let t0 = 1_800_000_000_000;
    let clock = SimulatedClock::new(t0);
    let mut steady = anchored_steady_clock(&clock);
    clock.advance(2 * retention::DAY_MS);
    let now = steady.now_ms(crate::clock::Clock::now_ms(&clock), Instant::now());
    assert!((t0..t0 + 60_000).contains(&now), "{now}");
}

/// A flush request (a backup is about to be made) writes the heartbeats of
/// the open window at once, and is answered only then; the window's later
/// heartbeats are written as usual and the history reads the same.
#[test]
fn flush_writes_the_open_window_at_once() {
    let t0 = 1_800_000_000_000 - 1_800_000_000_000 % blocks::WINDOW_MS;
    let clock: SharedClock = Arc::new(SimulatedClock::new(t0 + 1000));
    let (_dir, path, rec) =
        recorder_on_file(clock, Duration::from_millis(50), Duration::from_secs(600));
    let tx = rec.sender();
    tx.send(stream("a"));
    let at = |i: i64| Record::Heartbeat {
        stream: "a".into(),
        ts_ms: t0 + i * 15_000,
        ok: true,
        latency_ms: 10,
        reason: None,
        flags: 0,
    };
    for i in 0..5 {
        tx.send(at(i));
    }
    let reader = crate::store::open_read_only(&path).unwrap();
    let stored = || blocks::load(&reader, 1, 0, i64::MAX).unwrap().len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stored(), 0, "the window has not ended");
    assert!(tx.flush(Duration::from_secs(10)), "the flush was answered");
    assert_eq!(stored(), 5, "written when the flush was answered");
    for i in 5..8 {
        tx.send(at(i));
    }
    drop(tx);
    rec.stop();
    let c = crate::store::open(&path).unwrap();
    let hbs = blocks::load(&c, 1, 0, i64::MAX).unwrap();
    assert_eq!(
        hbs.iter().map(|h| h.ts_ms).collect::<Vec<_>>(),
        (0..8).map(|i| t0 + i * 15_000).collect::<Vec<_>>()
    );
}
