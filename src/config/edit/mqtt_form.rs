//! The MQTT settings form: the keys most people need, written back as our
//! canonical keys (StreamPulse v2.2's aliases, [`mqtt::V22_KEYS`], are
//! replaced; other keys such as TLS client certificates are kept). A kept
//! broker password only stays with the same broker.

use super::{ranged, EditError, FieldErrors, Yaml};
use crate::config::mqtt::{self, MqttConfig, RawMqtt};
use crate::config::{self, Config};
use crate::redact;

/// The MQTT settings form (the keys most people need; others in the file,
/// such as TLS client certificates, are kept as they are).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MqttForm {
    pub enabled: bool,
    pub host: String,
    pub port: String,
    /// `tcp`, `tls`, `ws` or `wss`.
    pub transport: String,
    pub username: String,
    /// Write-only: empty keeps the stored password (unless `clear_password`,
    /// or the transport, host or port changed).
    pub password: String,
    pub clear_password: bool,
    pub topic: String,
    pub prefix: String,
    pub interval: String,
    pub qos: String,
    pub retain: bool,
    pub discovery: bool,
    pub tls_verify: bool,
}

impl MqttForm {
    /// The form pre-filled from a validated config (defaults when absent).
    pub fn from_config(c: &Config) -> MqttForm {
        match &c.mqtt {
            Some(m) => MqttForm {
                enabled: m.enabled,
                host: m.host.clone(),
                port: m.port.to_string(),
                transport: m.transport.as_str().into(),
                username: m
                    .credentials
                    .as_ref()
                    .map(|c| c.username.clone())
                    .unwrap_or_default(),
                password: String::new(),
                clear_password: false,
                topic: m.topic.clone(),
                prefix: m.prefix.clone(),
                interval: m.interval.as_secs().to_string(),
                qos: m.qos.to_string(),
                retain: m.retain,
                discovery: m.discovery,
                tls_verify: m.tls.verify,
            },
            None => MqttForm {
                enabled: false,
                transport: "tcp".into(),
                topic: mqtt::DEFAULT_TOPIC.into(),
                prefix: mqtt::DEFAULT_PREFIX.into(),
                interval: mqtt::DEFAULT_INTERVAL_SECS.to_string(),
                qos: "0".into(),
                tls_verify: true,
                ..MqttForm::default()
            },
        }
    }
}

/// Applies the MQTT form to the `mqtt:` section (canonical keys; v2.2
/// aliases are rewritten, other keys kept).
///
/// # Errors
/// Field errors; nothing is changed then.
pub fn apply_mqtt(tree: &mut Yaml, f: &MqttForm) -> Result<(), EditError> {
    let mut errs = FieldErrors::default();
    let host = f.host.trim();
    if f.enabled && host.is_empty() {
        errs.add("host", "required when MQTT is enabled");
    }
    if host.contains("://") || host.contains(['/', '@']) || host.chars().any(char::is_whitespace) {
        errs.add(
            "host",
            "a host name or address only (choose the protocol below)",
        );
    }
    let transport = match f.transport.trim() {
        t @ ("tcp" | "tls" | "ws" | "wss") => t,
        _ => {
            errs.add("transport", "choose tcp, tls, ws or wss");
            "tcp"
        }
    };
    let port = match f.port.trim() {
        "" => None,
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errs.add("port", "a port number from 1 to 65535");
                None
            }
        },
    };
    let interval = ranged(
        &mut errs,
        "interval",
        &f.interval,
        config::MIN_INTERVAL_SECS,
        config::MAX_INTERVAL_SECS,
    );
    let qos = match f.qos.trim() {
        q @ ("0" | "1" | "2") => q.parse::<i64>().unwrap_or(0),
        _ => {
            errs.add("qos", "0, 1 or 2");
            0
        }
    };
    for (field, v) in [("topic", &f.topic), ("prefix", &f.prefix)] {
        let v = v.trim();
        if v.is_empty() || v.contains(['#', '+']) || v.chars().any(char::is_control) {
            errs.add(field, "a topic without wildcards (# +)");
        }
    }
    let user = f.username.trim();
    if user.is_empty() && !f.password.is_empty() {
        errs.add("username", "a password needs a username");
    }
    if !errs.is_empty() {
        return Err(errs.into());
    }
    let m = tree.section_mut("mqtt");
    let old_password = m.get("password").and_then(Yaml::as_text);
    let old_broker = broker(m);
    for k in mqtt::V22_KEYS {
        m.remove(k);
    }
    m.set("enabled", Yaml::Bool(f.enabled));
    m.set_opt(
        "host",
        (!host.is_empty()).then(|| Yaml::Str(host.to_owned())),
    );
    m.set_opt("port", port.map(|p| Yaml::Int(p.into())));
    m.set("transport", Yaml::Str(transport.into()));
    if user.is_empty() {
        m.remove("username");
        m.remove("password");
    } else {
        m.set("username", Yaml::Str(user.to_owned()));
        let pw = if !f.password.is_empty() {
            Some(f.password.clone())
        } else if f.clear_password {
            None
        } else {
            old_password
                .filter(|_| redact::may_keep_secret(old_broker.as_ref(), broker(m).as_ref()))
        };
        m.set_opt("password", pw.map(Yaml::Str));
    }
    m.set("topic", Yaml::Str(f.topic.trim().to_owned()));
    m.set("prefix", Yaml::Str(f.prefix.trim().to_owned()));
    m.set("interval", Yaml::Int(interval.expect("checked").into()));
    m.set("qos", Yaml::Int(qos));
    m.set("retain", Yaml::Bool(f.retain));
    m.set("discovery", Yaml::Bool(f.discovery));
    m.set_opt("tls_verify", (!f.tls_verify).then_some(Yaml::Bool(false)));
    Ok(())
}

/// The broker an `mqtt:` section points at, resolved as the daemon does
/// (v2.2 keys and default ports included); None if it does not validate.
fn broker(section: &Yaml) -> Option<redact::Endpoint> {
    let text = serde_saphyr::to_string(section).ok()?;
    let raw: serde_saphyr::Spanned<RawMqtt> = serde_saphyr::from_str(&text).ok()?;
    let m = MqttConfig::from_raw(&raw, "").ok()?;
    Some(redact::Endpoint::new(
        m.transport.as_str(),
        &m.host,
        Some(m.port),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::tests::{reparse, tree};
    use super::*;

    /// See: #14 (finding 2), the MQTT broker's password.
    #[test]
    fn kept_broker_password_is_dropped_when_the_broker_changes() {
        let stored = "mqtt:\n  host: Broker.lan\n  use_tls: true\n  tls_port: 8883\n  \
                      username: u\n  password: pw0\n";
        let password_after = |change: &dyn Fn(&mut MqttForm)| {
            let mut t = tree(stored);
            let mut f = MqttForm::from_config(&reparse(&t));
            change(&mut f);
            apply_mqtt(&mut t, &f).unwrap();
            reparse(&t).mqtt.unwrap().credentials.unwrap().password
        };
        assert_eq!(password_after(&|f| f.host = "broker.lan".into()), "pw0");
        assert_eq!(password_after(&|f| f.port = String::new()), "pw0");
        assert_eq!(password_after(&|f| f.host = "127.0.0.1".into()), "");
        assert_eq!(password_after(&|f| f.port = "8884".into()), "");
        assert_eq!(password_after(&|f| f.transport = "wss".into()), "");
    }

    #[test]
    fn mqtt_form_rewrites_v22_keys_and_keeps_password() {
        let mut t = tree(
            "mqtt:\n  enabled: true\n  host: broker\n  use_tls: true\n  tls_port: 8883\n  \
             username: u\n  password: pw0\n  interval_seconds: 10\n  ca_file: /data/ca.pem\n",
        );
        let c = reparse(&t);
        let mut f = MqttForm::from_config(&c);
        assert_eq!(f.transport, "tls");
        assert!(f.password.is_empty());
        f.qos = "1".into();
        apply_mqtt(&mut t, &f).unwrap();
        let c = reparse(&t);
        let m = c.mqtt.unwrap();
        assert_eq!(m.credentials.unwrap().password, "pw0");
        assert_eq!(m.qos, 1);
        assert_eq!(m.port, 8883);
        assert_eq!(m.interval.as_secs(), 10);
        assert_eq!(m.tls.ca_file.as_deref(), Some(Path::new("/data/ca.pem")));
        assert!(t.get("mqtt").unwrap().get("use_tls").is_none());
        f.host = "mqtt://x".into();
        assert!(matches!(apply_mqtt(&mut t, &f), Err(EditError::Fields(_))));
    }
}
