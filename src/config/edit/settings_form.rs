//! The general settings form (device name, time zone, heartbeat, retention,
//! logins), the checks the first-boot page shares with it, and setting the
//! admin password hash (`streampulse passwd --config`, first boot).

use super::{ranged, EditError, FieldErrors, Yaml};
use crate::config::{self, Config};

/// Sets the admin password hash (`admin_password_hash`).
pub fn set_admin_hash(tree: &mut Yaml, hash: &str) {
    tree.set("admin_password_hash", Yaml::Str(hash.to_owned()));
}

/// The general settings form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsForm {
    pub device_name: String,
    pub timezone: String,
    pub heartbeat_seconds: String,
    pub heartbeat_days: String,
    pub rollup_days: String,
    pub public_status: bool,
    pub session_hours: String,
}

impl SettingsForm {
    /// The form pre-filled from a validated config.
    pub fn from_config(c: &Config) -> SettingsForm {
        SettingsForm {
            device_name: c.device_name.clone(),
            timezone: c.timezone.clone(),
            heartbeat_seconds: c.heartbeat.as_secs().to_string(),
            heartbeat_days: c.heartbeat_retention_days.to_string(),
            rollup_days: c.rollup_retention_days.to_string(),
            public_status: c.web_public_status,
            session_hours: c.web_session_hours.to_string(),
        }
    }
}

/// Checks a device name (dashboard title, MQTT device).
pub fn check_device_name(errs: &mut FieldErrors, name: &str) {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        errs.add("device_name", "1 to 64 characters, no control characters");
    }
}

/// Checks an IANA time zone name.
pub fn check_timezone(errs: &mut FieldErrors, tz: &str) {
    if jiff::tz::TimeZone::get(tz.trim()).is_err() {
        errs.add(
            "timezone",
            format!(
                "unknown time zone {:?} (expected an IANA name such as Europe/Berlin)",
                tz.trim()
            ),
        );
    }
}

/// Applies the general settings form.
///
/// # Errors
/// Field errors; nothing is changed then.
pub fn apply_settings(tree: &mut Yaml, f: &SettingsForm) -> Result<(), EditError> {
    let mut errs = FieldErrors::default();
    check_device_name(&mut errs, &f.device_name);
    check_timezone(&mut errs, &f.timezone);
    let hb = ranged(
        &mut errs,
        "heartbeat_seconds",
        &f.heartbeat_seconds,
        config::MIN_INTERVAL_SECS,
        config::MAX_INTERVAL_SECS,
    );
    let hd = ranged(&mut errs, "heartbeat_days", &f.heartbeat_days, 1, 3650);
    let rd = ranged(&mut errs, "rollup_days", &f.rollup_days, 1, 36500);
    let sh = ranged(&mut errs, "session_hours", &f.session_hours, 1, 8760);
    if let (Some(h), Some(r)) = (hd, rd) {
        if r < h {
            errs.add(
                "rollup_days",
                "keep hourly summaries at least as long as raw heartbeats",
            );
        }
    }
    if !errs.is_empty() {
        return Err(errs.into());
    }
    tree.set("device_name", Yaml::Str(f.device_name.trim().to_owned()));
    tree.set("timezone", Yaml::Str(f.timezone.trim().to_owned()));
    tree.set("heartbeat_seconds", Yaml::Int(hb.expect("checked").into()));
    let r = tree.section_mut("retention");
    r.set("heartbeat_days", Yaml::Int(hd.expect("checked").into()));
    r.set("rollup_days", Yaml::Int(rd.expect("checked").into()));
    let w = tree.section_mut("web");
    w.set_opt("public_status", f.public_status.then_some(Yaml::Bool(true)));
    let hours = sh.expect("checked");
    w.set_opt(
        "session_hours",
        (hours != config::DEFAULT_SESSION_HOURS).then_some(Yaml::Int(hours.into())),
    );
    tree.prune_empty("web");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{reparse, tree};
    use super::super::{delete_stream, set_enabled};
    use super::*;

    #[test]
    fn delete_enable_and_settings() {
        let mut t = tree("streams:\n- name: a\n  url: rtsp://h/x\n- name: b\n  url: rtsp://h/y\n");
        set_enabled(&mut t, "b", false).unwrap();
        assert!(!reparse(&t).streams[1].enabled);
        set_enabled(&mut t, "b", true).unwrap();
        assert!(reparse(&t).streams[1].enabled);
        delete_stream(&mut t, "a").unwrap();
        assert_eq!(reparse(&t).streams.len(), 1);
        assert!(delete_stream(&mut t, "a").is_err());

        let mut f = SettingsForm::from_config(&reparse(&t));
        f.timezone = "Mars/Base".into();
        f.heartbeat_seconds = "1".into();
        match apply_settings(&mut t, &f) {
            Err(EditError::Fields(e)) => {
                assert!(
                    e.get("timezone").is_some() && e.get("heartbeat_seconds").is_some(),
                    "{e:?}"
                );
            }
            o => panic!("{o:?}"),
        }
        f.timezone = "Europe/Berlin".into();
        f.heartbeat_seconds = "30".into();
        f.public_status = true;
        apply_settings(&mut t, &f).unwrap();
        let c = reparse(&t);
        assert_eq!(c.timezone, "Europe/Berlin");
        assert_eq!(c.heartbeat.as_secs(), 30);
        assert!(c.web_public_status);
    }
}
