//! What happens to builds after they are created: pipeline processing, the claim a runner
//! makes, finishing, playing, recovery after a crash, and artifacts. Each change is one
//! transaction that also keeps `build_counts` and the pipeline's status.

use crate::builds::{
    apply_counts, build_from_row, insert_build, locking, parse_status, select_builds, set_status,
    Builds, CountDeltas, NewBuild, TransitionFailure,
};
use crate::db::{on_read, on_write, Db};
use crate::pipelines::Pipelines;
use crate::row::KilnRow;
use crate::{now_ms, StoreError, StoreResult};
use kiln_core::{processing, BuildEvent, BuildStatus, JobState, JobWhen};

/// A pipeline as runners and services need it.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRecord {
    pub id: i64,
    pub project_id: i64,
    pub sha: String,
    pub ref_name: String,
    pub tag: bool,
    pub status: String,
    pub source: String,
    /// JSON array of [key, value] pairs.
    pub variables: String,
    pub yaml_errors: Option<String>,
    pub user_id: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// How a running build ended, as its runner reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub success: bool,
    pub failure_reason: Option<String>,
    pub exit_code: Option<i64>,
    pub coverage: Option<f64>,
    /// If it failed, run it again as a new build in the same transaction (`retry:`), so that
    /// nothing sees the failure in between (later stages skipped, on_failure jobs started).
    pub retry: bool,
}

/// A build a runner has claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub build_id: i64,
    pub project_id: i64,
    pub pipeline_id: i64,
}

const PIPELINE_SELECT: &str =
    "SELECT p.id, p.project_id, c.sha, p.ref, p.tag, p.status, p.source, p.variables, \
    p.yaml_errors, p.user_id, p.created_at, p.started_at, p.finished_at \
    FROM pipelines p JOIN commits c ON c.id = p.commit_id";

fn pipeline_from_row(row: &impl KilnRow) -> Result<PipelineRecord, sqlx::Error> {
    Ok(PipelineRecord {
        id: row.int("id")?,
        project_id: row.int("project_id")?,
        sha: row.text("sha")?,
        ref_name: row.text("ref")?,
        tag: row.flag("tag")?,
        status: row.text("status")?,
        source: row.text("source")?,
        variables: row.text("variables")?,
        yaml_errors: row.opt_text("yaml_errors")?,
        user_id: row.opt_int("user_id")?,
        created_at: row.int("created_at")?,
        started_at: row.opt_int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
    })
}

/// Runs core processing on a pipeline inside transaction `$tx` and stores the decisions and
/// the pipeline status, noting count changes in `$counts`. Evaluates to the project id and
/// the ids of builds that became pending. The caller has taken the pipeline's lock.
macro_rules! process_pipeline {
    ($tx:expr, $counts:expr, $pipeline_id:expr, $now:expr) => {{
        let rows = sqlx::query(
            "SELECT id, project_id, name, stage_idx, status, \"when\", allow_failure, needs, retried \
             FROM builds WHERE pipeline_id = $1 ORDER BY id",
        )
        .bind($pipeline_id)
        .fetch_all(&mut *$tx)
        .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        let mut project_id = 0_i64;
        for row in &rows {
            project_id = row.int("project_id")?;
            let needs = row
                .opt_text("needs")?
                .map(|n| serde_json::from_str::<Vec<String>>(&n).unwrap_or_default());
            jobs.push(JobState {
                id: row.int("id")?,
                name: row.text("name")?,
                stage_idx: row.int("stage_idx")?,
                status: parse_status(row.text("status")?)?,
                when: JobWhen::parse(&row.text("when")?),
                allow_failure: row.flag("allow_failure")?,
                needs,
                retried: row.flag("retried")?,
            });
        }
        let mut enqueued = Vec::new();
        for (id, event) in processing::process(&jobs) {
            let Some(job) = jobs.iter_mut().find(|j| j.id == id) else { continue };
            let Ok(next) = job.status.apply(event) else { continue };
            if set_status!($tx, $counts, project_id, id, job.status, next, $now) {
                job.status = next;
                if next == BuildStatus::Pending {
                    enqueued.push(id);
                }
            }
        }
        let status = processing::pipeline_status(&jobs);
        let running = !matches!(status, kiln_core::PipelineStatus::Created);
        sqlx::query(
            "UPDATE pipelines SET status = $1, \
             started_at = CASE WHEN $2 THEN COALESCE(started_at, $3) ELSE started_at END, \
             finished_at = CASE WHEN $4 THEN COALESCE(finished_at, $3) ELSE NULL END WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(running)
        .bind($now)
        .bind(status.is_complete())
        .bind($pipeline_id)
        .execute(&mut *$tx)
        .await?;
        (project_id, enqueued)
    }};
}

/// Finds build `$build_id` (of project `$project_id` when given) inside transaction `$tx`
/// and locks its pipeline, before any of the pipeline's builds: every transaction that
/// changes a pipeline's builds takes that lock first, so they queue instead of deadlocking,
/// and each sees the others' committed changes when it processes the pipeline.
/// Evaluates to (project id, pipeline id).
macro_rules! lock_pipeline_of {
    ($tx:expr, $locking:expr, $build_id:expr, $project_id:expr) => {{
        let project_id: Option<i64> = $project_id;
        let row = sqlx::query("SELECT project_id, pipeline_id FROM builds WHERE id = $1")
            .bind($build_id)
            .fetch_optional(&mut *$tx)
            .await?
            .filter(|row| project_id.is_none_or(|p| row.int("project_id").ok() == Some(p)))
            .ok_or(StoreError::NotFound)?;
        let ids: (i64, i64) = (row.int("project_id")?, row.int("pipeline_id")?);
        sqlx::query($locking.pipeline)
            .bind(ids.1)
            .execute(&mut *$tx)
            .await?;
        ids
    }};
}

/// Retries build `$build_id` of locked pipeline `$pipeline_id` inside transaction `$tx`: marks
/// it retried, inserts a pending copy for user `$user_id` (the old build's user when None),
/// and puts the jobs skipped after it (later stages, or needing it) back to created, as
/// GitLab's `ResetSkippedJobsService` does. The caller processes the pipeline next.
/// Evaluates to the new build's id.
macro_rules! retry_build {
    ($tx:expr, $counts:expr, $project_id:expr, $pipeline_id:expr, $build_id:expr, $user_id:expr, $now:expr) => {{
        let (project_id, pipeline_id, build_id, now): (i64, i64, i64, i64) =
            ($project_id, $pipeline_id, $build_id, $now);
        let sql = select_builds("b.id = $1");
        let row = sqlx::query(&sql)
            .bind(build_id)
            .fetch_one(&mut *$tx)
            .await?;
        let old = build_from_row(&row)?;
        let (commit_id, needs): (i64, Option<String>) =
            sqlx::query_as("SELECT commit_id, needs FROM builds WHERE id = $1")
                .bind(build_id)
                .fetch_one(&mut *$tx)
                .await?;
        // Once only, and only when finished: two retries of one build make one new build.
        let marked = sqlx::query(
            "UPDATE builds SET retried = TRUE WHERE id = $1 AND NOT retried \
             AND status IN ('success', 'failed', 'canceled')",
        )
        .bind(build_id)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if marked != 1 {
            return Err(StoreError::Conflict("the build is not retryable".into()).into());
        }
        let user_id: Option<i64> = $user_id;
        let copy = NewBuild {
            needs,
            when: old.when.clone(),
            allow_failure: old.allow_failure,
            options: old.options.clone(),
            commands: old.commands.clone(),
            user_id: user_id.or(old.user.as_ref().map(|u| u.id)),
            queued_at: Some(now),
            ..NewBuild::new(&old.name, &old.stage, old.stage_idx, BuildStatus::Pending)
        };
        let id = insert_build!(
            $tx,
            $counts,
            project_id,
            pipeline_id,
            commit_id,
            &old.ref_name,
            old.tag,
            &copy
        );
        let skipped = sqlx::query(
            "SELECT id, needs FROM builds WHERE pipeline_id = $1 AND status = 'skipped' \
             AND NOT retried AND (stage_idx > $2 OR needs IS NOT NULL) ORDER BY id",
        )
        .bind(pipeline_id)
        .bind(old.stage_idx)
        .fetch_all(&mut *$tx)
        .await?;
        for row in &skipped {
            let after = match row.opt_text("needs")? {
                // A DAG job waits only for what it needs.
                Some(needs) => serde_json::from_str::<Vec<String>>(&needs)
                    .unwrap_or_default()
                    .contains(&old.name),
                None => true,
            };
            if after {
                let skipped_id = row.int("id")?;
                set_status!(
                    $tx,
                    $counts,
                    project_id,
                    skipped_id,
                    BuildStatus::Skipped,
                    BuildStatus::Created,
                    now
                );
            }
        }
        id
    }};
}

impl Pipelines<'_> {
    pub async fn get(&self, pipeline_id: i64) -> StoreResult<PipelineRecord> {
        let sql = format!("{PIPELINE_SELECT} WHERE p.id = $1");
        on_read!(self.db, pool => {
            let row = sqlx::query(&sql).bind(pipeline_id).fetch_optional(pool).await?;
            row.as_ref().map(pipeline_from_row).transpose()?.ok_or(StoreError::NotFound)
        })
    }

    /// Whether a pipeline already exists for this ref at this sha (the poller asks).
    pub async fn exists_for(
        &self,
        project_id: i64,
        ref_name: &str,
        sha: &str,
    ) -> StoreResult<bool> {
        let found: Option<i64> = on_read!(self.db, pool => {
            sqlx::query_scalar(
                "SELECT p.id FROM pipelines p JOIN commits c ON c.id = p.commit_id \
                 WHERE p.project_id = $1 AND p.ref = $2 AND c.sha = $3 LIMIT 1",
            )
            .bind(project_id).bind(ref_name).bind(sha).fetch_optional(pool).await?
        });
        Ok(found.is_some())
    }

    /// Decides what the pipeline's created builds do now and stores it. Returns the builds
    /// that became pending (for runners to be woken).
    pub async fn process(&self, pipeline_id: i64) -> StoreResult<Vec<i64>> {
        let now = now_ms();
        let (project_id, enqueued) = on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(locking(self.db).pipeline).bind(pipeline_id).execute(&mut *tx).await?;
            let mut counts = CountDeltas::default();
            let result = process_pipeline!(tx, counts, pipeline_id, now);
            apply_counts!(tx, counts);
            tx.commit().await?;
            result
        });
        self.versions.bump_builds(project_id);
        Ok(enqueued)
    }
}

/// The claim, per backend: PostgreSQL lets concurrent claimers skip each other's locked
/// rows; SQLite has one writer, so the guarded UPDATE alone makes the claim exclusive.
fn claim_sql(db: &Db) -> &'static str {
    match db {
        Db::Postgres(_) => {
            "UPDATE builds SET status = 'running', runner_id = $1, started_at = $2 WHERE id = \
             (SELECT id FROM builds WHERE status = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             AND status = 'pending' RETURNING id, project_id, pipeline_id"
        }
        Db::Sqlite { .. } => {
            "UPDATE builds SET status = 'running', runner_id = $1, started_at = $2 WHERE id = \
             (SELECT id FROM builds WHERE status = 'pending' ORDER BY id LIMIT 1) \
             AND status = 'pending' RETURNING id, project_id, pipeline_id"
        }
    }
}

impl Builds<'_> {
    /// Gives the oldest pending build to `runner_id`, moving it to running. Each build is
    /// claimed at most once, whatever the number of runners and servers.
    ///
    /// The claim commits before the pipeline's status is brought up to date in a second
    /// transaction: every other change locks the pipeline before its builds, and a claim that
    /// held its build while waiting for the pipeline could deadlock with them.
    pub async fn claim(&self, runner_id: i64) -> StoreResult<Option<Claimed>> {
        let now = now_ms();
        let sql = claim_sql(self.db);
        let claimed = on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(sql).bind(runner_id).bind(now).fetch_optional(&mut *tx).await?;
            let claimed = match row {
                None => None,
                Some(row) => {
                    let claimed = Claimed {
                        build_id: row.int("id")?,
                        project_id: row.int("project_id")?,
                        pipeline_id: row.int("pipeline_id")?,
                    };
                    let mut counts = CountDeltas::default();
                    counts.add(claimed.project_id, BuildStatus::Pending, -1);
                    counts.add(claimed.project_id, BuildStatus::Running, 1);
                    apply_counts!(tx, counts);
                    Some(claimed)
                }
            };
            tx.commit().await?;
            claimed
        });
        if let Some(c) = claimed {
            self.versions.bump_builds(c.project_id);
            // The build is claimed whatever happens here: an error must not make the caller
            // drop it. The pipeline's status catches up on its next processing.
            let pipelines = Pipelines {
                db: self.db,
                versions: self.versions,
            };
            if let Err(err) = pipelines.process(c.pipeline_id).await {
                tracing::warn!(error = %err, pipeline = c.pipeline_id, "processing after a claim failed");
            }
        }
        Ok(claimed)
    }

    /// Records how a running build ended and processes its pipeline. A build that is no
    /// longer running (canceled meanwhile) keeps its status; returns the status it has now.
    pub async fn finish(
        &self,
        build_id: i64,
        finish: &Finish,
    ) -> StoreResult<(BuildStatus, Vec<i64>)> {
        let now = now_ms();
        let (project_id, status, enqueued) = on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            let locking = locking(self.db);
            let (project_id, pipeline_id) = lock_pipeline_of!(tx, locking, build_id, None::<i64>);
            let current: String = sqlx::query_scalar(locking.build_status)
                .bind(build_id)
                .fetch_one(&mut *tx)
                .await?;
            let current = parse_status(current)?;
            let event = if finish.success { BuildEvent::Succeed } else { BuildEvent::Fail };
            let mut status = current;
            let mut counts = CountDeltas::default();
            let mut moved = false;
            if let Ok(next) = current.apply(event) {
                if set_status!(tx, counts, project_id, build_id, current, next, now) {
                    status = next;
                    moved = true;
                    sqlx::query("UPDATE builds SET failure_reason = $1, exit_code = $2, coverage = $3 WHERE id = $4")
                        .bind(&finish.failure_reason)
                        .bind(finish.exit_code)
                        .bind(finish.coverage)
                        .bind(build_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            // Only a failure this finish recorded is retried (not one recorded before).
            let retried = if finish.retry && moved && status == BuildStatus::Failed {
                Some(retry_build!(tx, counts, project_id, pipeline_id, build_id, None, now))
            } else {
                None
            };
            let (_, mut enqueued) = process_pipeline!(tx, counts, pipeline_id, now);
            enqueued.extend(retried);
            apply_counts!(tx, counts);
            tx.commit().await?;
            (project_id, status, enqueued)
        });
        self.versions.bump_builds(project_id);
        Ok((status, enqueued))
    }

    /// Applies a user's action (cancel, play) and processes the pipeline in the same
    /// transaction. `user_id` becomes the build's user when given (GitLab does so on play).
    pub async fn act(
        &self,
        project_id: i64,
        build_id: i64,
        event: BuildEvent,
        user_id: Option<i64>,
    ) -> Result<(BuildStatus, Vec<i64>), TransitionFailure> {
        let now = now_ms();
        let outcome = on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            let locking = locking(self.db);
            let (_, pipeline_id) = lock_pipeline_of!(tx, locking, build_id, Some(project_id));
            let current: String = sqlx::query_scalar(locking.build_status)
                .bind(build_id)
                .fetch_one(&mut *tx)
                .await?;
            let current = parse_status(current)?;
            let next = current.apply(event)?;
            let mut counts = CountDeltas::default();
            if !set_status!(tx, counts, project_id, build_id, current, next, now) {
                return Err(StoreError::Conflict("the build changed meanwhile".into()).into());
            }
            if let Some(user) = user_id {
                sqlx::query("UPDATE builds SET user_id = $1 WHERE id = $2").bind(user).bind(build_id).execute(&mut *tx).await?;
            }
            let (_, mut enqueued) = process_pipeline!(tx, counts, pipeline_id, now);
            apply_counts!(tx, counts);
            tx.commit().await?;
            if next == BuildStatus::Pending {
                enqueued.push(build_id);
            }
            Result::<_, TransitionFailure>::Ok((next, enqueued))
        })?;
        self.versions.bump_builds(project_id);
        Ok(outcome)
    }

    /// Makes a new pending build copying `build_id`'s definition (GitLab's `Ci::Build.retry`):
    /// name, stage, commit, ref, tag, options, commands, when, allow_failure; the user is
    /// `user_id` (the old build's when None). The old build is left as it was but for its
    /// `retried` mark. Jobs skipped after it go back to created and the pipeline is processed
    /// again (see `retry_build!`). Returns the new build's id and the builds that became pending.
    pub async fn retry(
        &self,
        project_id: i64,
        build_id: i64,
        user_id: Option<i64>,
    ) -> StoreResult<(i64, Vec<i64>)> {
        let now = now_ms();
        let outcome = on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            let (_, pipeline_id) = lock_pipeline_of!(tx, locking(self.db), build_id, Some(project_id));
            let mut counts = CountDeltas::default();
            let id = retry_build!(tx, counts, project_id, pipeline_id, build_id, user_id, now);
            let (_, enqueued) = process_pipeline!(tx, counts, pipeline_id, now);
            apply_counts!(tx, counts);
            tx.commit().await?;
            StoreResult::Ok((id, enqueued))
        })?;
        self.versions.bump_builds(project_id);
        Ok(outcome)
    }

    /// Fails the builds left running by `runner_id` (its process is gone), with `reason`.
    /// Returns their ids.
    pub async fn fail_orphans(
        &self,
        runner_id: i64,
        reason: &str,
        note: &[u8],
    ) -> StoreResult<Vec<i64>> {
        let ids: Vec<i64> = on_read!(self.db, pool => {
            sqlx::query_scalar("SELECT id FROM builds WHERE runner_id = $1 AND status = 'running'")
                .bind(runner_id)
                .fetch_all(pool)
                .await?
        });
        let finish = Finish {
            success: false,
            failure_reason: Some(reason.to_owned()),
            exit_code: None,
            coverage: None,
            retry: false,
        };
        for id in &ids {
            self.append_trace(*id, note).await?;
            self.finish(*id, &finish).await?;
        }
        Ok(ids)
    }

    /// The current status of a build, cheaply (runners poll it to notice a cancel).
    pub async fn status(&self, build_id: i64) -> StoreResult<BuildStatus> {
        let status: Option<String> = on_read!(self.db, pool => {
            sqlx::query_scalar("SELECT status FROM builds WHERE id = $1").bind(build_id).fetch_optional(pool).await?
        });
        parse_status(status.ok_or(StoreError::NotFound)?)
    }

    /// Records the build's artifacts archive (a path under the data dir) and its expiry.
    pub async fn set_artifacts(
        &self,
        project_id: i64,
        build_id: i64,
        file: &str,
        size: i64,
        expire_at: Option<i64>,
    ) -> StoreResult<()> {
        on_write!(self.db, pool => {
            sqlx::query("UPDATE builds SET artifacts_file = $1, artifacts_size = $2, artifacts_expire_at = $3 WHERE id = $4")
                .bind(file).bind(size).bind(expire_at).bind(build_id).execute(pool).await?;
        });
        self.versions.bump_builds(project_id);
        Ok(())
    }

    /// Forgets artifacts (and with `erase`, marks the build erased by `user`); the caller
    /// removes the files.
    pub async fn clear_artifacts(
        &self,
        project_id: i64,
        build_id: i64,
        erased_by: Option<i64>,
    ) -> StoreResult<()> {
        on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE builds SET artifacts_file = NULL, artifacts_size = NULL, artifacts_expire_at = NULL WHERE id = $1")
                .bind(build_id).execute(&mut *tx).await?;
            if let Some(user) = erased_by {
                sqlx::query("UPDATE builds SET erased_at = $1, erased_by = $2, trace_size = 0 WHERE id = $3")
                    .bind(now_ms()).bind(user).bind(build_id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM trace_chunks WHERE build_id = $1").bind(build_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        self.versions.bump_builds(project_id);
        Ok(())
    }

    /// Keeps the artifacts forever (GitLab's `artifacts/keep`).
    pub async fn keep_artifacts(&self, project_id: i64, build_id: i64) -> StoreResult<()> {
        on_write!(self.db, pool => {
            sqlx::query("UPDATE builds SET artifacts_expire_at = NULL WHERE id = $1").bind(build_id).execute(pool).await?;
        });
        self.versions.bump_builds(project_id);
        Ok(())
    }

    /// Builds whose artifacts expired before `now`: (project id, build id, file).
    pub async fn expired_artifacts(&self, now: i64) -> StoreResult<Vec<(i64, i64, String)>> {
        on_read!(self.db, pool => {
            let rows = sqlx::query(
                "SELECT project_id, id, artifacts_file FROM builds WHERE artifacts_expire_at < $1 AND artifacts_file IS NOT NULL",
            )
            .bind(now)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.int("project_id")?, r.int("id")?, r.text("artifacts_file")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// The current (not retried) builds of a pipeline that have artifacts:
    /// (name, stage index, archive file).
    pub async fn pipeline_artifacts(
        &self,
        pipeline_id: i64,
    ) -> StoreResult<Vec<(String, i64, String)>> {
        on_read!(self.db, pool => {
            let rows = sqlx::query(
                "SELECT name, stage_idx, artifacts_file FROM builds WHERE pipeline_id = $1 AND NOT retried \
                 AND artifacts_file IS NOT NULL AND erased_at IS NULL ORDER BY id",
            )
            .bind(pipeline_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.text("name")?, r.int("stage_idx")?, r.text("artifacts_file")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// How many builds of this name the pipeline has had (the first run plus its retries).
    pub async fn attempts(&self, pipeline_id: i64, name: &str) -> StoreResult<i64> {
        on_read!(self.db, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM builds WHERE pipeline_id = $1 AND name = $2")
                .bind(pipeline_id).bind(name).fetch_one(pool).await?)
        })
    }

    /// The build named `name` of the newest successful pipeline on `ref_name` (GitLab's
    /// artifacts download by ref).
    pub async fn latest_successful(
        &self,
        project_id: i64,
        ref_name: &str,
        name: &str,
    ) -> StoreResult<i64> {
        let id: Option<i64> = on_read!(self.db, pool => {
            sqlx::query_scalar(
                // GitLab's `latest_successful_builds_for(ref)`: the newest successful pipeline
                // of the ref, its current build of that name with artifacts.
                "SELECT id FROM builds WHERE pipeline_id = (SELECT id FROM pipelines \
                 WHERE project_id = $1 AND ref = $2 AND status = 'success' ORDER BY id DESC LIMIT 1) \
                 AND name = $3 AND NOT retried AND artifacts_file IS NOT NULL ORDER BY id DESC LIMIT 1",
            )
            .bind(project_id).bind(ref_name).bind(name).fetch_optional(pool).await?
        });
        id.ok_or(StoreError::NotFound)
    }

    /// Appends to the build's trace; returns its new size.
    pub async fn append_trace(&self, build_id: i64, data: &[u8]) -> StoreResult<i64> {
        on_write!(self.db, pool => {
            let mut tx = pool.begin().await?;
            let size: i64 = sqlx::query_scalar(
                "UPDATE builds SET trace_size = trace_size + $1 WHERE id = $2 RETURNING trace_size",
            )
            .bind(data.len() as i64).bind(build_id).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
            let seq: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), -1) + 1 AS BIGINT) FROM trace_chunks WHERE build_id = $1")
                .bind(build_id).fetch_one(&mut *tx).await?;
            sqlx::query("INSERT INTO trace_chunks (build_id, seq, data) VALUES ($1, $2, $3)")
                .bind(build_id).bind(seq).bind(data).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(size)
        })
    }

    /// The whole trace, in order. Empty for a build that has not written any.
    pub async fn trace(&self, build_id: i64) -> StoreResult<Vec<u8>> {
        on_read!(self.db, pool => {
            let chunks: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM trace_chunks WHERE build_id = $1 ORDER BY seq")
                .bind(build_id).fetch_all(pool).await?;
            Ok(chunks.concat())
        })
    }

    /// Up to `limit` trace chunks from sequence number `from_seq` on, in order, as
    /// (seq, data): a reader pages through a long trace instead of holding it whole.
    pub async fn trace_chunks(
        &self,
        build_id: i64,
        from_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        on_read!(self.db, pool => {
            Ok(sqlx::query_as(
                "SELECT seq, data FROM trace_chunks WHERE build_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
            )
            .bind(build_id).bind(from_seq).bind(limit).fetch_all(pool).await?)
        })
    }

    /// Whether the build has written any trace.
    pub async fn has_trace(&self, build_id: i64) -> StoreResult<bool> {
        let n: i64 = on_read!(self.db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM trace_chunks WHERE build_id = $1 LIMIT 1) t")
                .bind(build_id).fetch_one(pool).await?
        });
        Ok(n > 0)
    }

    /// What a runner needs beyond the build record: the pipeline.
    pub async fn pipeline_of(&self, build_id: i64) -> StoreResult<PipelineRecord> {
        let sql = format!(
            "{PIPELINE_SELECT} WHERE p.id = (SELECT pipeline_id FROM builds WHERE id = $1)"
        );
        on_read!(self.db, pool => {
            let row = sqlx::query(&sql).bind(build_id).fetch_optional(pool).await?;
            row.as_ref().map(pipeline_from_row).transpose()?.ok_or(StoreError::NotFound)
        })
    }
}
