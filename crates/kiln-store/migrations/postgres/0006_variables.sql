-- CI/CD variables of a project, or of the instance (project_id NULL). The value is
-- encrypted by the server (AES-256-GCM, nonce first); the store never sees it in clear.
CREATE TABLE ci_variables (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT REFERENCES projects(id),
    key TEXT NOT NULL,
    value BYTEA NOT NULL,
    variable_type TEXT NOT NULL DEFAULT 'env_var',
    protected BOOLEAN NOT NULL DEFAULT FALSE,
    masked BOOLEAN NOT NULL DEFAULT FALSE,
    raw BOOLEAN NOT NULL DEFAULT FALSE,
    environment_scope TEXT NOT NULL DEFAULT '*',
    description TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ci_variables_by_key ON ci_variables (COALESCE(project_id, 0), key, environment_scope);
