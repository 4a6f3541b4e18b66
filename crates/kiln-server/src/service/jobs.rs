//! The server side of running a job, whatever runner runs it: the claim (and the job
//! description the runner gets), trace appends at an offset, artifacts in and out, lease
//! renewal, and the finish with its outcome (the `retry:` decision and artifact expiry
//! included). The embedded runner calls it in-process; the runner protocol calls it over HTTP.
//! Every call but the claim checks that the calling runner holds the build.

use crate::service::definition::{self, JobDefinition};
use crate::service::variables;
use crate::AppInner;
use kiln_ci::variables::JobVariable;
use kiln_ci::JobPlan;
use kiln_core::BuildStatus;
use kiln_executor::{ArtifactsSpec, ArtifactsWhen, Dependency, GitSource, JobSpec};
use kiln_store::{
    Appended, BuildRecord, Claimed, Finish, Holder, PipelineArchive, PipelineRecord, ProjectRecord,
    ProjectRef, RunnerRecord, StoreError,
};
use std::path::Path;
use std::time::Duration;

/// Artifacts without `expire_in` live this long (GitLab's instance default).
const DEFAULT_ARTIFACTS_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The caller does not hold this build running (canceled, finished, reaped, or
    /// another runner's): the status it has now.
    #[error("the job is no longer this runner's (it is {0})")]
    Gone(BuildStatus),
    #[error("no such job")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
    #[error("artifacts: {0}")]
    Io(#[from] std::io::Error),
    /// A report refused, with GitLab's message (400).
    #[error("{0}")]
    Refused(String),
}

impl From<StoreError> for JobError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotHeld(status) => JobError::Gone(status),
            StoreError::NotFound => JobError::NotFound,
            other => JobError::Store(other),
        }
    }
}

/// A job given to a runner.
#[derive(Debug, Clone)]
pub struct AssignedJob {
    pub claimed: Claimed,
    pub project: ProjectRecord,
    pub pipeline: PipelineRecord,
    pub build: BuildRecord,
    /// The compiled job; None for a build made from a bare command list.
    pub plan: Option<JobPlan>,
    pub spec: JobSpec,
    /// The job token: valid while the build runs, shown only here.
    pub token: String,
    /// The archives of `spec.dependencies`, with their sizes.
    pub archives: Vec<PipelineArchive>,
}

/// How a job ended, as its runner reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    pub success: bool,
    /// GitLab's `failure_reason` name.
    pub failure_reason: Option<String>,
    pub exit_code: Option<i64>,
    pub coverage: Option<f64>,
}

/// A runner calling the jobs service: its id, and how long its builds stay its own after
/// each call (a remote runner's `--build-lease`; the embedded runner's heartbeat lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub runner_id: i64,
    pub lease: Duration,
}

impl Caller {
    fn lease_until(self) -> i64 {
        kiln_store::now_ms() + self.lease.as_millis() as i64
    }
}

/// The oldest pending build `runner` may take, leased for `lease`, with its job
/// description and a fresh job token. A build whose description cannot be made (a
/// definition that does not read) is failed with the reason in its trace, and the next one
/// is tried.
pub async fn claim(
    app: &AppInner,
    runner: &RunnerRecord,
    lease: Duration,
) -> Result<Option<AssignedJob>, JobError> {
    let runner_id = runner.id;
    let caller = Caller { runner_id, lease };
    loop {
        let token = format!("glcbt-{}", kiln_store::new_secret());
        let Some(claimed) = app
            .store
            .builds()
            .claim(runner_id, caller.lease_until(), &token)
            .await?
        else {
            return Ok(None);
        };
        match describe(app, claimed, runner, token).await {
            Ok(job) => {
                if let (Some(queued), Some(started)) = (job.build.queued_at, job.build.started_at) {
                    app.metrics
                        .claimed_after((started - queued) as f64 / 1000.0);
                }
                return Ok(Some(job));
            }
            Err(Described::Unrunnable(reason)) => {
                tracing::warn!(build = claimed.build_id, %reason, "the job cannot run");
                let note = error_line(&reason);
                app.store
                    .builds()
                    .finish(
                        claimed.build_id,
                        Holder::Runner(runner_id),
                        &Finish::system_failure(),
                        note.as_bytes(),
                    )
                    .await?;
            }
            Err(Described::Failed(err)) => return Err(err),
        }
    }
}

/// A line of the runner's own in a trace, in GitLab's colours.
pub fn error_line(message: &str) -> String {
    format!("\n\x1b[31;1mERROR: Job failed (system failure): {message}\x1b[0;m\n")
}

enum Described {
    Unrunnable(String),
    Failed(JobError),
}

impl<E: Into<JobError>> From<E> for Described {
    fn from(err: E) -> Self {
        Described::Failed(err.into())
    }
}

async fn describe(
    app: &AppInner,
    claimed: Claimed,
    runner: &RunnerRecord,
    token: String,
) -> Result<AssignedJob, Described> {
    let store = &app.store;
    let build = store
        .builds()
        .get(claimed.project_id, claimed.build_id)
        .await?;
    let pipeline = store.pipelines().get(claimed.pipeline_id).await?;
    let project = store
        .projects()
        .get(&ProjectRef::Id(claimed.project_id))
        .await?;
    let default_timeout = project.build_timeout.max(1) as u64;
    let mut archives = Vec::new();
    let (mut spec, plan) =
        match definition::decode(&build.options).map_err(Described::Unrunnable)? {
            JobDefinition::Compiled(plan) => {
                let mut spec = spec_from_plan(&plan, build.id, default_timeout);
                separate_caches(&mut spec, &plan, build.protected);
                let available = store.builds().pipeline_artifacts(pipeline.id).await?;
                spec.dependencies = dependencies_of(&plan, &available);
                archives = available
                    .into_iter()
                    .filter(|a| spec.dependencies.iter().any(|d| d.id == a.build_id))
                    .collect();
                (spec, Some(*plan))
            }
            JobDefinition::Commands => {
                let spec = JobSpec {
                    script: build.commands.lines().map(str::to_owned).collect(),
                    ..spec_from_plan(&JobPlan::default(), build.id, default_timeout)
                };
                (spec, None)
            }
        };
    // A runner's `maximum_timeout` caps every job it runs, as GitLab's does.
    if let Some(max) = runner.maximum_timeout.filter(|m| *m > 0) {
        spec.timeout = spec.timeout.min(Duration::from_secs(max as u64));
    }
    spec.name = build.name.clone();
    spec.stage = build.stage.clone();
    spec.cache_scope = project.full_path();
    spec.git = project.repo_url.as_ref().map(|_| GitSource {
        url: variables::repository_url(&app.config.external_url, &project.full_path(), &token),
        sha: build.commit.sha.clone(),
        ref_name: build.ref_name.clone(),
    });
    let access = variables::JobAccess {
        token: &token,
        runner_tags: &runner.tags,
    };
    let settings = crate::service::ci_variables::for_job(app, &project, build.protected)
        .await
        .map_err(|e| JobError::Io(std::io::Error::other(e.to_string())))?;
    let given: Vec<kiln_ci::variables::JobVariable> = settings
        .iter()
        .map(|v| kiln_ci::variables::JobVariable {
            key: v.key.clone(),
            value: v.value.clone(),
            raw: v.raw,
            file: v.file,
        })
        .collect();
    let yaml = variables::yaml_of(&spec);
    let dotenv = match &plan {
        Some(plan) => dotenv_of(plan, &store.builds().pipeline_dotenv(pipeline.id).await?),
        None => Vec::new(),
    };
    let sources = variables::JobSources {
        yaml: &yaml,
        dotenv: &dotenv,
        environment: plan.as_ref().and_then(|p| p.environment.as_deref()),
        settings: &given,
    };
    let all = variables::for_build(
        &app.config.external_url,
        (&project, &pipeline, &build),
        sources,
        Some(access),
    );
    variables::give(&mut spec, all);
    // Masked values and the job token never reach the trace; file variables become files.
    spec.masked = settings
        .iter()
        .filter(|v| v.masked)
        .map(|v| v.value.clone())
        .chain(std::iter::once(token.clone()))
        .collect();
    Ok(AssignedJob {
        claimed,
        project,
        pipeline,
        build,
        plan,
        spec,
        token,
        archives,
    })
}

/// The executor's view of a compiled job; the claim fills in its source and variables.
pub fn spec_from_plan(plan: &JobPlan, id: i64, default_timeout_secs: u64) -> JobSpec {
    JobSpec {
        id,
        name: plan.name.clone(),
        stage: plan.stage.clone(),
        git: None,
        workdir: None,
        before_script: plan.before_script.clone(),
        script: plan.script.clone(),
        after_script: plan.after_script.clone(),
        variables: plan.variables.clone(),
        timeout: Duration::from_secs(plan.timeout_secs.unwrap_or(default_timeout_secs)),
        dotenv: plan
            .artifacts
            .as_ref()
            .map(|a| a.dotenv.clone())
            .unwrap_or_default(),
        artifacts: plan
            .artifacts
            .as_ref()
            .filter(|a| a.archives())
            .map(|a| ArtifactsSpec {
                name: a.name.clone().unwrap_or_else(|| "artifacts".to_owned()),
                untracked: a.untracked,
                paths: a.paths.clone(),
                exclude: a.exclude.clone(),
                when: match a.when {
                    kiln_ci::ArtifactsWhen::OnSuccess => ArtifactsWhen::OnSuccess,
                    kiln_ci::ArtifactsWhen::OnFailure => ArtifactsWhen::OnFailure,
                    kiln_ci::ArtifactsWhen::Always => ArtifactsWhen::Always,
                },
            }),
        coverage_regex: plan.coverage.clone(),
        dependencies: Vec::new(),
        masked: Vec::new(),
        file_variables: Vec::new(),
        raw_variables: plan.raw_variables.clone(),
        cache: plan.cache.iter().map(cache_spec).collect(),
        cache_scope: String::new(),
        warnings: plan.warnings.clone(),
    }
}

fn cache_spec(cache: &kiln_ci::CachePlan) -> kiln_executor::CacheSpec {
    kiln_executor::CacheSpec {
        key: cache.key.clone(),
        paths: cache.paths.clone(),
        untracked: cache.untracked,
        when: match cache.when {
            kiln_ci::ArtifactsWhen::OnSuccess => ArtifactsWhen::OnSuccess,
            kiln_ci::ArtifactsWhen::OnFailure => ArtifactsWhen::OnFailure,
            kiln_ci::ArtifactsWhen::Always => ArtifactsWhen::Always,
        },
        policy: cache.policy.clone(),
        fallback_keys: cache.fallback_keys.clone(),
    }
}

/// GitLab's separated caches (`Ci::Build#cache`): a pipeline of a protected ref uses
/// `<key>-protected`, any other `<key>-non_protected`, so an unprotected branch can neither
/// read nor poison what protected ones build with. `unprotect: true` shares one cache.
pub fn separate_caches(spec: &mut JobSpec, plan: &JobPlan, protected: bool) {
    for (cache, written) in spec.cache.iter_mut().zip(&plan.cache) {
        let suffix = if protected && !written.unprotect {
            "protected"
        } else {
            "non_protected"
        };
        cache.key = format!("{}-{suffix}", cache.key);
        for key in &mut cache.fallback_keys {
            *key = format!("{key}-{suffix}");
        }
    }
}

/// Which earlier jobs' artifacts a job receives, as GitLab's `Ci::BuildDependencies#local`
/// decides: a `needs:` job only the needs with `artifacts: true`, another job every job of
/// the earlier stages; of those, only the ones its `dependencies:` lists when it has one.
pub fn dependencies_of(plan: &JobPlan, available: &[PipelineArchive]) -> Vec<Dependency> {
    available
        .iter()
        .filter(|a| receives_from(plan, &a.name, a.stage_idx))
        .map(|a| Dependency {
            id: a.build_id,
            name: a.name.clone(),
        })
        .collect()
}

/// Whether the job `plan` takes the artifacts (and dotenv variables) of the pipeline's job
/// `name` of stage `stage_idx` (see `dependencies_of`).
pub fn receives_from(plan: &JobPlan, name: &str, stage_idx: i64) -> bool {
    let candidate = match &plan.needs {
        Some(needs) => needs.iter().any(|n| n.artifacts && n.job == name),
        None => stage_idx < plan.stage_idx as i64,
    };
    name != plan.name
        && candidate
        && plan
            .dependencies
            .as_ref()
            .is_none_or(|deps| deps.iter().any(|d| d == name))
}

/// The dotenv variables a job receives from the jobs it takes artifacts from, in their order.
pub fn dotenv_of(plan: &JobPlan, reports: &[kiln_store::PipelineDotenv]) -> Vec<JobVariable> {
    reports
        .iter()
        .filter(|r| receives_from(plan, &r.name, r.stage_idx))
        .flat_map(|r| r.variables.iter())
        .map(|(k, v)| JobVariable::new(k.clone(), v.clone()))
        .collect()
}

/// Stores `data` at byte `offset` of the trace of `build_id`, and renews the lease.
pub async fn append_trace(
    app: &AppInner,
    caller: Caller,
    build_id: i64,
    offset: i64,
    data: &[u8],
) -> Result<Appended, JobError> {
    app.metrics.trace_received(data.len());
    Ok(app
        .store
        .builds()
        .append_trace_at(
            build_id,
            caller.runner_id,
            offset,
            data,
            caller.lease_until(),
        )
        .await?)
}

/// Moves the lease of `build_id` on, if the caller holds it.
pub async fn renew(app: &AppInner, caller: Caller, build_id: i64) -> Result<(), JobError> {
    Ok(app
        .store
        .builds()
        .renew_lease(build_id, caller.runner_id, caller.lease_until())
        .await?)
}

/// When uploaded artifacts expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// As the job's `artifacts:expire_in` says (the instance default without one).
    AsTheJobSays,
    Never,
    After(Duration),
}

/// Stores the archive `file` (named `name.zip`) as the artifacts of `build_id`.
pub async fn upload_artifacts(
    app: &AppInner,
    caller: Caller,
    build_id: i64,
    file: &Path,
    name: &str,
    expiry: Expiry,
) -> Result<(), JobError> {
    renew(app, caller, build_id).await?;
    let project_id = app.store.builds().project_of(build_id).await?;
    let expiry = match expiry {
        Expiry::AsTheJobSays => job_expiry(app, project_id, build_id).await?,
        given => given,
    };
    let expire_at = match expiry {
        Expiry::Never => None,
        Expiry::After(ttl) => Some(kiln_store::now_ms() + ttl.as_millis() as i64),
        Expiry::AsTheJobSays => Some(kiln_store::now_ms() + DEFAULT_ARTIFACTS_TTL_MS),
    };
    let (location, size) = app
        .artifacts
        .put(&app.store, (project_id, build_id), file, name)
        .await?;
    app.store
        .builds()
        .set_artifacts(project_id, build_id, &location, size, expire_at)
        .await?;
    Ok(())
}

/// Most bytes a dotenv report may unpack to: a gzip bomb stops here.
const MAX_DOTENV_TEXT: u64 = 64 * 1024;

/// Stores the variables of the `dotenv` report `gz` (gzip, members one after another) of
/// `build_id`, for the jobs that take its artifacts.
pub async fn upload_dotenv(
    app: &AppInner,
    caller: Caller,
    build_id: i64,
    gz: &[u8],
) -> Result<(), JobError> {
    renew(app, caller, build_id).await?;
    let variables = dotenv_report(gz).map_err(JobError::Refused)?;
    app.store.builds().set_dotenv(build_id, &variables).await?;
    Ok(())
}

/// The variables of a `dotenv` report `gz` (gzip, members one after another), or GitLab's
/// message for why it is refused. `kiln run` reads its jobs' reports with it too.
pub fn dotenv_report(gz: &[u8]) -> Result<Vec<(String, String)>, String> {
    let too_big = || {
        format!(
            "Dotenv Artifact Too Big. Maximum Allowable Size: {}",
            kiln_ci::dotenv::MAX_REPORT_BYTES
        )
    };
    if gz.len() >= kiln_ci::dotenv::MAX_REPORT_BYTES {
        return Err(too_big());
    }
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(flate2::read::MultiGzDecoder::new(gz), MAX_DOTENV_TEXT + 1),
        &mut text,
    )
    .map_err(|_| "Invalid Format".to_owned())?;
    if text.len() as u64 > MAX_DOTENV_TEXT {
        return Err(too_big());
    }
    let text = String::from_utf8(text).map_err(|_| "Invalid Format".to_owned())?;
    kiln_ci::dotenv::parse(&text)
}

async fn job_expiry(app: &AppInner, project_id: i64, build_id: i64) -> Result<Expiry, JobError> {
    let build = app.store.builds().get(project_id, build_id).await?;
    let Ok(JobDefinition::Compiled(plan)) = definition::decode(&build.options) else {
        return Ok(Expiry::AsTheJobSays);
    };
    Ok(
        match plan.artifacts.map(|a| (a.expire_in, a.expire_in_secs)) {
            Some((Some(text), _)) if text == "never" => Expiry::Never,
            Some((_, Some(secs))) => Expiry::After(Duration::from_secs(secs)),
            _ => Expiry::AsTheJobSays,
        },
    )
}

/// Writes the artifacts archive of `dependency` (an earlier build) to `target`.
pub async fn download_artifacts(
    app: &AppInner,
    dependency: i64,
    target: &Path,
) -> Result<(), JobError> {
    let project_id = app.store.builds().project_of(dependency).await?;
    let build = app.store.builds().get(project_id, dependency).await?;
    let location = crate::service::builds::live_archive(&build).ok_or(JobError::NotFound)?;
    if app
        .artifacts
        .copy_to(&app.store, dependency, &location, target)
        .await?
    {
        Ok(())
    } else {
        Err(JobError::NotFound)
    }
}

/// Records how the job ended and moves its pipeline on; a failure is retried as `retry:`
/// says. Returns the build's status now (a job canceled meanwhile stays canceled).
pub async fn finish(
    app: &AppInner,
    runner_id: i64,
    build_id: i64,
    outcome: &JobOutcome,
) -> Result<BuildStatus, JobError> {
    let retry = !outcome.success && wants_retry(app, build_id, outcome).await?;
    let finish = Finish {
        success: outcome.success,
        failure_reason: outcome.failure_reason.clone(),
        exit_code: outcome.exit_code,
        coverage: outcome.coverage,
        retry,
    };
    let finished = app
        .store
        .builds()
        .finish(build_id, Holder::Runner(runner_id), &finish, b"")
        .await?;
    Ok(finished.status)
}

/// Fails a running build `holder` holds as a system failure, with `reason` in its trace.
pub async fn fail(
    app: &AppInner,
    holder: Holder,
    build_id: i64,
    reason: &str,
) -> Result<BuildStatus, JobError> {
    let note = error_line(reason);
    let finished = app
        .store
        .builds()
        .finish(build_id, holder, &Finish::system_failure(), note.as_bytes())
        .await?;
    Ok(finished.status)
}

/// GitLab's `retry:`: a failed job whose attempts are still within `max` (and whose failure
/// reason is one `retry: when:` names, if it names any) runs again as a new build.
async fn wants_retry(
    app: &AppInner,
    build_id: i64,
    outcome: &JobOutcome,
) -> Result<bool, JobError> {
    let project_id = app.store.builds().project_of(build_id).await?;
    let build = app.store.builds().get(project_id, build_id).await?;
    let Ok(JobDefinition::Compiled(plan)) = definition::decode(&build.options) else {
        return Ok(false);
    };
    let reason = outcome
        .failure_reason
        .as_deref()
        .unwrap_or("unknown_failure");
    let wanted =
        plan.retry.when.is_empty() || plan.retry.when.iter().any(|w| w == "always" || w == reason);
    if plan.retry.max == 0 || !wanted {
        return Ok(false);
    }
    let attempts = app
        .store
        .builds()
        .attempts(build.pipeline_id, &plan.name)
        .await?;
    Ok(attempts <= i64::from(plan.retry.max))
}

/// The coverage of a finished job from its stored trace and its `coverage:` regex, as GitLab
/// computes it when a runner that does not report one finishes. The trace is read in parts.
pub async fn coverage_from_trace(app: &AppInner, build_id: i64) -> Result<Option<f64>, JobError> {
    let project_id = app.store.builds().project_of(build_id).await?;
    let build = app.store.builds().get(project_id, build_id).await?;
    let Ok(JobDefinition::Compiled(plan)) = definition::decode(&build.options) else {
        return Ok(None);
    };
    let Some(regex) = plan.coverage.as_deref() else {
        return Ok(None);
    };
    let mut scanner = kiln_executor::CoverageScanner::new(Some(regex));
    let mut from = 0;
    loop {
        let parts = app.store.builds().trace_parts(build_id, from, 64).await?;
        let Some((start, last)) = parts.last() else {
            break;
        };
        from = start + last.len() as i64;
        for (_, data) in &parts {
            scanner.feed(data);
        }
        if parts.len() < 64 {
            break;
        }
    }
    Ok(scanner.finish())
}

#[cfg(test)]
mod tests {
    use super::dependencies_of;
    use kiln_ci::{JobPlan, Need};
    use kiln_store::PipelineArchive;

    fn archive(build_id: i64, name: &str, stage_idx: i64) -> PipelineArchive {
        PipelineArchive {
            build_id,
            name: name.into(),
            stage_idx,
            size: Some(1),
        }
    }

    fn names(plan: &JobPlan, available: &[PipelineArchive]) -> Vec<String> {
        dependencies_of(plan, available)
            .into_iter()
            .map(|d| d.name)
            .collect()
    }

    #[test]
    fn needs_without_artifacts_win_over_dependencies() {
        let available = [archive(1, "a", 0), archive(2, "b", 0), archive(3, "c", 1)];
        let need = |job: &str, artifacts| Need {
            job: job.into(),
            artifacts,
            optional: false,
        };
        let staged = JobPlan {
            stage_idx: 1,
            ..JobPlan::default()
        };
        assert_eq!(names(&staged, &available), ["a", "b"]);
        let listed = JobPlan {
            dependencies: Some(vec!["b".into()]),
            ..staged.clone()
        };
        assert_eq!(names(&listed, &available), ["b"]);
        let dag = JobPlan {
            needs: Some(vec![need("a", false), need("b", true), need("c", true)]),
            dependencies: Some(vec!["a".into(), "b".into()]),
            ..staged.clone()
        };
        assert_eq!(names(&dag, &available), ["b"]);
        let none = JobPlan {
            dependencies: Some(Vec::new()),
            ..staged
        };
        assert!(names(&none, &available).is_empty());
    }
}
