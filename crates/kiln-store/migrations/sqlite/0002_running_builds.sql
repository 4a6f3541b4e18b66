ALTER TABLE builds ADD COLUMN retried BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE builds ADD COLUMN needs TEXT;
ALTER TABLE builds ADD COLUMN failure_reason TEXT;
ALTER TABLE builds ADD COLUMN exit_code BIGINT;
ALTER TABLE builds ADD COLUMN trace_size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE builds ADD COLUMN erased_by_user BIGINT;

ALTER TABLE pipelines ADD COLUMN source TEXT NOT NULL DEFAULT 'push';
ALTER TABLE pipelines ADD COLUMN variables TEXT NOT NULL DEFAULT '[]';
ALTER TABLE pipelines ADD COLUMN trigger_request_id BIGINT;

-- A build's log, appended while it runs, in order of seq.
CREATE TABLE trace_chunks (
    build_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (build_id, seq)
);

CREATE TABLE triggers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    token_hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE trigger_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger_id BIGINT NOT NULL REFERENCES triggers(id),
    variables TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);

CREATE INDEX builds_artifacts_expiry ON builds (artifacts_expire_at);
