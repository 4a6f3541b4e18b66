//! Pipelines: a commit's run of builds. Created with all their builds in one transaction, and
//! processed (core decisions stored) in the transaction of every change to their builds.

use crate::builds::{insert_build, parse_status, set_status, BuildPlace, CountDeltas, NewBuild};
use crate::changes::ChangeFeed;
use crate::db::{args, Db, Tx};
use crate::row::KilnRow;
use crate::{dialect, now_ms, CommitRecord, StoreError, StoreResult};
use kiln_core::{processing, BuildStatus, JobState, JobWhen};

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
    /// For a pipeline made for a push: a key naming the push (project, ref, sha). A second
    /// pipeline with the same key is refused (`Conflict`), whichever server makes it.
    pub push_key: Option<String>,
    /// A downstream pipeline's bridge in its parent, when a bridge started it.
    pub upstream: Option<Upstream>,
    pub builds: Vec<NewBuild>,
}

/// The bridge that started a downstream pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream {
    pub bridge_id: i64,
    /// `strategy: depend`: the bridge takes the pipeline's result.
    pub depends: bool,
}

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
    /// Who started it, when someone did.
    pub user: Option<crate::UserRecord>,
    /// The average of its current builds' coverage.
    pub coverage: Option<f64>,
}

const PIPELINE_COLUMNS: &str =
    "p.id, p.project_id, c.sha, p.ref, p.tag, p.status, p.source, p.variables, \
    p.yaml_errors, p.user_id, p.created_at, p.started_at, p.finished_at, \
    (SELECT AVG(cb.coverage) FROM builds cb WHERE cb.pipeline_id = p.id \
    AND cb.coverage IS NOT NULL AND NOT cb.retried) AS coverage, ";

const PIPELINE_JOINS: &str =
    " FROM pipelines p JOIN commits c ON c.id = p.commit_id LEFT JOIN users u ON u.id = p.user_id";

/// `SELECT` of whole pipelines, with their commit and user.
pub(crate) fn select_pipelines(condition: &str) -> String {
    format!(
        "SELECT {PIPELINE_COLUMNS}{}{PIPELINE_JOINS} WHERE {condition}",
        crate::users::USER_COLUMNS
    )
}

pub(crate) fn pipeline_from_row(row: &impl KilnRow) -> Result<PipelineRecord, sqlx::Error> {
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
        user: crate::users::user_from_row(row)?,
        coverage: row.opt_float("coverage")?,
    })
}

impl NewPipeline {
    /// A pipeline of `builds` for `ref_name` at `commit`, created by a push, with nothing
    /// else set.
    pub fn new(
        project_id: i64,
        commit: CommitRecord,
        ref_name: &str,
        builds: Vec<NewBuild>,
    ) -> NewPipeline {
        NewPipeline {
            project_id,
            commit,
            ref_name: ref_name.to_owned(),
            tag: false,
            status: "created".into(),
            user_id: None,
            yaml_errors: None,
            source: "push".into(),
            variables: "[]".into(),
            trigger_request_id: None,
            push_key: None,
            upstream: None,
            builds,
        }
    }
}

pub struct Pipelines<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

/// Upserts the commit in `tx`; returns its id.
async fn upsert_commit(tx: &mut Tx<'_>, project_id: i64, c: &CommitRecord) -> StoreResult<i64> {
    tx.int(
        "INSERT INTO commits (project_id, sha, message, author_name, author_email, authored_at, \
         author_tz_offset_minutes) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (project_id, sha) DO UPDATE SET message = excluded.message RETURNING id",
        args![
            project_id,
            &c.sha,
            &c.message,
            &c.author_name,
            &c.author_email,
            c.authored_at,
            c.author_tz_offset_minutes,
        ],
    )
    .await
}

/// The names a DAG job needs, from their stored JSON. A stored list that does not decode is
/// an error, not "no needs": the job would otherwise run before what it needs.
pub(crate) fn decode_needs(raw: Option<String>) -> StoreResult<Option<Vec<String>>> {
    raw.map(|n| serde_json::from_str::<Vec<String>>(&n))
        .transpose()
        .map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))
}

/// Runs core processing on the pipeline in `tx` and stores the decisions and the pipeline's
/// status, noting count changes in `counts`. The caller has locked the pipeline. Returns the
/// ids of builds that became pending.
pub(crate) async fn process_pipeline(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    pipeline_id: i64,
    now: i64,
) -> StoreResult<Vec<i64>> {
    let rows = tx
        .fetch_all(
            "SELECT id, project_id, name, stage_idx, status, \"when\", allow_failure, needs, retried \
             FROM builds WHERE pipeline_id = $1 ORDER BY id",
            args![pipeline_id],
        )
        .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    let mut project_id = 0_i64;
    for row in &rows {
        project_id = row.int("project_id")?;
        jobs.push(JobState {
            id: row.int("id")?,
            name: row.text("name")?,
            stage_idx: row.int("stage_idx")?,
            status: parse_status(row.text("status")?)?,
            when: JobWhen::parse(&row.text("when")?),
            allow_failure: row.flag("allow_failure")?,
            needs: decode_needs(row.opt_text("needs")?)?,
            retried: row.flag("retried")?,
        });
    }
    let mut enqueued = Vec::new();
    // By id, so applying the decisions stays linear in the pipeline's jobs.
    let index: std::collections::HashMap<i64, usize> =
        jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    for (id, event) in processing::process(&jobs) {
        let Some(job) = index.get(&id).and_then(|&i| jobs.get_mut(i)) else {
            continue;
        };
        let Ok(next) = job.status.apply(event) else {
            continue;
        };
        if set_status(tx, counts, project_id, id, (job.status, next), now).await? {
            job.status = next;
            if next == BuildStatus::Pending {
                enqueued.push(id);
            }
        }
    }
    let status = processing::pipeline_status(&jobs);
    set_pipeline_status(tx, counts, pipeline_id, status, now).await?;
    if project_id != 0 {
        tx.notify(crate::changes::Change::Builds(project_id))
            .await?;
    }
    Ok(enqueued)
}

/// Processing after the build `build_id` finished, without reading the pipeline's
/// every build when nothing else can move: while a build of its stage or an earlier one
/// still waits or runs, later stages keep waiting, and the builds of the stages reached were
/// all decided when they were reached; only a DAG job could move, so with none left to
/// decide, the pipeline's status is all that may change, and composite.rb needs only the
/// kinds of status the pipeline holds. Otherwise (and after a retry) the whole pass.
pub(crate) async fn process_after_finish(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    (project_id, pipeline_id): (i64, i64),
    build_id: i64,
    now: i64,
) -> StoreResult<Vec<i64>> {
    let dag_waiting = tx
        .fetch_optional(
            "SELECT 1 AS one FROM builds WHERE pipeline_id = $1 AND status = 'created' \
             AND needs IS NOT NULL AND NOT retried LIMIT 1",
            args![pipeline_id],
        )
        .await?
        .is_some();
    let stage_busy = tx
        .fetch_optional(
            "SELECT 1 AS one FROM builds WHERE pipeline_id = $1 AND status IN ('pending', 'running') \
             AND stage_idx <= (SELECT stage_idx FROM builds WHERE id = $2) AND NOT retried LIMIT 1",
            args![pipeline_id, build_id],
        )
        .await?
        .is_some();
    if dag_waiting || !stage_busy {
        return process_pipeline(tx, counts, pipeline_id, now).await;
    }
    // With a build still running, composite.rb says `running` whatever the others are.
    let running = tx
        .fetch_optional(
            "SELECT 1 AS one FROM builds WHERE pipeline_id = $1 AND status = 'running' \
             AND NOT retried LIMIT 1",
            args![pipeline_id],
        )
        .await?
        .is_some();
    if running {
        set_pipeline_status(
            tx,
            counts,
            pipeline_id,
            kiln_core::PipelineStatus::Running,
            now,
        )
        .await?;
        tx.notify(crate::changes::Change::Builds(project_id))
            .await?;
        return Ok(Vec::new());
    }
    let rows = tx
        .fetch_all(
            "SELECT DISTINCT status, allow_failure FROM builds WHERE pipeline_id = $1 AND NOT retried",
            args![pipeline_id],
        )
        .await?;
    let mut kinds = Vec::with_capacity(rows.len());
    for row in &rows {
        kinds.push((
            parse_status(row.text("status")?)?,
            row.flag("allow_failure")?,
        ));
    }
    let status = processing::composite(kinds, false).unwrap_or(kiln_core::PipelineStatus::Skipped);
    set_pipeline_status(tx, counts, pipeline_id, status, now).await?;
    tx.notify(crate::changes::Change::Builds(project_id))
        .await?;
    Ok(Vec::new())
}

/// Records the pipeline's status, with its start (once it left `created`) and its end; a
/// bridge that depends on the pipeline takes its result (see `bridges`).
async fn set_pipeline_status(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    pipeline_id: i64,
    status: kiln_core::PipelineStatus,
    now: i64,
) -> StoreResult<()> {
    let running = !matches!(status, kiln_core::PipelineStatus::Created);
    // The same status again changes nothing (its timestamps are set already) and tells no hook.
    let changed = tx
        .execute(
            "UPDATE pipelines SET status = $1, \
             started_at = CASE WHEN $2 THEN COALESCE(started_at, $3) ELSE started_at END, \
             finished_at = CASE WHEN $4 THEN COALESCE(finished_at, $3) ELSE NULL END \
             WHERE id = $5 AND status <> $1",
            args![
                status.as_str(),
                running,
                now,
                status.is_complete(),
                pipeline_id
            ],
        )
        .await?;
    if changed > 0 {
        let event = crate::hooks::HookEvent::Pipeline;
        crate::hooks::enqueue(tx, event, pipeline_id, status.as_str(), now).await?;
    }
    if status.is_complete() {
        Box::pin(crate::bridges::follow_downstream(
            tx,
            counts,
            pipeline_id,
            status,
            now,
        ))
        .await?;
    }
    Ok(())
}

/// Locks the project's row before any pipeline, in a transaction that may insert builds
/// (each takes the project's next `seq`, which locks the row anyway): taken first, it
/// orders such transactions with commit-status reports, which lock the project, then a
/// pipeline, then (when that pipeline ends a depending bridge) its parent.
pub(crate) async fn lock_project(tx: &mut Tx<'_>, db: &Db, project_id: i64) -> StoreResult<()> {
    tx.execute(dialect::lock_project(db), args![project_id])
        .await?;
    Ok(())
}

/// Locks pipeline `pipeline_id` of project `project_id` in `tx`; `NotFound` when the project
/// has no such pipeline.
pub(crate) async fn lock_pipeline(
    tx: &mut Tx<'_>,
    db: &Db,
    project_id: i64,
    pipeline_id: i64,
) -> StoreResult<()> {
    tx.fetch_optional(
        "SELECT id FROM pipelines WHERE id = $1 AND project_id = $2",
        args![pipeline_id, project_id],
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    tx.execute(dialect::lock_pipeline(db), args![pipeline_id])
        .await?;
    Ok(())
}

/// Finds build `build_id` (of project `project_id` when given) in `tx` and locks its
/// pipeline, before any of the pipeline's builds: every transaction that changes a
/// pipeline's builds takes that lock first, so they queue instead of deadlocking, and each
/// sees the others' committed changes when it processes the pipeline.
/// Returns (project id, pipeline id).
pub(crate) async fn lock_pipeline_of(
    tx: &mut Tx<'_>,
    db: &Db,
    build_id: i64,
    project_id: Option<i64>,
) -> StoreResult<(i64, i64)> {
    let row = tx
        .fetch_optional(
            "SELECT project_id, pipeline_id FROM builds WHERE id = $1",
            args![build_id],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let ids = (row.int("project_id")?, row.int("pipeline_id")?);
    if project_id.is_some_and(|p| p != ids.0) {
        return Err(StoreError::NotFound);
    }
    tx.execute(dialect::lock_pipeline(db), args![ids.1]).await?;
    Ok(ids)
}

/// Inserts pipeline `new` (not its builds) and its commit if new, in `tx`, deciding whether
/// its ref is protected. Returns where its builds go.
pub(crate) async fn insert_pipeline<'n>(
    tx: &mut Tx<'_>,
    new: &'n NewPipeline,
) -> StoreResult<BuildPlace<'n>> {
    let commit_id = upsert_commit(tx, new.project_id, &new.commit).await?;
    let protected =
        crate::protected_branches::protects(tx, new.project_id, &new.ref_name, new.tag).await?;
    let pipeline_id = tx
            .int(
                "INSERT INTO pipelines (project_id, commit_id, ref, tag, status, user_id, yaml_errors, created_at, \
                 source, variables, trigger_request_id, push_key, protected, upstream_build_id, \
                 upstream_depends) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
                args![
                    new.project_id,
                    commit_id,
                    &new.ref_name,
                    new.tag,
                    &new.status,
                    new.user_id,
                    &new.yaml_errors,
                    now_ms(),
                    &new.source,
                    &new.variables,
                    new.trigger_request_id,
                    &new.push_key,
                    protected,
                    new.upstream.map(|u| u.bridge_id),
                    new.upstream.is_some_and(|u| u.depends),
                ],
            )
            .await
            .map_err(|e| match e {
                StoreError::Db(e) => {
                    StoreError::on_unique(e, "a pipeline for this push exists already")
                }
                other => other,
            })?;
    Ok(BuildPlace {
        project_id: new.project_id,
        pipeline_id,
        commit_id,
        ref_name: &new.ref_name,
        tag: new.tag,
        protected,
    })
}

/// A pipeline and builds made past `created` (pending, manual, skipped, or failed by its
/// file's errors) have changed status as far as hooks are concerned, as GitLab's do when
/// processed right after creation. A project without hooks costs one read.
pub(crate) async fn tell_hooks_of_creation(
    tx: &mut Tx<'_>,
    new: &NewPipeline,
    pipeline_id: i64,
    build_ids: &[i64],
) -> StoreResult<()> {
    use crate::hooks::{enqueue, has_hooks, HookEvent};
    if !has_hooks(tx, new.project_id).await? {
        return Ok(());
    }
    let now = now_ms();
    // A branch push Kiln learned of (the push hook, the poller) is told to push hooks; tag
    // pushes are GitLab's tag_push_events, which Kiln's hooks do not take.
    if new.source == "push" && !new.tag {
        enqueue(tx, HookEvent::Push, pipeline_id, "push", now).await?;
    }
    if new.status != "created" {
        enqueue(tx, HookEvent::Pipeline, pipeline_id, &new.status, now).await?;
    }
    for (build, id) in new.builds.iter().zip(build_ids) {
        if build.status != BuildStatus::Created {
            enqueue(tx, HookEvent::Job, *id, build.status.as_str(), now).await?;
        }
    }
    Ok(())
}

impl Pipelines<'_> {
    /// Inserts the pipeline, its commit (if new) and all its builds atomically.
    /// Returns the pipeline id and the build ids in the order given.
    pub async fn create(&self, new: &NewPipeline) -> StoreResult<(i64, Vec<i64>)> {
        let mut tx = self.db.begin(self.feed).await?;
        let place = insert_pipeline(&mut tx, new).await?;
        let mut ids = Vec::with_capacity(new.builds.len());
        let mut counts = CountDeltas::default();
        for build in &new.builds {
            ids.push(insert_build(&mut tx, &mut counts, place, build).await?);
        }
        counts.apply(&mut tx).await?;
        tell_hooks_of_creation(&mut tx, new, place.pipeline_id, &ids).await?;
        tx.notify(crate::changes::Change::Builds(new.project_id))
            .await?;
        if new.builds.iter().any(|b| b.status == BuildStatus::Pending) {
            tx.notify(crate::changes::Change::Pending).await?;
        }
        tx.commit().await?;
        Ok((place.pipeline_id, ids))
    }

    pub async fn get(&self, pipeline_id: i64) -> StoreResult<PipelineRecord> {
        let sql = select_pipelines("p.id = $1");
        let row = self.db.read_optional(&sql, args![pipeline_id]).await?;
        Ok(pipeline_from_row(&row.ok_or(StoreError::NotFound)?)?)
    }

    /// The commit a pipeline runs (a webhook's `commit`).
    pub async fn commit(&self, pipeline_id: i64) -> StoreResult<CommitRecord> {
        let row = self
            .db
            .read_optional(
                "SELECT c.sha, c.message, c.author_name, c.author_email, c.authored_at, \
                 c.author_tz_offset_minutes FROM pipelines p JOIN commits c ON c.id = p.commit_id \
                 WHERE p.id = $1",
                args![pipeline_id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(CommitRecord {
            sha: row.text("sha")?,
            message: row.text("message")?,
            author_name: row.text("author_name")?,
            author_email: row.text("author_email")?,
            authored_at: row.int("authored_at")?,
            author_tz_offset_minutes: row.int("author_tz_offset_minutes")?,
        })
    }

    /// The pipeline of a build.
    pub async fn of_build(&self, build_id: i64) -> StoreResult<PipelineRecord> {
        let sql = select_pipelines("p.id = (SELECT pipeline_id FROM builds WHERE id = $1)");
        let row = self.db.read_optional(&sql, args![build_id]).await?;
        Ok(pipeline_from_row(&row.ok_or(StoreError::NotFound)?)?)
    }

    /// Whether a pipeline already exists for this ref at this sha (the poller asks).
    pub async fn exists_for(
        &self,
        project_id: i64,
        ref_name: &str,
        sha: &str,
    ) -> StoreResult<bool> {
        let found = self
            .db
            .read_optional(
                "SELECT p.id FROM pipelines p JOIN commits c ON c.id = p.commit_id \
                 WHERE p.project_id = $1 AND p.ref = $2 AND c.sha = $3 LIMIT 1",
                args![project_id, ref_name, sha],
            )
            .await?;
        Ok(found.is_some())
    }

    /// Marks a pipeline running (and started) after one of its builds was claimed, unless it
    /// is already: the composite status of a pipeline with a running build. The claim has
    /// committed by now, so the build may have been canceled meanwhile (with its pipeline):
    /// the pipeline is locked first, as by every change to its builds, and marked only while
    /// a build of it still runs.
    pub async fn mark_running(&self, project_id: i64, pipeline_id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(dialect::lock_pipeline(self.db), args![pipeline_id])
            .await?;
        let changed = tx
            .execute(
                "UPDATE pipelines SET status = 'running', started_at = COALESCE(started_at, $2), \
                 finished_at = NULL WHERE id = $1 AND status <> 'running' \
                 AND EXISTS (SELECT 1 FROM builds WHERE pipeline_id = $1 AND status = 'running')",
                args![pipeline_id, now_ms()],
            )
            .await?;
        if changed > 0 {
            tx.notify(crate::changes::Change::Builds(project_id))
                .await?;
            let event = crate::hooks::HookEvent::Pipeline;
            crate::hooks::enqueue(&mut tx, event, pipeline_id, "running", now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Decides what the pipeline's created builds do now and stores it. Returns the builds
    /// that became pending (runners are woken through the change feed).
    pub async fn process(&self, pipeline_id: i64) -> StoreResult<Vec<i64>> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(dialect::lock_pipeline(self.db), args![pipeline_id])
            .await?;
        let mut counts = CountDeltas::default();
        let enqueued = process_pipeline(&mut tx, &mut counts, pipeline_id, now_ms()).await?;
        counts.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(enqueued)
    }
}
