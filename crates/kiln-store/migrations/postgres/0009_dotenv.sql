-- A build's `artifacts:reports:dotenv` variables (JSON [[key, value], …]), which the jobs
-- taking its artifacts receive (GitLab's ci_job_variables with source dotenv). NULL: none.
ALTER TABLE builds ADD COLUMN dotenv TEXT;

-- A job's start reads the archives and dotenv reports of its pipeline, and every read of a
-- pipeline its builds' average coverage: through these, each read costs what the pipeline's
-- artifacts, reports and coverages are, not how many builds it has.
CREATE INDEX builds_with_artifacts ON builds (pipeline_id) WHERE artifacts_file IS NOT NULL;
CREATE INDEX builds_with_dotenv ON builds (pipeline_id) WHERE dotenv IS NOT NULL;
CREATE INDEX builds_with_coverage ON builds (pipeline_id) WHERE coverage IS NOT NULL;
