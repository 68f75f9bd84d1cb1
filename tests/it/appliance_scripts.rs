//! The appliance's small boot scripts from `overlay/usr/libexec/streampulse/`,
//! run for real with `/bin/sh` against a fake root (their `STREAMPULSE_SYSROOT`
//! test seam: `sys/`, `proc/`, `dev/`, `etc/` and `data/` as plain files):
//! the unique hostname, the address on the consoles, and the persistent
//! journal's directory on `/data`. What only systemd can show (ordering, the
//! bind mount, journald's flush, mDNS) is for the QEMU systemd boot test.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::util::{manifest_dir, temp_dir};

/// A fake root for one script run.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new(test: &str) -> Root {
        Root {
            dir: temp_dir(test),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, content: &[u8]) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// A network interface as sysfs shows it; `hardware` adds the `device`
    /// link that real NICs have and bridges/veths do not.
    fn net_if(&self, name: &str, mac: &str, hardware: bool) {
        let dev = format!("sys/class/net/{name}");
        self.write(&format!("{dev}/type"), b"1\n");
        self.write(&format!("{dev}/address"), format!("{mac}\n").as_bytes());
        if hardware {
            fs::create_dir_all(self.path("sys/devices/fake")).unwrap();
            symlink(
                self.path("sys/devices/fake"),
                self.path(&format!("{dev}/device")),
            )
            .unwrap();
        }
    }

    fn script(&self, name: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(
            manifest_dir()
                .join("overlay/usr/libexec/streampulse")
                .join(name),
        )
        .env("STREAMPULSE_SYSROOT", self.dir.path());
        cmd
    }

    fn run(&self, name: &str, env: &[(&str, &str)]) -> Output {
        let out = self
            .script(name)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs set-hostname (no waiting for interfaces) and returns the hostname it set.
    fn set_hostname(&self) -> String {
        self.write("proc/sys/kernel/hostname", b"streampulse\n");
        self.run("set-hostname", &[("STREAMPULSE_HOSTNAME_WAIT", "0")]);
        self.read("proc/sys/kernel/hostname").trim().to_string()
    }
}

/// Polls `f` until it returns true or `secs` pass.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hostname_comes_from_the_pi_serial_in_the_device_tree() {
    let root = Root::new("hostname-dt");
    root.write(
        "sys/firmware/devicetree/base/serial-number",
        b"10000000ABCD12EF\0",
    );
    root.write("proc/cpuinfo", b"Serial\t\t: 00000000deadbeef\n");
    root.net_if("eth0", "dc:a6:32:01:02:03", true);
    assert_eq!(root.set_hostname(), "streampulse-12ef");
}

#[test]
fn hostname_comes_from_cpuinfo_when_the_device_tree_has_no_serial() {
    let root = Root::new("hostname-cpuinfo");
    root.write(
        "proc/cpuinfo",
        b"processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 00000000DEADBEEF\nModel\t\t: Raspberry Pi 3\n",
    );
    assert_eq!(root.set_hostname(), "streampulse-beef");
}

#[test]
fn hostname_comes_from_the_first_hardware_nic_when_there_is_no_serial() {
    let root = Root::new("hostname-mac");
    // An all-zero serial (some firmware) is no serial.
    root.write(
        "sys/firmware/devicetree/base/serial-number",
        b"0000000000000000\0",
    );
    root.net_if("br0", "02:00:00:00:aa:aa", false);
    root.net_if("end0", "52:54:00:12:34:56", true);
    root.net_if("wlan0", "b8:27:eb:00:00:01", true);
    root.write("sys/class/net/lo/type", b"772\n");
    root.write("sys/class/net/lo/address", b"00:00:00:00:00:00\n");
    assert_eq!(root.set_hostname(), "streampulse-3456");
}

#[test]
fn hostname_waits_for_a_nic_that_appears_late() {
    let root = Root::new("hostname-late");
    root.write("proc/sys/kernel/hostname", b"streampulse\n");
    root.write("sys/class/net/lo/type", b"772\n");
    let mut child = root
        .script("set-hostname")
        .env("STREAMPULSE_HOSTNAME_WAIT", "10")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    root.net_if("eth0", "52:54:00:ab:cd:ef", true);
    assert!(child.wait().unwrap().success());
    assert_eq!(
        root.read("proc/sys/kernel/hostname").trim(),
        "streampulse-cdef"
    );
}

#[test]
fn hostname_override_on_data_wins_and_a_bad_one_is_ignored() {
    let root = Root::new("hostname-override");
    root.write(
        "sys/firmware/devicetree/base/serial-number",
        b"10000000abcd1234\0",
    );
    root.write("data/system/hostname", b"Camera-Hall\n");
    assert_eq!(root.set_hostname(), "camera-hall");

    for bad in ["bad_name", "-lead", "a.b", &"x".repeat(64)] {
        root.write("data/system/hostname", format!("{bad}\n").as_bytes());
        assert_eq!(root.set_hostname(), "streampulse-1234", "override {bad:?}");
    }
}

#[test]
fn hostname_keeps_the_default_without_serial_or_nic_and_does_not_fail() {
    let root = Root::new("hostname-none");
    root.write("sys/class/net/lo/type", b"772\n");
    assert_eq!(root.set_hostname(), "streampulse");
}

/// A /proc/net/fib_trie (kernel format) with these local addresses.
fn fib_trie(addrs: &[&str]) -> Vec<u8> {
    let mut s = String::from("Main:\n  +-- 0.0.0.0/0 3 0 5\n");
    for a in ["127.0.0.1"].iter().chain(addrs) {
        s += &format!("     |-- {a}\n        /32 host LOCAL\n");
    }
    s += "Local:\n  +-- 0.0.0.0/0 3 0 5\n";
    for a in addrs {
        s += &format!("     |-- {a}\n        /32 host LOCAL\n");
    }
    s.into_bytes()
}

fn console_root(test: &str) -> Root {
    let root = Root::new(test);
    root.write("proc/sys/kernel/hostname", b"streampulse-3456\n");
    root.write("sys/class/tty/console/active", b"tty1 ttyAMA0\n");
    fs::create_dir_all(root.path("dev")).unwrap();
    root
}

#[test]
fn console_url_goes_to_every_active_console_dhcp_address_first() {
    let root = console_root("console-once");
    root.write(
        "proc/net/fib_trie",
        &fib_trie(&["169.254.7.9", "10.0.2.15"]),
    );
    let out = root.run("console-url", &[("STREAMPULSE_CONSOLE_ONCE", "1")]);
    let want = "StreamPulse: open http://streampulse-3456.local/ \
                or http://10.0.2.15/ or http://169.254.7.9/";
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    for tty in ["dev/tty1", "dev/ttyAMA0"] {
        assert_eq!(root.read(tty), format!("\r\n{want}\r\n"), "{tty}");
    }
}

#[test]
fn console_url_reads_this_machines_real_fib_trie() {
    let root = console_root("console-real");
    root.write(
        "proc/net/fib_trie",
        &fs::read("/proc/net/fib_trie").unwrap(),
    );
    let out = root.run("console-url", &[("STREAMPULSE_CONSOLE_ONCE", "1")]);
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    // Every global IPv4 address the kernel reports (ip -4 -o addr) is in the line.
    let ip = Command::new("ip").args(["-4", "-o", "addr"]).output();
    let Ok(ip) = ip else { return }; // no iproute2: the line was still printed
    for addr in String::from_utf8_lossy(&ip.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(|cidr| cidr.split('/').next().unwrap())
        .filter(|a| !a.starts_with("127."))
    {
        assert!(
            line.contains(&format!("http://{addr}/")),
            "{addr} not in {line:?}"
        );
    }
    assert!(!line.contains("127.0.0.1"), "{line:?}");
}

#[test]
fn console_url_prints_again_when_the_address_changes() {
    let root = console_root("console-loop");
    root.write("proc/net/fib_trie", &fib_trie(&["10.0.2.15"]));
    let mut child = root
        .script("console-url")
        .env("STREAMPULSE_CONSOLE_POLL", "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(10, "first address on tty1", || {
        root.read("dev/tty1").contains("http://10.0.2.15/")
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        root.read("dev/tty1").matches("StreamPulse:").count(),
        1,
        "no change, no reprint"
    );

    root.write("proc/net/fib_trie", &fib_trie(&["192.168.1.50"]));
    wait_for(10, "new address on tty1", || {
        root.read("dev/tty1").contains("http://192.168.1.50/")
    });
    root.write("proc/sys/kernel/hostname", b"camera-hall\n");
    wait_for(10, "new hostname on ttyAMA0", || {
        root.read("dev/ttyAMA0")
            .contains("http://camera-hall.local/")
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn journal_dir_adopts_earlier_boots_into_this_boots_machine_id() {
    let root = Root::new("journal-dir");
    let mid = "0123456789abcdef0123456789abcdef";
    let old = "fedcba9876543210fedcba9876543210";
    root.write("etc/machine-id", format!("{mid}\n").as_bytes());
    root.write(
        "proc/sys/kernel/random/uuid",
        b"8c1f2a3b-4d5e-6f70-8192-a3b4c5d6e7f8\n",
    );
    let archived =
        "system@00112233445566778899aabbccddeeff-0000000000000001-0005f1e2d3c4b5a6.journal";
    let j = format!("data/log/journal/{old}");
    root.write(&format!("{j}/system.journal"), b"active of the boot before");
    root.write(&format!("{j}/{archived}"), b"archived");
    root.write(
        "data/log/journal/not-a-machine-id/keep.journal",
        b"not ours",
    );

    root.run("journal-dir", &[]);

    let here: Vec<String> = fs::read_dir(root.path(&format!("data/log/journal/{mid}")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(here.len(), 2, "{here:?}");
    assert!(here.contains(&archived.to_string()), "{here:?}");
    // journald's own name for a file it sets aside, which it vacuums and journalctl reads.
    let moved = here.iter().find(|n| n.as_str() != archived).unwrap();
    assert!(
        is_set_aside_name(moved),
        "{moved:?} is not system@<16 hex>-8c1f2a3b4d5e6f70.journal~"
    );
    assert_eq!(
        fs::read(root.path(&format!("data/log/journal/{mid}/{moved}"))).unwrap(),
        b"active of the boot before"
    );
    assert!(
        !root.path(&j).exists(),
        "the old machine-id directory is gone"
    );
    assert!(root
        .path("data/log/journal/not-a-machine-id/keep.journal")
        .exists());

    // Idempotent: a second run (same boot) changes nothing.
    root.run("journal-dir", &[]);
    assert_eq!(
        fs::read_dir(root.path(&format!("data/log/journal/{mid}")))
            .unwrap()
            .count(),
        2
    );
}

/// `system@<16 hex>-8c1f2a3b4d5e6f70.journal~` (the random part from the fake uuid).
fn is_set_aside_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("system@") else {
        return false;
    };
    let Some(rest) = rest.strip_suffix("-8c1f2a3b4d5e6f70.journal~") else {
        return false;
    };
    rest.len() == 16
        && rest
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[test]
fn journal_dir_fails_without_a_machine_id() {
    let root = Root::new("journal-dir-nomid");
    root.write("etc/machine-id", b"\n");
    let out = root.script("journal-dir").output().unwrap();
    assert!(!out.status.success());
    assert!(!Path::new(&root.path("data/log/journal")).exists());
}
