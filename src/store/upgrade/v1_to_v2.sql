-- Schema 1 → 2: heartbeats split into an append-only table keyed by time
-- (where the recorder writes) and an archive keyed by stream (where the
-- hourly retention pass moves them), with a `heartbeats` view over both so
-- every reader keeps its SQL. Why: keyed by stream, each 5 s commit rewrote
-- one leaf page (and its parent) per stream that had a heartbeat; on a box
-- with a day of history that was ~8 KB written to the card per heartbeat
-- (`make bench`). Renaming keeps the existing rows where they are: O(1).
ALTER TABLE heartbeats RENAME TO heartbeats_archive;

CREATE TABLE heartbeats_recent (
  stream_id INTEGER NOT NULL,
  ts_ms INTEGER NOT NULL,
  ok INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  reason INTEGER,
  flags INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (ts_ms, stream_id)
) WITHOUT ROWID;

CREATE VIEW heartbeats AS
  SELECT stream_id, ts_ms, ok, latency_ms, reason, flags FROM heartbeats_archive
  UNION ALL
  SELECT stream_id, ts_ms, ok, latency_ms, reason, flags FROM heartbeats_recent;

CREATE TRIGGER heartbeats_insert INSTEAD OF INSERT ON heartbeats
BEGIN
  INSERT INTO heartbeats_recent (stream_id, ts_ms, ok, latency_ms, reason, flags)
  VALUES (NEW.stream_id, NEW.ts_ms, NEW.ok, NEW.latency_ms, NEW.reason, coalesce(NEW.flags, 0));
END;
