-- A downstream pipeline's bridge (GitLab's ci_sources_pipelines.source_job_id): the build of
-- the parent pipeline that started it, and whether that bridge takes its result
-- (`strategy: depend`). A bridge is a build of kind 'bridge', which runners never take.
ALTER TABLE pipelines ADD COLUMN upstream_build_id BIGINT;
ALTER TABLE pipelines ADD COLUMN upstream_depends BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX pipelines_by_upstream ON pipelines (upstream_build_id) WHERE upstream_build_id IS NOT NULL;
CREATE INDEX builds_pending_bridges ON builds (id) WHERE kind = 'bridge' AND status = 'pending';
