//! Issue 14, findings 1, 4, 7 and 10, against the real daemon started with
//! `run --boot-config` (and the real `streampulse passwd`): a boot-partition
//! import merges into a configured box instead of wiping its password and
//! GUI-added streams; a factory reset is its own explicit file; a plain
//! `admin_password` is hashed and appears in no file; `config.yaml.applied`
//! masks every secret whatever the YAML style; files holding secrets are
//! 0600 and a rewrite keeps their owner.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::{log_in, set_up, temp_dir, App, Browser, PASSWORD};

/// A camera password typed into the web GUI's add form.
const GUI_SECRET: &str = "Gui-Cam-S3cret-71";

/// A card: boot (FAT) and data partitions as two directories.
struct Card {
    _dir: tempfile::TempDir,
    boot: PathBuf,
    data: PathBuf,
}

impl Card {
    fn new(name: &str) -> Card {
        let dir = temp_dir(name);
        let (boot, data) = (dir.path().join("boot"), dir.path().join("data"));
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        Card {
            _dir: dir,
            boot,
            data,
        }
    }

    fn config(&self) -> PathBuf {
        self.data.join("config.yaml")
    }

    /// Starts the box as the appliance does (`run --boot-config`).
    fn start(&self) -> App {
        let boot_cfg = self.boot.join("config.yaml");
        App::start_with_args(
            &self.config(),
            &self.data,
            &["--boot-config", &boot_cfg.to_string_lossy()],
            &[],
        )
    }

    /// Drops `text` on the boot partition as `name`.
    fn drop_file(&self, name: &str, text: &str) {
        std::fs::write(self.boot.join(name), text).unwrap();
    }
}

/// A box set up with [`PASSWORD`] and one stream added in the web GUI
/// (with a camera password); stopped again.
fn configured(name: &str) -> Card {
    let card = Card::new(name);
    let app = card.start();
    let mut b = Browser::new(&app);
    set_up(&mut b);
    assert_eq!(log_in(&mut b, PASSWORD, "/").status, 303);
    let csrf = b.csrf("/add");
    let r = b.post(
        "/add",
        &[
            ("csrf", &csrf),
            ("name", "GUI cam"),
            ("url", "rtsp://127.0.0.1:9/gui"),
            ("username", "viewer"),
            ("password", GUI_SECRET),
            ("enabled", "1"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    drop(app);
    card
}

/// `/healthz`'s `boot_config` line.
fn boot_config_line(app: &App) -> String {
    let (_, h) = app.get("/healthz");
    h["boot_config"].as_str().unwrap_or_default().to_owned()
}

/// Finding 1: `config.yaml.example`, edited (no `streams:`, another
/// heartbeat) and dropped on a configured box, no longer puts it back into
/// first-boot state: `/setup` stays closed, the old password logs in, the
/// GUI-added stream and its password are kept.
#[test]
fn importing_the_example_keeps_the_password_and_the_gui_streams() {
    let card = configured("import-example");
    let example = std::fs::read_to_string(
        super::manifest_dir().join("buildroot/board/common/config.yaml.example"),
    )
    .unwrap();
    let (head, tail) = example
        .split_once("\nstreams:\n")
        .expect("the example has streams");
    let rest = &tail[tail.find("\n#").expect("a comment follows the streams")..];
    let edited = format!(
        "{}{rest}",
        head.replace("heartbeat_seconds: 20", "heartbeat_seconds: 30")
    );
    assert!(
        !edited.lines().any(|l| l.starts_with("streams:")),
        "{edited}"
    );
    card.drop_file("config.yaml", &edited);

    let app = card.start();
    assert!(
        boot_config_line(&app).starts_with("imported"),
        "{}",
        boot_config_line(&app)
    );
    let mut b = Browser::new(&app);
    let p = b.get("/");
    assert!(
        p.location().starts_with("/login"),
        "a configured box asks for a login: {}",
        p.location()
    );
    assert_ne!(b.get("/setup").status, 200, "/setup must stay closed");
    assert_eq!(
        log_in(&mut b, PASSWORD, "/").status,
        303,
        "the old password still logs in"
    );
    let status = app.wait_status(Duration::from_secs(10), "the GUI stream", |v| {
        v.get("GUI cam").is_some()
    });
    assert!(status.get("Front door").is_none(), "{status}");
    let cfg = streampulse::config::load(&card.config()).unwrap();
    assert_eq!(
        cfg.heartbeat,
        Duration::from_secs(30),
        "the file's keys apply"
    );
    let gui = &cfg.streams[0];
    assert_eq!(gui.target.creds.as_ref().unwrap().password, GUI_SECRET);
}

/// The factory reset is its own file: the box comes up in first-boot state
/// (setup open, old password and API tokens gone), `factory-reset` is
/// renamed so it acts once, and a `config.yaml` dropped with it is imported
/// onto the fresh state.
#[test]
fn factory_reset_opens_setup_and_forgets_the_old_password() {
    let card = configured("factory-reset");
    card.drop_file("factory-reset", "");
    card.drop_file(
        "config.yaml",
        "heartbeat_seconds: 30\nstreams:\n- name: After reset\n  url: rtsp://127.0.0.1:9/new\n",
    );
    let app = card.start();
    let mut b = Browser::new(&app);
    assert_eq!(b.get("/setup").status, 200, "setup is open again");
    let login = b.get("/login");
    assert_eq!(
        login.location(),
        "/setup",
        "no password to log in with: {}",
        login.text()
    );
    let line = boot_config_line(&app);
    assert!(line.starts_with("factory reset"), "{line}");
    assert!(line.contains("imported"), "{line}");
    assert!(!card.boot.join("factory-reset").exists());
    assert!(card.boot.join("factory-reset.done").exists());
    assert!(
        !card.data.join("api-tokens.json").exists(),
        "API tokens are deleted by the reset"
    );
    let cfg = streampulse::config::load(&card.config()).unwrap();
    assert!(cfg.admin_password_hash.is_none());
    let names: Vec<&str> = cfg.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["After reset"]);
    drop(app);
    // Done once: the next start keeps what was set up since.
    let app = card.start();
    assert!(boot_config_line(&app).starts_with("nothing to import"));
}

/// Every file (recursively) under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p)
            .unwrap_or_default()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            hits.push(p);
        }
    }
    hits
}

/// `admin_password: <plain text>` on the boot partition sets a new password
/// (for a user without a shell): the new one logs in, the old one does not,
/// and the plain text is in no file on either partition, nor in the log.
#[test]
fn admin_password_import_replaces_the_password_and_is_never_stored() {
    const NEW: &str = "a-Brand-new-passphrase";
    let card = configured("admin-password");
    card.drop_file("config.yaml", &format!("admin_password: {NEW}\n"));
    let app = card.start();
    let line = boot_config_line(&app);
    assert!(line.contains("new admin password"), "{line}");
    let mut b = Browser::new(&app);
    assert_ne!(
        log_in(&mut b, PASSWORD, "/").status,
        303,
        "the old password is refused"
    );
    assert_eq!(
        log_in(&mut b, NEW, "/").status,
        303,
        "the new password logs in"
    );
    assert!(app
        .wait_status(Duration::from_secs(10), "the GUI stream", |v| v
            .get("GUI cam")
            .is_some())
        .get("GUI cam")
        .is_some());
    drop(app);
    for dir in [&card.boot, &card.data] {
        assert_eq!(
            files_containing(dir, NEW),
            Vec::<PathBuf>::new(),
            "plain password stored"
        );
    }
    // A too short one is refused like on the setup page; the file stays.
    card.drop_file("config.yaml", "admin_password: short\n");
    let app = card.start();
    assert!(boot_config_line(&app).starts_with("rejected"));
    assert!(card.boot.join("config.yaml.error").exists());
    assert!(!app.log.lock().unwrap().join("\n").contains(NEW));
}

/// Finding 4: `config.yaml.applied` masks a flow-style `mqtt:` password, a
/// password on the line after its key and a webhook's URL password; the
/// imported config on the data partition is 0600 (finding 7).
#[test]
fn applied_copy_masks_flow_style_and_next_line_secrets() {
    let card = Card::new("applied-mask");
    let secrets = ["Flow-Mqtt-S3cret", "Next-Line-S3cret", "Hook-S3cret-x"];
    card.drop_file(
        "config.yaml",
        &format!(
            "mqtt: {{host: 127.0.0.1, port: 9, username: sp, password: {}}}\n\
             streams:\n- name: cam\n  url: rtsp://127.0.0.1:9/x\n  username: u\n  password:\n    {}\n\
             notify:\n- http://hook:{}@127.0.0.1:9/x\n",
            secrets[0], secrets[1], secrets[2]
        ),
    );
    let app = card.start();
    assert!(
        boot_config_line(&app).starts_with("imported"),
        "{}",
        boot_config_line(&app)
    );
    let applied = std::fs::read_to_string(card.boot.join("config.yaml.applied")).unwrap();
    for s in secrets {
        assert!(
            !applied.contains(s),
            "{s} left on the FAT partition:\n{applied}"
        );
    }
    assert!(
        applied.contains("password: '***'") || applied.contains("password: \"***\""),
        "{applied}"
    );
    let mode = std::fs::metadata(card.config()).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the imported config holds passwords");
    // The masked copy dropped back changes nothing: *** keeps each secret.
    card.drop_file("config.yaml", &applied);
    drop(app);
    let before = streampulse::config::load(&card.config()).unwrap();
    let app = card.start();
    assert!(
        boot_config_line(&app).starts_with("imported"),
        "{}",
        boot_config_line(&app)
    );
    assert_eq!(streampulse::config::load(&card.config()).unwrap(), before);
}

/// Finding 10: `streampulse passwd --config` run as root on the service
/// user's file leaves it (and the `.bak` it keeps) owned by that user; the
/// file keeps its mode, the backup is 0600.
#[test]
fn passwd_as_root_keeps_the_owner_and_mode() {
    let dir = temp_dir("passwd-owner");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "heartbeat_seconds: 20\nstreams: []\n").unwrap();
    std::os::unix::fs::chown(&cfg, Some(990), Some(990)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut c = super::streampulse()
        .args(["passwd", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = std::fs::metadata(&cfg).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (990, 990, 0o640));
    let bak = std::fs::metadata(dir.path().join("config.yaml.bak")).unwrap();
    assert_eq!(
        (bak.uid(), bak.gid(), bak.mode() & 0o7777),
        (990, 990, 0o600)
    );
    let c = streampulse::config::load(&cfg).unwrap();
    assert!(streampulse::credentials::verify_password(
        PASSWORD,
        c.admin_password_hash.as_deref().unwrap()
    ));
}
