//! Commit statuses reported by other systems (GitLab's `GenericCommitStatus`): builds of kind
//! `external` in the stage `external` of the commit's pipeline, which runners never take. A
//! report updates the reporter's pending or running status of that name and ref, or adds a
//! new one (older ones of the name become retried); the pipeline's status follows, as for
//! any build. All of it, and making the pipeline when the commit has none, is one
//! transaction under the project's lock, so concurrent reports make one pipeline.

use crate::builds::{insert_build, parse_status, set_status, BuildPlace, Builds, CountDeltas};
use crate::db::{args, Tx};
use crate::pipelines::{insert_pipeline, process_pipeline, NewPipeline};
use crate::row::KilnRow;
use crate::{dialect, now_ms, NewBuild, StoreError};
use kiln_core::external_status::{self, ReportRefused};
use kiln_core::BuildStatus;

/// GitLab's `GenericCommitStatus::EXTERNAL_STAGE_IDX`: after every stage a file can declare.
pub const EXTERNAL_STAGE_IDX: i64 = 1_000_000;

/// One report of a commit's status by another system.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub project_id: i64,
    pub sha: String,
    pub ref_name: String,
    /// The pipeline to add it to; the newest of the sha and ref when None.
    pub pipeline_id: Option<i64>,
    pub name: String,
    pub user_id: i64,
    pub state: BuildStatus,
    pub target_url: Option<String>,
    pub description: Option<String>,
    pub coverage: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportFailure {
    /// `pipeline_id` names no pipeline of this sha and ref.
    #[error("no such pipeline")]
    NoPipeline,
    #[error(transparent)]
    Refused(#[from] ReportRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ReportFailure {
    fn from(err: sqlx::Error) -> Self {
        ReportFailure::Store(StoreError::Db(err))
    }
}

impl Builds<'_> {
    /// Records `report`; `pipeline` is the pipeline to make (without builds) when the commit
    /// has none on that ref. Returns the status's build id.
    pub async fn report_status(
        &self,
        report: &StatusReport,
        pipeline: &NewPipeline,
    ) -> Result<i64, ReportFailure> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(dialect::lock_project(self.db), args![report.project_id])
            .await?;
        let pipeline_id = match find_pipeline(&mut tx, report).await? {
            Some(id) => id,
            None if report.pipeline_id.is_some() => return Err(ReportFailure::NoPipeline),
            None => insert_pipeline(&mut tx, pipeline).await?.pipeline_id,
        };
        tx.execute(dialect::lock_pipeline(self.db), args![pipeline_id])
            .await?;
        let mut counts = CountDeltas::default();
        let (id, from) = match current_status(&mut tx, report, pipeline_id).await? {
            Some(found) => found,
            None => (
                add_status(&mut tx, &mut counts, report, pipeline_id).await?,
                BuildStatus::Created,
            ),
        };
        let mut status = from;
        for next in external_status::path(from, report.state)? {
            set_status(
                &mut tx,
                &mut counts,
                report.project_id,
                id,
                (status, next),
                now,
            )
            .await?;
            status = next;
        }
        tx.execute(
            "UPDATE builds SET target_url = COALESCE($1, target_url), \
             description = COALESCE($2, description), coverage = COALESCE($3, coverage), \
             failure_reason = CASE WHEN status = 'failed' THEN 'api_failure' ELSE failure_reason END \
             WHERE id = $4",
            args![
                &report.target_url,
                &report.description,
                report.coverage,
                id
            ],
        )
        .await?;
        process_pipeline(&mut tx, &mut counts, pipeline_id, now).await?;
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// The newest pipeline of the report's sha and ref (the one named, if any); a child pipeline
/// only when named.
async fn find_pipeline(tx: &mut Tx<'_>, report: &StatusReport) -> Result<Option<i64>, StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT pl.id FROM pipelines pl JOIN commits c ON c.id = pl.commit_id \
             WHERE pl.project_id = $1 AND c.sha = $2 AND pl.ref = $3 AND ($4 = 0 OR pl.id = $4) \
             AND ($4 <> 0 OR pl.upstream_build_id IS NULL) ORDER BY pl.id DESC LIMIT 1",
            args![
                report.project_id,
                &report.sha,
                &report.ref_name,
                report.pipeline_id.unwrap_or(0)
            ],
        )
        .await?;
    row.map(|r| r.int("id"))
        .transpose()
        .map_err(StoreError::from)
}

/// The reporter's own pending or running status of this name in the pipeline, which a new
/// report updates (GitLab's `find_or_initialize_by` over `running_or_pending`).
async fn current_status(
    tx: &mut Tx<'_>,
    report: &StatusReport,
    pipeline_id: i64,
) -> Result<Option<(i64, BuildStatus)>, ReportFailure> {
    let row = tx
        .fetch_optional(
            "SELECT id, status FROM builds WHERE pipeline_id = $1 AND kind = 'external' \
             AND name = $2 AND ref = $3 AND user_id = $4 AND status IN ('pending', 'running') \
             AND NOT retried ORDER BY id DESC LIMIT 1",
            args![pipeline_id, &report.name, &report.ref_name, report.user_id],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some((row.int("id")?, parse_status(row.text("status")?)?))),
    }
}

/// A new created status in the pipeline's `external` stage; earlier builds of its name
/// become retried, as GitLab's `update_older_statuses_retried!` does.
async fn add_status(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    report: &StatusReport,
    pipeline_id: i64,
) -> Result<i64, ReportFailure> {
    let row = tx
        .fetch_one(
            "SELECT commit_id, tag, protected FROM pipelines WHERE id = $1",
            args![pipeline_id],
        )
        .await?;
    let place = BuildPlace {
        project_id: report.project_id,
        pipeline_id,
        commit_id: row.int("commit_id")?,
        ref_name: &report.ref_name,
        tag: row.flag("tag")?,
        protected: row.flag("protected")?,
    };
    let build = NewBuild {
        user_id: Some(report.user_id),
        ..NewBuild::new(
            &report.name,
            "external",
            EXTERNAL_STAGE_IDX,
            BuildStatus::Created,
        )
    };
    let id = insert_build(tx, counts, place, &build).await?;
    tx.execute(
        "UPDATE builds SET kind = 'external' WHERE id = $1",
        args![id],
    )
    .await?;
    tx.execute(
        "UPDATE builds SET retried = TRUE WHERE pipeline_id = $1 AND name = $2 AND id <> $3 \
         AND NOT retried",
        args![pipeline_id, &report.name, id],
    )
    .await?;
    Ok(id)
}
