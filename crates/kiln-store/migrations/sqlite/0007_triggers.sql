-- Triggers as the Triggers API manages them: who made one, its token sealed by the server's
-- key (shown again to its owner; lookups still use the hash), when it was last used, and a
-- soft delete (its requests keep pointing at it).
ALTER TABLE triggers ADD COLUMN owner_id BIGINT REFERENCES users(id);
ALTER TABLE triggers ADD COLUMN token_sealed BLOB;
ALTER TABLE triggers ADD COLUMN updated_at BIGINT;
ALTER TABLE triggers ADD COLUMN last_used_at BIGINT;
ALTER TABLE triggers ADD COLUMN removed_at BIGINT;
