//! Topic names and Home Assistant discovery payloads: pure functions of the
//! config, unit-tested field by field.
//!
//! Topics:
//! * `<topic>`: the aggregate status JSON (same shape as `/api/status`).
//! * `<prefix>/<device>/availability`: `online`/`offline`, retained; the LWT.
//! * `<prefix>/<device>/<stream-slug>/state`: one stream's JSON, retained.
//! * `<discovery_prefix>/binary_sensor/<node_id>/<object_id>/config`: HA discovery.
//!
//! Home Assistant keys an entity by `unique_id`, so it must survive a rename:
//! it is derived from the stream's URL without credentials (FNV-1a, stable
//! across builds), not from its name. Renaming a stream keeps its entity;
//! pointing it at another camera makes a new one.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::config::mqtt::{slug, MqttConfig};
use crate::config::StreamConfig;

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
    pub state_topic: String,
    /// HA `unique_id`: stable across renames.
    pub unique_id: String,
    pub discovery_topic: String,
}

/// Every topic of one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub availability: String,
    pub aggregate: String,
    /// HA `node_id` and device identifier.
    pub node_id: String,
    /// Matches every per-stream state topic of this device.
    pub state_wildcard: String,
    /// Matches every discovery topic of this device.
    pub discovery_wildcard: String,
    /// In config order.
    pub streams: Vec<StreamTopics>,
}

impl Layout {
    /// Builds the topics of `streams` under `cfg`.
    pub fn new(cfg: &MqttConfig, streams: &[StreamConfig]) -> Layout {
        let node_id = format!("streampulse_{}", cfg.device.replace('-', "_"));
        let base = format!("{}/{}", cfg.prefix, cfg.device);

        // Slugs of different names may collide ("Cam 1", "cam-1"): those get
        // a short hash of the name so each stream keeps its own topic.
        let slugs: Vec<String> = streams
            .iter()
            .map(|s| {
                slug(
                    &s.name,
                    &format!("stream-{:08x}", fnv1a64(s.name.as_bytes()) as u32),
                )
            })
            .collect();
        let mut slug_count: HashMap<&str, usize> = HashMap::new();
        for s in &slugs {
            *slug_count.entry(s.as_str()).or_default() += 1;
        }
        // Two entries may watch the same URL (say, different intervals): the
        // later ones get a counter so ids stay unique.
        let mut url_seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(streams.len());
        for (s, sl) in streams.iter().zip(&slugs) {
            let sl = if slug_count[sl.as_str()] > 1 {
                format!("{sl}-{:04x}", fnv1a64(s.name.as_bytes()) as u16)
            } else {
                sl.clone()
            };
            let key = format!("{}|{}", s.target.kind, s.target.url);
            let n = url_seen.entry(key.clone()).or_default();
            *n += 1;
            let mut object_id = format!("{:012x}", mix64(fnv1a64(key.as_bytes())) >> 16);
            if *n > 1 {
                object_id.push_str(&format!("_{n}"));
            }
            out.push(StreamTopics {
                name: s.name.clone(),
                state_topic: format!("{base}/{sl}/state"),
                unique_id: format!("{node_id}_{object_id}"),
                discovery_topic: format!(
                    "{}/binary_sensor/{node_id}/{object_id}/config",
                    cfg.discovery_prefix
                ),
            });
        }
        Layout {
            availability: cfg.availability_topic(),
            aggregate: cfg.topic.clone(),
            state_wildcard: format!("{base}/+/state"),
            discovery_wildcard: format!(
                "{}/binary_sensor/{node_id}/+/config",
                cfg.discovery_prefix
            ),
            node_id,
            streams: out,
        }
    }

    /// The stream named `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamTopics> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// State and discovery topics of this layout, for "is this retained
    /// message still ours?".
    pub fn owned_topics(&self) -> BTreeMap<&str, &StreamTopics> {
        let mut m = BTreeMap::new();
        for s in &self.streams {
            m.insert(s.state_topic.as_str(), s);
            m.insert(s.discovery_topic.as_str(), s);
        }
        m
    }
}

/// The HA discovery config of one stream: a `connectivity` binary sensor
/// that is ON while the stream is up, OFF when down, unknown before the
/// debounce decided; the whole state JSON becomes its attributes.
pub fn discovery_payload(cfg: &MqttConfig, layout: &Layout, s: &StreamTopics) -> Value {
    json!({
        "name": s.name,
        "unique_id": s.unique_id,
        "object_id": format!("{}_{}", cfg.device.replace('-', "_"), slug(&s.name, "stream").replace('-', "_")),
        "device_class": "connectivity",
        "state_topic": s.state_topic,
        // HA treats the payload "None" as "unknown".
        "value_template": "{{ {'up': 'ON', 'down': 'OFF'}.get(value_json.state, 'None') }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "json_attributes_topic": s.state_topic,
        "availability_topic": layout.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": cfg.qos,
        "device": {
            "identifiers": [layout.node_id],
            "name": cfg.device_name,
            "manufacturer": "StreamPulse",
            "model": "Camera stream monitor",
            "sw_version": crate::VERSION,
        },
        "origin": {
            "name": "StreamPulse",
            "sw_version": crate::VERSION,
        },
    })
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
        assert_eq!(l.node_id, "streampulse_shop_floor");
        assert_eq!(l.state_wildcard, "streampulse/shop-floor/+/state");
        assert_eq!(
            l.discovery_wildcard,
            "homeassistant/binary_sensor/streampulse_shop_floor/+/config"
        );
        let front = l.stream("Front Door").unwrap();
        assert_eq!(front.state_topic, "streampulse/shop-floor/front-door/state");
        assert!(front.unique_id.starts_with("streampulse_shop_floor_"));
        assert!(front
            .discovery_topic
            .starts_with("homeassistant/binary_sensor/streampulse_shop_floor/"));
        assert!(!front.unique_id.contains("secret"));
        assert_ne!(front.unique_id, l.stream("Back").unwrap().unique_id);
    }

    #[test]
    fn unique_id_survives_rename_but_not_new_url() {
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
        assert_ne!(la.streams[0].state_topic, lb.streams[0].state_topic);
        assert_ne!(la.streams[0].unique_id, lc.streams[0].unique_id);
    }

    #[test]
    fn colliding_slugs_and_urls_stay_distinct() {
        let (m, s) = setup(
            "- name: Cam 1\n  url: rtsp://h/x\n- name: cam-1!\n  url: rtsp://h/x\n  interval: 60\n",
        );
        let l = Layout::new(&m, &s);
        assert_ne!(l.streams[0].state_topic, l.streams[1].state_topic);
        assert_ne!(l.streams[0].unique_id, l.streams[1].unique_id);
        assert_ne!(l.streams[0].discovery_topic, l.streams[1].discovery_topic);
    }

    #[test]
    fn discovery_payload_fields() {
        let (m, s) = setup("- name: Front Door\n  url: rtsp://u:secret@10.0.0.5/s1\n");
        let l = Layout::new(&m, &s);
        let st = &l.streams[0];
        let p = discovery_payload(&m, &l, st);
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
        assert!(!p.to_string().contains("secret"));
    }
}
