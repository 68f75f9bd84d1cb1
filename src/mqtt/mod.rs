//! MQTT publishing (rumqttc): the aggregate status on an interval, each
//! stream's state (retained) on every change and again every interval when
//! it was probed since (the heartbeat HA's `expire_after` waits for), the
//! box's own facts every interval, availability with an LWT, and optional
//! Home Assistant discovery (see [`topics`] for the topics and entities).
//!
//! A reader of the board, never a writer, and never in the monitor's way:
//! state changes arrive over the monitor's bounded broadcast (a lagging
//! reader re-reads the board), and everything waiting for the broker lives
//! in a small [`Outbox`] of *which* things are due — at most one aggregate
//! and one state per stream — whose payloads are built from the board
//! ([`crate::report`], the same report as `/api/status`) when they are
//! sent, so a long outage queues nothing and the broker gets the latest
//! state when it is back. Each (re)connection republishes everything
//! (a restarted broker without persistence has lost its retained messages).
//!
//! Two tasks per broker: [`connection_loop`] owns rumqttc's `EventLoop`
//! (reconnects with exponential backoff and jitter, reports connects and
//! retained messages), and the publisher task decides what to send and
//! hands it to rumqttc with `try_publish` only while connected, so nothing
//! piles up in rumqttc's queues while the broker is away.
//!
//! Stale topics: on connect we subscribe to our own state and discovery
//! topics; a retained message there that belongs to no configured stream (a
//! stream deleted while we were not running, a state topic named after the
//! stream as earlier versions did) is cleared with an empty retained message,
//! which also removes the Home Assistant entity.
//!
//! Order matters to Home Assistant, which listens on the topics of the
//! discovery config it has: new discovery configs go out first, then the
//! clears of discovery topics (HA drops those entities), then the clears
//! of state topics nobody listens to any more, then states. A rename
//! changes no topic at all (ids and state topics come from the URL).
//!
//! [`MqttHandle::apply`] reconnects only when the `mqtt:` section (or the
//! device name, which is part of every topic) changed; a change of streams
//! just updates topics and discovery on the live connection.

pub mod client;
pub mod topics;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::config::mqtt::{MqttConfig, MqttTransport, RawMqtt};
use crate::config::{Config, StreamConfig};
use crate::report;
use crate::state::Transition;
use topics::{Entity, Layout};

/// Requests rumqttc may hold at once; the rest waits in our [`Outbox`].
const REQUEST_CAP: usize = 64;
/// While connected with a non-empty outbox (rumqttc's queue was full), try again this often.
const FLUSH_RETRY: Duration = Duration::from_millis(200);
/// First reconnect delay; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long stopping may take to say `offline` and disconnect.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long Home Assistant gets to remove entities before the state topics
/// they listened on are cleared ([`Settle`]).
const SETTLE_CLEARS: Duration = Duration::from_secs(2);
/// How long Home Assistant gets to apply a changed config before the
/// entity's state is sent again ([`Settle`]): the entity is unavailable
/// meanwhile, so short.
const SETTLE_STATES: Duration = Duration::from_millis(500);

/// What the publisher knows about its connection, for pages and `/metrics`.
#[derive(Debug, Default)]
pub struct MqttStatus {
    /// True between CONNACK and the next error.
    pub connected: AtomicBool,
    /// PUBLISH packets written to the broker since start.
    pub published: AtomicU64,
    /// The last connection error in words (no secrets); None once connected.
    pub last_error: Mutex<Option<String>>,
}

/// The running publisher, if MQTT is enabled. Lives on the tokio runtime.
pub struct MqttHandle {
    running: Option<Running>,
    /// Where payloads come from: the board and the live config.
    report: report::Source,
    transitions: broadcast::Sender<Transition>,
    /// Shared with the web side; survives reconnects.
    pub status: Arc<MqttStatus>,
}

struct Running {
    cfg: MqttConfig,
    /// The configured streams; dropping the sender stops the publisher.
    streams_tx: watch::Sender<Arc<Vec<StreamConfig>>>,
    task: JoinHandle<()>,
}

impl MqttHandle {
    /// Starts publishing if `cfg.mqtt` is present and enabled. Must be called
    /// inside the tokio runtime. `transitions` is the monitor's broadcast.
    pub fn start(
        cfg: &Config,
        report: report::Source,
        transitions: broadcast::Sender<Transition>,
    ) -> MqttHandle {
        let mut h = MqttHandle {
            running: None,
            report,
            transitions,
            status: Arc::new(MqttStatus::default()),
        };
        match cfg.mqtt.as_ref() {
            Some(m) if m.enabled => h.running = Some(h.spawn(m.clone(), cfg)),
            Some(_) => tracing::info!("mqtt: disabled in the config"),
            None => {}
        }
        h
    }

    fn spawn(&self, m: MqttConfig, cfg: &Config) -> Running {
        let (streams_tx, streams_rx) = watch::channel(Arc::new(cfg.streams.clone()));
        let task = tokio::spawn(publish_loop(
            m.clone(),
            streams_rx,
            self.report.clone(),
            self.transitions.subscribe(),
            self.status.clone(),
        ));
        Running {
            cfg: m,
            streams_tx,
            task,
        }
    }

    /// Applies a reloaded config: same `mqtt:` section → only the stream list
    /// is updated on the live connection; otherwise the old connection says
    /// `offline` and a new one starts with the new settings.
    pub async fn apply(&mut self, cfg: &Config) {
        let wanted = cfg.mqtt.as_ref().filter(|m| m.enabled);
        if let (Some(r), Some(w)) = (&self.running, wanted) {
            if r.cfg == *w {
                r.streams_tx.send_replace(Arc::new(cfg.streams.clone()));
                return;
            }
        }
        if self.running.is_none() && wanted.is_none() {
            return;
        }
        if let Some(r) = self.running.take() {
            match wanted {
                Some(_) => tracing::info!("mqtt: settings changed; reconnecting"),
                None => tracing::info!("mqtt: disabled by the new config; disconnecting"),
            }
            r.stop().await;
        }
        if let Some(w) = wanted {
            self.running = Some(self.spawn(w.clone(), cfg));
        }
    }

    /// Publishes `offline`, disconnects and waits for the tasks (bounded).
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

impl Running {
    async fn stop(self) {
        drop(self.streams_tx);
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE + Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// What [`connection_loop`] reports.
#[derive(Debug)]
enum ConnEvent {
    Connected,
    Lost,
    /// A retained message on one of our subscriptions.
    Retained {
        topic: String,
        empty: bool,
    },
}

/// What is due to be sent, in the order [`Publisher::flush`] sends it.
/// Names and topics only: payloads are built from the board when sent, so
/// this stays as small as the config.
#[derive(Debug, Default)]
struct Outbox {
    online: bool,
    subscribe: bool,
    /// Discovery topics whose config is due.
    discovery: BTreeSet<String>,
    /// Discovery topics to clear (entities to remove), after `discovery`.
    discovery_clears: BTreeSet<String>,
    /// State topics to clear, after the discovery clears and [`SETTLE_CLEARS`].
    state_clears: BTreeSet<String>,
    settle: Settle,
    /// Streams whose state is due.
    states: BTreeSet<String>,
    box_state: bool,
    aggregate: bool,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        !self.online
            && !self.subscribe
            && !self.aggregate
            && !self.box_state
            && self.discovery.is_empty()
            && self.discovery_clears.is_empty()
            && self.state_clears.is_empty()
            && self.states.is_empty()
    }

    /// Queues an empty retained message on `topic`, in its phase (a state
    /// topic's after [`SETTLE_CLEARS`]).
    fn clear(&mut self, topic: String, discovery_prefix: &str) {
        if topic.starts_with(&format!("{discovery_prefix}/")) {
            self.discovery_clears.insert(topic);
        } else {
            self.settle.clears.insert(topic);
            self.settle
                .clears_at
                .get_or_insert_with(|| Instant::now() + SETTLE_CLEARS);
        }
    }

    /// Moves what waited in [`Settle`] and is due at `now` to the outbox.
    fn settled(&mut self, now: Instant) {
        let s = &mut self.settle;
        if s.states_at.is_some_and(|t| t <= now) {
            s.states_at = None;
            self.states.append(&mut s.states);
            self.box_state |= std::mem::take(&mut s.box_state);
        }
        if s.clears_at.is_some_and(|t| t <= now) {
            s.clears_at = None;
            self.state_clears.append(&mut s.clears);
        }
    }
}

/// What waits until Home Assistant has applied the discovery messages just
/// sent (HA 2024.3, seen with a real Core, `make ha-core-check`):
/// * a removed entity listens on its state topic until HA has removed it,
///   and an empty "clear" there meanwhile logs `Erroneous JSON` and
///   `'value_json' is undefined`: state topics are cleared
///   [`SETTLE_CLEARS`] after the last discovery message;
/// * a changed config (a rename) makes an entity with `expire_after`
///   unavailable until its next state (home-assistant/core#34259), and the
///   state sent right after the config may reach HA before the change is
///   applied: the state of each entity whose config was sent is sent again
///   [`SETTLE_STATES`] later.
#[derive(Debug, Default)]
struct Settle {
    /// When `states` and `box_state` are due; None: nothing waits.
    states_at: Option<Instant>,
    states: BTreeSet<String>,
    box_state: bool,
    /// When `clears` are due; None: nothing waits.
    clears_at: Option<Instant>,
    clears: BTreeSet<String>,
}

impl Settle {
    /// The next time something here is due.
    fn next(&self) -> Option<Instant> {
        match (self.states_at, self.clears_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

struct Publisher {
    cfg: MqttConfig,
    layout: Layout,
    client: AsyncClient,
    report: report::Source,
    outbox: Outbox,
    connected: bool,
    status: Arc<MqttStatus>,
    /// Each stream's probe time in its last published state: the interval
    /// republishes a state only once it was probed again, so a stuck
    /// monitor stops feeding HA and its entities expire.
    published_ts: HashMap<String, Option<i64>>,
}

async fn publish_loop(
    cfg: MqttConfig,
    mut streams_rx: watch::Receiver<Arc<Vec<StreamConfig>>>,
    report: report::Source,
    mut transitions: broadcast::Receiver<Transition>,
    status: Arc<MqttStatus>,
) {
    let label = cfg.broker_label();
    for k in &cfg.ignored_keys {
        tracing::info!(
            "mqtt.{k} is a StreamPulse v2.2 setting without meaning here \
             (the status is read in-process); ignored"
        );
    }
    if cfg.transport.is_tls() && !cfg.tls.verify {
        tracing::warn!("mqtt: tls_verify is off: any certificate is accepted for {label}");
    }
    let options = match client::options(&cfg) {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("{e:#}");
            tracing::error!("mqtt: {msg}; not connecting to {label} until the config changes");
            *status.last_error.lock().expect("mqtt status lock") = Some(msg);
            while streams_rx.changed().await.is_ok() {}
            return;
        }
    };
    tracing::info!("mqtt: publishing to {label}, topic {}", cfg.topic);
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAP);
    eventloop.network_options = client::network_options();
    let (ev_tx, mut ev_rx) = mpsc::channel(32);
    let mut conn = tokio::spawn(connection_loop(
        eventloop,
        ev_tx,
        label.clone(),
        status.clone(),
    ));

    let layout = Layout::new(&cfg, &streams_rx.borrow_and_update());
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut p = Publisher {
        cfg,
        layout,
        client,
        report,
        outbox: Outbox::default(),
        connected: false,
        status,
        published_ts: HashMap::new(),
    };
    let mut transitions_open = true;
    loop {
        let retry = p.connected && !p.outbox.is_empty();
        let settle_at = p.outbox.settle.next();
        tokio::select! {
            changed = streams_rx.changed() => match changed {
                Ok(()) => {
                    let streams = streams_rx.borrow_and_update().clone();
                    p.set_streams(&streams);
                }
                Err(_) => break,
            },
            t = transitions.recv(), if transitions_open => match t {
                // The box's counts change with every transition.
                Ok(t) => {
                    p.outbox.states.insert(t.stream);
                    p.outbox.box_state = true;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("mqtt: missed {n} state changes; republishing every state");
                    p.queue_all_states();
                    p.outbox.box_state = true;
                }
                Err(broadcast::error::RecvError::Closed) => transitions_open = false,
            },
            _ = tick.tick() => p.on_tick(),
            ev = ev_rx.recv() => match ev {
                Some(ConnEvent::Connected) => p.on_connect(),
                Some(ConnEvent::Lost) => p.set_connected(false),
                Some(ConnEvent::Retained { topic, empty }) => p.on_retained(topic, empty),
                None => {
                    tracing::error!("mqtt: connection task ended; not publishing to {label}");
                    while streams_rx.changed().await.is_ok() {}
                    return;
                }
            },
            _ = tokio::time::sleep(FLUSH_RETRY), if retry => {}
            _ = tokio::time::sleep_until(settle_at.unwrap_or_else(Instant::now)),
                if settle_at.is_some() => p.outbox.settled(Instant::now()),
        }
        if p.connected {
            p.flush();
        }
    }

    // Stopping: say `offline` ourselves (a clean DISCONNECT suppresses the
    // LWT), then disconnect; if the broker is away, dropping the connection
    // leaves the LWT to say it.
    if !p.connected {
        // Nobody to tell; the backoff sleep would only delay the stop.
        conn.abort();
    } else {
        let offline = p.client.publish(
            p.layout.availability.clone(),
            QoS::AtLeastOnce,
            true,
            "offline",
        );
        if tokio::time::timeout(Duration::from_secs(1), offline)
            .await
            .is_ok_and(|r| r.is_ok())
        {
            let _ = p.client.try_disconnect();
        }
    }
    if tokio::time::timeout(STOP_GRACE, &mut conn).await.is_err() {
        conn.abort();
    }
    p.set_connected(false);
    tracing::info!("mqtt: disconnected from {label}");
}

impl Publisher {
    fn set_connected(&mut self, c: bool) {
        self.connected = c;
        self.status.connected.store(c, Ordering::Relaxed);
    }

    fn queue_all_states(&mut self) {
        for s in &self.layout.streams {
            self.outbox.states.insert(s.name.clone());
        }
    }

    fn queue_all_discovery(&mut self) {
        for t in self.layout.entities.keys() {
            self.outbox.discovery.insert(t.clone());
        }
    }

    fn on_connect(&mut self) {
        self.set_connected(true);
        let o = &mut self.outbox;
        o.online = true;
        o.subscribe = true;
        o.aggregate = true;
        o.box_state = true;
        self.queue_all_discovery();
        self.queue_all_states();
    }

    /// The interval: the aggregate, the box's facts, and the state of every
    /// enabled stream probed since its last publication (HA's
    /// `expire_after` counts on it; a disabled stream's state never changes).
    fn on_tick(&mut self) {
        self.outbox.aggregate = true;
        self.outbox.box_state = true;
        let enabled = self
            .layout
            .streams
            .iter()
            .filter(|s| s.enabled)
            .map(|s| s.name.as_str());
        for (name, ts) in self.report.probe_times(enabled) {
            if self.published_ts.get(&name) != Some(&ts) {
                self.outbox.states.insert(name);
            }
        }
    }

    /// New stream list: announce the current entities first, then clear
    /// what is gone (a removed stream, another URL, a disabled stream's
    /// entities), then publish the states. A rename clears nothing.
    fn set_streams(&mut self, streams: &[StreamConfig]) {
        let old = std::mem::replace(&mut self.layout, Layout::new(&self.cfg, streams));
        for t in old.entities.keys() {
            if !self.layout.owns(t) {
                self.outbox.clear(t.clone(), &self.cfg.discovery_prefix);
            }
        }
        for s in &old.streams {
            if !self.layout.owns(&s.state_topic) {
                self.outbox
                    .clear(s.state_topic.clone(), &self.cfg.discovery_prefix);
            }
        }
        let layout = &self.layout;
        self.outbox.discovery_clears.retain(|t| !layout.owns(t));
        self.outbox.state_clears.retain(|t| !layout.owns(t));
        self.outbox.settle.clears.retain(|t| !layout.owns(t));
        self.published_ts
            .retain(|name, _| layout.stream(name).is_some());
        self.queue_all_discovery();
        self.queue_all_states();
    }

    /// A retained message under our own topics: clear it unless this
    /// layout owns it.
    fn on_retained(&mut self, topic: String, empty: bool) {
        if empty || self.layout.owns(&topic) {
            return;
        }
        tracing::info!("mqtt: clearing stale retained topic {topic}");
        self.outbox.clear(topic, &self.cfg.discovery_prefix);
    }

    /// Hands what is due to rumqttc until its queue is full; the rest stays.
    fn flush(&mut self) {
        let qos = client::qos(self.cfg.qos);
        let c = &self.client;
        let o = &mut self.outbox;
        if o.online {
            if c.try_publish(&self.layout.availability, QoS::AtLeastOnce, true, "online")
                .is_err()
            {
                return;
            }
            o.online = false;
        }
        if o.subscribe {
            let l = &self.layout;
            let wildcards = std::iter::once(&l.state_wildcard).chain(&l.discovery_wildcards);
            // rumqttc queues each request; a full queue fails the rest,
            // and the whole subscription is asked for again.
            if wildcards
                .map(|w| c.try_subscribe(w.as_str(), QoS::AtMostOnce))
                .any(|r| r.is_err())
            {
                return;
            }
            o.subscribe = false;
        }
        while let Some(topic) = o.discovery.first().cloned() {
            if let Some(payload) = self.layout.discovery_payload(&self.cfg, &topic) {
                if c.try_publish(topic.as_str(), qos, true, payload.to_string())
                    .is_err()
                {
                    return;
                }
                // Its state again once HA applied the config (see Settle).
                o.settle.states_at = Some(Instant::now() + SETTLE_STATES);
                match self.layout.entities.get(&topic) {
                    Some(Entity::Connectivity(i) | Entity::Latency(i) | Entity::LastOk(i)) => {
                        o.settle.states.insert(self.layout.streams[*i].name.clone());
                    }
                    _ => o.settle.box_state = true,
                }
            }
            o.discovery.remove(&topic);
        }
        while let Some(topic) = o.discovery_clears.first().cloned() {
            if c.try_publish(topic.as_str(), qos, true, Vec::new())
                .is_err()
            {
                return;
            }
            o.settle.clears_at = Some(Instant::now() + SETTLE_CLEARS);
            o.discovery_clears.remove(&topic);
        }
        while let Some(topic) = o.state_clears.first().cloned() {
            if c.try_publish(topic.as_str(), qos, true, Vec::new())
                .is_err()
            {
                return;
            }
            o.state_clears.remove(&topic);
        }
        if !o.states.is_empty() {
            let names = || o.states.iter().map(String::as_str);
            let mut times = self.report.probe_times(names());
            let mut payloads = self.report.streams(names());
            while let Some(name) = o.states.first().cloned() {
                if let (Some(s), Some(payload)) =
                    (self.layout.stream(&name), payloads.remove(&name))
                {
                    if c.try_publish(s.state_topic.as_str(), qos, true, payload)
                        .is_err()
                    {
                        return;
                    }
                    let ts = times.remove(&name).flatten();
                    self.published_ts.insert(name.clone(), ts);
                }
                o.states.remove(&name);
            }
        }
        if o.box_state {
            let payload = self.report.box_status();
            if c.try_publish(&self.layout.box_state, qos, true, payload)
                .is_err()
            {
                return;
            }
            o.box_state = false;
        }
        if o.aggregate {
            let payload = self.report.status();
            if c.try_publish(&self.layout.aggregate, qos, self.cfg.retain, payload)
                .is_err()
            {
                return;
            }
            o.aggregate = false;
        }
    }
}

/// A reconnect delay: `base` halved plus up to the other half at random, so
/// boxes that lost the same broker do not all come back in the same second.
fn jittered(base: Duration) -> Duration {
    let half = base / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

/// Owns rumqttc's event loop: polls it (which reconnects), backs off after
/// errors, and reports connects, losses and retained messages. Ends when the
/// client sent DISCONNECT, the client is gone, or the publisher stopped listening.
async fn connection_loop(
    mut el: EventLoop,
    tx: mpsc::Sender<ConnEvent>,
    label: String,
    status: Arc<MqttStatus>,
) {
    let mut delay = BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    loop {
        let ev = match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                delay = BACKOFF_MIN;
                tracing::info!("mqtt: connected to {label}");
                last_error = None;
                *status.last_error.lock().expect("mqtt status lock") = None;
                ConnEvent::Connected
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.retain => ConnEvent::Retained {
                topic: p.topic,
                empty: p.payload.is_empty(),
            },
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                status.published.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                let msg = client::describe(&e);
                let wait = jittered(delay);
                if last_error.as_deref() == Some(msg.as_str()) {
                    tracing::debug!(
                        "mqtt: {label}: {msg}; retrying in {:.1} s",
                        wait.as_secs_f32()
                    );
                } else {
                    tracing::warn!(
                        "mqtt: {label}: {msg}; retrying in {:.1} s",
                        wait.as_secs_f32()
                    );
                }
                *status.last_error.lock().expect("mqtt status lock") = Some(msg.clone());
                last_error = Some(msg);
                if tx.send(ConnEvent::Lost).await.is_err() {
                    return;
                }
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state topic is cleared only [`SETTLE_CLEARS`] after it was queued
    /// (HA first removes the entity listening there); a discovery topic at once.
    #[test]
    fn state_clears_wait_for_home_assistant() {
        let mut o = Outbox::default();
        let t0 = Instant::now();
        o.clear(
            "homeassistant/binary_sensor/n/x/config".into(),
            "homeassistant",
        );
        o.clear("streampulse/dev/x/state".into(), "homeassistant");
        assert_eq!(o.discovery_clears.len(), 1);
        assert!(o.state_clears.is_empty());
        let due = o.settle.next().unwrap();
        assert!(due >= t0 + SETTLE_CLEARS);
        o.settled(due - Duration::from_millis(1));
        assert!(o.state_clears.is_empty());
        o.settled(due);
        assert_eq!(
            o.state_clears.iter().collect::<Vec<_>>(),
            ["streampulse/dev/x/state"]
        );
        assert_eq!(o.settle.next(), None);
    }

    /// States waiting for HA to apply a changed config come back first.
    #[test]
    fn states_settle_before_clears() {
        let mut o = Outbox::default();
        let now = Instant::now();
        o.settle.states.insert("cam".into());
        o.settle.box_state = true;
        o.settle.states_at = Some(now + SETTLE_STATES);
        o.settle.clears.insert("t".into());
        o.settle.clears_at = Some(now + SETTLE_CLEARS);
        assert_eq!(o.settle.next(), Some(now + SETTLE_STATES));
        o.settled(now + SETTLE_STATES);
        assert!(o.states.contains("cam") && o.box_state);
        assert!(o.state_clears.is_empty());
        assert_eq!(o.settle.next(), Some(now + SETTLE_CLEARS));
    }
}
