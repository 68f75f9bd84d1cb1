//! Reading the stored history the way the daemon wrote it.

/// Every stored heartbeat in the database `db`, as (stream name, heartbeat),
/// oldest first per stream: reads and unpacks the `heartbeat_blocks` rows
/// (schema 3) with the crate's own decoder.
pub fn stored_heartbeats(
    db: &rusqlite::Connection,
) -> Vec<(String, streampulse::store::blocks::Heartbeat)> {
    let mut q = db
        .prepare(
            "SELECT s.name, b.first_ms, b.data FROM heartbeat_blocks b
             JOIN streams s ON s.id = b.stream_id ORDER BY s.name, b.window_ms, b.first_ms",
        )
        .expect("preparing the heartbeat query");
    let rows: Vec<(String, i64, Vec<u8>)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("reading heartbeat blocks")
        .map(|r| r.expect("reading a heartbeat block"))
        .collect();
    let mut out = Vec::new();
    for (name, first_ms, data) in rows {
        let hbs = streampulse::store::blocks::decode(first_ms, &data)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.extend(hbs.into_iter().map(|h| (name.clone(), h)));
    }
    out
}
