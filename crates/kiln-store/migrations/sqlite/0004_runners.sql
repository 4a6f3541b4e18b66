-- Runners on other machines: registration, matching by tags, and job tokens.

-- What a runner is and may take (GitLab's ci_runners columns of the same names).
ALTER TABLE runners ADD COLUMN runner_type TEXT NOT NULL DEFAULT 'instance_type';
ALTER TABLE runners ADD COLUMN project_id BIGINT REFERENCES projects(id);
ALTER TABLE runners ADD COLUMN locked BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE runners ADD COLUMN access_level TEXT NOT NULL DEFAULT 'not_protected';
ALTER TABLE runners ADD COLUMN maximum_timeout BIGINT;
ALTER TABLE runners ADD COLUMN maintenance_note TEXT NOT NULL DEFAULT '';
-- What it last said of itself (the `info` of every call), and from where.
ALTER TABLE runners ADD COLUMN version TEXT;
ALTER TABLE runners ADD COLUMN revision TEXT;
ALTER TABLE runners ADD COLUMN platform TEXT;
ALTER TABLE runners ADD COLUMN architecture TEXT;
ALTER TABLE runners ADD COLUMN executor TEXT;
ALTER TABLE runners ADD COLUMN ip_address TEXT;
-- The embedded runners of the servers, which no one registers or removes.
ALTER TABLE runners ADD COLUMN embedded BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE runners SET embedded = TRUE WHERE description LIKE 'embedded runner %';

-- A runner's tags, one row each, so the claim matches them in SQL.
CREATE TABLE runner_tags (
    runner_id BIGINT NOT NULL REFERENCES runners(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (runner_id, tag)
);

-- A build's tags: as the API shows them, and one row each for the claim.
ALTER TABLE builds ADD COLUMN tag_list TEXT NOT NULL DEFAULT '[]';
CREATE TABLE build_tags (
    build_id BIGINT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (build_id, tag)
);
-- The job token of a running build (its hash): CI_JOB_TOKEN, JOB-TOKEN, git over HTTP.
ALTER TABLE builds ADD COLUMN token_hash TEXT;
CREATE INDEX builds_by_token ON builds (token_hash);

-- Tokens that register runners: the instance's (project_id NULL) or a project's.
CREATE TABLE registration_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT REFERENCES projects(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- A removed runner keeps its row, so the builds it ran still name it; its token stops working.
ALTER TABLE runners ADD COLUMN removed_at BIGINT;

-- Build counts in shards (PostgreSQL's concurrent claims queued on one row); SQLite's one
-- writer uses shard 0. Readers sum.
CREATE TABLE build_counts_sharded (
    project_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    shard BIGINT NOT NULL DEFAULT 0,
    n BIGINT NOT NULL,
    PRIMARY KEY (project_id, status, shard)
);
INSERT INTO build_counts_sharded (project_id, status, shard, n)
SELECT project_id, status, 0, n FROM build_counts;
DROP TABLE build_counts;
ALTER TABLE build_counts_sharded RENAME TO build_counts;
