-- Project webhooks and their outbox. A status change writes one delivery per hook that wants
-- it in the change's own transaction, so a crash loses none; servers take due deliveries
-- under a lease (locked_until), and a delivery keeps its event uuid through every attempt.
CREATE TABLE project_hooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    url TEXT NOT NULL,
    -- The secret sent as X-Gitlab-Token, sealed by the server's key; never shown again.
    token_sealed BLOB,
    name TEXT,
    description TEXT,
    push_events BOOLEAN NOT NULL DEFAULT 1,
    job_events BOOLEAN NOT NULL DEFAULT 0,
    pipeline_events BOOLEAN NOT NULL DEFAULT 0,
    enable_ssl_verification BOOLEAN NOT NULL DEFAULT 1,
    -- Consecutive failed attempts, the first of them, and until when the hook waits.
    recent_failures BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    disabled_until BIGINT,
    disabled BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX project_hooks_by_project ON project_hooks (project_id);

CREATE TABLE hook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hook_id BIGINT NOT NULL REFERENCES project_hooks(id) ON DELETE CASCADE,
    -- X-Gitlab-Event-UUID: one per change, the same for every hook and every attempt.
    event_uuid TEXT NOT NULL,
    -- 'job', 'pipeline' or 'push'; the build or pipeline, and its status at the change.
    event TEXT NOT NULL,
    subject_id BIGINT NOT NULL,
    subject_status TEXT NOT NULL,
    -- A test delivery (POST .../test/:trigger) is sent at once and kept for the list only.
    test BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    -- 'pending', 'delivered' or 'failed' (given up: the hook was disabled or removed).
    state TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT,
    locked_by TEXT,
    -- The last attempt.
    response_status BIGINT,
    duration_ms BIGINT,
    error TEXT,
    request_body TEXT,
    response_body TEXT,
    finished_at BIGINT
);
CREATE INDEX hook_deliveries_due ON hook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX hook_deliveries_by_hook ON hook_deliveries (hook_id, id);
