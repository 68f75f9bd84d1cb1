"""StreamPulse's packed heartbeat blocks (schema 3, src/store/blocks.rs) in
Python, for the bench scripts: read what the box stored, and age a database
with history the way the box would have written it.

Per heartbeat: zigzag varint of the change of the gap in ms since the
previous heartbeat (the first gap is 0: its time is the row's first_ms), a
status byte (bit 0 ok, bit 1 clock unsynchronised,
bits 2..8 reason code), varint latency ms. One row per stream per 10-minute
window, keyed (window_ms, stream_id, first_ms)."""

WINDOW_MS = 600_000


def _put_varint(out, v):
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _get_varint(data, pos):
    v = shift = 0
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, pos
        shift += 7


def _zigzag(v):
    return (v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1


def _unzigzag(z):
    return (z >> 1) ^ -(z & 1)


def decode(first_ms, data):
    """Yields (ts_ms, ok, latency_ms, reason_code or None) of one block."""
    pos, ts, gap = 0, first_ms, 0
    while pos < len(data):
        change, pos = _get_varint(data, pos)
        status = data[pos]
        pos += 1
        latency, pos = _get_varint(data, pos)
        gap += _unzigzag(change)
        ts += gap
        yield ts, bool(status & 1), latency, (status >> 2) or None


def heartbeats(conn, since_ms=None):
    """Yields (stream name, ts_ms, ok, latency_ms, reason) of every stored
    heartbeat (with ts_ms >= since_ms if given)."""
    lo = 0 if since_ms is None else since_ms - since_ms % WINDOW_MS
    rows = conn.execute(
        "SELECT s.name, b.first_ms, b.data FROM heartbeat_blocks b JOIN streams s ON s.id = b.stream_id "
        "WHERE b.window_ms >= ?", (lo,))
    for name, first_ms, data in rows:
        for ts, ok, latency, reason in decode(first_ms, bytes(data)):
            if since_ms is None or ts >= since_ms:
                yield name, ts, ok, latency, reason


def insert_history(conn, stream_hbs):
    """Writes blocks for `stream_hbs`: {stream_id: [(ts_ms, ok, latency_ms,
    reason code or None)] in time order}, one row per stream per window."""
    rows = []
    for sid, hbs in stream_hbs.items():
        cur = None
        for ts, ok, latency, reason in hbs:
            w = ts - ts % WINDOW_MS
            if cur is None or cur["w"] != w or ts < cur["last"]:
                if cur is not None:
                    rows.append(_row(sid, cur))
                cur = {"w": w, "first": ts, "last": ts, "gap": 0, "n": 0, "ok": 0, "sum": 0,
                       "max": 0, "data": bytearray()}
            gap = ts - cur["last"]
            _put_varint(cur["data"], _zigzag(gap - cur["gap"]))
            cur["gap"] = gap
            cur["data"].append((1 if ok else 0) | ((reason or 0) << 2))
            _put_varint(cur["data"], latency)
            cur["last"] = ts
            cur["n"] += 1
            if ok:
                cur["ok"] += 1
                cur["sum"] += latency
                cur["max"] = max(cur["max"], latency)
        if cur is not None:
            rows.append(_row(sid, cur))
    conn.executemany(
        "INSERT OR REPLACE INTO heartbeat_blocks (window_ms, stream_id, first_ms, probes, ok, "
        "latency_sum_ms, latency_max_ms, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _row(sid, b):
    return (b["w"], sid, b["first"], b["n"], b["ok"], b["sum"], b["max"], bytes(b["data"]))
