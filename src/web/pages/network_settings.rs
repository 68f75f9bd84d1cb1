//! The network tab of the settings (`/settings/network`): the box's name,
//! the Wi-Fi network to join (key write-only) and static addresses. Saving
//! writes `network:` to config.yaml; on the appliance a path unit then runs
//! `streampulse network apply`, which rewrites the networkd and
//! wpa_supplicant files and reloads them without a reboot.

use super::form::{self, Field, Filled, FormPage};
use super::settings::{show_tab, Tab};
use super::LoggedIn;
use crate::config::edit::{self, EditError, NetworkForm, Yaml};
use crate::web::handler::{Form, Resp};
use crate::web::HttpError;

struct NetworkSettings<'a> {
    v: LoggedIn<'a>,
}

impl NetworkSettings<'_> {
    /// config.yaml as a tree (empty when unreadable: the form starts blank).
    fn tree(&self) -> Yaml {
        std::fs::read_to_string(self.v.ctx.gui.config_file.path())
            .ok()
            .and_then(|t| edit::parse_tree(&t).ok())
            .unwrap_or(Yaml::Map(Vec::new()))
    }
}

impl FormPage for NetworkSettings<'_> {
    type Form = NetworkForm;
    type Saved = ();

    fn initial(&self) -> NetworkForm {
        NetworkForm::from_tree(&self.tree())
    }

    fn read(&self, p: &Form) -> NetworkForm {
        NetworkForm {
            hostname: p.get("hostname"),
            wifi: p.checked("wifi"),
            ssid: p.get("ssid"),
            psk: p.get("password"),
            clear_psk: p.checked("clear_password"),
            country: p.get("country"),
            wifi_address: p.get("wifi_address"),
            wifi_gateway: p.get("wifi_gateway"),
            wifi_dns: p.get("wifi_dns"),
            ethernet_address: p.get("ethernet_address"),
            ethernet_gateway: p.get("ethernet_gateway"),
            ethernet_dns: p.get("ethernet_dns"),
        }
    }

    fn apply(&self, t: &mut Yaml, f: &NetworkForm) -> Result<(), EditError> {
        edit::apply_network(t, f)
    }

    fn done(&self, (): ()) -> Resp {
        Resp::redirect("/settings/network?msg=saved")
    }

    fn fields(&self, f: NetworkForm) -> Vec<Field> {
        let mut fields = vec![
            Field::text("hostname", "Name on the network", &f.hostname)
                .placeholder("streampulse-xxxx (the default)")
                .hint("Letters, digits and dashes; the box answers at <name>.local."),
            Field::section("Ethernet", "Leave the address blank for DHCP."),
            Field::text("ethernet_address", "Static address", &f.ethernet_address)
                .placeholder("192.168.1.50/24"),
            Field::text("ethernet_gateway", "Gateway", &f.ethernet_gateway)
                .placeholder("192.168.1.1"),
            Field::text("ethernet_dns", "DNS servers", &f.ethernet_dns)
                .placeholder("192.168.1.1, 1.1.1.1"),
            Field::section("Wi-Fi", ""),
            Field::checkbox("wifi", "Join a Wi-Fi network", f.wifi),
            Field::text("ssid", "Network name (SSID)", &f.ssid).autocomplete("off"),
        ];
        fields.extend(Field::write_only_password(
            "Wi-Fi key",
            edit::has_wifi_key(&self.tree()),
            "the network name",
            "network",
            f.clear_psk,
        ));
        fields.extend([
            Field::text("country", "Country", &f.country)
                .placeholder("GB")
                .hint("Two letters (ISO 3166): which channels the radio may use."),
            Field::text("wifi_address", "Static address", &f.wifi_address)
                .placeholder("blank for DHCP"),
            Field::text("wifi_gateway", "Gateway", &f.wifi_gateway),
            Field::text("wifi_dns", "DNS servers", &f.wifi_dns),
        ]);
        fields
    }

    fn page(&self, form: Filled) -> Result<Resp, HttpError> {
        let tab = Tab {
            title: "Network settings",
            tab: "network",
            intro: "Applied within seconds on the box, without a reboot. A wrong address can \
                    make the box unreachable: the same settings in config.yaml on the card's \
                    boot partition replace these at the next start.",
            action: "/settings/network",
            timezones: false,
        };
        show_tab(self.v, &tab, form)
    }
}

/// `/settings/network`.
pub(super) fn network_settings(v: LoggedIn) -> Result<Resp, HttpError> {
    form::run(v.ctx, v.req, &NetworkSettings { v })
}
