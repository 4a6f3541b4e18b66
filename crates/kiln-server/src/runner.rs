//! The embedded runner: `kiln serve` runs pending builds itself, claiming them through the
//! same store operation remote runners use, so each build runs once. It executes them with
//! the shared executor, storing the trace as it streams.

use crate::service::variables;
use crate::AppState;
use kiln_ci::{ArtifactsWhen, JobPlan};
use kiln_core::BuildStatus;
use kiln_runner::{ArtifactsSpec, ExecutorConfig, JobSpec, TraceSink};
use kiln_store::{Claimed, Finish, ProjectRef, Store};
use std::path::PathBuf;
use std::time::Duration;
use tracing::Instrument;

/// How often idle workers look for work even without a wake (other servers' builds).
const POLL: Duration = Duration::from_secs(1);
/// How often a running build's status is read, to notice cancels made on other servers.
const CANCEL_POLL: Duration = Duration::from_secs(1);
/// Artifacts without `expire_in` live this long (GitLab's instance default).
const DEFAULT_ARTIFACTS_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

struct StoreTrace {
    store: Store,
    build_id: i64,
}

impl TraceSink for StoreTrace {
    async fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.store
            .builds()
            .append_trace(self.build_id, data)
            .await
            .map(|_| ())
            .map_err(std::io::Error::other)
    }
}

/// Starts `concurrency` workers (none with `--no-embedded-runner`). Builds this runner left
/// running before a restart are failed first, workers or not: their processes are gone.
pub async fn start(app: AppState, concurrency: usize) -> anyhow::Result<()> {
    let runner_id = app
        .store
        .runners()
        .find_or_create(&embedded_description(&app.config)?)
        .await?;
    let note = b"\n\x1b[31;1mERROR: Job failed (system failure): the server restarted while this build ran; its process is gone.\x1b[0;m\n";
    let orphans = app
        .store
        .builds()
        .fail_orphans(runner_id, "runner_system_failure", note)
        .await?;
    if !orphans.is_empty() {
        // A crash leaves the jobs' processes behind: end them, or a retry would run twice.
        let builds_dir = app.executor.builds_dir.clone();
        let ids = orphans.clone();
        let killed =
            tokio::task::spawn_blocking(move || kiln_runner::kill_leftovers(&builds_dir, &ids))
                .await
                .unwrap_or(0);
        tracing::warn!(
            count = orphans.len(),
            killed,
            "failed builds left running by a previous run"
        );
    }
    for _ in 0..concurrency {
        tokio::spawn(worker(app.clone(), runner_id));
    }
    Ok(())
}

/// The embedded runner's identity: one per data dir, kept in the file `runner-id` there, so
/// that a restarted server recognises the builds it left running (even in a new container
/// with another host name), and two servers sharing a database never take each other's.
pub fn embedded_description(config: &crate::Config) -> std::io::Result<String> {
    let file = config.data_dir.join("runner-id");
    let id = match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => {
            std::fs::create_dir_all(&config.data_dir)?;
            let id = kiln_store::new_secret()[..12].to_ascii_lowercase();
            std::fs::write(&file, &id)?;
            id
        }
    };
    Ok(format!(
        "embedded runner {id} ({})",
        config.data_dir.display()
    ))
}

async fn worker(app: AppState, runner_id: i64) {
    loop {
        let woken = app.dispatcher.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match app.store.builds().claim(runner_id).await {
            Ok(Some(claimed)) => {
                run(&app, claimed).await;
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "claiming a build failed"),
        }
        tokio::select! {
            _ = woken => {},
            _ = tokio::time::sleep(POLL) => {},
        }
    }
}

async fn run(app: &AppState, claimed: Claimed) {
    let Claimed {
        build_id,
        project_id,
        ..
    } = claimed;
    let span = tracing::info_span!("build", id = build_id, project = project_id);
    run_in(app, claimed).instrument(span).await
}

async fn run_in(app: &AppState, claimed: Claimed) {
    let build_id = claimed.build_id;
    let cancel = app.dispatcher.register(build_id);
    let watcher = tokio::spawn(watch_for_cancel(app.clone(), build_id));
    let (finish, plan) = match execute(app, claimed, cancel).await {
        Ok(done) => done,
        Err(err) => {
            tracing::error!(error = %err, "running the build failed");
            let line = format!("\n\x1b[31;1mERROR: Job failed (system failure): {err}\x1b[0;m\n");
            let _ = app
                .store
                .builds()
                .append_trace(build_id, line.as_bytes())
                .await;
            let finish = Finish {
                success: false,
                failure_reason: Some("runner_system_failure".into()),
                exit_code: None,
                coverage: None,
                retry: false,
            };
            (finish, None)
        }
    };
    watcher.abort();
    app.dispatcher.unregister(build_id);
    let mut finish = finish;
    if let Some(plan) = &plan {
        match wants_retry(app, claimed, plan, &finish).await {
            Ok(retry) => finish.retry = retry,
            Err(err) => tracing::error!(error = %err, "deciding on a retry failed"),
        }
    }
    match app.store.builds().finish(build_id, &finish).await {
        Ok((status, enqueued)) => {
            tracing::info!(status = %status, "build finished");
            app.dispatcher.wake(enqueued.len());
        }
        Err(err) => tracing::error!(error = %err, "recording the build's end failed"),
    }
}

/// Notices a cancel made elsewhere (another server) by reading the status.
async fn watch_for_cancel(app: AppState, build_id: i64) {
    loop {
        tokio::time::sleep(CANCEL_POLL).await;
        if let Ok(BuildStatus::Canceled) = app.store.builds().status(build_id).await {
            app.dispatcher.cancel(build_id);
            return;
        }
    }
}

/// The executor's view of a compiled job; callers fill in where it runs and its variables.
pub fn spec_from_plan(plan: &JobPlan, id: i64, default_timeout_secs: u64) -> JobSpec {
    JobSpec {
        id,
        name: plan.name.clone(),
        stage: plan.stage.clone(),
        repo: None,
        workdir: None,
        sha: String::new(),
        ref_name: String::new(),
        before_script: plan.before_script.clone(),
        script: plan.script.clone(),
        after_script: plan.after_script.clone(),
        variables: plan.variables.clone(),
        timeout: Duration::from_secs(plan.timeout_secs.unwrap_or(default_timeout_secs)),
        artifacts: plan.artifacts.as_ref().map(|a| ArtifactsSpec {
            name: a.name.clone().unwrap_or_else(|| "artifacts".to_owned()),
            untracked: a.untracked,
            paths: a.paths.clone(),
            exclude: a.exclude.clone(),
            when: match a.when {
                ArtifactsWhen::OnSuccess => "on_success",
                ArtifactsWhen::OnFailure => "on_failure",
                ArtifactsWhen::Always => "always",
            }
            .to_owned(),
        }),
        coverage_regex: plan.coverage.clone(),
        dependencies: Vec::new(),
    }
}

/// Which earlier jobs' artifacts a job receives, as GitLab decides: its `dependencies:` list
/// if given, else its `needs:` with `artifacts: true`, else every job of earlier stages.
/// `available` is (name, stage index, archive) of the pipeline's jobs with artifacts.
pub fn dependencies_of(
    plan: &JobPlan,
    available: &[(String, i64, PathBuf)],
) -> Vec<(String, PathBuf)> {
    let wanted = |name: &str, stage_idx: i64| match (&plan.dependencies, &plan.needs) {
        (Some(deps), _) => deps.iter().any(|d| d == name),
        (None, Some(needs)) => needs.iter().any(|n| n.artifacts && n.job == name),
        (None, None) => stage_idx < plan.stage_idx as i64,
    };
    available
        .iter()
        .filter(|(name, stage_idx, _)| name != &plan.name && wanted(name, *stage_idx))
        .map(|(name, _, file)| (name.clone(), file.clone()))
        .collect()
}

async fn execute(
    app: &AppState,
    claimed: Claimed,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Finish, Option<JobPlan>)> {
    let store = &app.store;
    let build = store
        .builds()
        .get(claimed.project_id, claimed.build_id)
        .await?;
    let pipeline = store.builds().pipeline_of(claimed.build_id).await?;
    let project = store
        .projects()
        .get(&ProjectRef::Id(claimed.project_id))
        .await?;
    let default_timeout = project.build_timeout.max(1) as u64;
    // Builds made by `kiln admin generate` carry only commands; compiled ones carry their plan.
    let plan: Option<JobPlan> = serde_json::from_str(&build.options).ok();
    let mut spec = match &plan {
        Some(plan) => {
            let mut spec = spec_from_plan(plan, build.id, default_timeout);
            let available: Vec<(String, i64, PathBuf)> = store
                .builds()
                .pipeline_artifacts(pipeline.id)
                .await?
                .into_iter()
                .map(|(name, stage, file)| (name, stage, PathBuf::from(file)))
                .collect();
            spec.dependencies = dependencies_of(plan, &available);
            spec
        }
        None => JobSpec {
            id: build.id,
            name: build.name.clone(),
            stage: build.stage.clone(),
            repo: None,
            workdir: None,
            sha: String::new(),
            ref_name: String::new(),
            before_script: vec![],
            script: build.commands.lines().map(str::to_owned).collect(),
            after_script: vec![],
            variables: vec![],
            timeout: Duration::from_secs(default_timeout),
            artifacts: None,
            coverage_regex: None,
            dependencies: vec![],
        },
    };
    spec.repo = match &project.repo_url {
        Some(url) => Some(
            app.mirrors
                .with_commit(project.id, url, &build.commit.sha)
                .await?
                .to_string_lossy()
                .into_owned(),
        ),
        None => None,
    };
    spec.sha = build.commit.sha.clone();
    spec.ref_name = build.ref_name.clone();
    spec.variables = variables::for_build(
        &app.config.external_url,
        &project,
        &pipeline,
        &build,
        &spec.variables,
    );
    let mut sink = StoreTrace {
        store: store.clone(),
        build_id: build.id,
    };
    let outcome = kiln_runner::execute(&spec, &app.executor, &mut sink, cancel).await;
    if let Some(zip) = &outcome.artifacts {
        let expire_at = match plan.as_ref().and_then(|p| p.artifacts.as_ref()) {
            Some(a) if a.expire_in.as_deref() == Some("never") => None,
            Some(a) => Some(
                kiln_store::now_ms()
                    + a.expire_in_secs
                        .map_or(DEFAULT_ARTIFACTS_TTL_MS, |s| s as i64 * 1000),
            ),
            None => None,
        };
        let file_name = zip.file_name().map_or_else(
            || "artifacts.zip".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let target = artifacts_path(app, project.id, build.id).join(file_name);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        if tokio::fs::rename(zip, &target).await.is_err() {
            tokio::fs::copy(zip, &target).await?;
            let _ = tokio::fs::remove_file(zip).await;
        }
        let size = tokio::fs::metadata(&target).await?.len() as i64;
        store
            .builds()
            .set_artifacts(
                project.id,
                build.id,
                &target.to_string_lossy(),
                size,
                expire_at,
            )
            .await?;
    }
    let finish = Finish {
        success: outcome.success(),
        failure_reason: outcome.failure.map(|r| r.as_str().to_owned()),
        exit_code: outcome.exit_code.map(i64::from),
        coverage: outcome.coverage,
        retry: false,
    };
    Ok((finish, plan))
}

/// GitLab's `retry:`: a failed job whose attempts are still within `max` (and whose failure
/// reason is one `retry: when:` names, if it names any) runs again as a new build.
async fn wants_retry(
    app: &AppState,
    claimed: Claimed,
    plan: &JobPlan,
    finish: &Finish,
) -> anyhow::Result<bool> {
    let reason = finish
        .failure_reason
        .as_deref()
        .unwrap_or("unknown_failure");
    let wanted =
        plan.retry.when.is_empty() || plan.retry.when.iter().any(|w| w == "always" || w == reason);
    if finish.success || plan.retry.max == 0 || !wanted {
        return Ok(false);
    }
    let attempts = app
        .store
        .builds()
        .attempts(claimed.pipeline_id, &plan.name)
        .await?;
    Ok(attempts <= i64::from(plan.retry.max))
}

/// The folder of a build's artifacts archive (which keeps its `<artifacts:name>.zip` name).
pub fn artifacts_path(app: &AppState, project_id: i64, build_id: i64) -> PathBuf {
    app.config
        .data_dir
        .join("artifacts")
        .join(project_id.to_string())
        .join(build_id.to_string())
}

/// The executor settings of a server.
pub fn executor_config(
    data_dir: &std::path::Path,
    max_trace: u64,
    max_artifacts: u64,
) -> ExecutorConfig {
    ExecutorConfig {
        max_trace_bytes: max_trace,
        max_artifacts_bytes: max_artifacts,
        ..ExecutorConfig::new(data_dir.join("builds"))
    }
}
