//! The config file as an ordered YAML tree ([`Yaml`]): parsed from text
//! ([`parse_tree`]) and written back ([`render`]) in a canonical form. Edits
//! work on this tree, not on [`crate::config::RawConfig`], so that sections
//! and keys the editor does not know survive an edit; the boot-partition
//! import ([`crate::system::bootcfg`]) merges and masks files with it too.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A YAML node with mapping order kept.
#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    /// Keys in file order. Non-string keys are stored as their text.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// The value at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` of a mapping (in place if present, else appended).
    /// A non-mapping becomes an empty mapping first.
    pub fn set(&mut self, key: &str, value: Yaml) {
        let m = self.as_map_mut();
        match m.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => m.push((key.to_owned(), value)),
        }
    }

    /// Sets `key` to `value`, or removes it when `value` is None.
    pub fn set_opt(&mut self, key: &str, value: Option<Yaml>) {
        match value {
            Some(v) => self.set(key, v),
            None => self.remove(key),
        }
    }

    /// Removes `key` from a mapping.
    pub fn remove(&mut self, key: &str) {
        if let Yaml::Map(m) = self {
            m.retain(|(k, _)| k != key);
        }
    }

    /// The mapping at `key`, created (or replacing a scalar/null) if needed.
    pub fn section_mut(&mut self, key: &str) -> &mut Yaml {
        let m = self.as_map_mut();
        let i = match m.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                m.push((key.to_owned(), Yaml::Map(Vec::new())));
                m.len() - 1
            }
        };
        let v = &mut m[i].1;
        if !matches!(v, Yaml::Map(_)) {
            *v = Yaml::Map(Vec::new());
        }
        v
    }

    pub(super) fn as_map_mut(&mut self) -> &mut Vec<(String, Yaml)> {
        if !matches!(self, Yaml::Map(_)) {
            *self = Yaml::Map(Vec::new());
        }
        match self {
            Yaml::Map(m) => m,
            _ => unreachable!("made a mapping above"),
        }
    }

    /// The text of a scalar (numbers and booleans as written by YAML).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Removes a mapping that became empty (keeps the file tidy).
    pub(super) fn prune_empty(&mut self, key: &str) {
        if matches!(self.get(key), Some(Yaml::Map(m)) if m.is_empty()) {
            self.remove(key);
        }
    }
}

impl Serialize for Yaml {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Yaml::Null => s.serialize_unit(),
            Yaml::Bool(b) => s.serialize_bool(*b),
            Yaml::Int(i) => s.serialize_i64(*i),
            Yaml::Float(f) => s.serialize_f64(*f),
            Yaml::Str(v) => s.serialize_str(v),
            Yaml::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Yaml::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Yaml, D::Error> {
        d.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Yaml, E> {
        Ok(i64::try_from(v).map_or(Yaml::Float(v as f64), Yaml::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some(item) = a.next_element()? {
            v.push(item);
        }
        Ok(Yaml::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
        let mut m: Vec<(String, Yaml)> = Vec::new();
        while let Some(k) = a.next_key::<Yaml>()? {
            let v: Yaml = a.next_value()?;
            let key = k.as_text().unwrap_or_default();
            m.push((key, v));
        }
        Ok(Yaml::Map(m))
    }
}

/// Parses config text into a tree. An empty file is an empty mapping.
pub fn parse_tree(text: &str) -> Result<Yaml, String> {
    if text.trim().is_empty() {
        return Ok(Yaml::Map(Vec::new()));
    }
    let v: Yaml = serde_saphyr::from_str(text).map_err(|e| {
        e.without_snippet()
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_owned()
    })?;
    match v {
        Yaml::Map(_) => Ok(v),
        Yaml::Null => Ok(Yaml::Map(Vec::new())),
        _ => Err("the file is not a mapping of settings".into()),
    }
}

/// The header written above every GUI-written file.
const HEADER: &str = "# StreamPulse configuration. Written by the web GUI, which keeps the\n\
# previous version as config.yaml.bak (comments are not kept).\n";

/// Renders a tree as config text.
pub fn render(tree: &Yaml) -> Result<String, String> {
    Ok(format!("{HEADER}{}", render_body(tree)?))
}

/// Renders a tree as YAML, without a header.
pub fn render_body(tree: &Yaml) -> Result<String, String> {
    // Plain or quoted scalars only: a long hash folded into a `>-` block is
    // valid YAML but hard to read and to grep for.
    let mut opts = serde_saphyr::SerializerOptions::default();
    opts.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(tree, opts).map_err(|e| format!("cannot write YAML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{reparse, tree};
    use super::super::{upsert_stream, StreamForm};
    use super::*;
    use crate::config;

    #[test]
    fn round_trip_keeps_unknown_sections_and_order() {
        let src = "# a comment\nheartbeat_seconds: 20\ntimezone: Asia/Calcutta\n\
                   mqtt:\n  enabled: false\n  host: broker.example\n  use_tls: false\n  \
                   api_status_url: http://localhost:7000/api/status\n\
                   streams:\n- name: a\n  url: rtsp://h/x\n";
        let t = tree(src);
        let out = render(&t).unwrap();
        let keys: Vec<&str> = match &t {
            Yaml::Map(m) => m.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!(),
        };
        assert_eq!(keys, ["heartbeat_seconds", "timezone", "mqtt", "streams"]);
        assert_eq!(
            tree(&out),
            t,
            "render then parse gives the same tree:\n{out}"
        );
        assert_eq!(
            config::parse(src, "a").unwrap(),
            config::parse(&out, "b").unwrap()
        );
    }

    /// Passwords a YAML writer could turn into another type or break.
    const TRICKY: [&str; 14] = [
        "0123",
        "yes",
        "true",
        "null",
        "~",
        "1.50",
        "- x",
        "a: b",
        "#x",
        " lead",
        "'q\"",
        "%x",
        "@x",
        "multi\nline",
    ];

    #[test]
    fn strings_that_look_like_other_types_stay_strings() {
        let mut t = tree("streams: []\n");
        for (i, pw) in TRICKY.iter().enumerate() {
            let form = StreamForm {
                name: format!("cam{i}"),
                url: "rtsp://10.0.0.1/s".into(),
                enabled: true,
                username: "admin".into(),
                password: (*pw).into(),
                ..StreamForm::default()
            };
            upsert_stream(&mut t, None, &form).unwrap();
        }
        let c = reparse(&t);
        for (i, pw) in TRICKY.iter().enumerate() {
            assert_eq!(
                c.streams[i].target.creds.as_ref().unwrap().password,
                *pw,
                "{}",
                render(&t).unwrap()
            );
        }
    }
}
