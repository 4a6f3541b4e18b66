-- Protected branches (a name or a pattern with `*`), which only maintainers push and whose
-- jobs get protected variables and ref_protected runners. A project starts with its default
-- branch protected, as GitLab's default branch protection does.
CREATE TABLE protected_branches (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    push_access_level BIGINT NOT NULL DEFAULT 40,
    merge_access_level BIGINT NOT NULL DEFAULT 40,
    unprotect_access_level BIGINT NOT NULL DEFAULT 40,
    allow_force_push BOOLEAN NOT NULL DEFAULT FALSE,
    code_owner_approval_required BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
INSERT INTO protected_branches (project_id, name, created_at)
    SELECT id, default_branch, created_at FROM projects;

-- Whether a build's ref was protected when its pipeline was made (GitLab's ci_builds.protected):
-- decided once, so the claim and the variables need no pattern matching.
ALTER TABLE builds ADD COLUMN protected BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE builds SET protected = TRUE WHERE NOT tag
    AND ref = (SELECT p.default_branch FROM projects p WHERE p.id = builds.project_id);
ALTER TABLE pipelines ADD COLUMN protected BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE pipelines SET protected = TRUE WHERE NOT tag
    AND ref = (SELECT p.default_branch FROM projects p WHERE p.id = pipelines.project_id);

-- What a build is: 'build' (a runner runs it) or 'external' (a commit status another system
-- reports through POST /projects/:id/statuses/:sha; runners never take it), with the link
-- and description such a status carries.
ALTER TABLE builds ADD COLUMN kind TEXT NOT NULL DEFAULT 'build';
ALTER TABLE builds ADD COLUMN target_url TEXT;
ALTER TABLE builds ADD COLUMN description TEXT;
