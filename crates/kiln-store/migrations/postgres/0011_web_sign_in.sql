-- Signing in to the web UI: a user's password as an Argon2id hash (NULL: no password, tokens
-- only); sessions, by the hash of the random id their cookie holds, with the CSRF token of
-- their forms; and the recent failed sign-ins of an account or an address, which slow the
-- next attempts across every server.
ALTER TABLE users ADD COLUMN password_hash TEXT;
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);
CREATE TABLE sign_in_failures (
    subject TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);
