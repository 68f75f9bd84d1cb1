//! Is the box itself on a network? When it is not, a failing camera is not
//! the camera's failure.
//!
//! A box whose Ethernet cable is pulled or whose Wi-Fi dropped would
//! otherwise see every camera fail at once: a `down` event, a webhook and an
//! MQTT state change for each, then as many `up`s when the link returns —
//! all of it wrong. So when a probe fails the way a dead link makes probes
//! fail (connect, DNS, timeout) and its camera is not on this box's loopback,
//! the monitor asks [`Link::offline`]; if no interface but `lo` is up with a
//! carrier and an address, the failure is the box's (`box_offline`): the
//! stream shows `unknown` without a transition, nothing is sent or counted
//! against the camera, and when the link returns the stream's health is
//! restored and real downs are reported again (`state::StreamState`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::probe::{Reason, Target};

/// Where the kernel lists network interfaces.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// The box's link, as the monitor sees it.
pub struct Link {
    check: Box<dyn Fn() -> Option<String> + Send + Sync>,
    /// Why the box was offline at the last check (None: online).
    offline: Mutex<Option<String>>,
}

impl Link {
    /// The kernel's interfaces (`/sys/class/net` and their addresses).
    pub fn system() -> Link {
        Link::with_check(|| offline_reason(Path::new(SYS_CLASS_NET), &addressed_interfaces()))
    }

    /// A link judged by `check` (None: online); for tests.
    pub fn with_check(check: impl Fn() -> Option<String> + Send + Sync + 'static) -> Link {
        Link {
            check: Box::new(check),
            offline: Mutex::new(None),
        }
    }

    /// Checks the link now: why the box is offline, or None. Remembers the
    /// answer for [`Link::last`] and logs when it changes.
    pub fn offline(&self) -> Option<String> {
        let now = (self.check)();
        self.set(now.clone());
        now
    }

    /// A probe of a camera off this box succeeded: the box is online.
    pub fn seen_online(&self) {
        self.set(None);
    }

    /// Why the box was offline at the last check (None: online), for the
    /// dashboard and `/healthz`.
    pub fn last(&self) -> Option<String> {
        self.offline.lock().expect("link lock").clone()
    }

    fn set(&self, now: Option<String>) {
        let mut last = self.offline.lock().expect("link lock");
        match (&*last, &now) {
            (None, Some(why)) => tracing::warn!(
                "the box has no network ({why}): failing cameras are not counted as down until it returns"
            ),
            (Some(_), None) => tracing::info!("the box's network is back: probing as usual"),
            _ => {}
        }
        *last = now;
    }
}

/// Whether a failure of `target` with `reason` can be the box's own link:
/// a network failure, of a camera that is not on this box's loopback.
pub fn could_be_the_box(target: &Target, reason: Reason) -> bool {
    matches!(reason, Reason::Dns | Reason::Connect | Reason::Timeout) && !is_local(target)
}

/// True for a camera on this box (loopback address or `localhost`, or the
/// box's own camera).
fn is_local(target: &Target) -> bool {
    if target.kind == crate::probe::Kind::Local {
        return true;
    }
    match target.url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        // rtsp: is not a "special" scheme to the url crate, so its IPv4
        // literals come as names.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
        }
        None => false,
    }
}

/// One interface's state as `/sys/class/net/<name>` tells it.
#[derive(Debug, PartialEq, Eq)]
struct Interface {
    name: String,
    operstate: String,
    carrier: bool,
}

/// Why the box is offline (None: some interface but `lo` is up, with a
/// carrier and an address). `addressed`: interfaces holding an IPv4 address
/// or a global IPv6 one.
fn offline_reason(sys_class_net: &Path, addressed: &HashSet<String>) -> Option<String> {
    let interfaces = read_interfaces(sys_class_net);
    judge(&interfaces, addressed)
}

fn judge(interfaces: &[Interface], addressed: &HashSet<String>) -> Option<String> {
    let mut why = Vec::new();
    for i in interfaces {
        // "unknown": drivers that do not report it (dummy, some USB
        // adapters); the carrier decides. "dormant": Wi-Fi not associated.
        let up = matches!(i.operstate.as_str(), "up" | "unknown") && i.carrier;
        if up && addressed.contains(&i.name) {
            return None;
        }
        why.push(if up {
            format!("{} has no address", i.name)
        } else if i.operstate == "dormant" {
            format!("{} not connected", i.name)
        } else {
            format!(
                "{} {}",
                i.name,
                if i.carrier {
                    &i.operstate
                } else {
                    "no carrier"
                }
            )
        });
    }
    Some(if why.is_empty() {
        "no network interface".to_owned()
    } else {
        why.join(", ")
    })
}

fn read_interfaces(sys_class_net: &Path) -> Vec<Interface> {
    let Ok(dir) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let read = |p: PathBuf| std::fs::read_to_string(p).map(|s| s.trim().to_owned());
    let mut out: Vec<Interface> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lo")
        .map(|name| {
            let base = sys_class_net.join(&name);
            Interface {
                operstate: read(base.join("operstate")).unwrap_or_default(),
                // Reading `carrier` of an interface that is down fails (EINVAL).
                carrier: read(base.join("carrier")).is_ok_and(|c| c == "1"),
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Interfaces holding an IPv4 address or a global (not link-local) IPv6 one.
fn addressed_interfaces() -> HashSet<String> {
    let mut out = HashSet::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free
    // once with freeifaddrs; every pointer is checked for null before use.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let ifa = &*p;
            p = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let usable = match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => true,
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                    // fe80::/10 comes with every interface that is up.
                    (ip.segments()[0] & 0xffc0) != 0xfe80
                }
                _ => false,
            };
            if usable {
                let name = std::ffi::CStr::from_ptr(ifa.ifa_name);
                out.insert(name.to_string_lossy().into_owned());
            }
        }
        libc::freeifaddrs(head);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, operstate: &str, carrier: bool) -> Interface {
        Interface {
            name: name.into(),
            operstate: operstate.into(),
            carrier,
        }
    }

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn online_needs_an_interface_up_with_carrier_and_address() {
        let eth_up = iface("eth0", "up", true);
        assert_eq!(judge(&[eth_up], &set(&["eth0"])), None);
        assert_eq!(
            judge(&[iface("dummy0", "unknown", true)], &set(&["dummy0"])),
            None
        );
        assert_eq!(
            judge(&[iface("eth0", "down", false)], &set(&["eth0"])).unwrap(),
            "eth0 no carrier"
        );
        assert_eq!(
            judge(&[iface("eth0", "up", true)], &set(&[])).unwrap(),
            "eth0 has no address"
        );
        assert_eq!(
            judge(
                &[
                    iface("eth0", "down", false),
                    iface("wlan0", "dormant", false)
                ],
                &set(&["eth0"])
            )
            .unwrap(),
            "eth0 no carrier, wlan0 not connected"
        );
        assert_eq!(judge(&[], &set(&[])).unwrap(), "no network interface");
        // One good interface is enough.
        assert_eq!(
            judge(
                &[iface("eth0", "down", false), iface("wlan0", "up", true)],
                &set(&["wlan0"])
            ),
            None
        );
    }

    #[test]
    fn reads_sysfs_and_skips_lo() {
        let t = tempfile::tempdir().unwrap();
        for (name, oper, carrier) in [
            ("lo", "unknown", Some("1")),
            ("eth0", "down", None),
            ("wlan0", "up", Some("1")),
        ] {
            let d = t.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("operstate"), format!("{oper}\n")).unwrap();
            if let Some(c) = carrier {
                std::fs::write(d.join("carrier"), format!("{c}\n")).unwrap();
            }
        }
        assert_eq!(
            read_interfaces(t.path()),
            [iface("eth0", "down", false), iface("wlan0", "up", true)]
        );
        assert_eq!(offline_reason(t.path(), &set(&["wlan0"])), None);
        assert_eq!(
            offline_reason(t.path(), &set(&[])).unwrap(),
            "eth0 no carrier, wlan0 has no address"
        );
    }

    use crate::probe::Kind;

    #[test]
    fn only_network_failures_of_cameras_off_the_box_can_be_the_box() {
        let t = |url: &str| Target {
            url: url::Url::parse(url).unwrap(),
            kind: Kind::Rtsp,
            creds: None,
            timeout: std::time::Duration::from_secs(5),
            transport: crate::probe::Transport::Auto,
            max_frame_bytes: 1,
            measure_keyframe_interval: false,
            capture: None,
        };
        assert!(could_be_the_box(&t("rtsp://10.0.0.5/x"), Reason::Connect));
        assert!(could_be_the_box(&t("rtsp://cam.lan/x"), Reason::Dns));
        assert!(could_be_the_box(&t("rtsp://[fd00::5]/x"), Reason::Timeout));
        assert!(!could_be_the_box(&t("rtsp://10.0.0.5/x"), Reason::Auth));
        let own = Target {
            kind: Kind::Local,
            ..t("libcamera:0")
        };
        assert!(
            !could_be_the_box(&own, Reason::Timeout),
            "the box's own camera needs no network"
        );
        assert!(!could_be_the_box(
            &t("rtsp://127.0.0.1:8554/x"),
            Reason::Connect
        ));
        assert!(!could_be_the_box(&t("rtsp://localhost/x"), Reason::Timeout));
        assert!(!could_be_the_box(&t("rtsp://[::1]/x"), Reason::Connect));
        assert!(!could_be_the_box(
            &t("http://127.0.0.1:80/snap.jpg"),
            Reason::Timeout
        ));
    }

    #[test]
    fn this_machine_has_an_addressed_interface_list() {
        // lo always has 127.0.0.1.
        assert!(addressed_interfaces().contains("lo"));
    }
}
