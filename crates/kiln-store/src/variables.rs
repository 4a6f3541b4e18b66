//! CI/CD variables of projects and of the instance. Values arrive encrypted and leave
//! encrypted: the server holds the key (`--secret-key-file`), the database only ciphertext.

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, Db, Row};
use crate::row::KilnRow;
use crate::{now_ms, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct VariableRecord {
    pub id: i64,
    /// None for an instance variable.
    pub project_id: Option<i64>,
    pub key: String,
    /// The value, encrypted.
    pub value: Vec<u8>,
    /// `env_var` or `file`.
    pub variable_type: String,
    pub protected: bool,
    pub masked: bool,
    pub raw: bool,
    pub environment_scope: String,
    pub description: Option<String>,
}

const COLUMNS: &str = "id, project_id, key, value, variable_type, protected, masked, raw, \
    environment_scope, description";

fn from_row(row: &Row) -> Result<VariableRecord, sqlx::Error> {
    Ok(VariableRecord {
        id: row.int("id")?,
        project_id: row.opt_int("project_id")?,
        key: row.text("key")?,
        value: row.bytes("value")?,
        variable_type: row.text("variable_type")?,
        protected: row.flag("protected")?,
        masked: row.flag("masked")?,
        raw: row.flag("raw")?,
        environment_scope: row.text("environment_scope")?,
        description: row.opt_text("description")?,
    })
}

pub struct Variables<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

/// `project_id = $1`, or the instance's when None.
fn owner_condition(project_id: Option<i64>) -> &'static str {
    match project_id {
        Some(_) => "project_id = $1",
        None => "project_id IS NULL AND $1 = 0",
    }
}

impl Variables<'_> {
    /// The variables of a project (or of the instance), by key.
    pub async fn list(&self, project_id: Option<i64>) -> StoreResult<Vec<VariableRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM ci_variables WHERE {} ORDER BY key, environment_scope",
            owner_condition(project_id)
        );
        let rows = self
            .db
            .read_all(&sql, args![project_id.unwrap_or(0)])
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// What a job of the project receives: the instance's variables, then the project's.
    pub async fn for_project(&self, project_id: i64) -> StoreResult<Vec<VariableRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM ci_variables WHERE project_id IS NULL OR project_id = $1 \
             ORDER BY project_id IS NOT NULL, key"
        );
        let rows = self.db.read_all(&sql, args![project_id]).await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// The variable `key` (of `scope` when given: a key may be defined per environment).
    pub async fn get(
        &self,
        project_id: Option<i64>,
        key: &str,
        scope: Option<&str>,
    ) -> StoreResult<VariableRecord> {
        let sql = format!(
            "SELECT {COLUMNS} FROM ci_variables WHERE {} AND key = $2 \
             AND ($3 = '' OR environment_scope = $3) ORDER BY id LIMIT 1",
            owner_condition(project_id)
        );
        let row = self
            .db
            .read_optional(
                &sql,
                args![project_id.unwrap_or(0), key, scope.unwrap_or("")],
            )
            .await?;
        Ok(from_row(&row.ok_or(StoreError::NotFound)?)?)
    }

    /// Adds a variable; `Conflict` when the key is taken in that scope.
    pub async fn create(&self, v: &VariableRecord) -> StoreResult<VariableRecord> {
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO ci_variables (project_id, key, value, variable_type, protected, masked, \
                 raw, environment_scope, description, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                args![
                    v.project_id,
                    &v.key,
                    v.value.as_slice(),
                    &v.variable_type,
                    v.protected,
                    v.masked,
                    v.raw,
                    &v.environment_scope,
                    &v.description,
                    now_ms()
                ],
            )
            .await
            .map_err(|e| match e {
                StoreError::Db(e) => StoreError::on_unique(e, "has already been taken"),
                other => other,
            })?;
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(VariableRecord { id, ..v.clone() })
    }

    /// Replaces the variable `v.id` with `v`.
    pub async fn update(&self, v: &VariableRecord) -> StoreResult<VariableRecord> {
        let mut tx = self.db.begin(self.feed).await?;
        let changed = tx
            .execute(
                "UPDATE ci_variables SET value = $1, variable_type = $2, protected = $3, \
                 masked = $4, raw = $5, environment_scope = $6, description = $7 WHERE id = $8",
                args![
                    v.value.as_slice(),
                    &v.variable_type,
                    v.protected,
                    v.masked,
                    v.raw,
                    &v.environment_scope,
                    &v.description,
                    v.id
                ],
            )
            .await
            .map_err(|e| match e {
                StoreError::Db(e) => StoreError::on_unique(e, "has already been taken"),
                other => other,
            })?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(v.clone())
    }

    pub async fn delete(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let removed = tx
            .execute("DELETE FROM ci_variables WHERE id = $1", args![id])
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.notify(Change::Access).await?;
        tx.commit().await
    }
}
