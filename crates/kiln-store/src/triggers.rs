//! Trigger tokens (stored hashed) and the requests made with them.

use crate::db::{on_read, on_write, Db};
use crate::{hash_secret, new_secret, now_ms, StoreResult};

pub struct Triggers<'a> {
    pub(crate) db: &'a Db,
}

impl Triggers<'_> {
    /// Makes a trigger for the project; returns its token (shown once).
    pub async fn create(&self, project_id: i64, description: &str) -> StoreResult<String> {
        let token = new_secret();
        on_write!(self.db, pool => {
            sqlx::query("INSERT INTO triggers (project_id, token_hash, description, created_at) VALUES ($1, $2, $3, $4)")
                .bind(project_id).bind(hash_secret(&token)).bind(description).bind(now_ms()).execute(pool).await?;
        });
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
        on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar("INSERT INTO trigger_requests (trigger_id, variables, created_at) VALUES ($1, $2, $3) RETURNING id")
                .bind(trigger_id).bind(variables).bind(now_ms()).fetch_one(&mut *tx).await?;
            sqlx::query("UPDATE pipelines SET trigger_request_id = $1 WHERE id = $2")
                .bind(id).bind(pipeline_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(id)
        })
    }
}
