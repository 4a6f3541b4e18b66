//! Builds: reading them the way the API presents them, and the status changes the core allows.
//!
//! Invariant the list relies on: each project's builds carry a dense sequence `seq` (1, 2, 3 …)
//! given under the project row's lock, so it grows with the build id and has no holes (builds
//! are never deleted; erasing keeps the row). An unfiltered page is then a range on
//! `(project_id, seq)` instead of an OFFSET scan, and `build_counts` gives exact totals.

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, on_read, Db, Tx};
use crate::row::KilnRow;
use crate::{now_ms, StoreError, StoreResult, UserRecord};
use kiln_core::{BuildStatus, PageRequest, Scope, TransitionError};

#[derive(Debug, Clone, PartialEq)]
pub struct CommitRecord {
    pub sha: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub authored_at: i64,
    /// The author's UTC offset in minutes, as git recorded it.
    pub author_tz_offset_minutes: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSummary {
    pub id: i64,
    pub description: String,
    pub active: bool,
    pub is_shared: bool,
    pub name: Option<String>,
    pub runner_type: String,
    pub contacted_at: Option<i64>,
    pub created_at: i64,
}

/// The pipeline of a build, as far as the v4 `Job` shows it (`PipelineBasic`).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSummary {
    pub status: String,
    pub source: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BuildRecord {
    pub id: i64,
    pub project_id: i64,
    pub pipeline_id: i64,
    pub name: String,
    pub stage: String,
    pub stage_idx: i64,
    pub status: BuildStatus,
    pub ref_name: String,
    pub tag: bool,
    pub when: String,
    pub allow_failure: bool,
    pub coverage: Option<f64>,
    pub options: String,
    pub commands: String,
    pub created_at: i64,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub artifacts_backend: Option<String>,
    pub artifacts_file: Option<String>,
    pub artifacts_size: Option<i64>,
    pub artifacts_expire_at: Option<i64>,
    pub erased_at: Option<i64>,
    /// `tags:`: a runner takes the build only if it has every one.
    pub tags: Vec<String>,
    /// Why it failed (GitLab's `failure_reason`), once it has.
    pub failure_reason: Option<String>,
    /// Replaced by a retry.
    pub retried: bool,
    pub trace_size: i64,
    /// Variables given when it was played, a JSON array of [key, value] pairs.
    pub job_variables: String,
    /// Its ref was protected when its pipeline was made.
    pub protected: bool,
    /// `build` (runners run it) or `external` (a commit status reported from outside).
    pub kind: String,
    /// An external status's link and description.
    pub target_url: Option<String>,
    pub description: Option<String>,
    pub pipeline: PipelineSummary,
    pub commit: CommitRecord,
    pub user: Option<UserRecord>,
    pub runner: Option<RunnerSummary>,
}

/// A build to insert with a pipeline (or by the history generator).
#[derive(Debug, Clone, PartialEq)]
pub struct NewBuild {
    /// `needs:` names as a JSON array, or None for a stage-gated build.
    pub needs: Option<String>,
    pub name: String,
    pub stage: String,
    pub stage_idx: i64,
    pub status: BuildStatus,
    pub when: String,
    pub allow_failure: bool,
    pub options: String,
    pub commands: String,
    pub user_id: Option<i64>,
    pub runner_id: Option<i64>,
    pub coverage: Option<f64>,
    pub created_at: i64,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub tags: Vec<String>,
    /// "build" (a runner runs it) or "bridge" (it starts a downstream pipeline).
    pub kind: String,
}

impl NewBuild {
    /// A build named `name` in `stage`, created now, with nothing else set.
    pub fn new(name: &str, stage: &str, stage_idx: i64, status: BuildStatus) -> NewBuild {
        NewBuild {
            needs: None,
            name: name.to_owned(),
            stage: stage.to_owned(),
            stage_idx,
            status,
            when: "on_success".to_owned(),
            allow_failure: false,
            options: "{}".to_owned(),
            commands: String::new(),
            user_id: None,
            runner_id: None,
            coverage: None,
            created_at: now_ms(),
            queued_at: None,
            started_at: None,
            finished_at: None,
            tags: Vec::new(),
            kind: "build".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BuildsPage {
    pub builds: Vec<BuildRecord>,
    pub total: u64,
}

use crate::build_rows::{build_array_column, builds_from_array, select_build_array, BUILD_JOINS};
pub(crate) use crate::build_rows::{build_from_row, select_builds};

/// SQL for a status list; the values come from `BuildStatus`, never from input.
pub(crate) fn status_list(statuses: &[BuildStatus]) -> String {
    let quoted: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    quoted.join(", ")
}

const NEXT_SEQ: &str =
    "UPDATE projects SET builds_seq = builds_seq + 1 WHERE id = $1 RETURNING builds_seq";

const INSERT_BUILD: &str = "INSERT INTO builds (project_id, pipeline_id, commit_id, seq, name, \
    stage, stage_idx, status, ref, tag, \"when\", allow_failure, coverage, user_id, runner_id, options, \
    commands, created_at, queued_at, started_at, finished_at, needs, tag_list, protected, kind) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) \
    RETURNING id";

/// Where a new build goes: its project, pipeline, commit and ref.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuildPlace<'a> {
    pub project_id: i64,
    pub pipeline_id: i64,
    pub commit_id: i64,
    pub ref_name: &'a str,
    pub tag: bool,
    /// The ref was protected when the pipeline was made.
    pub protected: bool,
}

/// Inserts one build in `tx`: takes the project's next `seq` and counts the build in
/// `counts`. Returns the new build's id.
pub(crate) async fn insert_build(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    place: BuildPlace<'_>,
    b: &NewBuild,
) -> StoreResult<i64> {
    let seq = tx.int(NEXT_SEQ, args![place.project_id]).await?;
    let id = tx
        .int(
            INSERT_BUILD,
            args![
                place.project_id,
                place.pipeline_id,
                place.commit_id,
                seq,
                &b.name,
                &b.stage,
                b.stage_idx,
                b.status.as_str(),
                place.ref_name,
                place.tag,
                &b.when,
                b.allow_failure,
                b.coverage,
                b.user_id,
                b.runner_id,
                &b.options,
                &b.commands,
                b.created_at,
                b.queued_at,
                b.started_at,
                b.finished_at,
                &b.needs,
                serde_json::to_string(&b.tags)
                    .unwrap_or_else(|_| "[]".into())
                    .as_str(),
                place.protected,
                &b.kind,
            ],
        )
        .await?;
    for tag in &b.tags {
        tx.execute(
            "INSERT INTO build_tags (build_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            args![id, tag],
        )
        .await?;
    }
    counts.add(place.project_id, b.status, 1);
    Ok(id)
}

/// Moves build `id` from `from` to `to` in `tx` if it is still `from`, setting the
/// timestamps `to` implies and noting the change in `counts`. Returns whether it moved.
pub(crate) async fn set_status(
    tx: &mut Tx<'_>,
    counts: &mut CountDeltas,
    project_id: i64,
    id: i64,
    (from, to): (BuildStatus, BuildStatus),
    now: i64,
) -> StoreResult<bool> {
    let (queued, started, finished) = match to {
        BuildStatus::Pending => (Some(now), None, None),
        BuildStatus::Running => (None, Some(now), None),
        s if s.is_complete() || s == BuildStatus::Skipped => (None, None, Some(now)),
        _ => (None, None, None),
    };
    let changed = tx
        .execute(
            "UPDATE builds SET status = $1, queued_at = COALESCE($2, queued_at), \
             started_at = COALESCE($3, started_at), \
             finished_at = CASE WHEN $7 THEN NULL ELSE COALESCE($4, finished_at) END, \
             lease_expires_at = CASE WHEN $8 THEN lease_expires_at ELSE NULL END \
             WHERE id = $5 AND status = $6",
            args![
                to.as_str(),
                queued,
                started,
                finished,
                id,
                from.as_str(),
                // Back to created (a reset): it has not finished any more.
                to == BuildStatus::Created,
                // Only a running build is leased.
                to == BuildStatus::Running,
            ],
        )
        .await?
        == 1;
    if changed {
        counts.add(project_id, from, -1);
        counts.add(project_id, to, 1);
        tx.notify(Change::Builds(project_id)).await?;
        crate::hooks::enqueue(tx, crate::hooks::HookEvent::Job, id, to.as_str(), now).await?;
        match to {
            BuildStatus::Pending => tx.notify(Change::Pending).await?,
            BuildStatus::Canceled => tx.notify(Change::Canceled(id)).await?,
            _ => {}
        }
    }
    Ok(changed)
}

/// One count change (the history generator writes them without a `Tx`).
pub(crate) const COUNT_DELTA: &str =
    "INSERT INTO build_counts (project_id, status, shard, n) VALUES ($1, $2, 0, $3) \
    ON CONFLICT (project_id, status, shard) DO UPDATE SET n = build_counts.n + excluded.n";

/// Count rows per (project, status) on PostgreSQL, so concurrent transactions rarely wait
/// on each other's; SQLite has one writer and one row.
const COUNT_SHARDS: i64 = 16;

/// A transaction's changes to `build_counts`. They are applied together just before commit,
/// in key order, so concurrent transactions lock count rows in the same order (no deadlock)
/// and after every pipeline and build row they touch.
#[derive(Debug, Default)]
pub(crate) struct CountDeltas(std::collections::BTreeMap<(i64, &'static str), i64>);

impl CountDeltas {
    pub(crate) fn add(&mut self, project_id: i64, status: BuildStatus, delta: i64) {
        *self.0.entry((project_id, status.as_str())).or_default() += delta;
    }

    /// Writes the changes in `tx` in one statement; call it last before commit.
    pub(crate) async fn apply(self, tx: &mut Tx<'_>) -> StoreResult<()> {
        let changes: Vec<_> = self.0.into_iter().filter(|(_, d)| *d != 0).collect();
        if changes.is_empty() {
            return Ok(());
        }
        // One shard for the whole transaction: its rows are then locked in key order, as
        // every other transaction's on the same shard (no deadlock).
        let shard = if tx.is_postgres() {
            rand::Rng::gen_range(&mut rand::thread_rng(), 0..COUNT_SHARDS)
        } else {
            0
        };
        let mut values = Vec::with_capacity(changes.len());
        let mut bound: Vec<crate::db::Arg<'static>> = Vec::with_capacity(changes.len() * 4);
        for ((project_id, status), delta) in changes {
            let at = bound.len();
            values.push(format!(
                "(${}, ${}, ${}, ${})",
                at + 1,
                at + 2,
                at + 3,
                at + 4
            ));
            bound.push(crate::db::Arg::from(project_id));
            bound.push(crate::db::Arg::from(status));
            bound.push(crate::db::Arg::from(shard));
            bound.push(crate::db::Arg::from(delta));
        }
        let sql = format!(
            "INSERT INTO build_counts (project_id, status, shard, n) VALUES {} \
             ON CONFLICT (project_id, status, shard) DO UPDATE SET n = build_counts.n + excluded.n",
            values.join(", ")
        );
        tx.execute(&sql, &bound).await?;
        Ok(())
    }
}

pub(crate) fn parse_status(s: String) -> Result<BuildStatus, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))
}

/// Why a status change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionFailure {
    #[error(transparent)]
    NotAllowed(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TransitionFailure {
    fn from(err: sqlx::Error) -> Self {
        TransitionFailure::Store(StoreError::Db(err))
    }
}

pub struct Builds<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

impl Builds<'_> {
    /// One build of one project.
    /// How many times the build `name` of the pipeline was retried (its replaced builds).
    pub async fn retries(&self, pipeline_id: i64, name: &str) -> StoreResult<i64> {
        self.db
            .read_int(
                "SELECT COUNT(*) FROM builds WHERE pipeline_id = $1 AND name = $2 AND retried",
                args![pipeline_id, name],
            )
            .await
    }

    pub async fn get(&self, project_id: i64, build_id: i64) -> StoreResult<BuildRecord> {
        let sql = select_builds(self.db, "b.id = $1 AND b.project_id = $2");
        on_read!(self.db, pool => {
            let row = sqlx::query(&sql).bind(build_id).bind(project_id).fetch_optional(pool).await?;
            row.as_ref().map(build_from_row).transpose()?.ok_or(StoreError::NotFound)
        })
    }

    /// A page of the project's builds, newest first, with the exact total.
    pub async fn list(
        &self,
        project_id: i64,
        scope: &Scope,
        page: PageRequest,
    ) -> StoreResult<BuildsPage> {
        if scope.is_all() {
            if let Some(listed) = self.dense_page(project_id, page).await? {
                return Ok(listed);
            }
        }
        let (total, top_seq) = self.count_with_top(project_id, scope).await?;
        let offset = page.offset();
        if offset >= total {
            return Ok(BuildsPage {
                builds: Vec::new(),
                total,
            });
        }
        // The page's integers are written into the statement, never bound: PostgreSQL's
        // generic plan for `LIMIT $n` assumes a tenth of the table, so it would plan every
        // execution afresh (most of an uncached page's time). They are numbers, not input.
        let limit = page.per_page as i64;
        // seq runs 1..=total with no holes unless a pipeline was deleted; then the page is
        // counted off by OFFSET instead.
        let builds = if scope.is_all() && top_seq == total as i64 {
            // The page is the range just below this bound.
            let top = (total - offset) as i64;
            let sql = select_build_array(
                self.db,
                &format!(
                    "b.id IN (SELECT id FROM builds WHERE project_id = $1 AND seq <= $2 \
                     ORDER BY seq DESC LIMIT {limit})"
                ),
                "b.seq DESC",
            );
            let row = self.db.read_optional(&sql, args![project_id, top]).await?;
            row.as_ref()
                .map(builds_from_array)
                .transpose()?
                .unwrap_or_default()
        } else {
            let statuses = if scope.is_all() {
                String::new()
            } else {
                format!(" AND status IN ({})", status_list(scope.statuses()))
            };
            let sql = select_build_array(
                self.db,
                &format!(
                    "b.id IN (SELECT id FROM builds WHERE project_id = $1{statuses} \
                     ORDER BY id DESC LIMIT {limit} OFFSET {offset})"
                ),
                "b.id DESC",
            );
            let row = self.db.read_optional(&sql, args![project_id]).await?;
            row.as_ref()
                .map(builds_from_array)
                .transpose()?
                .unwrap_or_default()
        };
        Ok(BuildsPage { builds, total })
    }

    /// An unfiltered page in one statement: the range of `seq` below the project's top,
    /// with the total and the top read alongside. The page's ids are chosen by a subquery
    /// and only those rows joined: PostgreSQL then plans the joins for 20 rows, not for the
    /// third of the table it would estimate (3.4× the statements per second in pgbench). None when that does not hold (a deleted
    /// pipeline left holes, or the page is past the end): the caller counts first instead.
    async fn dense_page(
        &self,
        project_id: i64,
        page: PageRequest,
    ) -> StoreResult<Option<BuildsPage>> {
        let sql = format!(
            "SELECT {}, \
             CAST((SELECT COALESCE(SUM(n), 0) FROM build_counts WHERE project_id = $1) AS BIGINT) AS total_n, \
             (SELECT builds_seq FROM projects WHERE id = $1) AS top_seq{BUILD_JOINS} \
             WHERE b.id IN (SELECT id FROM builds WHERE project_id = $1 \
             AND seq <= (SELECT builds_seq FROM projects WHERE id = $1) - $2 ORDER BY seq DESC \
             LIMIT {})",
            build_array_column(self.db, "b.seq DESC"),
            page.per_page
        );
        let offset = page.offset() as i64;
        let row = self
            .db
            .read_optional(&sql, args![project_id, offset])
            .await?
            .ok_or(StoreError::NotFound)?;
        let builds = builds_from_array(&row)?;
        if builds.is_empty() {
            return Ok(None);
        }
        let (total, top) = (row.int("total_n")?, row.int("top_seq")?);
        if total != top {
            return Ok(None);
        }
        Ok(Some(BuildsPage {
            builds,
            total: total.max(0) as u64,
        }))
    }

    /// The builds of every pipeline of the commit `sha`, newest first. `NotFound` when Kiln
    /// knows no such commit in the project.
    pub async fn list_for_commit(
        &self,
        project_id: i64,
        sha: &str,
        scope: &Scope,
        page: PageRequest,
    ) -> StoreResult<BuildsPage> {
        let status_filter = if scope.is_all() {
            String::new()
        } else {
            format!(" AND b.status IN ({})", status_list(scope.statuses()))
        };
        let commit_filter = "b.project_id = $1 AND b.commit_id = $2";
        let count_sql =
            format!("SELECT COUNT(*) FROM builds b WHERE {commit_filter}{status_filter}");
        let page_sql = select_builds(
            self.db,
            &format!("{commit_filter}{status_filter} ORDER BY b.id DESC LIMIT $3 OFFSET $4"),
        );
        on_read!(self.db, pool => {
            // The full sha, or an unambiguous prefix of it (GitLab takes short shas here).
            let mut commit_ids: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM commits WHERE project_id = $1 AND sha = $2")
                    .bind(project_id)
                    .bind(sha)
                    .fetch_all(pool)
                    .await?;
            if commit_ids.is_empty() && sha.len() >= 4 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                commit_ids = sqlx::query_scalar(
                    "SELECT id FROM commits WHERE project_id = $1 AND sha LIKE $2 LIMIT 2",
                )
                .bind(project_id)
                .bind(format!("{}%", sha.to_ascii_lowercase()))
                .fetch_all(pool)
                .await?;
            }
            let [commit_id] = commit_ids[..] else {
                return Err(StoreError::NotFound);
            };
            let total: i64 = sqlx::query_scalar(&count_sql)
                .bind(project_id)
                .bind(commit_id)
                .fetch_one(pool)
                .await?;
            let rows = sqlx::query(&page_sql)
                .bind(project_id)
                .bind(commit_id)
                .bind(page.per_page as i64)
                .bind(page.offset() as i64)
                .fetch_all(pool)
                .await?;
            let builds = rows.iter().map(build_from_row).collect::<Result<Vec<_>, _>>()?;
            Ok(BuildsPage { builds, total: total as u64 })
        })
    }

    /// How many of the project's builds are in `scope`, from the maintained counters.
    pub async fn count(&self, project_id: i64, scope: &Scope) -> StoreResult<u64> {
        Ok(self.count_with_top(project_id, scope).await?.0)
    }

    /// The count of `count`, and the project's highest `seq`, in one statement.
    async fn count_with_top(&self, project_id: i64, scope: &Scope) -> StoreResult<(u64, i64)> {
        let statuses = if scope.is_all() {
            String::new()
        } else {
            format!(" AND status IN ({})", status_list(scope.statuses()))
        };
        // SUM is NUMERIC on PostgreSQL and INTEGER on SQLite; cast so both decode as i64.
        let sql = format!(
            "SELECT CAST((SELECT COALESCE(SUM(n), 0) FROM build_counts WHERE project_id = $1{statuses}) AS BIGINT) AS total, \
             (SELECT builds_seq FROM projects WHERE id = $1) AS top"
        );
        let row = self
            .db
            .read_optional(&sql, args![project_id])
            .await?
            .ok_or(StoreError::NotFound)?;
        let total = row.int("total")?.max(0) as u64;
        Ok((total, row.opt_int("top")?.unwrap_or(0)))
    }
}
