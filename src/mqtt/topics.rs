//! Topic names and Home Assistant discovery payloads: pure functions of the
//! config, unit-tested field by field.
//!
//! Topics (`<base>` is `<prefix>/<device>`):
//! * `<topic>`: the aggregate status JSON (same shape as `/api/status`).
//! * `<base>/availability`: `online`/`offline`, retained; the LWT.
//! * `<base>/<object_id>/state`: one stream's JSON, retained.
//! * `<base>/box/state`: the box's own facts (streams down, clock, disk,
//!   config error), retained.
//! * `<discovery_prefix>/{binary_sensor,sensor}/<node_id>/<object_id>[_what]/config`:
//!   HA discovery.
//!
//! Home Assistant keys an entity by `unique_id`, and listens on the topics
//! of its discovery config, so both must survive a rename: `object_id` is
//! derived from the stream's URL without credentials (FNV-1a, stable
//! across builds), not from its name, and it names the stream's state
//! topic as well as its entities. Renaming a stream changes only the
//! discovery payloads' `name`; pointing it at another camera makes new
//! entities and a new state topic. (Before, the state topic carried the
//! name's slug, so a rename moved it and HA read an empty clear meanwhile.)

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::config::mqtt::{slug, MqttConfig};
use crate::config::StreamConfig;

/// Stream entities are `unavailable` in HA when no state came for this many
/// times the longer of the MQTT interval and the stream's probe interval
/// (plus the probe's timeout): a stuck StreamPulse stops looking healthy.
pub const EXPIRE_INTERVALS: u64 = 3;

impl MqttConfig {
    /// The availability topic (`online`/`offline`, retained, also the LWT).
    pub fn availability_topic(&self) -> String {
        format!("{}/{}/availability", self.prefix, self.device)
    }
}

/// FNV-1a, 64 bit: a hash that never changes between builds or platforms.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// MurmurHash3's 64-bit finalizer: FNV alone leaves URLs that differ in one
/// character (`/h264`, `/h265`) with ids that differ in one digit.
pub fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Topics and ids of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTopics {
    /// The stream's name (key of the board and of `/api/status`).
    pub name: String,
    /// Disabled streams keep their state topic but have no HA entities.
    pub enabled: bool,
    /// From the URL (see the module doc); part of every topic and id below.
    pub object_id: String,
    pub state_topic: String,
    /// HA `unique_id` of the connectivity binary sensor: stable across renames.
    pub unique_id: String,
    /// The connectivity binary sensor's discovery topic.
    pub discovery_topic: String,
    /// HA `expire_after`, seconds.
    pub expire_after_secs: u64,
}

/// One Home Assistant entity of the box: what its discovery topic stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    /// A stream's connectivity binary sensor (index into [`Layout::streams`]).
    Connectivity(usize),
    /// A stream's last probe latency, ms (diagnostic).
    Latency(usize),
    /// A stream's last successful probe, a timestamp (diagnostic).
    LastOk(usize),
    /// The box is connected (the availability topic itself).
    Online,
    /// How many streams are down.
    StreamsDown,
    /// The box's clock is synchronised (diagnostic).
    ClockSynced,
    /// Free space on the data partition, % (diagnostic).
    DiskFree,
    /// The config file on disk failed to load; the previous one runs (diagnostic).
    ConfigError,
}

/// The box entities, in discovery order: (entity, component, id suffix).
const BOX_ENTITIES: [(Entity, &str, &str); 5] = [
    (Entity::Online, "binary_sensor", "online"),
    (Entity::StreamsDown, "sensor", "streams_down"),
    (Entity::ClockSynced, "binary_sensor", "clock_synced"),
    (Entity::DiskFree, "sensor", "disk_free"),
    (Entity::ConfigError, "binary_sensor", "config_error"),
];

/// Every topic of one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub availability: String,
    pub aggregate: String,
    /// The box facts' state topic.
    pub box_state: String,
    /// HA `node_id` and device identifier.
    pub node_id: String,
    /// Matches every per-stream state topic of this device (and the box's).
    pub state_wildcard: String,
    /// Match every discovery topic of this device (binary sensors, sensors).
    pub discovery_wildcards: Vec<String>,
    /// In config order.
    pub streams: Vec<StreamTopics>,
    /// Discovery topic → entity: every entity of this layout (none without
    /// `discovery`, none for disabled streams).
    pub entities: BTreeMap<String, Entity>,
}

impl Layout {
    /// Builds the topics of `streams` under `cfg`.
    pub fn new(cfg: &MqttConfig, streams: &[StreamConfig]) -> Layout {
        let node_id = format!("streampulse_{}", cfg.device.replace('-', "_"));
        let base = format!("{}/{}", cfg.prefix, cfg.device);
        let disc = |component: &str, id: &str| {
            format!("{}/{component}/{node_id}/{id}/config", cfg.discovery_prefix)
        };
        // Two entries may watch the same URL (say, different intervals): the
        // later ones get a counter so ids stay unique.
        let mut url_seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(streams.len());
        let mut entities = BTreeMap::new();
        for (i, s) in streams.iter().enumerate() {
            let key = format!("{}|{}", s.target.kind, s.target.url);
            let n = url_seen.entry(key.clone()).or_default();
            *n += 1;
            let mut object_id = format!("{:012x}", mix64(fnv1a64(key.as_bytes())) >> 16);
            if *n > 1 {
                object_id.push_str(&format!("_{n}"));
            }
            let longest = cfg.interval.max(s.interval).as_secs();
            let expire_after_secs =
                EXPIRE_INTERVALS * longest + s.target.timeout.as_secs_f64().ceil() as u64;
            let st = StreamTopics {
                name: s.name.clone(),
                enabled: s.enabled,
                state_topic: format!("{base}/{object_id}/state"),
                unique_id: format!("{node_id}_{object_id}"),
                discovery_topic: disc("binary_sensor", &object_id),
                object_id,
                expire_after_secs,
            };
            if cfg.discovery && s.enabled {
                entities.insert(st.discovery_topic.clone(), Entity::Connectivity(i));
                entities.insert(
                    disc("sensor", &format!("{}_latency", st.object_id)),
                    Entity::Latency(i),
                );
                entities.insert(
                    disc("sensor", &format!("{}_last_ok", st.object_id)),
                    Entity::LastOk(i),
                );
            }
            out.push(st);
        }
        if cfg.discovery {
            for (e, component, id) in BOX_ENTITIES {
                entities.insert(disc(component, id), e);
            }
        }
        Layout {
            availability: cfg.availability_topic(),
            aggregate: cfg.topic.clone(),
            box_state: format!("{base}/box/state"),
            state_wildcard: format!("{base}/+/state"),
            discovery_wildcards: ["binary_sensor", "sensor"]
                .iter()
                .map(|c| disc(c, "+"))
                .collect(),
            node_id,
            streams: out,
            entities,
        }
    }

    /// The stream named `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamTopics> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// Whether a retained message on `topic` is still ours: a stream's
    /// state, the box's state, or a discovery topic of an entity we have.
    pub fn owns(&self, topic: &str) -> bool {
        topic == self.box_state
            || self.entities.contains_key(topic)
            || self.streams.iter().any(|s| s.state_topic == topic)
    }

    /// The discovery payload of the entity announced on `topic`.
    pub fn discovery_payload(&self, cfg: &MqttConfig, topic: &str) -> Option<Value> {
        let e = *self.entities.get(topic)?;
        Some(match e {
            Entity::Connectivity(i) => stream_payload(cfg, self, &self.streams[i]),
            Entity::Latency(i) => latency_payload(cfg, self, &self.streams[i]),
            Entity::LastOk(i) => last_ok_payload(cfg, self, &self.streams[i]),
            _ => box_payload(cfg, self, e),
        })
    }
}

/// The HA device all entities belong to: the box.
fn device(cfg: &MqttConfig, layout: &Layout) -> Value {
    let mut d = json!({
        "identifiers": [layout.node_id],
        "name": cfg.device_name,
        "manufacturer": "StreamPulse",
        "model": "Camera stream monitor",
        "sw_version": crate::VERSION,
    });
    if let Some(url) = &cfg.configuration_url {
        d["configuration_url"] = json!(url);
    }
    d
}

/// What every entity's config carries: availability, device, origin, qos.
fn common(cfg: &MqttConfig, layout: &Layout, mut v: Value) -> Value {
    v["availability_topic"] = json!(layout.availability);
    v["payload_available"] = json!("online");
    v["payload_not_available"] = json!("offline");
    v["qos"] = json!(cfg.qos);
    v["device"] = device(cfg, layout);
    v["origin"] = json!({"name": "StreamPulse", "sw_version": crate::VERSION});
    v
}

/// `object_id` (HA's entity_id suggestion, used once, at creation).
fn entity_object_id(cfg: &MqttConfig, what: &str) -> String {
    format!(
        "{}_{}",
        cfg.device.replace('-', "_"),
        what.replace('-', "_")
    )
}

/// A stream's `connectivity` binary sensor: ON while the stream is up, OFF
/// when down, unknown before the debounce decided; the whole state JSON
/// becomes its attributes.
pub fn stream_payload(cfg: &MqttConfig, layout: &Layout, s: &StreamTopics) -> Value {
    common(
        cfg,
        layout,
        json!({
            "name": s.name,
            "unique_id": s.unique_id,
            "object_id": entity_object_id(cfg, &slug(&s.name, "stream")),
            "device_class": "connectivity",
            "state_topic": s.state_topic,
            // HA treats the payload "None" as "unknown".
            "value_template": "{{ {'up': 'ON', 'down': 'OFF'}.get(value_json.state, 'None') }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "json_attributes_topic": s.state_topic,
            "expire_after": s.expire_after_secs,
        }),
    )
}

/// A stream's last successful probe latency in ms (diagnostic); unknown
/// while the last probe failed (a failure's time is not a latency).
pub fn latency_payload(cfg: &MqttConfig, layout: &Layout, s: &StreamTopics) -> Value {
    common(
        cfg,
        layout,
        json!({
            "name": format!("{} latency", s.name),
            "unique_id": format!("{}_latency", s.unique_id),
            "object_id": entity_object_id(cfg, &format!("{}_latency", slug(&s.name, "stream"))),
            "state_topic": s.state_topic,
            "value_template": "{{ value_json.latency if value_json.status == 'ok' else 'None' }}",
            "unit_of_measurement": "ms",
            "device_class": "duration",
            "state_class": "measurement",
            "suggested_display_precision": 0,
            "entity_category": "diagnostic",
            "expire_after": s.expire_after_secs,
        }),
    )
}

/// When a stream's last successful probe ran (diagnostic). Unavailable
/// while no OK is known: HA 2024.3 takes `None` as "unknown" only for
/// numeric sensors and logs a warning for every other non-date payload of
/// a timestamp sensor, every interval. So the state topic also says
/// whether the entity is available, and the placeholder date a null
/// `last_ok` renders to is never shown.
pub fn last_ok_payload(cfg: &MqttConfig, layout: &Layout, s: &StreamTopics) -> Value {
    let mut v = common(
        cfg,
        layout,
        json!({
            "name": format!("{} last OK", s.name),
            "unique_id": format!("{}_last_ok", s.unique_id),
            "object_id": entity_object_id(cfg, &format!("{}_last_ok", slug(&s.name, "stream"))),
            "state_topic": s.state_topic,
            "value_template": "{{ value_json.last_ok or '1970-01-01T00:00:00+00:00' }}",
            "device_class": "timestamp",
            "entity_category": "diagnostic",
            "expire_after": s.expire_after_secs,
        }),
    );
    let o = v.as_object_mut().expect("an entity config is an object");
    for k in [
        "availability_topic",
        "payload_available",
        "payload_not_available",
    ] {
        o.remove(k);
    }
    v["availability"] = json!([
        {
            "topic": layout.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
        },
        {
            "topic": s.state_topic,
            "value_template": "{{ 'online' if value_json.last_ok else 'offline' }}",
        },
    ]);
    v["availability_mode"] = json!("all");
    v
}

/// One of the box's own entities.
fn box_payload(cfg: &MqttConfig, layout: &Layout, e: Entity) -> Value {
    let (_, _, id) = BOX_ENTITIES
        .iter()
        .find(|(b, _, _)| *b == e)
        .copied()
        .expect("box_payload is only called with a box entity");
    let expire = EXPIRE_INTERVALS * cfg.interval.as_secs().max(1);
    let mut v = match e {
        // The availability topic is its state: no availability of its own
        // (it must read `off`, not `unavailable`, when the box is gone).
        Entity::Online => json!({
            "name": "Online",
            "state_topic": layout.availability,
            "payload_on": "online",
            "payload_off": "offline",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
        }),
        Entity::StreamsDown => json!({
            "name": "Streams down",
            "state_topic": layout.box_state,
            "value_template": "{{ value_json.streams_down }}",
            "state_class": "measurement",
            "icon": "mdi:cctv-off",
            "expire_after": expire,
        }),
        Entity::ClockSynced => json!({
            "name": "Clock synced",
            "state_topic": layout.box_state,
            "value_template":
                "{{ {true: 'ON', false: 'OFF'}.get(value_json.clock_synced, 'None') }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "icon": "mdi:clock-check-outline",
            "entity_category": "diagnostic",
            "expire_after": expire,
        }),
        Entity::DiskFree => json!({
            "name": "Disk free",
            "state_topic": layout.box_state,
            "value_template": "{{ value_json.disk_free_percent if value_json.disk_free_percent is not none else 'None' }}",
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "suggested_display_precision": 1,
            "icon": "mdi:harddisk",
            "entity_category": "diagnostic",
            "expire_after": expire,
        }),
        Entity::ConfigError => json!({
            "name": "Config error",
            "state_topic": layout.box_state,
            "value_template": "{{ 'ON' if value_json.config_error else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": "problem",
            "entity_category": "diagnostic",
            "expire_after": expire,
        }),
        _ => unreachable!("stream entities are built by their own functions"),
    };
    v["unique_id"] = json!(format!("{}_{id}", layout.node_id));
    v["object_id"] = json!(entity_object_id(cfg, id));
    if e == Entity::Online {
        v["qos"] = json!(cfg.qos);
        v["device"] = device(cfg, layout);
        v["origin"] = json!({"name": "StreamPulse", "sw_version": crate::VERSION});
        v
    } else {
        common(cfg, layout, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn setup(streams: &str) -> (MqttConfig, Vec<StreamConfig>) {
        let c = parse(
            &format!(
                "device_name: Shop Floor\nmqtt:\n  host: b\n  discovery: true\nstreams:\n{streams}"
            ),
            "c.yaml",
        )
        .unwrap();
        (c.mqtt.unwrap(), c.streams)
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Front Door (east)", "x"), "front-door-east");
        assert_eq!(slug("  --Cam_1--", "x"), "cam-1");
        assert_eq!(slug("カメラ", "fallback"), "fallback");
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn layout_topics_and_ids() {
        let (m, s) = setup(
            "- name: Front Door\n  url: rtsp://u:secret@10.0.0.5/s1\n\
             - name: Back\n  url: http://10.0.0.6/video.mjpg\n",
        );
        let l = Layout::new(&m, &s);
        assert_eq!(l.availability, "streampulse/shop-floor/availability");
        assert_eq!(l.aggregate, "streampulse/status");
        assert_eq!(l.box_state, "streampulse/shop-floor/box/state");
        assert_eq!(l.node_id, "streampulse_shop_floor");
        assert_eq!(l.state_wildcard, "streampulse/shop-floor/+/state");
        assert_eq!(
            l.discovery_wildcards,
            [
                "homeassistant/binary_sensor/streampulse_shop_floor/+/config",
                "homeassistant/sensor/streampulse_shop_floor/+/config"
            ]
        );
        let front = l.stream("Front Door").unwrap();
        assert_eq!(front.object_id.len(), 12, "{}", front.object_id);
        assert_eq!(
            front.state_topic,
            format!("streampulse/shop-floor/{}/state", front.object_id)
        );
        assert_eq!(
            front.unique_id,
            format!("streampulse_shop_floor_{}", front.object_id)
        );
        assert_eq!(
            front.discovery_topic,
            format!(
                "homeassistant/binary_sensor/streampulse_shop_floor/{}/config",
                front.object_id
            )
        );
        assert!(!front.unique_id.contains("secret"));
        assert_ne!(front.unique_id, l.stream("Back").unwrap().unique_id);
        // Three entities per stream and five for the box.
        assert_eq!(l.entities.len(), 2 * 3 + 5);
        assert!(l.owns(&front.state_topic) && l.owns(&l.box_state));
        assert!(l.owns(&front.discovery_topic));
        assert!(!l.owns("streampulse/shop-floor/front-door/state"));
    }

    /// A rename changes no topic and no id (HA keeps listening where it
    /// did); another URL changes them all.
    #[test]
    fn rename_keeps_topics_and_ids_but_a_new_url_does_not() {
        let (m, a) = setup("- name: Front Door\n  url: rtsp://u:p@10.0.0.5/s1\n");
        let (_, b) = setup("- name: Entrance\n  url: rtsp://u:other@10.0.0.5/s1\n");
        let (_, c) = setup("- name: Front Door\n  url: rtsp://10.0.0.5/s2\n");
        let (la, lb, lc) = (
            Layout::new(&m, &a),
            Layout::new(&m, &b),
            Layout::new(&m, &c),
        );
        assert_eq!(la.streams[0].unique_id, lb.streams[0].unique_id);
        assert_eq!(la.streams[0].discovery_topic, lb.streams[0].discovery_topic);
        assert_eq!(la.streams[0].state_topic, lb.streams[0].state_topic);
        assert_eq!(
            la.entities.keys().collect::<Vec<_>>(),
            lb.entities.keys().collect::<Vec<_>>()
        );
        assert_ne!(la.streams[0].unique_id, lc.streams[0].unique_id);
        assert_ne!(la.streams[0].state_topic, lc.streams[0].state_topic);
    }

    #[test]
    fn same_url_twice_stays_distinct() {
        let (m, s) = setup(
            "- name: Cam 1\n  url: rtsp://h/x\n- name: cam-1!\n  url: rtsp://h/x\n  interval: 60\n",
        );
        let l = Layout::new(&m, &s);
        assert_ne!(l.streams[0].state_topic, l.streams[1].state_topic);
        assert_ne!(l.streams[0].unique_id, l.streams[1].unique_id);
        assert_ne!(l.streams[0].discovery_topic, l.streams[1].discovery_topic);
    }

    #[test]
    fn stream_payload_fields() {
        let (m, s) = setup("- name: Front Door\n  url: rtsp://u:secret@10.0.0.5/s1\n");
        let l = Layout::new(&m, &s);
        let st = &l.streams[0];
        let p = l.discovery_payload(&m, &st.discovery_topic).unwrap();
        assert_eq!(p["name"], "Front Door");
        assert_eq!(p["unique_id"], st.unique_id.as_str());
        assert_eq!(p["device_class"], "connectivity");
        assert_eq!(p["state_topic"], st.state_topic.as_str());
        assert_eq!(p["json_attributes_topic"], st.state_topic.as_str());
        assert_eq!(p["availability_topic"], l.availability.as_str());
        assert_eq!(
            (&p["payload_on"], &p["payload_off"]),
            (&json!("ON"), &json!("OFF"))
        );
        assert_eq!(p["payload_available"], "online");
        assert_eq!(p["payload_not_available"], "offline");
        assert_eq!(
            p["device"]["identifiers"],
            json!(["streampulse_shop_floor"])
        );
        assert_eq!(p["device"]["name"], "Shop Floor");
        assert_eq!(p["device"]["sw_version"], crate::VERSION);
        assert!(p["device"].get("configuration_url").is_none());
        // Default interval 30 s (MQTT) and 30 s (probes), timeout 10 s.
        assert_eq!(p["expire_after"], 3 * 30 + 10);
        assert!(!p.to_string().contains("secret"));
    }

    /// Every entity: a unique_id of its own, the same device, an
    /// availability (but `Online`, whose state is the availability), and
    /// the keys HA needs for its kind.
    #[test]
    fn every_entity_payload() {
        let (m, s) = setup(
            "- name: Front Door\n  url: rtsp://u:secret@10.0.0.5/s1\n  interval: 120\n\
             - name: Back\n  url: http://10.0.0.6/video.mjpg\n",
        );
        let l = Layout::new(&m, &s);
        let mut ids = std::collections::HashSet::new();
        for topic in l.entities.keys() {
            let p = l.discovery_payload(&m, topic).unwrap();
            assert!(
                ids.insert(p["unique_id"].as_str().unwrap().to_owned()),
                "{p}"
            );
            assert_eq!(p["device"]["identifiers"], json!([l.node_id]), "{p}");
            assert!(p["state_topic"].is_string(), "{p}");
            assert!(p["name"].is_string(), "{p}");
            let online = p["unique_id"] == "streampulse_shop_floor_online";
            let available = p["availability_topic"] == l.availability.as_str()
                || p["availability"][0]["topic"] == l.availability.as_str();
            assert_eq!(available, !online, "{p}");
            if topic.contains("/sensor/") {
                assert!(p.get("payload_on").is_none(), "{p}");
            }
        }
        let back = l.stream("Back").unwrap();
        let lat = l
            .discovery_payload(
                &m,
                &format!(
                    "homeassistant/sensor/streampulse_shop_floor/{}_latency/config",
                    back.object_id
                ),
            )
            .unwrap();
        assert_eq!(lat["unit_of_measurement"], "ms");
        assert_eq!(lat["device_class"], "duration");
        assert_eq!(lat["state_class"], "measurement");
        assert_eq!(lat["entity_category"], "diagnostic");
        assert_eq!(lat["name"], "Back latency");
        let front = l.stream("Front Door").unwrap();
        assert_eq!(front.expire_after_secs, 3 * 120 + 10);
        let ok = l
            .discovery_payload(
                &m,
                &format!(
                    "homeassistant/sensor/streampulse_shop_floor/{}_last_ok/config",
                    front.object_id
                ),
            )
            .unwrap();
        assert_eq!(ok["device_class"], "timestamp");
        assert_eq!(ok["availability_mode"], "all");
        assert_eq!(ok["availability"][1]["topic"], front.state_topic.as_str());
        assert!(
            ok.get("availability_topic").is_none(),
            "exclusive with availability"
        );
        assert_eq!(ok["expire_after"], 3 * 120 + 10);
    }

    #[test]
    fn disabled_streams_have_no_entity_but_a_state_topic() {
        let (m, s) = setup(
            "- name: Off\n  url: rtsp://h/off\n  enabled: false\n- name: On\n  url: rtsp://h/on\n",
        );
        let l = Layout::new(&m, &s);
        let off = l.stream("Off").unwrap();
        assert!(!off.enabled);
        assert!(l.owns(&off.state_topic));
        assert!(!l.owns(&off.discovery_topic));
        assert!(l.entities.keys().all(|t| !t.contains(&off.object_id)));
        assert_eq!(l.entities.len(), 3 + 5);
    }

    #[test]
    fn without_discovery_there_are_no_entities() {
        let (mut m, s) = setup("- name: On\n  url: rtsp://h/on\n");
        m.discovery = false;
        assert!(Layout::new(&m, &s).entities.is_empty());
    }

    #[test]
    fn configuration_url_in_the_device() {
        let (mut m, s) = setup("- name: On\n  url: rtsp://h/on\n");
        m.configuration_url = Some("http://cams.lan/".into());
        let l = Layout::new(&m, &s);
        for t in l.entities.keys() {
            let p = l.discovery_payload(&m, t).unwrap();
            assert_eq!(p["device"]["configuration_url"], "http://cams.lan/");
        }
    }
}
