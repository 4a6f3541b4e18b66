//! Runners: the machines that execute builds. Their tokens are stored hashed.

use crate::db::{on_write, Db};
use crate::{hash_secret, new_secret, now_ms, StoreResult};

pub struct Runners<'a> {
    pub(crate) db: &'a Db,
    pub(crate) versions: &'a crate::versions::Versions,
}

impl Runners<'_> {
    /// The runner with this description, registered on first use (the embedded runner).
    pub async fn find_or_create(&self, description: &str) -> StoreResult<i64> {
        let found: Option<i64> = crate::db::on_read!(self.db, pool => {
            sqlx::query_scalar("SELECT id FROM runners WHERE description = $1 ORDER BY id LIMIT 1")
                .bind(description).fetch_optional(pool).await?
        });
        match found {
            Some(id) => Ok(id),
            None => Ok(self.create(description, true).await?.0),
        }
    }

    /// Registers a runner and returns its id and its token (shown once).
    pub async fn create(&self, description: &str, is_shared: bool) -> StoreResult<(i64, String)> {
        let token = new_secret();
        let id = on_write!(self.db, pool => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO runners (token_hash, description, name, is_shared, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(hash_secret(&token))
            .bind(description)
            .bind("kiln-runner")
            .bind(is_shared)
            .bind(now_ms())
            .fetch_one(pool)
            .await?
        });
        // A runner's fields appear inside builds of every project.
        self.versions.bump_all_builds();
        Ok((id, token))
    }
}
