-- A build's `artifacts:reports:dotenv` variables (JSON [[key, value], …]), which the jobs
-- taking its artifacts receive (GitLab's ci_job_variables with source dotenv). NULL: none.
ALTER TABLE builds ADD COLUMN dotenv TEXT;
