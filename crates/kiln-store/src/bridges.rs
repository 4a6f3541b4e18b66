//! Bridges: builds of kind `bridge` (a `trigger:` job), which runners never take. When its
//! turn comes a bridge is pending; a server compiles its downstream pipeline and starts it
//! here, in one transaction that also moves the bridge on, so however many servers try,
//! one downstream pipeline is made. A bridge with `strategy: depend` then runs until its
//! pipeline ends and takes its result, as GitLab's `Ci::Bridge#inherit_status_from_downstream!`
//! does (success, or failed for failed, canceled and skipped); any other is done once its
//! pipeline exists.

use crate::builds::{insert_build, parse_status, set_status, Builds, CountDeltas};
use crate::db::{args, Tx};
use crate::pipelines::{
    insert_pipeline, lock_project, process_pipeline, tell_hooks_of_creation, NewPipeline,
};
use crate::row::KilnRow;
use crate::{dialect, now_ms, StoreResult};
use kiln_core::{BuildStatus, PipelineStatus};

/// A bridge waiting for its downstream pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBridge {
    pub project_id: i64,
    pub pipeline_id: i64,
    pub build_id: i64,
}

impl Builds<'_> {
    /// The bridges waiting for their downstream pipeline, oldest first.
    pub async fn pending_bridges(&self, limit: i64) -> StoreResult<Vec<PendingBridge>> {
        let rows = self
            .db
            .read_all(
                "SELECT id, project_id, pipeline_id FROM builds \
                 WHERE kind = 'bridge' AND status = 'pending' ORDER BY id LIMIT $1",
                args![limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingBridge {
                    project_id: row.int("project_id")?,
                    pipeline_id: row.int("pipeline_id")?,
                    build_id: row.int("id")?,
                })
            })
            .collect()
    }

    /// Starts `child` (whose `upstream` names the bridge) for the pending bridge, and moves
    /// the bridge on: running while a `depend` bridge waits for it, success otherwise.
    /// None when the bridge is no longer pending (another server started it, or it was
    /// canceled): nothing is made then.
    pub async fn start_downstream(
        &self,
        bridge: PendingBridge,
        child: &NewPipeline,
    ) -> StoreResult<Option<i64>> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        lock_project(&mut tx, self.db, bridge.project_id).await?;
        tx.execute(dialect::lock_pipeline(self.db), args![bridge.pipeline_id])
            .await?;
        let mut counts = CountDeltas::default();
        let claimed = set_status(
            &mut tx,
            &mut counts,
            bridge.project_id,
            bridge.build_id,
            (BuildStatus::Pending, BuildStatus::Running),
            now,
        )
        .await?;
        if !claimed {
            return Ok(None);
        }
        let place = insert_pipeline(&mut tx, child).await?;
        let mut ids = Vec::with_capacity(child.builds.len());
        for build in &child.builds {
            ids.push(insert_build(&mut tx, &mut counts, place, build).await?);
        }
        tell_hooks_of_creation(&mut tx, child, place.pipeline_id, &ids).await?;
        // A child with errors is kept, failed, but the bridge did not make a pipeline that
        // runs (GitLab's `created_successfully?`): it fails, whatever its strategy.
        let broken = child.yaml_errors.is_some();
        let depends = child.upstream.is_some_and(|u| u.depends);
        if broken || !depends {
            let to = if broken {
                BuildStatus::Failed
            } else {
                BuildStatus::Success
            };
            let bridge_move = (BuildStatus::Running, to);
            set_status(
                &mut tx,
                &mut counts,
                bridge.project_id,
                bridge.build_id,
                bridge_move,
                now,
            )
            .await?;
        }
        if broken {
            note_failure(
                &mut tx,
                bridge.build_id,
                "the downstream pipeline has errors",
            )
            .await?;
        } else {
            // Processing the child may end it at once, and a bridge that depends on it with it.
            process_pipeline(&mut tx, &mut counts, place.pipeline_id, now).await?;
        }
        process_pipeline(&mut tx, &mut counts, bridge.pipeline_id, now).await?;
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(place.pipeline_id))
    }

    /// Fails a pending bridge whose downstream pipeline cannot be made (GitLab's
    /// `downstream_pipeline_creation_failed`), with `reason` as its description.
    pub async fn fail_bridge(&self, bridge: PendingBridge, reason: &str) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(dialect::lock_pipeline(self.db), args![bridge.pipeline_id])
            .await?;
        let mut counts = CountDeltas::default();
        let failed = set_status(
            &mut tx,
            &mut counts,
            bridge.project_id,
            bridge.build_id,
            (BuildStatus::Pending, BuildStatus::Failed),
            now,
        )
        .await?;
        if failed {
            note_failure(&mut tx, bridge.build_id, reason).await?;
            process_pipeline(&mut tx, &mut counts, bridge.pipeline_id, now).await?;
        }
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(failed)
    }

    /// The pipeline whose bridge started `pipeline_id`, if a bridge did.
    pub async fn upstream_of(&self, pipeline_id: i64) -> StoreResult<Option<i64>> {
        let row = self
            .db
            .read_optional(
                "SELECT b.pipeline_id FROM pipelines p JOIN builds b ON b.id = p.upstream_build_id \
                 WHERE p.id = $1",
                args![pipeline_id],
            )
            .await?;
        Ok(row.map(|r| r.int("pipeline_id")).transpose()?)
    }

    /// The downstream pipelines bridges of `pipeline_id` started: (bridge id, pipeline id).
    pub async fn downstream_of(&self, pipeline_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        let rows = self
            .db
            .read_all(
                "SELECT p.upstream_build_id, p.id FROM pipelines p JOIN builds b \
                 ON b.id = p.upstream_build_id WHERE b.pipeline_id = $1 ORDER BY p.id",
                args![pipeline_id],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.int("upstream_build_id")?, row.int("id")?)))
            .collect()
    }
}

/// GitLab's `downstream_pipeline_creation_failed`, with why as the bridge's description.
async fn note_failure(tx: &mut Tx<'_>, bridge_id: i64, reason: &str) -> StoreResult<()> {
    tx.execute(
        "UPDATE builds SET failure_reason = 'downstream_pipeline_creation_failed', \
         description = $1 WHERE id = $2",
        args![reason, bridge_id],
    )
    .await?;
    Ok(())
}

/// The pipeline `pipeline_id` ended with `status`: a running bridge that depends on it takes
/// its result, and its own pipeline moves on. Runs in the transaction that ended the child,
/// which holds the child's lock and then takes the parent's (always in that order).
pub(crate) async fn follow_downstream(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    pipeline_id: i64,
    status: PipelineStatus,
    now: i64,
) -> StoreResult<()> {
    let Some(row) = tx
        .fetch_optional(
            "SELECT b.id, b.project_id, b.pipeline_id, b.status FROM pipelines p \
             JOIN builds b ON b.id = p.upstream_build_id WHERE p.id = $1 AND p.upstream_depends",
            args![pipeline_id],
        )
        .await?
    else {
        return Ok(());
    };
    let from = parse_status(row.text("status")?)?;
    let to = match status {
        PipelineStatus::Success => BuildStatus::Success,
        PipelineStatus::Failed | PipelineStatus::Canceled | PipelineStatus::Skipped => {
            BuildStatus::Failed
        }
        _ => return Ok(()),
    };
    if from != BuildStatus::Running {
        return Ok(());
    }
    let (bridge, project, parent) = (
        row.int("id")?,
        row.int("project_id")?,
        row.int("pipeline_id")?,
    );
    tx.execute(dialect::lock_pipeline_in(tx.is_postgres()), args![parent])
        .await?;
    if set_status(tx, counts, project, bridge, (from, to), now).await? {
        process_pipeline(tx, counts, parent, now).await?;
    }
    Ok(())
}
