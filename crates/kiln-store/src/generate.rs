//! The history generator, for benchmarks and demos only: it writes many realistic pipelines
//! (stages, jobs, mixed statuses, commits by several authors in several time zones, a runner)
//! in bulk, far faster than creating them one by one. It reserves build sequence numbers under
//! the project's row lock, but gives pipelines and commits explicit ids, so run it while no
//! other process creates pipelines.

use crate::db::{on_write, Db};
use crate::{now_ms, Store, StoreError, StoreResult};
use kiln_core::BuildStatus;
use rand::{rngs::StdRng, Rng, SeedableRng};
use sqlx::{Database, Pool, QueryBuilder};

/// Pipelines written per transaction.
const CHUNK: usize = 500;

struct Job {
    name: &'static str,
    stage: &'static str,
    stage_idx: i64,
    when: &'static str,
    allow_failure: bool,
    coverage: bool,
}

const JOBS: &[Job] = &[
    Job {
        name: "compile",
        stage: "build",
        stage_idx: 0,
        when: "on_success",
        allow_failure: false,
        coverage: false,
    },
    Job {
        name: "assets",
        stage: "build",
        stage_idx: 0,
        when: "on_success",
        allow_failure: false,
        coverage: false,
    },
    Job {
        name: "rspec 1/3",
        stage: "test",
        stage_idx: 1,
        when: "on_success",
        allow_failure: false,
        coverage: true,
    },
    Job {
        name: "rspec 2/3",
        stage: "test",
        stage_idx: 1,
        when: "on_success",
        allow_failure: false,
        coverage: true,
    },
    Job {
        name: "rspec 3/3",
        stage: "test",
        stage_idx: 1,
        when: "on_success",
        allow_failure: false,
        coverage: true,
    },
    Job {
        name: "rubocop",
        stage: "test",
        stage_idx: 1,
        when: "on_success",
        allow_failure: true,
        coverage: false,
    },
    Job {
        name: "spinach",
        stage: "test",
        stage_idx: 1,
        when: "on_success",
        allow_failure: false,
        coverage: false,
    },
    Job {
        name: "brakeman",
        stage: "test",
        stage_idx: 1,
        when: "on_success",
        allow_failure: false,
        coverage: false,
    },
    Job {
        name: "staging",
        stage: "deploy",
        stage_idx: 2,
        when: "on_success",
        allow_failure: false,
        coverage: false,
    },
    Job {
        name: "production",
        stage: "deploy",
        stage_idx: 2,
        when: "manual",
        allow_failure: false,
        coverage: false,
    },
];

const AUTHORS: &[(&str, &str, i64)] = &[
    ("Ada Lovelace", "ada@example.com", 60),
    ("Grace Hopper", "grace@example.com", -300),
    ("Linus Torvalds", "linus@example.com", -480),
    ("Margaret Hamilton", "margaret@example.com", 0),
    ("Ken Thompson", "ken@example.com", 330),
    ("Yukihiro Matsumoto", "matz@example.com", 540),
];

const MESSAGES: &[&str] = &[
    "Fix flaky spec in the builds API",
    "Add pagination headers to the commits list",
    "Bump dependencies",
    "Refactor the runner registration service",
    "Speed up the pipeline page",
    "Merge branch 'feature/artifacts-expiry' into 'master'",
    "Update CHANGELOG",
    "Handle empty traces gracefully",
];

const REFS: &[&str] = &[
    "master",
    "master",
    "master",
    "develop",
    "feature/artifacts-expiry",
];

/// What one pipeline's builds end up as.
#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Passed,
    TestFailed,
    Canceled,
    Running,
}

fn outcome(rng: &mut StdRng, newest: bool) -> Outcome {
    if newest {
        return Outcome::Running;
    }
    match rng.gen_range(0..100) {
        0..=74 => Outcome::Passed,
        75..=91 => Outcome::TestFailed,
        _ => Outcome::Canceled,
    }
}

/// One job's status in a pipeline with `outcome`; `failing` is the test job that breaks.
fn job_status(
    job: &Job,
    index: usize,
    outcome: Outcome,
    failing: usize,
    rng: &mut StdRng,
) -> BuildStatus {
    use BuildStatus as S;
    match (outcome, job.stage_idx) {
        (_, 0) => S::Success,
        (Outcome::Passed, 1) if job.allow_failure && rng.gen_range(0..10) == 0 => S::Failed,
        (Outcome::Passed, 1) => S::Success,
        (Outcome::Passed, _) if job.when == "manual" => S::Manual,
        (Outcome::Passed, _) => S::Success,
        (Outcome::TestFailed, 1) if index == failing => S::Failed,
        (Outcome::TestFailed, 1) => S::Success,
        (Outcome::TestFailed, _) => S::Skipped,
        (Outcome::Canceled, 1) if index.is_multiple_of(2) => S::Canceled,
        (Outcome::Canceled, 1) => S::Success,
        (Outcome::Canceled, _) => S::Canceled,
        (Outcome::Running, 1) if index.is_multiple_of(3) => S::Running,
        (Outcome::Running, 1) => S::Pending,
        (Outcome::Running, _) => S::Created,
    }
}

fn pipeline_status(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "success",
        Outcome::TestFailed => "failed",
        Outcome::Canceled => "canceled",
        Outcome::Running => "running",
    }
}

struct Row {
    pipeline_id: i64,
    commit_id: i64,
    seq: i64,
    job: &'static Job,
    status: BuildStatus,
    ref_name: &'static str,
    user_id: Option<i64>,
    runner_id: Option<i64>,
    coverage: Option<f64>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

fn builder<DB: Database>(_pool: &Pool<DB>, sql: &str) -> QueryBuilder<'static, DB> {
    QueryBuilder::new(sql.to_owned())
}

/// Writes `pipelines` pipelines of ten builds each into the project. Returns builds written.
pub async fn generate(
    store: &Store,
    project_id: i64,
    pipelines: usize,
    seed: u64,
) -> StoreResult<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let users = author_users(store).await?;
    let runner_id = generator_runner(store).await?;
    let db: &Db = &store.db;
    let start = now_ms() - pipelines as i64 * 600_000;
    let mut written = 0_u64;
    let mut done = 0_usize;
    while done < pipelines {
        let n = CHUNK.min(pipelines - done);
        on_write!(db, pool => {
            let mut tx = pool.begin().await?;
            let last_seq: i64 = sqlx::query_scalar(
                "UPDATE projects SET builds_seq = builds_seq + $1 WHERE id = $2 RETURNING builds_seq",
            )
            .bind((n * JOBS.len()) as i64)
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            let mut seq = last_seq - (n * JOBS.len()) as i64;
            let next_commit: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) + 1 AS BIGINT) FROM commits")
                .fetch_one(&mut *tx).await?;
            let next_pipeline: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) + 1 AS BIGINT) FROM pipelines")
                .fetch_one(&mut *tx).await?;

            let mut commits = builder(pool, "INSERT INTO commits (id, project_id, sha, message, author_name, author_email, authored_at, author_tz_offset_minutes) ");
            let mut pipes = builder(pool, "INSERT INTO pipelines (id, project_id, commit_id, ref, tag, status, user_id, created_at, started_at, finished_at) ");
            let mut rows = Vec::with_capacity(n * JOBS.len());
            let mut commit_rows = Vec::with_capacity(n);
            let mut pipe_rows = Vec::with_capacity(n);
            for i in 0..n {
                let index = done + i;
                let at = start + index as i64 * 600_000 + rng.gen_range(0..60_000);
                let commit_id = next_commit + i as i64;
                let pipeline_id = next_pipeline + i as i64;
                let (author, email, tz) = AUTHORS[rng.gen_range(0..AUTHORS.len())];
                let message = MESSAGES[rng.gen_range(0..MESSAGES.len())];
                let sha: String = (0..40).map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0')).collect();
                commit_rows.push((commit_id, sha, format!("{message}\n\nGenerated history, pipeline {index}."), author, email, at - 120_000, tz));
                let outcome = outcome(&mut rng, index + 3 >= pipelines);
                let ref_name = REFS[rng.gen_range(0..REFS.len())];
                let user_id = users.get(rng.gen_range(0..users.len().max(1))).copied();
                let failing = rng.gen_range(2..8);
                let mut clock = at + rng.gen_range(1_000..20_000);
                let mut pipeline_finished = None;
                for (j, job) in JOBS.iter().enumerate() {
                    seq += 1;
                    let status = job_status(job, j, outcome, failing, &mut rng);
                    let ran = matches!(status, BuildStatus::Success | BuildStatus::Failed | BuildStatus::Running)
                        || (status == BuildStatus::Canceled && job.stage_idx == 1);
                    let started_at = ran.then(|| { clock += rng.gen_range(500..5_000); clock });
                    let finished_at = match status {
                        BuildStatus::Success | BuildStatus::Failed | BuildStatus::Canceled => {
                            clock += rng.gen_range(5_000..120_000);
                            pipeline_finished = Some(clock);
                            Some(clock)
                        }
                        _ => None,
                    };
                    let coverage = (job.coverage && status == BuildStatus::Success)
                        .then(|| (rng.gen_range(7000..9900) as f64) / 100.0);
                    rows.push(Row {
                        pipeline_id, commit_id, seq, job, status, ref_name, user_id,
                        runner_id: started_at.map(|_| runner_id), coverage, created_at: at, started_at, finished_at,
                    });
                }
                let finished = if outcome == Outcome::Running { None } else { pipeline_finished };
                pipe_rows.push((pipeline_id, commit_id, ref_name, pipeline_status(outcome), user_id, at, at + 1_000, finished));
            }
            commits.push_values(commit_rows, |mut b, (id, sha, message, author, email, at, tz)| {
                b.push_bind(id).push_bind(project_id).push_bind(sha).push_bind(message)
                    .push_bind(author).push_bind(email).push_bind(at).push_bind(tz);
            });
            commits.build().execute(&mut *tx).await?;
            pipes.push_values(pipe_rows, |mut b, (id, commit_id, ref_name, status, user_id, at, started, finished)| {
                b.push_bind(id).push_bind(project_id).push_bind(commit_id).push_bind(ref_name).push_bind(false)
                    .push_bind(status).push_bind(user_id).push_bind(at).push_bind(started).push_bind(finished);
            });
            pipes.build().execute(&mut *tx).await?;
            let mut counts = std::collections::BTreeMap::<&'static str, i64>::new();
            for batch in rows.chunks(1_000) {
                let mut q = builder(pool, "INSERT INTO builds (project_id, pipeline_id, commit_id, seq, name, stage, stage_idx, status, ref, tag, \"when\", allow_failure, coverage, user_id, runner_id, options, commands, created_at, queued_at, started_at, finished_at) ");
                q.push_values(batch, |mut b, r| {
                    *counts.entry(r.status.as_str()).or_default() += 1;
                    b.push_bind(project_id).push_bind(r.pipeline_id).push_bind(r.commit_id).push_bind(r.seq)
                        .push_bind(r.job.name).push_bind(r.job.stage).push_bind(r.job.stage_idx)
                        .push_bind(r.status.as_str()).push_bind(r.ref_name).push_bind(false).push_bind(r.job.when)
                        .push_bind(r.job.allow_failure).push_bind(r.coverage).push_bind(r.user_id).push_bind(r.runner_id)
                        .push_bind("{}").push_bind(format!("echo {}", r.job.name)).push_bind(r.created_at)
                        .push_bind(Some(r.created_at)).push_bind(r.started_at).push_bind(r.finished_at);
                });
                q.build().execute(&mut *tx).await?;
            }
            for (status, n) in counts {
                sqlx::query(crate::builds::COUNT_DELTA).bind(project_id).bind(status).bind(n).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        store.feed.publish(&[crate::Change::Builds(project_id)]);
        written += (n * JOBS.len()) as u64;
        done += n;
    }
    if let Db::Postgres(pool) = db {
        // Explicit ids bypassed the sequences; move them past what was written.
        for table in ["commits", "pipelines"] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"
            ))
            .execute(pool)
            .await?;
        }
    }
    Ok(written)
}

/// Users for the authors, created once and reused.
async fn author_users(store: &Store) -> StoreResult<Vec<i64>> {
    let mut ids = Vec::new();
    for (name, email, _) in AUTHORS.iter().take(3) {
        let username = email.split('@').next().unwrap_or("dev");
        let id = match store.users().by_username(username).await {
            Ok(user) => user.id,
            Err(StoreError::NotFound) => store.users().create(username, name, email, false).await?,
            Err(err) => return Err(err),
        };
        ids.push(id);
    }
    Ok(ids)
}

async fn generator_runner(store: &Store) -> StoreResult<i64> {
    // Its token is never shown: this runner only appears in generated history.
    store
        .runners()
        .find_or_create("shared-runner (history generator)")
        .await
}
