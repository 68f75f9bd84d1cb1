-- StreamPulse SQLite schema version 2, frozen (the current one is ../schema.sql).
-- Kept to test the upgrade from 2 to 3.
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

-- One row per probe, in two tables behind one view (schema 2). The recorder
-- appends to `heartbeats_recent`, keyed by time, so a commit rewrites the
-- pages at the right edge of one small B-tree whatever the number of streams.
-- The hourly retention pass moves rows older than a quarter of an hour to
-- `heartbeats_archive`, keyed by stream, so one stream's history is one range.
-- Keyed by stream, every 5 s commit rewrote a leaf page per stream: ~8 KB
-- written to the card per heartbeat once a day of history existed (make bench).
-- Integers only, no rowid: this is the data that grows, a few hundred
-- thousand rows a day on a busy box.
CREATE TABLE heartbeats_archive (
  stream_id INTEGER NOT NULL,   -- streams.id
  ts_ms INTEGER NOT NULL,       -- probe start
  ok INTEGER NOT NULL,          -- 1 = a complete frame arrived, 0 = failure
  latency_ms INTEGER NOT NULL,  -- probe start to first frame (or failure)
  reason INTEGER,               -- probe::Reason::code(), NULL when ok
  flags INTEGER NOT NULL DEFAULT 0, -- bit 0: the box's clock was not synchronised
  PRIMARY KEY (stream_id, ts_ms)
) WITHOUT ROWID;

-- The last hour or so of heartbeats; same columns, keyed by time.
CREATE TABLE heartbeats_recent (
  stream_id INTEGER NOT NULL,
  ts_ms INTEGER NOT NULL,
  ok INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  reason INTEGER,
  flags INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (ts_ms, stream_id)
) WITHOUT ROWID;

-- What readers query. Filter on stream_id directly (e.g.
-- `stream_id = (SELECT id FROM streams WHERE name = ?)`), not through a join
-- with an aggregate: SQLite pushes plain WHERE terms into both halves, but
-- materialises the whole view for a join inside an aggregate query.
CREATE VIEW heartbeats AS
  SELECT stream_id, ts_ms, ok, latency_ms, reason, flags FROM heartbeats_archive
  UNION ALL
  SELECT stream_id, ts_ms, ok, latency_ms, reason, flags FROM heartbeats_recent;

-- Inserts through the view land in heartbeats_recent (tests, tools); the
-- recorder writes to heartbeats_recent directly. Deletes must name the tables.
CREATE TRIGGER heartbeats_insert INSTEAD OF INSERT ON heartbeats
BEGIN
  INSERT INTO heartbeats_recent (stream_id, ts_ms, ok, latency_ms, reason, flags)
  VALUES (NEW.stream_id, NEW.ts_ms, NEW.ok, NEW.latency_ms, NEW.reason, coalesce(NEW.flags, 0));
END;

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

-- Hourly aggregates, kept long after raw heartbeats are pruned.
CREATE TABLE rollups (
  stream_id INTEGER NOT NULL,   -- streams.id
  hour_ms INTEGER NOT NULL,     -- start of the UTC hour
  probes INTEGER NOT NULL,
  ok INTEGER NOT NULL,          -- probes that succeeded
  latency_sum_ms INTEGER NOT NULL, -- over successful probes
  latency_max_ms INTEGER NOT NULL, -- over successful probes
  PRIMARY KEY (stream_id, hour_ms)
) WITHOUT ROWID;
