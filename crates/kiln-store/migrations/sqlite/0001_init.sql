CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    is_admin BOOLEAN NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'active',
    bio TEXT,
    skype TEXT NOT NULL DEFAULT '',
    linkedin TEXT NOT NULL DEFAULT '',
    twitter TEXT NOT NULL DEFAULT '',
    website_url TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE personal_access_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    visibility TEXT NOT NULL,
    repo_url TEXT,
    default_branch TEXT NOT NULL DEFAULT 'master',
    build_timeout BIGINT NOT NULL DEFAULT 3600,
    builds_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (namespace, path)
);

CREATE TABLE members (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    access_level BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE commits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    sha TEXT NOT NULL,
    message TEXT NOT NULL,
    author_name TEXT NOT NULL,
    author_email TEXT NOT NULL,
    authored_at BIGINT NOT NULL,
    author_tz_offset_minutes BIGINT NOT NULL,
    UNIQUE (project_id, sha)
);

CREATE TABLE runners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    name TEXT,
    active BOOLEAN NOT NULL DEFAULT 1,
    is_shared BOOLEAN NOT NULL DEFAULT 1,
    tags TEXT NOT NULL DEFAULT '',
    run_untagged BOOLEAN NOT NULL DEFAULT 1,
    contacted_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE pipelines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    commit_id BIGINT NOT NULL REFERENCES commits(id),
    ref TEXT NOT NULL,
    tag BOOLEAN NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id),
    yaml_errors TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX pipelines_by_project ON pipelines (project_id, id);

CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    pipeline_id BIGINT NOT NULL REFERENCES pipelines(id),
    commit_id BIGINT NOT NULL REFERENCES commits(id),
    seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    stage_idx BIGINT NOT NULL,
    status TEXT NOT NULL,
    ref TEXT NOT NULL,
    tag BOOLEAN NOT NULL DEFAULT 0,
    "when" TEXT NOT NULL DEFAULT 'on_success',
    allow_failure BOOLEAN NOT NULL DEFAULT 0,
    coverage DOUBLE PRECISION,
    user_id BIGINT REFERENCES users(id),
    runner_id BIGINT REFERENCES runners(id),
    options TEXT NOT NULL DEFAULT '{}',
    commands TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    queued_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    artifacts_file TEXT,
    artifacts_size BIGINT,
    artifacts_expire_at BIGINT,
    erased_at BIGINT,
    erased_by BIGINT
);
CREATE UNIQUE INDEX builds_by_project_seq ON builds (project_id, seq);
CREATE INDEX builds_by_project_status ON builds (project_id, status, id);
CREATE INDEX builds_by_pipeline ON builds (pipeline_id, id);
CREATE INDEX builds_by_commit ON builds (commit_id, id);
CREATE INDEX builds_by_status ON builds (status, id);

-- Maintained in the transaction of every build insert and status change, so that list totals
-- (X-Total) never need a COUNT(*) over a project's builds.
CREATE TABLE build_counts (
    project_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (project_id, status)
);
