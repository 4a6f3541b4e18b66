-- Webhooks in: the secret a forge signs its push events with (or sends as X-Gitlab-Token),
-- sealed by the server's key.
ALTER TABLE projects ADD COLUMN push_secret_sealed BLOB;

-- Pipeline schedules. next_run_at moves forward with a conditional UPDATE (from the value a
-- server read to the next slot after now), so one server makes each run, and a schedule
-- that missed runs while every server was down makes one pipeline, not one per slot.
CREATE TABLE pipeline_schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    description TEXT NOT NULL,
    ref TEXT NOT NULL,
    cron TEXT NOT NULL,
    cron_timezone TEXT NOT NULL DEFAULT 'UTC',
    next_run_at BIGINT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT 1,
    owner_id BIGINT REFERENCES users(id),
    last_pipeline_id BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX pipeline_schedules_by_project ON pipeline_schedules (project_id, id);
CREATE INDEX pipeline_schedules_due ON pipeline_schedules (next_run_at) WHERE active;

CREATE TABLE pipeline_schedule_variables (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES pipeline_schedules(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value_sealed BLOB NOT NULL,
    variable_type TEXT NOT NULL DEFAULT 'env_var',
    UNIQUE (schedule_id, key)
);
