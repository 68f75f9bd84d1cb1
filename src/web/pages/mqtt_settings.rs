//! The MQTT tab of the settings (`/settings/mqtt`): the broker, its
//! password (write-only), topics and Home Assistant discovery. Advanced keys
//! (TLS files, client id) stay as written in config.yaml.

use super::form::{self, Field, Filled, FormPage};
use super::settings::{show_tab, Tab};
use super::LoggedIn;
use crate::config::edit::{self, EditError, MqttForm, Yaml};
use crate::web::handler::{Form, Resp};
use crate::web::HttpError;

struct MqttSettings<'a> {
    v: LoggedIn<'a>,
}

impl MqttSettings<'_> {
    /// Whether a broker password is stored now.
    fn has_password(&self) -> bool {
        self.v
            .cfg
            .mqtt
            .as_ref()
            .and_then(|m| m.credentials.as_ref())
            .is_some_and(|c| !c.password.is_empty())
    }
}

impl FormPage for MqttSettings<'_> {
    type Form = MqttForm;
    type Saved = ();

    fn initial(&self) -> MqttForm {
        MqttForm::from_config(self.v.cfg)
    }

    fn read(&self, p: &Form) -> MqttForm {
        MqttForm {
            enabled: p.checked("enabled"),
            host: p.get("host"),
            port: p.get("port"),
            transport: p.get("transport"),
            username: p.get("username"),
            password: p.get("password"),
            clear_password: p.checked("clear_password"),
            topic: p.get("topic"),
            prefix: p.get("prefix"),
            interval: p.get("interval"),
            qos: p.get("qos"),
            retain: p.checked("retain"),
            discovery: p.checked("discovery"),
            tls_verify: p.checked("tls_verify"),
        }
    }

    fn apply(&self, t: &mut Yaml, f: &MqttForm) -> Result<(), EditError> {
        edit::apply_mqtt(t, f)
    }

    fn done(&self, (): ()) -> Resp {
        Resp::redirect("/settings/mqtt?msg=saved")
    }

    fn fields(&self, f: MqttForm) -> Vec<Field> {
        let mut fields = vec![
            Field::checkbox("enabled", "Publish to an MQTT broker", f.enabled),
            Field::text("host", "Broker host", &f.host)
                .placeholder("192.168.1.5 or broker.example.com")
                .hint("Host name or address only."),
            Field::select(
                "transport",
                "Transport",
                &f.transport,
                &[
                    ("tcp", "MQTT over TCP"),
                    ("tls", "MQTT over TLS"),
                    ("ws", "WebSockets"),
                    ("wss", "WebSockets over TLS"),
                ],
            ),
            Field::number("port", "Port", &f.port).placeholder("default for the transport"),
            Field::text("username", "Username", &f.username).autocomplete("off"),
        ];
        fields.extend(Field::write_only_password(
            "Password",
            self.has_password(),
            "the host, port or transport",
            "broker",
            f.clear_password,
        ));
        fields.extend([
            Field::checkbox(
                "tls_verify",
                "Verify the broker's certificate (TLS)",
                f.tls_verify,
            ),
            Field::section("Topics", ""),
            Field::text("topic", "Aggregate status topic", &f.topic),
            Field::text("prefix", "Per-stream topic prefix", &f.prefix),
            Field::number(
                "interval",
                "Seconds between aggregate publications",
                &f.interval,
            ),
            Field::select(
                "qos",
                "QoS",
                &f.qos,
                &[
                    ("0", "0: at most once"),
                    ("1", "1: at least once"),
                    ("2", "2: exactly once"),
                ],
            ),
            Field::checkbox("retain", "Retain the aggregate status", f.retain),
            Field::checkbox("discovery", "Home Assistant discovery", f.discovery),
        ]);
        fields
    }

    fn page(&self, form: Filled) -> Result<Resp, HttpError> {
        let tab = Tab {
            title: "MQTT settings",
            tab: "mqtt",
            intro: "TLS certificate files, the client id and other advanced keys stay as written \
                    in config.yaml.",
            action: "/settings/mqtt",
            timezones: false,
        };
        show_tab(self.v, &tab, form)
    }
}

/// `/settings/mqtt`.
pub(super) fn mqtt_settings(v: LoggedIn) -> Result<Resp, HttpError> {
    form::run(v.ctx, v.req, &MqttSettings { v })
}
