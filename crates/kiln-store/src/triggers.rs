//! Trigger tokens (stored hashed) and the requests made with them.

use crate::changes::ChangeFeed;
use crate::db::{args, on_read, Db};
use crate::{hash_secret, new_secret, now_ms, StoreResult};

pub struct Triggers<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

impl Triggers<'_> {
    /// Makes a trigger for the project; returns its token (shown once).
    pub async fn create(&self, project_id: i64, description: &str) -> StoreResult<String> {
        let token = new_secret();
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "INSERT INTO triggers (project_id, token_hash, description, created_at) VALUES ($1, $2, $3, $4)",
            args![project_id, hash_secret(&token).as_str(), description, now_ms()],
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The trigger id of `token` in `project_id`, if it is one.
    pub async fn find(&self, project_id: i64, token: &str) -> StoreResult<Option<i64>> {
        on_read!(self.db, pool => {
            Ok(sqlx::query_scalar("SELECT id FROM triggers WHERE project_id = $1 AND token_hash = $2")
                .bind(project_id).bind(hash_secret(token)).fetch_optional(pool).await?)
        })
    }

    /// The trigger of `token` in any project: (trigger id, project id).
    pub async fn find_any(&self, token: &str) -> StoreResult<Option<(i64, i64)>> {
        on_read!(self.db, pool => {
            Ok(sqlx::query_as("SELECT id, project_id FROM triggers WHERE token_hash = $1")
                .bind(hash_secret(token)).fetch_optional(pool).await?)
        })
    }

    /// Records a use of the trigger with its variables (a JSON object) that created
    /// `pipeline_id`, and links the pipeline to it; returns the request id.
    pub async fn record_request(
        &self,
        trigger_id: i64,
        variables: &str,
        pipeline_id: i64,
    ) -> StoreResult<i64> {
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO trigger_requests (trigger_id, variables, created_at) VALUES ($1, $2, $3) RETURNING id",
                args![trigger_id, variables, now_ms()],
            )
            .await?;
        tx.execute(
            "UPDATE pipelines SET trigger_request_id = $1 WHERE id = $2",
            args![id, pipeline_id],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}
