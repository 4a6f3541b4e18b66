//! Trigger tokens (stored hashed) and the requests made with them.

use crate::changes::ChangeFeed;
use crate::db::{args, on_read, Db, Row};
use crate::row::KilnRow;
use crate::StoreError;
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
            Ok(sqlx::query_scalar("SELECT id FROM triggers WHERE project_id = $1 AND token_hash = $2 AND removed_at IS NULL")
                .bind(project_id).bind(hash_secret(token)).fetch_optional(pool).await?)
        })
    }

    /// The trigger of `token` in any project: (trigger id, project id).
    pub async fn find_any(&self, token: &str) -> StoreResult<Option<(i64, i64)>> {
        on_read!(self.db, pool => {
            Ok(sqlx::query_as("SELECT id, project_id FROM triggers WHERE token_hash = $1 AND removed_at IS NULL")
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
            "UPDATE triggers SET last_used_at = $1 WHERE id = $2",
            args![now_ms(), trigger_id],
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

/// A trigger as the Triggers API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRecord {
    pub id: i64,
    pub project_id: i64,
    pub description: String,
    pub owner: Option<crate::UserRecord>,
    /// The token, sealed by the server's key; None for a trigger made before tokens were
    /// kept (only its hash is known).
    pub token_sealed: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

fn trigger_from_row(row: &Row) -> Result<TriggerRecord, sqlx::Error> {
    let sealed = match row.opt_int("has_token")? {
        Some(1) => Some(row.bytes("token_sealed")?),
        _ => None,
    };
    Ok(TriggerRecord {
        id: row.int("id")?,
        project_id: row.int("project_id")?,
        description: row.text("description")?,
        owner: crate::users::user_from_row(row)?,
        token_sealed: sealed,
        created_at: row.int("created_at")?,
        updated_at: row.opt_int("updated_at")?,
        last_used_at: row.opt_int("last_used_at")?,
    })
}

fn select_triggers(condition: &str) -> String {
    format!(
        "SELECT t.id, t.project_id, t.description, t.token_sealed, \
         CAST(CASE WHEN t.token_sealed IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_token, t.created_at, \
         t.updated_at, t.last_used_at, {} FROM triggers t LEFT JOIN users u ON u.id = t.owner_id \
         WHERE t.removed_at IS NULL AND {condition}",
        crate::users::USER_COLUMNS
    )
}

impl Triggers<'_> {
    /// Makes a trigger owned by `owner_id`; `seal` encrypts its token for keeping. Returns
    /// the trigger and its token.
    pub async fn create_owned(
        &self,
        project_id: i64,
        owner_id: i64,
        description: &str,
        seal: impl FnOnce(&str) -> Vec<u8>,
    ) -> StoreResult<(TriggerRecord, String)> {
        // GitLab's trigger tokens: `glptt-` and 40 hex characters.
        let token = format!("glptt-{}", hash_secret(&new_secret())[..40].to_owned());
        let sealed = seal(&token);
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO triggers (project_id, token_hash, description, created_at, owner_id, \
                 token_sealed, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $4) RETURNING id",
                args![
                    project_id,
                    hash_secret(&token).as_str(),
                    description,
                    now_ms(),
                    owner_id,
                    sealed.as_slice()
                ],
            )
            .await?;
        tx.commit().await?;
        Ok((self.get(project_id, id).await?, token))
    }

    pub async fn list(&self, project_id: i64) -> StoreResult<Vec<TriggerRecord>> {
        let sql = select_triggers("t.project_id = $1 ORDER BY t.id");
        let rows = self.db.read_all(&sql, args![project_id]).await?;
        Ok(rows
            .iter()
            .map(trigger_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn get(&self, project_id: i64, id: i64) -> StoreResult<TriggerRecord> {
        let sql = select_triggers("t.project_id = $1 AND t.id = $2");
        let row = self.db.read_optional(&sql, args![project_id, id]).await?;
        Ok(trigger_from_row(&row.ok_or(StoreError::NotFound)?)?)
    }

    pub async fn describe(&self, project_id: i64, id: i64, description: &str) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let changed = tx
            .execute(
                "UPDATE triggers SET description = $1, updated_at = $2 \
                 WHERE id = $3 AND project_id = $4 AND removed_at IS NULL",
                args![description, now_ms(), id, project_id],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    /// Removes the trigger: its token stops working; its requests keep their record.
    pub async fn remove(&self, project_id: i64, id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let changed = tx
            .execute(
                "UPDATE triggers SET removed_at = $1 WHERE id = $2 AND project_id = $3 \
                 AND removed_at IS NULL",
                args![now_ms(), id, project_id],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }
}
