//! No default password (issue 8): a fresh box lets nobody in, and nothing
//! that ships (the binary, config.yaml, the image overlay, the Buildroot
//! tree, the docs) carries an admin password hash.

use base64::Engine;

use super::{collect_files, manifest_dir, raw, start, Browser};

/// A PHC Argon2 hash (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`) in `bytes`.
fn phc_hashes(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for (i, _) in text.match_indices("$argon2") {
        let rest: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "$=,+/.-".contains(*c))
            .collect();
        let parts: Vec<&str> = rest.split('$').collect();
        // "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
        if parts.len() >= 6
            && parts[3].starts_with("m=")
            && parts[4].len() >= 16
            && parts[5].len() >= 20
        {
            out.push(rest);
        }
    }
    out
}

/// No default password anywhere: a fresh box logs nobody in, whatever the
/// password, and neither the binary nor any file that ships (config.yaml,
/// the image overlay, the Buildroot tree) carries an admin password hash.
#[test]
fn no_default_password_anywhere() {
    let bx = start("sec_nodefault", "heartbeat_seconds: 60\n");
    let addr = bx.app.addr.clone();
    for pw in [
        "",
        "admin",
        "admin123",
        "password",
        "streampulse",
        "1234",
        "root",
        "changeme",
    ] {
        let mut b = Browser::new(&bx.app);
        let pre = "P".repeat(43);
        b.jar.insert("sp_pre".into(), pre.clone());
        let r = b.post(
            "/login",
            &[("pre", &pre), ("password", pw), ("username", "admin")],
        );
        assert_eq!((r.status, r.location()), (303, "/setup"), "password {pw:?}");
        assert!(!b.jar.contains_key("sp_session"), "password {pw:?}");
        assert_eq!(b.get("/").location(), "/setup");
        // HTTP Basic is not a way in either.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{pw}"));
        let r = raw(
            &addr,
            None,
            format!(
                "GET /api/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 401, "Basic admin:{pw}");
    }
    // The sanity of the scanner: it finds a real hash.
    let h = streampulse::credentials::hash_password("scanner self test").unwrap();
    assert_eq!(phc_hashes(format!("x: '{h}'\n").as_bytes()), vec![h]);
    let bin = std::fs::read(env!("CARGO_BIN_EXE_streampulse")).unwrap();
    assert_eq!(phc_hashes(&bin), Vec::<String>::new(), "a hash compiled in");
    let mut files = vec![manifest_dir().join("config.yaml")];
    for d in ["overlay", "buildroot", "docs"] {
        collect_files(&manifest_dir().join(d), &mut files);
    }
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert_eq!(
            phc_hashes(&bytes),
            Vec::<String>::new(),
            "{} ships an admin password hash",
            f.display()
        );
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            let l = line.trim_start();
            if let Some(v) = l.strip_prefix("admin_password_hash:") {
                let v = v.trim().trim_matches(|c| c == '\'' || c == '"');
                assert!(
                    v.is_empty() || v.starts_with('<') || v.starts_with('#'),
                    "{}: {line}",
                    f.display()
                );
            }
        }
    }
}
