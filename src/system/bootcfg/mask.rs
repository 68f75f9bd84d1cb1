//! `config.yaml.applied`: the configuration now in use with every secret
//! replaced by `***`, since the FAT partition is readable by anyone who
//! pulls the card.
//!
//! Built from the parsed tree, not line by line, so flow style
//! (`mqtt: {host: b, password: x}`) and values on the next line are masked
//! too. Masked: every value under a key naming a secret (`password`,
//! `admin_password_hash`, `secret`, `token`, `psk`, …, whatever the
//! section) and the password of every `scheme://user:password@` in any
//! string (stream URLs, webhooks, an MQTT host). Then, belt and braces,
//! every secret seen (and the parsed config's decoded passwords) is
//! replaced wherever it still appears in the text.

use super::merge::MASK;
use crate::config::edit::{render_body, Yaml};
use crate::config::Config;
use crate::redact;

/// `tree` (the config `cfg` was parsed from) as YAML with every secret masked.
///
/// # Errors
/// Only if the tree cannot be written as YAML.
pub fn masked(tree: &Yaml, cfg: &Config) -> Result<String, String> {
    let mut secrets = Vec::new();
    let mut text = render_body(&mask(tree, false, &mut secrets))?;
    secrets.extend(cfg.passwords());
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets
        .iter()
        .filter(|s| s.len() >= 3 && s.as_str() != MASK)
    {
        text = text.replace(s.as_str(), MASK);
        let enc: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        text = text.replace(&enc, MASK);
    }
    Ok(text)
}

/// `v` masked; `secret` if it sits under a secret key. Secrets found are
/// added to `found`.
fn mask(v: &Yaml, secret: bool, found: &mut Vec<String>) -> Yaml {
    match v {
        Yaml::Map(m) => Yaml::Map(
            m.iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        mask(c, secret || redact::is_secret_key(k), found),
                    )
                })
                .collect(),
        ),
        Yaml::Seq(items) => Yaml::Seq(items.iter().map(|c| mask(c, secret, found)).collect()),
        Yaml::Null => Yaml::Null,
        scalar if secret => {
            found.extend(scalar.as_text());
            Yaml::Str(MASK.into())
        }
        Yaml::Str(s) => {
            found.extend(redact::userinfo_password(s));
            Yaml::Str(redact::redact_text(s, &[]))
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::edit::parse_tree;

    #[test]
    fn every_secret_is_masked_whatever_the_style() {
        let text = "\
admin_password_hash: $argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA
mqtt: {host: broker, username: sp, password: flow-secret}
streams:
- name: a
  url: rtsp://u:url%40secret@192.0.2.1/x
- name: b
  url: http://192.0.2.2/
  username: v
  password:
    next-line-secret
notify:
- https://hook:hook-secret@hooks.example/x
";
        let tree = parse_tree(text).unwrap();
        let cfg = crate::config::parse(text, "t").unwrap();
        let out = masked(&tree, &cfg).unwrap();
        for s in [
            "aGFzaA",
            "flow-secret",
            "url%40secret",
            "url@secret",
            "next-line-secret",
            "hook-secret",
        ] {
            assert!(!out.contains(s), "{s} in:\n{out}");
        }
        assert!(out.contains("rtsp://u:***@192.0.2.1/x"), "{out}");
        assert!(out.contains("https://hook:***@hooks.example/x"), "{out}");
        assert!(out.contains("username: sp"), "{out}");
        // Other keys are untouched, and the result is still a tree.
        let back = parse_tree(&out).unwrap();
        assert_eq!(
            back.get("mqtt")
                .unwrap()
                .get("host")
                .unwrap()
                .as_text()
                .unwrap(),
            "broker"
        );
        assert_eq!(
            back.get("mqtt")
                .unwrap()
                .get("password")
                .unwrap()
                .as_text()
                .unwrap(),
            MASK
        );
        // Any key naming a secret, even one the config does not know yet.
        let t = parse_tree("wifi: {ssid: home, psk: wifi-secret}\nx_token: [t1-secret]\n").unwrap();
        let out = render_body(&mask(&t, false, &mut Vec::new())).unwrap();
        assert!(
            !out.contains("wifi-secret") && !out.contains("t1-secret"),
            "{out}"
        );
        assert!(out.contains("ssid: home"), "{out}");
    }

    /// The Wi-Fi key of `network:` (issue 15) never reaches the readable
    /// `.applied` copy, in block or flow style.
    #[test]
    fn the_wifi_key_is_masked() {
        for text in [
            "streams: []\nnetwork:\n  wifi:\n    ssid: Home\n    psk: \"my wifi key\"\n    country: GB\n",
            "streams: []\nnetwork: {wifi: {ssid: Home, psk: 'my wifi key', country: GB}}\n",
        ] {
            let cfg = crate::config::parse(text, "c.yaml").unwrap();
            let out = masked(&parse_tree(text).unwrap(), &cfg).unwrap();
            assert!(!out.contains("my wifi key") && out.contains(MASK), "{out}");
            assert!(out.contains("Home"), "{out}");
        }
    }
}
