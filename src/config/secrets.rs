//! The running config's secrets, for masking them in text the box shows or
//! writes (the System page's log, the diagnostics file, `config.yaml.applied`
//! on the boot partition). The masking itself is [`crate::redact`]'s.

use super::Config;
use crate::redact;

impl Config {
    /// The secrets as the daemon uses them: the decoded passwords of
    /// streams, webhooks and MQTT, and the admin password hash.
    pub fn passwords(&self) -> impl Iterator<Item = String> + '_ {
        self.streams
            .iter()
            .filter_map(|s| s.target.creds.as_ref())
            .chain(self.notify.iter().filter_map(|w| w.credentials.as_ref()))
            .chain(self.mqtt.iter().filter_map(|m| m.credentials.as_ref()))
            .map(|c| c.password.clone())
            .chain(self.admin_password_hash.clone())
    }

    /// Every secret of this config: those written in its file `text`
    /// ([`redact::secrets_in_yaml`]) and [`Config::passwords`], also as they
    /// would appear in a URL or a form, longest first. For
    /// [`redact::redact_text`].
    pub fn secrets(&self, text: &str) -> Vec<String> {
        let mut s = redact::secrets_in_yaml(text);
        s.extend(self.passwords());
        let encoded: Vec<String> = s
            .iter()
            .map(|x| url::form_urlencoded::byte_serialize(x.as_bytes()).collect())
            .collect();
        s.extend(encoded);
        // Longest first, so a secret containing another is replaced whole.
        s.sort();
        s.dedup();
        s.sort_by_key(|s| std::cmp::Reverse(s.len()));
        s
    }
}
