//! The first two stages of every probe: resolving the camera's host name
//! (with a bounded number of resolver threads) and a TCP connect.

use std::time::Instant;

use super::{Failure, Progress, Reason, Stage, Target};

/// Concurrent `getaddrinfo` calls allowed. A dead DNS server makes each call
/// block a thread for the resolver's own timeout (often 10 s or more), long
/// after the probe gave up; without this bound, lookups for many streams would
/// fill tokio's blocking pool and delay the HTTP probes that also run there.
const DNS_SLOTS: usize = 8;

static DNS_PERMITS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(DNS_SLOTS)));

/// Resolves the host of `target`'s URL (port: the URL's, else
/// `default_port`) within [`Target::stage_deadline`].
pub async fn resolve_target(
    target: &Target,
    default_port: u16,
    progress: &mut Progress,
) -> Result<Vec<std::net::SocketAddr>, Failure> {
    let host = target
        .url
        .host_str()
        .ok_or_else(|| Failure::new(Reason::Protocol, "URL has no host"))?;
    let port = target.url.port_or_known_default().unwrap_or(default_port);
    let resolving = resolve(host, port, progress);
    super::within_stage(target.stage_deadline(), Stage::Dns, resolving).await
}

/// Resolves `host:port`, the stage every probe starts with, under the probe's
/// deadline: a dead DNS server fails this probe with `dns`/`timeout` and holds
/// at most one of [`DNS_SLOTS`] threads, never anything other streams need.
pub async fn resolve(
    host: &str,
    port: u16,
    progress: &mut Progress,
) -> Result<Vec<std::net::SocketAddr>, Failure> {
    progress.stage = Stage::Dns;
    let t = Instant::now();
    // IP literals (the common case on a LAN) need no lookup.
    let host_trimmed = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = if let Ok(ip) = host_trimmed.parse::<std::net::IpAddr>() {
        vec![std::net::SocketAddr::new(ip, port)]
    } else {
        let permit = DNS_PERMITS
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::new(Reason::Dns, "resolver closed"))?;
        let name = host_trimmed.to_owned();
        // The permit moves into the thread: it is released only when
        // getaddrinfo really returns, even if this probe timed out long ago.
        let lookup = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port))
                .map(|a| a.collect::<Vec<_>>())
        });
        lookup
            .await
            .map_err(|e| Failure::new(Reason::Dns, format!("resolver thread failed: {e}")))?
            .map_err(|e| Failure::new(Reason::Dns, format!("cannot resolve {host}: {e}")))?
    };
    progress.stages.dns_ms = Some(Progress::ms(t));
    if addrs.is_empty() {
        return Err(Failure::new(
            Reason::Dns,
            format!("{host} resolves to no address"),
        ));
    }
    Ok(addrs)
}

/// Opens (and closes) a TCP connection to learn whether the port answers and
/// how long a connect takes, giving a precise `connect` failure.
pub async fn tcp_connect(
    addrs: &[std::net::SocketAddr],
    progress: &mut Progress,
) -> Result<(), Failure> {
    progress.stage = Stage::Connect;
    let t = Instant::now();
    match tokio::net::TcpStream::connect(addrs).await {
        Ok(s) => {
            drop(s);
            progress.stages.connect_ms = Some(Progress::ms(t));
            Ok(())
        }
        Err(e) => Err(Failure::new(
            Reason::Connect,
            format!("cannot connect to {}: {e}", addrs[0]),
        )),
    }
}
