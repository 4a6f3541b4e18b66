-- The v4 jobs and pipelines lists: keyset pages by id, and the name and ref filters, each a
-- range of one index whatever the page's depth.
CREATE INDEX builds_by_project_id ON builds (project_id, id);
CREATE INDEX builds_by_project_name ON builds (project_id, name, id);
CREATE INDEX builds_by_project_ref ON builds (project_id, ref, id);
CREATE INDEX pipelines_by_project_ref ON pipelines (project_id, ref, id);
CREATE INDEX pipelines_by_project_status ON pipelines (project_id, status, id);

-- Variables a person gave when playing a manual job (`job_variables_attributes`), a JSON array
-- of [key, value] pairs; they win over every other variable of the job.
ALTER TABLE builds ADD COLUMN job_variables TEXT NOT NULL DEFAULT '[]';
