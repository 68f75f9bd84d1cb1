//! `web.listen` / `--listen` with several addresses (the appliance listens
//! on port 80 and 8000): every address answers, one login is valid on all
//! of them (one handler context), and an address that cannot be bound after
//! the first is logged and shown in `/healthz` while the others keep serving.

use std::net::TcpListener;

use super::app::App;
use super::util::{closed_port, temp_dir};
use super::web::{log_in, set_up, Browser, PASSWORD};

#[test]
fn two_addresses_share_sessions_and_a_third_that_is_taken_is_skipped() {
    let dir = temp_dir("listen_two");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "heartbeat_seconds: 5\n").unwrap();
    let second = format!("127.0.0.1:{}", closed_port());
    // Held by the test: the daemon cannot bind it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let app = App::start_with_args(
        &config,
        &dir.path().join("data"),
        &["--listen", &second, "--listen", &taken_addr],
        &[],
    );

    let mut first = Browser::new(&app);
    let mut other = Browser::new(&app);
    other.base = format!("http://{second}");
    for b in [&mut first, &mut other] {
        let h = b.get("/healthz");
        assert_eq!(h.status, 200, "{}: {}", b.base, h.text());
    }

    set_up(&mut other);
    let r = log_in(&mut first, PASSWORD, "/");
    assert_eq!(r.status, 303, "login on the first address: {}", r.text());
    // The session cookie from one listener opens pages on the other.
    other.jar = first.jar.clone();
    let p = other.get("/settings");
    assert_eq!(p.status, 200, "settings on {second}: {}", p.text());

    let h = Browser::new(&app).get("/healthz").json();
    let web = &h["web"];
    assert_eq!(web["listening"][1], second.as_str(), "{h}");
    assert_eq!(
        web["listen_failed"][0]["address"],
        taken_addr.as_str(),
        "{h}"
    );
    // The reason is for logged-in callers only.
    assert!(web["listen_failed"][0].get("error").is_none(), "{h}");
    let detail = first.get("/healthz").json();
    let err = detail["web"]["listen_failed"][0]["error"]
        .as_str()
        .unwrap_or("");
    assert!(err.contains(&taken_addr), "{detail}");
    assert!(
        app.log_text()
            .contains(&format!("cannot listen on {taken_addr}")),
        "{}",
        app.log_tail(20)
    );
    drop(taken);
}
