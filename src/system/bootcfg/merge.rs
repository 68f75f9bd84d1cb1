//! Merging an imported `config.yaml` into the current one, as ordered YAML
//! trees ([`Yaml`]); the rules are in the parent module's docs.
//!
//! Two modes: *merge* (the top level and every mapping the current config
//! also has: key by key) and *replace* (everything else, including each
//! stream of a `streams:` list). In both, a `***` (what
//! `config.yaml.applied` shows for a secret) is resolved against the
//! current value at the same place, so an `.applied` copied back changes
//! nothing.

use crate::config::edit::Yaml;

/// What `config.yaml.applied` shows instead of a secret.
pub const MASK: &str = "***";

/// A `***` with no current value to keep.
#[derive(Debug)]
pub struct Unresolved {
    /// Where, e.g. `streams["Front door"].password`.
    pub path: String,
    /// How many `***` came before it in the imported file (document order),
    /// to find its line.
    pub nth: usize,
}

/// Merges `import` (a mapping) into `current` (a mapping); see the module docs.
///
/// # Errors
/// The first `***` that has no current value to keep; `current` is then
/// partly merged and must be thrown away.
pub fn merge(current: &mut Yaml, import: &Yaml) -> Result<(), Unresolved> {
    let Yaml::Map(entries) = import else {
        return Ok(());
    };
    Merger { seen: 0 }.merge_map(current, entries, "")
}

/// Counts the `***` seen so far, in document order.
struct Merger {
    seen: usize,
}

impl Merger {
    fn merge_map(
        &mut self,
        cur: &mut Yaml,
        import: &[(String, Yaml)],
        path: &str,
    ) -> Result<(), Unresolved> {
        for (k, v) in import {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match (cur.get(k), v) {
                (Some(Yaml::Map(_)), Yaml::Map(m)) => {
                    self.merge_map(cur.section_mut(k), m, &here)?;
                }
                // `key:` with no value removes the key.
                (_, Yaml::Null) => cur.remove(k),
                (old, v) => {
                    let new = self.resolve(v, old, &here)?;
                    cur.set(k, new);
                }
            }
        }
        Ok(())
    }

    /// `v` with its `***` replaced by what `cur` (the current value at the
    /// same place) holds.
    fn resolve(&mut self, v: &Yaml, cur: Option<&Yaml>, path: &str) -> Result<Yaml, Unresolved> {
        match v {
            Yaml::Str(s) => {
                let out = if s.trim() == MASK {
                    cur.filter(|c| c.as_text().is_some()).cloned()
                } else if masked_url_password(s) {
                    cur.and_then(|c| restore_url_password(s, c)).map(Yaml::Str)
                } else {
                    Some(v.clone())
                };
                let nth = self.seen;
                self.seen += s.matches(MASK).count();
                out.ok_or_else(|| Unresolved {
                    path: path.to_owned(),
                    nth,
                })
            }
            Yaml::Map(m) => {
                let mut out = Vec::with_capacity(m.len());
                for (k, child) in m {
                    let old = cur.and_then(|c| c.get(k));
                    out.push((k.clone(), self.resolve(child, old, &format!("{path}.{k}"))?));
                }
                Ok(Yaml::Map(out))
            }
            Yaml::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let (old, here) = counterpart(cur, item, path, i);
                    out.push(self.resolve(item, old, &here)?);
                }
                Ok(Yaml::Seq(out))
            }
            _ => Ok(v.clone()),
        }
    }
}

/// The current list's item that `item` stands for, and `item`'s path: a
/// mapping with a `name` (a stream) matches the one with the same name; a
/// URL with a masked password matches one to the same endpoint.
fn counterpart<'a>(
    cur: Option<&'a Yaml>,
    item: &Yaml,
    path: &str,
    i: usize,
) -> (Option<&'a Yaml>, String) {
    let list = match cur {
        Some(Yaml::Seq(l)) => l.as_slice(),
        _ => &[],
    };
    if let Some(name) = item.get("name").and_then(Yaml::as_text) {
        let old = list
            .iter()
            .find(|c| c.get("name").and_then(Yaml::as_text).as_deref() == Some(&name));
        return (old, format!("{path}[{name:?}]"));
    }
    let old = match item {
        Yaml::Str(s) if masked_url_password(s) => {
            list.iter().find(|c| restore_url_password(s, c).is_some())
        }
        _ => None,
    };
    (old, format!("{path}[{}]", i + 1))
}

/// True for a URL whose password is written `***` (`rtsp://user:***@host/`).
fn masked_url_password(s: &str) -> bool {
    url::Url::parse(s.trim()).is_ok_and(|u| u.password() == Some(MASK))
}

/// `masked` with the password of `cur` put back, if `cur` is a URL with a
/// password to the same scheme, user, host and port (a password is never
/// carried to another endpoint: that would hand it to whoever runs it).
fn restore_url_password(masked: &str, cur: &Yaml) -> Option<String> {
    let Yaml::Str(cur) = cur else { return None };
    let (m, c) = (
        url::Url::parse(masked.trim()).ok()?,
        url::Url::parse(cur.trim()).ok()?,
    );
    let same = m.scheme() == c.scheme()
        && m.username() == c.username()
        && m.host_str() == c.host_str()
        && m.port_or_known_default() == c.port_or_known_default();
    let pw = c.password().filter(|_| same)?;
    // Textual, so the rest of the URL stays as the user wrote it.
    Some(masked.replacen(&format!(":{MASK}@"), &format!(":{pw}@"), 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::edit::{parse_tree, render_body};

    fn merged(cur: &str, import: &str) -> Result<String, Unresolved> {
        let mut t = parse_tree(cur).unwrap();
        merge(&mut t, &parse_tree(import).unwrap())?;
        Ok(render_body(&t).unwrap())
    }

    const CURRENT: &str = "\
heartbeat_seconds: 20
admin_password_hash: $argon2id$old
mqtt:
  host: broker
  username: sp
  password: mq-secret
web:
  listen: 0.0.0.0:8000
streams:
- name: Front door
  url: rtsp://admin:cam-secret@192.0.2.10/stream1
- name: Garage
  url: http://192.0.2.11/snap.jpg
  username: viewer
  password: garage-secret
notify:
- https://hook:wh-secret@hooks.example/x
";

    #[test]
    fn named_keys_replace_sections_merge_and_the_rest_is_kept() {
        let out = merged(
            CURRENT,
            "heartbeat_seconds: 30\nmqtt: {host: other}\nweb:\ntime:\n  ntp_servers: [ntp]\n",
        )
        .unwrap();
        let t = parse_tree(&out).unwrap();
        assert_eq!(t.get("heartbeat_seconds"), Some(&Yaml::Int(30)));
        assert_eq!(
            t.get("admin_password_hash").unwrap().as_text().unwrap(),
            "$argon2id$old"
        );
        let mqtt = t.get("mqtt").unwrap();
        assert_eq!(mqtt.get("host").unwrap().as_text().unwrap(), "other");
        assert_eq!(
            mqtt.get("password").unwrap().as_text().unwrap(),
            "mq-secret"
        );
        assert!(
            t.get("web").is_none(),
            "`web:` with no value removes it: {out}"
        );
        assert!(t.get("time").is_some());
        assert!(
            out.contains("garage-secret") && out.contains("cam-secret"),
            "{out}"
        );
    }

    #[test]
    fn a_streams_list_replaces_and_masks_keep_the_current_secret() {
        let out = merged(
            CURRENT,
            "streams:\n- name: Garage\n  url: http://192.0.2.11/snap.jpg\n  username: viewer\n  password: '***'\n\
             - name: Front door\n  url: rtsp://admin:***@192.0.2.10/stream2\n\
             mqtt:\n  password: '***'\nnotify: ['https://hook:***@hooks.example/x']\n",
        )
        .unwrap();
        let t = parse_tree(&out).unwrap();
        let Some(Yaml::Seq(s)) = t.get("streams") else {
            panic!("{out}")
        };
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].get("password").unwrap().as_text().unwrap(),
            "garage-secret"
        );
        assert_eq!(
            s[1].get("url").unwrap().as_text().unwrap(),
            "rtsp://admin:cam-secret@192.0.2.10/stream2"
        );
        assert!(
            out.contains("mq-secret") && out.contains("https://hook:wh-secret@hooks.example/x")
        );
        assert!(!out.contains(MASK), "{out}");
    }

    #[test]
    fn a_mask_with_nothing_to_keep_is_an_error_naming_the_place() {
        // Another host: the camera password must not follow it.
        let e = merged(
            CURRENT,
            "heartbeat_seconds: '***'\nstreams:\n- name: Front door\n  url: rtsp://admin:***@203.0.113.9/stream1\n",
        )
        .unwrap_err();
        assert_eq!(e.path, "streams[\"Front door\"].url");
        assert_eq!(e.nth, 1);
        for import in [
            "streams:\n- name: New\n  url: rtsp://h/\n  username: u\n  password: '***'\n",
            "mqtt: {password: '***'}\n",
        ] {
            assert!(merged("streams: []\n", import).is_err(), "{import}");
        }
    }
}
