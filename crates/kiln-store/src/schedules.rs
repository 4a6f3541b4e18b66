//! Pipeline schedules and their variables (values sealed by the caller).
//!
//! Every server looks for due schedules; a run is made under the pipeline key of its slot
//! (`schedule:<id>:<next_run_at>`, unique), and `advance` moves `next_run_at` on only from
//! the value it was read with. So a slot makes one pipeline whichever servers see it, and a
//! server that dies between the two steps leaves the next one to find the pipeline made and
//! move on.

use crate::changes::ChangeFeed;
use crate::db::{args, Arg, Db};
use crate::row::KilnRow;
use crate::{now_ms, StoreError, StoreResult, UserRecord};

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub id: i64,
    pub project_id: i64,
    pub description: String,
    pub ref_name: String,
    pub cron: String,
    pub cron_timezone: String,
    pub next_run_at: i64,
    pub active: bool,
    pub owner: Option<UserRecord>,
    pub last_pipeline_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A schedule's variable, its value sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleVariable {
    pub key: String,
    pub value_sealed: Vec<u8>,
    pub variable_type: String,
}

/// What a create sets, or an update changes (None: as it is).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleSettings {
    pub description: Option<String>,
    pub ref_name: Option<String>,
    pub cron: Option<String>,
    pub cron_timezone: Option<String>,
    pub active: Option<bool>,
    /// Computed by the caller from the cron pattern whenever it or the zone changes.
    pub next_run_at: Option<i64>,
    pub owner_id: Option<i64>,
}

fn schedule_from_row(row: &impl KilnRow) -> Result<ScheduleRecord, sqlx::Error> {
    Ok(ScheduleRecord {
        id: row.int("id")?,
        project_id: row.int("project_id")?,
        description: row.text("description")?,
        ref_name: row.text("ref")?,
        cron: row.text("cron")?,
        cron_timezone: row.text("cron_timezone")?,
        next_run_at: row.int("next_run_at")?,
        active: row.flag("active")?,
        owner: crate::users::user_from_row(row)?,
        last_pipeline_id: row.opt_int("last_pipeline_id")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

fn select(condition: &str) -> String {
    format!(
        "SELECT s.id, s.project_id, s.description, s.ref, s.cron, s.cron_timezone, s.next_run_at, \
         s.active, s.last_pipeline_id, s.created_at, s.updated_at, {} \
         FROM pipeline_schedules s LEFT JOIN users u ON u.id = s.owner_id WHERE {condition}",
        crate::users::USER_COLUMNS
    )
}

pub struct Schedules<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

impl Schedules<'_> {
    /// The project's schedules by id; only the active or inactive ones when asked.
    pub async fn list(
        &self,
        project_id: i64,
        active: Option<bool>,
    ) -> StoreResult<Vec<ScheduleRecord>> {
        let rows = match active {
            Some(active) => {
                let sql = select("s.project_id = $1 AND s.active = $2 ORDER BY s.id");
                self.db.read_all(&sql, args![project_id, active]).await?
            }
            None => {
                let sql = select("s.project_id = $1 ORDER BY s.id");
                self.db.read_all(&sql, args![project_id]).await?
            }
        };
        Ok(rows
            .iter()
            .map(schedule_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn find(&self, project_id: i64, id: i64) -> StoreResult<ScheduleRecord> {
        let sql = select("s.project_id = $1 AND s.id = $2");
        let row = self.db.read_optional(&sql, args![project_id, id]).await?;
        Ok(schedule_from_row(&row.ok_or(StoreError::NotFound)?)?)
    }

    /// A new schedule; every setting but `active` (default on) is required.
    pub async fn create(
        &self,
        project_id: i64,
        s: &ScheduleSettings,
    ) -> StoreResult<ScheduleRecord> {
        let missing = || StoreError::Conflict("a schedule needs every setting".into());
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO pipeline_schedules (project_id, description, ref, cron, cron_timezone, \
                 next_run_at, active, owner_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
                args![
                    project_id,
                    s.description.as_deref().ok_or_else(missing)?,
                    s.ref_name.as_deref().ok_or_else(missing)?,
                    s.cron.as_deref().ok_or_else(missing)?,
                    s.cron_timezone.as_deref().unwrap_or("UTC"),
                    s.next_run_at.ok_or_else(missing)?,
                    s.active.unwrap_or(true),
                    s.owner_id,
                    now
                ],
            )
            .await?;
        tx.commit().await?;
        self.find(project_id, id).await
    }

    pub async fn update(
        &self,
        project_id: i64,
        id: i64,
        s: &ScheduleSettings,
    ) -> StoreResult<ScheduleRecord> {
        let mut tx = self.db.begin(self.feed).await?;
        let texts = [
            ("description", &s.description),
            ("ref", &s.ref_name),
            ("cron", &s.cron),
            ("cron_timezone", &s.cron_timezone),
        ];
        let mut sets: Vec<String> = vec!["updated_at = $3".into()];
        let mut values: Vec<Arg<'_>> =
            vec![Arg::from(project_id), Arg::from(id), Arg::from(now_ms())];
        for (column, value) in texts {
            if let Some(value) = value {
                values.push(Arg::from(value.as_str()));
                sets.push(format!("{column} = ${}", values.len()));
            }
        }
        for (column, value) in [("next_run_at", s.next_run_at), ("owner_id", s.owner_id)] {
            if let Some(value) = value {
                values.push(Arg::from(value));
                sets.push(format!("{column} = ${}", values.len()));
            }
        }
        if let Some(active) = s.active {
            values.push(Arg::from(active));
            sets.push(format!("active = ${}", values.len()));
        }
        let sql = format!(
            "UPDATE pipeline_schedules SET {} WHERE project_id = $1 AND id = $2",
            sets.join(", ")
        );
        if tx.execute(&sql, &values).await? == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.find(project_id, id).await
    }

    /// Removes the schedule and its variables.
    pub async fn delete(&self, project_id: i64, id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "DELETE FROM pipeline_schedule_variables WHERE schedule_id IN \
             (SELECT id FROM pipeline_schedules WHERE project_id = $1 AND id = $2)",
            args![project_id, id],
        )
        .await?;
        let removed = tx
            .execute(
                "DELETE FROM pipeline_schedules WHERE project_id = $1 AND id = $2",
                args![project_id, id],
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    /// Active schedules whose run is due at `now`, the longest overdue first.
    pub async fn due(&self, now: i64, limit: i64) -> StoreResult<Vec<ScheduleRecord>> {
        let sql = select("s.active AND s.next_run_at <= $1 ORDER BY s.next_run_at, s.id LIMIT $2");
        let rows = self.db.read_all(&sql, args![now, limit]).await?;
        Ok(rows
            .iter()
            .map(schedule_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Moves the schedule's next run from `from` to `to`; false when another server moved
    /// it first (or it changed meanwhile).
    pub async fn advance(&self, id: i64, from: i64, to: i64) -> StoreResult<bool> {
        let mut tx = self.db.begin(self.feed).await?;
        let moved = tx
            .execute(
                "UPDATE pipeline_schedules SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2",
                args![id, from, to],
            )
            .await?;
        tx.commit().await?;
        Ok(moved == 1)
    }

    /// Remembers the last pipeline the schedule made.
    pub async fn ran(&self, id: i64, pipeline_id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE pipeline_schedules SET last_pipeline_id = $2 WHERE id = $1",
            args![id, pipeline_id],
        )
        .await?;
        tx.commit().await
    }

    pub async fn variables(&self, id: i64) -> StoreResult<Vec<ScheduleVariable>> {
        let rows = self
            .db
            .read_all(
                "SELECT key, value_sealed, variable_type FROM pipeline_schedule_variables \
                 WHERE schedule_id = $1 ORDER BY key",
                args![id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ScheduleVariable {
                    key: row.text("key")?,
                    value_sealed: row.bytes("value_sealed")?,
                    variable_type: row.text("variable_type")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Adds the variable; a key the schedule has already is a conflict.
    pub async fn add_variable(&self, id: i64, v: &ScheduleVariable) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let taken = tx
            .fetch_optional(
                "SELECT id FROM pipeline_schedule_variables WHERE schedule_id = $1 AND key = $2",
                args![id, v.key.as_str()],
            )
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict("key has already been taken".into()));
        }
        tx.execute(
            "INSERT INTO pipeline_schedule_variables (schedule_id, key, value_sealed, variable_type) \
             VALUES ($1, $2, $3, $4)",
            &[
                Arg::from(id),
                Arg::from(v.key.as_str()),
                Arg::Bytes(&v.value_sealed),
                Arg::from(v.variable_type.as_str()),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Changes the variable's value and type.
    pub async fn update_variable(&self, id: i64, v: &ScheduleVariable) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let changed = tx
            .execute(
                "UPDATE pipeline_schedule_variables SET value_sealed = $3, variable_type = $4 \
                 WHERE schedule_id = $1 AND key = $2",
                &[
                    Arg::from(id),
                    Arg::from(v.key.as_str()),
                    Arg::Bytes(&v.value_sealed),
                    Arg::from(v.variable_type.as_str()),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    pub async fn delete_variable(&self, id: i64, key: &str) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let removed = tx
            .execute(
                "DELETE FROM pipeline_schedule_variables WHERE schedule_id = $1 AND key = $2",
                args![id, key],
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }
}
