-- Several servers on one database, and runners that may vanish.

-- A running build belongs to its runner only until this time (ms); every call of that runner
-- (or its server's heartbeat) moves it on, and a reaper fails builds whose lease ran out.
ALTER TABLE builds ADD COLUMN lease_expires_at BIGINT;
CREATE INDEX builds_running_by_lease ON builds (lease_expires_at) WHERE status = 'running';
ALTER TABLE builds DROP COLUMN erased_by_user;
-- Where the artifacts archive lives: 'directory' (artifacts_file is relative to the
-- artifacts directory) or 'database' (artifact_chunks); NULL for archives stored before.
ALTER TABLE builds ADD COLUMN artifacts_backend TEXT;

-- One pipeline per pushed head, whichever server saw the push.
ALTER TABLE pipelines ADD COLUMN push_key TEXT;
CREATE UNIQUE INDEX pipelines_by_push_key ON pipelines (push_key);

-- A build's log by byte offset, so an append retried after a lost answer is recognised.
CREATE TABLE trace_parts (
    build_id BIGINT NOT NULL,
    start BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (build_id, start)
);
INSERT INTO trace_parts (build_id, start, data)
SELECT build_id,
       COALESCE(SUM(length(data)) OVER (PARTITION BY build_id ORDER BY seq
           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0),
       data
FROM trace_chunks;
DROP TABLE trace_chunks;

-- Artifacts archives kept in the database, in pieces.
CREATE TABLE artifact_chunks (
    build_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- Work done by one server of the cluster at a time (poller, sweep, reaper), held for a while.
CREATE TABLE cluster_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
