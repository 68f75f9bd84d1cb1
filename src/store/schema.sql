-- StreamPulse SQLite schema, the authoritative current version (see
-- store/mod.rs SCHEMA_VERSION). Before changing it, freeze this file as
-- upgrade/vN.sql and add an upgrade step.
--
-- Times are integers in milliseconds since the Unix epoch, UTC (`_ms`);
-- they are shown in the configured time zone only when displayed.

-- One row per schema version reached (creation or upgrade).
CREATE TABLE version (
  id INTEGER PRIMARY KEY,       -- schema version number
  unix_time INTEGER NOT NULL,   -- when it was reached, seconds since epoch
  notes TEXT                    -- e.g. "created by streampulse 0.1.0"
);

-- Small key/value state (e.g. the rollup watermark).
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

-- Every stream ever configured. A stream removed from the config keeps its
-- row (and history) with removed_ms set; re-adding the name revives it.
CREATE TABLE streams (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,    -- display name from config.yaml
  kind TEXT NOT NULL,           -- rtsp | mjpeg | snapshot
  url_redacted TEXT NOT NULL,   -- URL with the password replaced by ***
  created_ms INTEGER NOT NULL,
  removed_ms INTEGER,           -- NULL while configured
  codec TEXT,                   -- last learnt media facts
  width INTEGER,
  height INTEGER,
  fps REAL,
  media_ms INTEGER              -- when the media facts were learnt
);

-- Raw heartbeats (schema 3): one row per stream per 10-minute window, the
-- window's heartbeats packed in `data` (store/blocks.rs: per heartbeat a
-- varint change of the time gap, a status byte, a varint latency; 3-5 bytes). Keyed by
-- window first, so each flush appends at the right edge of the tree
-- whatever the number of streams; one stream's history is one key lookup
-- per window. The sums let rollups aggregate without unpacking. Rows are
-- written when their window ends (or every monitor.heartbeat_flush_seconds):
-- `make bench` measured ~340 bytes written per heartbeat with a row per
-- heartbeat committed every 5 s, ~21 with blocks. More than one row per
-- (window, stream) happens (a flush before the window ended, a late probe).
CREATE TABLE heartbeat_blocks (
  window_ms INTEGER NOT NULL,   -- start of the window (UTC, multiple of 600000)
  stream_id INTEGER NOT NULL,   -- streams.id
  first_ms INTEGER NOT NULL,    -- time of the first heartbeat in `data`
  probes INTEGER NOT NULL,      -- heartbeats in `data`
  ok INTEGER NOT NULL,          -- of which a complete frame arrived
  latency_sum_ms INTEGER NOT NULL, -- over successful probes
  latency_max_ms INTEGER NOT NULL, -- over successful probes, 0 if none
  data BLOB NOT NULL,
  PRIMARY KEY (window_ms, stream_id, first_ms)
) WITHOUT ROWID;

-- Debounced state changes (unknown/up/down), kept as long as rollups.
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  stream_id INTEGER NOT NULL,   -- streams.id
  ts_ms INTEGER NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  reason TEXT,                  -- probe::Reason name of the result that caused it
  message TEXT                  -- human message, never contains credentials
);
CREATE INDEX events_by_stream_ts ON events (stream_id, ts_ms);
CREATE INDEX events_by_ts ON events (ts_ms);

-- Hourly aggregates, kept long after raw heartbeats are pruned. Keyed by
-- hour first (schema 3): each hourly pass appends a row per stream at the
-- right edge; keyed by stream it rewrote one leaf page per stream every
-- hour, ~8 bytes written to the card per heartbeat at 100 streams.
CREATE TABLE rollups (
  stream_id INTEGER NOT NULL,   -- streams.id
  hour_ms INTEGER NOT NULL,     -- start of the UTC hour
  probes INTEGER NOT NULL,
  ok INTEGER NOT NULL,          -- probes that succeeded
  latency_sum_ms INTEGER NOT NULL, -- over successful probes
  latency_max_ms INTEGER NOT NULL, -- over successful probes
  PRIMARY KEY (hour_ms, stream_id)
) WITHOUT ROWID;
