//! What a user does to a whole pipeline: cancel what still runs, retry what failed, delete
//! it. Each is one transaction that locks the pipeline first, like every change to its
//! builds, and processes it before committing.

use crate::builds::{parse_status, set_status, CountDeltas};
use crate::changes::Change;
use crate::db::args;
use crate::pipelines::{lock_pipeline, process_pipeline, Pipelines};
use crate::queue::retry_build_as;
use crate::row::KilnRow;
use crate::{now_ms, ArchiveLocation, StoreResult};
use kiln_core::BuildStatus;

/// GitLab's `CANCELABLE_STATUSES` (a manual job waits for a person, and is left alone).
const CANCELABLE: &str = "'created', 'pending', 'running'";

impl Pipelines<'_> {
    /// Cancels the pipeline's builds that are created, pending or running; their runners
    /// hear of it through the change feed. Returns how many were canceled.
    pub async fn cancel(&self, project_id: i64, pipeline_id: i64) -> StoreResult<usize> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        lock_pipeline(&mut tx, self.db, project_id, pipeline_id).await?;
        let mut counts = CountDeltas::default();
        let canceled = cancel_builds(&mut tx, &mut counts, project_id, pipeline_id, now).await?;
        process_pipeline(&mut tx, &mut counts, pipeline_id, now).await?;
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(canceled)
    }

    /// Retries every failed or canceled build of the pipeline (GitLab's `retry_failed`; not
    /// external statuses, which only their reporter changes):
    /// each gets a copy, created, and processing enqueues the copies stage by stage.
    /// Returns how many were retried.
    pub async fn retry_failed(
        &self,
        project_id: i64,
        pipeline_id: i64,
        user_id: Option<i64>,
    ) -> StoreResult<usize> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        crate::pipelines::lock_project(&mut tx, self.db, project_id).await?;
        lock_pipeline(&mut tx, self.db, project_id, pipeline_id).await?;
        let rows = tx
            .fetch_all(
                "SELECT id FROM builds WHERE pipeline_id = $1 AND NOT retried \
                 AND status IN ('failed', 'canceled') AND kind <> 'external' ORDER BY id",
                args![pipeline_id],
            )
            .await?;
        let mut counts = CountDeltas::default();
        let place = (project_id, pipeline_id);
        for row in &rows {
            let id = row.int("id")?;
            retry_build_as(
                &mut tx,
                &mut counts,
                place,
                id,
                user_id,
                now,
                BuildStatus::Created,
            )
            .await?;
        }
        let enqueued = process_pipeline(&mut tx, &mut counts, pipeline_id, now).await?;
        counts.apply(&mut tx).await?;
        if !enqueued.is_empty() {
            tx.notify(Change::Pending).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Deletes the pipeline with its builds, their logs and tags, canceling first what
    /// still runs (so runners stop). Returns where the builds' archives are, for the
    /// caller to remove from the artifact store.
    pub async fn delete(
        &self,
        project_id: i64,
        pipeline_id: i64,
    ) -> StoreResult<Vec<(i64, ArchiveLocation)>> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        lock_pipeline(&mut tx, self.db, project_id, pipeline_id).await?;
        let mut counts = CountDeltas::default();
        cancel_builds(&mut tx, &mut counts, project_id, pipeline_id, now).await?;
        // A child deleted ends as canceled for a bridge that waits on it.
        crate::bridges::follow_downstream(
            &mut tx,
            &mut counts,
            pipeline_id,
            kiln_core::PipelineStatus::Canceled,
            now,
        )
        .await?;
        let rows = tx
            .fetch_all(
                "SELECT id, status, artifacts_backend, artifacts_file FROM builds \
                 WHERE pipeline_id = $1",
                args![pipeline_id],
            )
            .await?;
        let mut archives = Vec::new();
        for row in &rows {
            let status = parse_status(row.text("status")?)?;
            counts.add(project_id, status, -1);
            if let Some(file) = row.opt_text("artifacts_file")? {
                let location = ArchiveLocation {
                    backend: row.opt_text("artifacts_backend")?,
                    file,
                };
                archives.push((row.int("id")?, location));
            }
        }
        for table in ["trace_parts", "artifact_chunks", "build_tags"] {
            let sql = format!(
                "DELETE FROM {table} WHERE build_id IN (SELECT id FROM builds WHERE pipeline_id = $1)"
            );
            tx.execute(&sql, args![pipeline_id]).await?;
        }
        tx.execute(
            "DELETE FROM builds WHERE pipeline_id = $1",
            args![pipeline_id],
        )
        .await?;
        tx.execute("DELETE FROM pipelines WHERE id = $1", args![pipeline_id])
            .await?;
        counts.apply(&mut tx).await?;
        tx.notify(Change::Builds(project_id)).await?;
        tx.commit().await?;
        Ok(archives)
    }
}

async fn cancel_builds(
    tx: &mut crate::db::Tx<'_>,
    counts: &mut CountDeltas,
    project_id: i64,
    pipeline_id: i64,
    now: i64,
) -> StoreResult<usize> {
    let sql = format!(
        "SELECT id, status FROM builds WHERE pipeline_id = $1 AND status IN ({CANCELABLE}) \
         ORDER BY id"
    );
    let rows = tx.fetch_all(&sql, args![pipeline_id]).await?;
    let mut canceled = 0;
    for row in &rows {
        let status = parse_status(row.text("status")?)?;
        let transition = (status, BuildStatus::Canceled);
        if set_status(tx, counts, project_id, row.int("id")?, transition, now).await? {
            canceled += 1;
        }
    }
    Ok(canceled)
}
