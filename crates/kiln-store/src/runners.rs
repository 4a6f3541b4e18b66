//! Runners: the machines that execute builds. Their tokens are stored hashed.

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, Db};
use crate::{hash_secret, new_secret, now_ms, StoreResult};

pub struct Runners<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
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
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO runners (token_hash, description, name, is_shared, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                args![
                    hash_secret(&token).as_str(),
                    description,
                    "kiln-runner",
                    is_shared,
                    now_ms()
                ],
            )
            .await?;
        // A runner's fields appear inside builds of every project.
        tx.notify(Change::AllBuilds).await?;
        tx.commit().await?;
        Ok((id, token))
    }
}
