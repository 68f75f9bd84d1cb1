//! What `/proc` says about loopback sockets and the daemon's process: read
//! from the tables instead of connecting, so that counting never costs a
//! single-client peer (ffmpeg's `-listen 1`) its only client.

/// True if something LISTENs on 127.0.0.1:`port`, read from `/proc/net/tcp` so that
/// no connection is made: ffmpeg's `-listen 1` would spend its only client on it.
pub fn is_listening(port: u16) -> bool {
    let needle = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| {
            table.lines().skip(1).any(|line| {
                let mut cols = line.split_whitespace().skip(1);
                cols.next() == Some(needle.as_str()) && cols.nth(1) == Some("0A")
            })
        })
        .unwrap_or(false)
}

/// Established TCP connections whose local port is `port` (the server side
/// of connections to a loopback server on that port).
pub fn established(port: u16) -> usize {
    let needle = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let mut cols = line.split_whitespace().skip(1);
                    let local = cols.next().unwrap_or("");
                    local.ends_with(&needle) && cols.nth(1) == Some("01")
                })
                .count()
        })
        .sum()
}

/// The resident set of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Threads of `pid` (0 once it is gone).
pub fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU seconds (user + system) `pid` has used.
pub fn cpu_secs(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}
