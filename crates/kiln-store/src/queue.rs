//! The build queue: a runner's claim (with a lease), the lease's renewal, finishing, giving a
//! build back, user events (cancel, play), retries, and the reaper that fails builds whose
//! runner is gone. Each change is one transaction that also keeps `build_counts`, the
//! pipeline's status and the change feed.

use crate::builds::{
    build_from_row, insert_build, parse_status, select_builds, set_status, BuildPlace, Builds,
    CountDeltas, NewBuild, TransitionFailure,
};
use crate::db::{args, Tx};
use crate::pipelines::{lock_pipeline_of, process_after_finish, process_pipeline};
use crate::row::KilnRow;
use crate::{dialect, now_ms, StoreError, StoreResult};
use kiln_core::{BuildEvent, BuildStatus};

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

impl Finish {
    /// A failure of the runner's system, not of the job (GitLab's `runner_system_failure`).
    pub fn system_failure() -> Finish {
        Finish {
            success: false,
            failure_reason: Some("runner_system_failure".into()),
            exit_code: None,
            coverage: None,
            retry: false,
        }
    }
}

/// A build a runner has claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub build_id: i64,
    pub project_id: i64,
    pub pipeline_id: i64,
}

/// Whether runner `$1` may take build `b`, as GitLab matches them: every build tag among the
/// runner's tags, an untagged build only with `run_untagged`, never while paused or removed;
/// a project runner takes its project's builds only, a `ref_protected` one only builds of a
/// protected ref; an external commit status is never a runner's.
const RUNNER_MAY_TAKE: &str =
    "b.kind = 'build' AND NOT EXISTS (SELECT 1 FROM build_tags t WHERE t.build_id = b.id \
    AND NOT EXISTS (SELECT 1 FROM runner_tags rt WHERE rt.runner_id = $1 AND rt.tag = t.tag)) \
    AND EXISTS (SELECT 1 FROM runners r WHERE r.id = $1 AND r.active AND r.removed_at IS NULL \
    AND (r.run_untagged OR EXISTS (SELECT 1 FROM build_tags t WHERE t.build_id = b.id)) \
    AND (r.runner_type = 'instance_type' OR r.project_id = b.project_id) \
    AND (r.access_level <> 'ref_protected' OR b.protected))";

/// The build a job token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTokenOwner {
    pub build_id: i64,
    pub project_id: i64,
    pub runner_id: Option<i64>,
    pub status: BuildStatus,
}

impl JobTokenOwner {
    /// The token works only while its build runs.
    pub fn is_live(&self) -> bool {
        self.status == BuildStatus::Running
    }
}

/// Who may end a running build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The runner that claimed it.
    Runner(i64),
    /// Anyone, once its lease has run out (the reaper).
    ExpiredLease,
}

/// What a finish did.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The build's status now: the one recorded, or the one it already had (a build canceled
    /// meanwhile stays canceled).
    pub status: BuildStatus,
    /// Builds that became pending, the automatic retry's among them.
    pub enqueued: Vec<i64>,
}

/// The locked state of one build.
struct Held {
    status: BuildStatus,
    runner_id: Option<i64>,
    trace_size: i64,
    lease_expires_at: Option<i64>,
}

async fn lock_build(tx: &mut Tx<'_>, db: &crate::db::Db, build_id: i64) -> StoreResult<Held> {
    let row = tx
        .fetch_optional(dialect::lock_build(db), args![build_id])
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(Held {
        status: parse_status(row.text("status")?)?,
        runner_id: row.opt_int("runner_id")?,
        trace_size: row.int("trace_size")?,
        lease_expires_at: row.opt_int("lease_expires_at")?,
    })
}

impl Held {
    /// Whether `holder` may change this running build now.
    fn allows(&self, holder: Holder, now: i64) -> bool {
        self.status == BuildStatus::Running
            && match holder {
                Holder::Runner(id) => self.runner_id == Some(id),
                Holder::ExpiredLease => self.lease_expires_at.is_some_and(|at| at < now),
            }
    }
}

/// Appends `data` at the end of the build's trace in `tx` (a note of the server's own).
pub(crate) async fn append_note(
    tx: &mut Tx<'_>,
    build_id: i64,
    at: i64,
    data: &[u8],
) -> StoreResult<()> {
    if data.is_empty() {
        return Ok(());
    }
    crate::traces::insert_part(tx, build_id, at, data).await?;
    tx.execute(
        "UPDATE builds SET trace_size = $1 WHERE id = $2",
        args![at + data.len() as i64, build_id],
    )
    .await?;
    Ok(())
}

/// Retries build `build_id` of locked pipeline `pipeline_id` in `tx`: marks it retried,
/// inserts a pending copy for user `user_id` (the old build's user when None), and puts the
/// jobs skipped after it (later stages, or needing it) back to created, as GitLab's
/// `ResetSkippedJobsService` does. The caller processes the pipeline next. Returns the new
/// build's id, or `Conflict` when the build is not finished or was retried already.
pub(crate) async fn retry_build(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    (project_id, pipeline_id): (i64, i64),
    build_id: i64,
    user_id: Option<i64>,
    now: i64,
) -> StoreResult<i64> {
    retry_build_as(
        tx,
        counts,
        (project_id, pipeline_id),
        build_id,
        user_id,
        now,
        BuildStatus::Pending,
    )
    .await
}

/// As `retry_build`, with the copy in `status`: pending for one job retried (it runs now),
/// created for a pipeline's retry (processing then enqueues the copies stage by stage).
pub(crate) async fn retry_build_as(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    (project_id, pipeline_id): (i64, i64),
    build_id: i64,
    user_id: Option<i64>,
    now: i64,
    status: BuildStatus,
) -> StoreResult<i64> {
    let sql = select_builds(tx, "b.id = $1");
    let row = tx.fetch_one(&sql, args![build_id]).await?;
    let old = build_from_row(&row)?;
    let extra = tx
        .fetch_one(
            "SELECT commit_id, needs FROM builds WHERE id = $1",
            args![build_id],
        )
        .await?;
    let (commit_id, needs) = (extra.int("commit_id")?, extra.opt_text("needs")?);
    // Once only, and only when finished: two retries of one build make one new build.
    let marked = tx
        .execute(
            "UPDATE builds SET retried = TRUE WHERE id = $1 AND NOT retried \
             AND status IN ('success', 'failed', 'canceled')",
            args![build_id],
        )
        .await?;
    if marked != 1 {
        return Err(StoreError::Conflict("the build is not retryable".into()));
    }
    let copy = NewBuild {
        needs,
        when: old.when.clone(),
        allow_failure: old.allow_failure,
        options: old.options.clone(),
        commands: old.commands.clone(),
        user_id: user_id.or(old.user.as_ref().map(|u| u.id)),
        queued_at: (status == BuildStatus::Pending).then_some(now),
        tags: old.tags.clone(),
        kind: old.kind.clone(),
        ..NewBuild::new(&old.name, &old.stage, old.stage_idx, status)
    };
    let place = BuildPlace {
        project_id,
        pipeline_id,
        commit_id,
        ref_name: &old.ref_name,
        tag: old.tag,
        protected: old.protected,
    };
    let id = insert_build(tx, counts, place, &copy).await?;
    if status != BuildStatus::Created {
        crate::hooks::enqueue(tx, crate::hooks::HookEvent::Job, id, status.as_str(), now).await?;
    }
    // The variables a person gave when playing it stay with the job.
    tx.execute(
        "UPDATE builds SET job_variables = $1 WHERE id = $2",
        args![old.job_variables.as_str(), id],
    )
    .await?;
    if status == BuildStatus::Pending {
        tx.notify(crate::changes::Change::Pending).await?;
    }
    let skipped = tx
        .fetch_all(
            "SELECT id, needs FROM builds WHERE pipeline_id = $1 AND status = 'skipped' \
             AND NOT retried AND (stage_idx > $2 OR needs IS NOT NULL) ORDER BY id",
            args![pipeline_id, old.stage_idx],
        )
        .await?;
    for row in &skipped {
        let after = match crate::pipelines::decode_needs(row.opt_text("needs")?)? {
            // A DAG job waits only for what it needs.
            Some(needs) => needs.contains(&old.name),
            None => true,
        };
        if after {
            let transition = (BuildStatus::Skipped, BuildStatus::Created);
            set_status(tx, counts, project_id, row.int("id")?, transition, now).await?;
        }
    }
    Ok(id)
}

impl Builds<'_> {
    /// Gives the oldest pending build to `runner_id`, moving it to running, leased until
    /// `lease_until`. Each build is claimed at most once, whatever the number of runners and
    /// servers. An idle poll only reads.
    ///
    /// The claim commits before the pipeline's status is brought up to date in a second
    /// transaction: every other change locks the pipeline before its builds, and a claim that
    /// held its build while waiting for the pipeline could deadlock with them. An error there
    /// does not undo the claim: the pipeline's next processing corrects its status.
    pub async fn claim(
        &self,
        runner_id: i64,
        lease_until: i64,
        job_token: &str,
    ) -> StoreResult<Option<Claimed>> {
        if !self.has_work_for(runner_id).await? {
            return Ok(None);
        }
        let mut tx = self.db.begin(self.feed).await?;
        let row = tx
            .fetch_optional(
                &dialect::claim(self.db, RUNNER_MAY_TAKE),
                args![
                    runner_id,
                    now_ms(),
                    lease_until,
                    crate::hash_secret(job_token).as_str()
                ],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let claimed = Claimed {
            build_id: row.int("id")?,
            project_id: row.int("project_id")?,
            pipeline_id: row.int("pipeline_id")?,
        };
        let mut counts = CountDeltas::default();
        counts.add(claimed.project_id, BuildStatus::Pending, -1);
        counts.add(claimed.project_id, BuildStatus::Running, 1);
        counts.apply(&mut tx).await?;
        tx.notify(crate::changes::Change::Builds(claimed.project_id))
            .await?;
        let running = BuildStatus::Running.as_str();
        crate::hooks::enqueue(
            &mut tx,
            crate::hooks::HookEvent::Job,
            claimed.build_id,
            running,
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        // The build is claimed whatever happens here: an error must not make the caller
        // drop it. A pipeline with a build running is running, whatever its other builds (GitLab's
        // composite status): no need to process it, only to say so if it did not yet.
        if row.opt_text("pipeline_status")?.as_deref() != Some("running") {
            let pipelines = crate::pipelines::Pipelines {
                db: self.db,
                feed: self.feed,
            };
            let marked = pipelines
                .mark_running(claimed.project_id, claimed.pipeline_id)
                .await;
            if let Err(err) = marked {
                tracing::warn!(error = %err, pipeline = claimed.pipeline_id, "marking the pipeline running failed");
            }
        }
        Ok(Some(claimed))
    }

    /// Whether a pending build waits that runner `runner_id` may take: a read, which is all
    /// an idle poll costs.
    pub async fn has_work_for(&self, runner_id: i64) -> StoreResult<bool> {
        let sql = format!(
            "SELECT b.id FROM builds b WHERE b.status = 'pending' AND {RUNNER_MAY_TAKE} LIMIT 1"
        );
        Ok(self
            .db
            .read_optional(&sql, args![runner_id])
            .await?
            .is_some())
    }

    /// The running build whose job token this is, with its project and status; None for a
    /// token of no build. The token is good only while the build runs.
    pub async fn by_job_token(&self, token: &str) -> StoreResult<Option<JobTokenOwner>> {
        let row = self
            .db
            .read_optional(
                "SELECT id, project_id, runner_id, status FROM builds WHERE token_hash = $1",
                args![crate::hash_secret(token).as_str()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(JobTokenOwner {
            build_id: row.int("id")?,
            project_id: row.int("project_id")?,
            runner_id: row.opt_int("runner_id")?,
            status: parse_status(row.text("status")?)?,
        }))
    }

    /// Moves the lease of every build `runner_id` runs to `until` (a server's heartbeat for
    /// its embedded runner). Returns how many it holds.
    pub async fn renew_leases(&self, runner_id: i64, until: i64) -> StoreResult<u64> {
        let mut tx = self.db.begin(self.feed).await?;
        let n = tx
            .execute(
                "UPDATE builds SET lease_expires_at = $2 WHERE runner_id = $1 AND status = 'running'",
                args![runner_id, until],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Moves one build's lease to `until` if `runner_id` still holds it running; otherwise
    /// `NotHeld` with the status it has now (a canceled job's runner learns it here).
    pub async fn renew_lease(&self, build_id: i64, runner_id: i64, until: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let n = tx
            .execute(
                "UPDATE builds SET lease_expires_at = $3 WHERE id = $1 AND runner_id = $2 AND status = 'running'",
                args![build_id, runner_id, until],
            )
            .await?;
        tx.commit().await?;
        if n == 1 {
            return Ok(());
        }
        Err(StoreError::NotHeld(self.status(build_id).await?))
    }

    /// Records how a running build ended and processes its pipeline, if `holder` holds it.
    /// A build that is no longer running (canceled meanwhile) keeps its status; one held by
    /// another runner is `NotHeld`. `note` is appended to the trace first (the reaper's say).
    pub async fn finish(
        &self,
        build_id: i64,
        holder: Holder,
        finish: &Finish,
        note: &[u8],
    ) -> StoreResult<Finished> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        if finish.retry {
            // A retry inserts a build: the project's lock comes first (see `lock_project`).
            if let Some(row) = tx
                .fetch_optional(
                    "SELECT project_id FROM builds WHERE id = $1",
                    args![build_id],
                )
                .await?
            {
                crate::pipelines::lock_project(&mut tx, self.db, row.int("project_id")?).await?;
            }
        }
        let (project_id, pipeline_id) = lock_pipeline_of(&mut tx, self.db, build_id, None).await?;
        let held = lock_build(&mut tx, self.db, build_id).await?;
        if !held.allows(holder, now) {
            return match (held.status, holder) {
                (BuildStatus::Running, Holder::Runner(_)) => {
                    Err(StoreError::NotHeld(BuildStatus::Running))
                }
                (status, _) => Ok(Finished {
                    status,
                    enqueued: Vec::new(),
                }),
            };
        }
        append_note(&mut tx, build_id, held.trace_size, note).await?;
        let event = if finish.success {
            BuildEvent::Succeed
        } else {
            BuildEvent::Fail
        };
        let next = held
            .status
            .apply(event)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        let mut counts = CountDeltas::default();
        set_status(
            &mut tx,
            &mut counts,
            project_id,
            build_id,
            (held.status, next),
            now,
        )
        .await?;
        tx.execute(
            "UPDATE builds SET failure_reason = $1, exit_code = $2, coverage = $3 WHERE id = $4",
            args![
                finish.failure_reason.as_deref(),
                finish.exit_code,
                finish.coverage,
                build_id
            ],
        )
        .await?;
        let retried = if finish.retry && next == BuildStatus::Failed {
            Some(
                retry_build(
                    &mut tx,
                    &mut counts,
                    (project_id, pipeline_id),
                    build_id,
                    None,
                    now,
                )
                .await?,
            )
        } else {
            None
        };
        let mut enqueued = match retried {
            Some(_) => process_pipeline(&mut tx, &mut counts, pipeline_id, now).await?,
            None => {
                let ids = (project_id, pipeline_id);
                process_after_finish(&mut tx, &mut counts, ids, build_id, now).await?
            }
        };
        enqueued.extend(retried);
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(Finished {
            status: next,
            enqueued,
        })
    }

    /// Gives a running build `runner_id` holds back to the queue (pending, no runner), as
    /// if never claimed: its runner stops before the job started. Returns whether it did.
    pub async fn requeue(&self, build_id: i64, runner_id: i64) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        let (project_id, pipeline_id) = lock_pipeline_of(&mut tx, self.db, build_id, None).await?;
        let held = lock_build(&mut tx, self.db, build_id).await?;
        if !held.allows(Holder::Runner(runner_id), now) {
            return Ok(false);
        }
        let mut counts = CountDeltas::default();
        let transition = (BuildStatus::Running, BuildStatus::Pending);
        set_status(&mut tx, &mut counts, project_id, build_id, transition, now).await?;
        tx.execute(
            "UPDATE builds SET runner_id = NULL, started_at = NULL WHERE id = $1",
            args![build_id],
        )
        .await?;
        process_pipeline(&mut tx, &mut counts, pipeline_id, now).await?;
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Applies a user's event (cancel, play) and processes the pipeline in the same
    /// transaction. `user_id` becomes the build's user when given (GitLab does so on play).
    pub async fn apply_user_event(
        &self,
        project_id: i64,
        build_id: i64,
        event: BuildEvent,
        user_id: Option<i64>,
    ) -> Result<(BuildStatus, Vec<i64>), TransitionFailure> {
        self.user_event(project_id, build_id, event, user_id, None)
            .await
    }

    /// Plays a manual build for `user_id` with the variables given for it (a JSON array of
    /// [key, value] pairs), in one transaction.
    pub async fn play(
        &self,
        project_id: i64,
        build_id: i64,
        user_id: i64,
        job_variables: &str,
    ) -> Result<(BuildStatus, Vec<i64>), TransitionFailure> {
        let event = BuildEvent::Play;
        self.user_event(
            project_id,
            build_id,
            event,
            Some(user_id),
            Some(job_variables),
        )
        .await
    }

    async fn user_event(
        &self,
        project_id: i64,
        build_id: i64,
        event: BuildEvent,
        user_id: Option<i64>,
        job_variables: Option<&str>,
    ) -> Result<(BuildStatus, Vec<i64>), TransitionFailure> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        let (_, pipeline_id) =
            lock_pipeline_of(&mut tx, self.db, build_id, Some(project_id)).await?;
        let current = lock_build(&mut tx, self.db, build_id).await?.status;
        let next = current.apply(event)?;
        let mut counts = CountDeltas::default();
        if !set_status(
            &mut tx,
            &mut counts,
            project_id,
            build_id,
            (current, next),
            now,
        )
        .await?
        {
            return Err(StoreError::Conflict("the build changed meanwhile".into()).into());
        }
        if let Some(user) = user_id {
            tx.execute(
                "UPDATE builds SET user_id = $1 WHERE id = $2",
                args![user, build_id],
            )
            .await?;
        }
        if let Some(variables) = job_variables {
            tx.execute(
                "UPDATE builds SET job_variables = $1 WHERE id = $2",
                args![variables, build_id],
            )
            .await?;
        }
        let mut enqueued = process_pipeline(&mut tx, &mut counts, pipeline_id, now).await?;
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        if next == BuildStatus::Pending {
            enqueued.push(build_id);
        }
        Ok((next, enqueued))
    }

    /// Makes a new pending build copying `build_id`'s definition (GitLab's `Ci::Build.retry`):
    /// name, stage, commit, ref, tag, options, commands, when, allow_failure; the user is
    /// `user_id` (the old build's when None). The old build is left as it was but for its
    /// `retried` mark. Jobs skipped after it go back to created and the pipeline is processed
    /// again. Returns the new build's id and the builds that became pending.
    pub async fn retry(
        &self,
        project_id: i64,
        build_id: i64,
        user_id: Option<i64>,
    ) -> StoreResult<(i64, Vec<i64>)> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        crate::pipelines::lock_project(&mut tx, self.db, project_id).await?;
        let ids = lock_pipeline_of(&mut tx, self.db, build_id, Some(project_id)).await?;
        let mut counts = CountDeltas::default();
        let id = retry_build(&mut tx, &mut counts, ids, build_id, user_id, now).await?;
        let enqueued = process_pipeline(&mut tx, &mut counts, ids.1, now).await?;
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok((id, enqueued))
    }

    /// Running builds whose lease ran out before `now`.
    pub async fn expired_leases(&self, now: i64) -> StoreResult<Vec<i64>> {
        let rows = self
            .db
            .read_all(
                "SELECT id FROM builds WHERE status = 'running' AND lease_expires_at < $1 ORDER BY id",
                args![now],
            )
            .await?;
        rows.iter()
            .map(|r| r.int("id").map_err(StoreError::from))
            .collect()
    }

    /// The running builds of `runner_id`.
    pub async fn running_of(&self, runner_id: i64) -> StoreResult<Vec<i64>> {
        let rows = self
            .db
            .read_all(
                "SELECT id FROM builds WHERE runner_id = $1 AND status = 'running' ORDER BY id",
                args![runner_id],
            )
            .await?;
        rows.iter()
            .map(|r| r.int("id").map_err(StoreError::from))
            .collect()
    }

    /// Fails the builds left running by `runner_id` (its process is gone) as a system
    /// failure, with `note` in their traces. Returns their ids.
    pub async fn fail_orphans(&self, runner_id: i64, note: &[u8]) -> StoreResult<Vec<i64>> {
        let ids = self.running_of(runner_id).await?;
        for id in &ids {
            self.finish(
                *id,
                Holder::Runner(runner_id),
                &Finish::system_failure(),
                note,
            )
            .await?;
        }
        Ok(ids)
    }

    /// The current status of a build, cheaply.
    pub async fn status(&self, build_id: i64) -> StoreResult<BuildStatus> {
        let row = self
            .db
            .read_optional("SELECT status FROM builds WHERE id = $1", args![build_id])
            .await?
            .ok_or(StoreError::NotFound)?;
        parse_status(row.text("status")?)
    }

    /// How a finished build failed, as its runner said: the failure reason and exit code.
    pub async fn failure_of(&self, build_id: i64) -> StoreResult<(Option<String>, Option<i64>)> {
        let row = self
            .db
            .read_optional(
                "SELECT failure_reason, exit_code FROM builds WHERE id = $1",
                args![build_id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((row.opt_text("failure_reason")?, row.opt_int("exit_code")?))
    }

    /// The project of a build.
    pub async fn project_of(&self, build_id: i64) -> StoreResult<i64> {
        self.db
            .read_int(
                "SELECT project_id FROM builds WHERE id = $1",
                args![build_id],
            )
            .await
    }

    /// How many builds of this name the pipeline has had (the first run plus its retries).
    pub async fn attempts(&self, pipeline_id: i64, name: &str) -> StoreResult<i64> {
        self.db
            .read_int(
                "SELECT COUNT(*) FROM builds WHERE pipeline_id = $1 AND name = $2",
                args![pipeline_id, name],
            )
            .await
    }
}
