//! The one integration-test binary (ripgrep's layout): every module starts
//! real peers on loopback (GStreamer RTSP, ffmpeg, named fakes) and drives the
//! real `streampulse` binary.

mod app; // the `streampulse run` daemon under test, with its JSON API
mod appliance_scripts; // overlay/usr/libexec/streampulse boot scripts (hostname, console URL, journal dir) on a fake root
mod availability; // issue 19: uptime figures (API, stream page, /metrics) from a seeded history; CSV exports streamed
mod backup; // issue 18: backup download, restore by upload (restart in place) and from the boot partition; bad files change nothing
mod boot_select; // issue 18 on the real boards: the Pi 4/5 tryboot backend on a fake root and under real RAUC (loop devices), U-Boot scripts vs fw_env.config, the Pi post-image and each defconfig's post-build on stand-in outputs
mod box_camera; // issue 21: the box's own camera (libcamera:) against an rpicam-vid stand-in: ok, unplugged, recovery, failure messages, picture checks
mod cli; // check-config, --version
mod daemon; // end to end: status API, hot reload, crash safety, secrets
mod degraded; // issue 15: an unusable data dir → degraded mode from a RAM fallback, said on every page and in /healthz
mod fakes; // every named fake peer, on one accept loop: hostile cameras, markup cameras, a recorder
mod faults; // power loss (100 SIGKILL rounds), data partition full (tmpfs), recorder recovery
mod flash; // flash.sh against image files and loop devices (never a real disk)
mod hostile; // hostile and broken cameras: verdict in time, bounded RSS, no fd leaks, no delays
mod image; // SD-card images with the real genimage layouts (Raspberry Pi, Orange Pi)
mod listen; // web.listen with several addresses: shared sessions, a taken port skipped
mod live; // live view: MJPEG relay, RTSP → fMP4, one camera session per stream, caps, stalls, Chromium
mod metrics; // /metrics parsed by a real Prometheus parser
mod mosquitto; // real Mosquitto brokers, mosquitto_sub, a test CA (openssl)
mod mqtt; // MQTT over TCP/password/WS/TLS/WSS, broker restart, HA discovery, hot reload
mod netns; // faults needing a private network namespace (a DNS server that never answers)
mod network; // `network apply` into temp dirs (networkd/wpa_supplicant files, stand-in systemctl), real networkd in a netns, network: in check-config
mod outages; // clock jumps (libfaketime), peers down for long (bounded memory, recovery), broken config edits
mod picture; // picture verdicts: frozen, black and camera clock against GStreamer (switched scenes, libfaketime)
mod probes; // `streampulse probe` against real servers and named fakes
mod prometheus_files; // issue 19: contrib/ Prometheus rules (promtool check + test) and Grafana dashboard, against a real /metrics
mod qemu; // the appliance image booted under qemu-system-aarch64 (`make qemu-test`; ignored otherwise)
mod rtsp_media; // RTSP transport (auto fallback on 461) and key-frame interval, against GStreamer
mod security; // issue 8: every route's login and CSRF, sessions, setup, rate limit, escaping, secrets, paths, caps, slow clients, systemd unit
mod system; // appliance: sd-notify READY/WATCHDOG/STATUS, --boot-config import, /healthz box health
mod system_page; // the System page and the diagnostics download: access, content, no secret
mod update; // issue 18: the update routes on a host (no RAUC: refused with the reason), the rollback note until dismissed
mod util; // real peers (RTSP, MJPEG, lighttpd, snapshot servers), the binary, temp dirs, /proc, Chromium flows
mod web; // the web GUI: setup, login, CSRF, every route, editor, previews, escaping, tokens, Chromium e2e
mod webhooks; // notify: POSTs per state change, bounded retries, a receiver that hangs
mod write_api; // issue 19: the write API (streams, check, settings): validation, scopes, idempotent PUT, no secret in any answer
