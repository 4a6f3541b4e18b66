//! Pipelines: a commit's run of builds. Created with all their builds in one transaction.

use crate::builds::{apply_counts, insert_build, CountDeltas, NewBuild};
use crate::db::{on_write, Db};
use crate::{now_ms, CommitRecord, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct NewPipeline {
    pub project_id: i64,
    pub commit: CommitRecord,
    pub ref_name: String,
    pub tag: bool,
    pub status: String,
    pub user_id: Option<i64>,
    pub yaml_errors: Option<String>,
    /// How it was started: push, web, trigger, api.
    pub source: String,
    /// Pipeline variables (trigger or API), a JSON array of [key, value] pairs.
    pub variables: String,
    pub trigger_request_id: Option<i64>,
    pub builds: Vec<NewBuild>,
}

pub struct Pipelines<'a> {
    pub(crate) db: &'a Db,
    pub(crate) versions: &'a crate::versions::Versions,
}

/// Upserts the commit inside transaction `$tx` and evaluates to its id.
macro_rules! upsert_commit {
    ($tx:expr, $project_id:expr, $c:expr) => {{
        let c: &$crate::CommitRecord = $c;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO commits (project_id, sha, message, author_name, author_email, authored_at, \
             author_tz_offset_minutes) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (project_id, sha) DO UPDATE SET message = excluded.message RETURNING id",
        )
        .bind($project_id)
        .bind(&c.sha)
        .bind(&c.message)
        .bind(&c.author_name)
        .bind(&c.author_email)
        .bind(c.authored_at)
        .bind(c.author_tz_offset_minutes)
        .fetch_one(&mut *$tx)
        .await?;
        id
    }};
}

impl Pipelines<'_> {
    /// Inserts the pipeline, its commit (if new) and all its builds atomically.
    /// Returns the pipeline id and the build ids in the order given.
    pub async fn create(&self, new: &NewPipeline) -> StoreResult<(i64, Vec<i64>)> {
        let created = on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            let commit_id = upsert_commit!(tx, new.project_id, &new.commit);
            let pipeline_id: i64 = sqlx::query_scalar(
                "INSERT INTO pipelines (project_id, commit_id, ref, tag, status, user_id, yaml_errors, created_at, \
                 source, variables, trigger_request_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            )
            .bind(new.project_id)
            .bind(commit_id)
            .bind(&new.ref_name)
            .bind(new.tag)
            .bind(&new.status)
            .bind(new.user_id)
            .bind(&new.yaml_errors)
            .bind(now_ms())
            .bind(&new.source)
            .bind(&new.variables)
            .bind(new.trigger_request_id)
            .fetch_one(&mut *tx)
            .await?;
            let mut ids = Vec::with_capacity(new.builds.len());
            let mut counts = CountDeltas::default();
            for build in &new.builds {
                ids.push(insert_build!(tx, counts, new.project_id, pipeline_id, commit_id, &new.ref_name, new.tag, build));
            }
            apply_counts!(tx, counts);
            tx.commit().await?;
            StoreResult::Ok((pipeline_id, ids))
        })?;
        self.versions.bump_builds(new.project_id);
        Ok(created)
    }
}
