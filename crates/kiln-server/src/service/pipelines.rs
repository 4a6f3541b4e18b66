//! Creating a pipeline, whatever asked for it (`kiln pipeline run`, a trigger, the v4 API,
//! the poller): read the commit and its `.gitlab-ci.yml` from the mirror, compile, insert the
//! pipeline with all its builds in one transaction, process it, wake the runners. A file that
//! does not compile gives a failed pipeline carrying the error, never an HTTP error.

use crate::git::{self, GitError};
use crate::{ApiError, AppInner};
use kiln_ci::{CompileContext, JobPlan, PipelinePlan};
use kiln_core::BuildStatus;
use kiln_store::{NewBuild, NewPipeline, ProjectRecord};
use std::collections::BTreeMap;

pub const CONFIG_PATH: &str = ".gitlab-ci.yml";
/// The statuses a pipeline can have (what `status=` filters may name).
pub const STATUSES: &[&str] = &[
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
];
/// The message GitLab gives when `workflow: rules` or filtering leaves nothing to run.
pub const FILTERED_OUT: &str = "Pipeline filtered out by workflow rules.";

pub struct PipelineRequest<'a> {
    pub project: &'a ProjectRecord,
    pub ref_name: &'a str,
    /// push, web, trigger, api.
    pub source: &'a str,
    pub user_id: Option<i64>,
    /// Trigger or API variables; they win over the file's.
    pub variables: Vec<(String, String)>,
    pub trigger_request_id: Option<i64>,
    /// For a pipeline of a pushed head: the push's key (see `NewPipeline::push_key`).
    pub push_key: Option<String>,
}

/// Creates and starts the pipeline; returns its id.
pub async fn create(app: &AppInner, request: PipelineRequest<'_>) -> Result<i64, ApiError> {
    let project = request.project;
    let url = project
        .repo_url
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("Project has no repository".into()))?;
    let mirror = app.mirrors.sync(project.id, url).await.map_err(git_error)?;
    let (mirror_for_read, ref_name) = (mirror.clone(), request.ref_name.to_owned());
    let (commit, tag, text) = tokio::task::spawn_blocking(move || {
        git::read_for_pipeline(&mirror_for_read, &ref_name, CONFIG_PATH)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(git_error)?;
    // GitLab compares `rules: changes` with the push's previous commit: a branch's push only;
    // a new branch, a tag, a schedule or a person running it makes every `changes` hold.
    let before = match (request.source, tag) {
        ("push", false) => app
            .store
            .pipelines()
            .latest(project.id, request.ref_name)
            .await?
            .map(|p| p.sha)
            .filter(|previous| *previous != commit.sha),
        _ => None,
    };
    let source = Source {
        mirror,
        commit,
        tag,
        text,
        before,
    };
    let pipeline = compose(&request, source).await?;
    let (pipeline_id, _) = app.store.pipelines().create(&pipeline).await?;
    if pipeline.yaml_errors.is_none() {
        // Builds that become pending reach the runners through the change feed.
        app.store.pipelines().process(pipeline_id).await?;
    }
    Ok(pipeline_id)
}

/// What a pipeline is made from: the commit in the project's mirror and its configuration.
pub struct Source {
    pub mirror: std::path::PathBuf,
    pub commit: git::CommitInfo,
    pub tag: bool,
    /// The configuration's text; None when the commit has no `.gitlab-ci.yml`.
    pub text: Option<String>,
    /// The commit before the push, for `rules: changes`.
    pub before: Option<String>,
}

/// Compiles the configuration for the request into the pipeline to insert: its builds, or
/// (failed) the compile error. `BadRequest` when nothing would run.
pub async fn compose(
    request: &PipelineRequest<'_>,
    source: Source,
) -> Result<NewPipeline, ApiError> {
    let project = request.project;
    let Source {
        mirror,
        commit,
        tag,
        text,
        before,
    } = source;
    let sha = commit.sha.clone();
    let mut context_vars = compile_variables(
        project,
        request.ref_name,
        tag,
        &sha,
        &commit.message,
        request.source,
    );
    context_vars.extend(request.variables.iter().cloned());
    let compiled = match text {
        None => Err(format!("Missing {CONFIG_PATH} file")),
        Some(text) if text.contains('\0') => Err(format!(
            "{CONFIG_PATH} is not valid YAML: it contains a NUL byte"
        )),
        Some(text) => {
            let (mirror, sha, ref_name, source) = (
                mirror.clone(),
                sha.clone(),
                request.ref_name.to_owned(),
                request.source.to_owned(),
            );
            crate::service::compiler::run(move || {
                let files = git::CommitFiles {
                    repo: mirror.to_path_buf(),
                    sha,
                    before,
                };
                let ctx = CompileContext {
                    ref_name: &ref_name,
                    tag,
                    source: &source,
                    variables: &context_vars,
                    repository: &files,
                };
                kiln_ci::compile(&text, &ctx).map_err(|e| e.message)
            })
            .await
            .unwrap_or_else(|message| Err(message.to_owned()))
        }
    };
    let plan = match compiled {
        Err(message) if message == FILTERED_OUT => {
            return Err(ApiError::BadRequest(FILTERED_OUT.into()))
        }
        Ok(plan) if plan.jobs.is_empty() => {
            return Err(ApiError::BadRequest(
                "No stages / jobs for this pipeline.".into(),
            ))
        }
        other => other,
    };
    let (status, yaml_errors, builds) = match &plan {
        Ok(plan) => ("created", None, new_builds(plan, request.user_id)),
        Err(message) => ("failed", Some(message.clone()), Vec::new()),
    };
    Ok(NewPipeline {
        project_id: project.id,
        commit: commit.into_record(),
        ref_name: request.ref_name.to_owned(),
        tag,
        status: status.to_owned(),
        user_id: request.user_id,
        yaml_errors,
        source: request.source.to_owned(),
        variables: serde_json::to_string(&request.variables).unwrap_or_else(|_| "[]".into()),
        trigger_request_id: request.trigger_request_id,
        push_key: request.push_key.clone(),
        upstream: None,
        builds,
    })
}

fn new_builds(plan: &PipelinePlan, user_id: Option<i64>) -> Vec<NewBuild> {
    plan.jobs
        .iter()
        .map(|job: &JobPlan| NewBuild {
            needs: job.needs.as_ref().map(|needs| {
                serde_json::to_string(&needs.iter().map(|n| &n.job).collect::<Vec<_>>())
                    .unwrap_or_default()
            }),
            when: job.when.as_str().to_owned(),
            allow_failure: job.allow_failure,
            options: crate::service::definition::encode(job),
            commands: job
                .before_script
                .iter()
                .chain(&job.script)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            user_id,
            tags: kiln_store::runners::normalize_tags(&job.tags),
            kind: if job.trigger.is_some() {
                "bridge"
            } else {
                "build"
            }
            .to_owned(),
            ..NewBuild::new(
                &job.name,
                &job.stage,
                job.stage_idx as i64,
                BuildStatus::Created,
            )
        })
        .collect()
}

/// The variables `rules: if:` may look at when the pipeline is compiled.
/// The variables `rules:` and `only: variables` see when the file is compiled.
pub fn compile_variables(
    project: &ProjectRecord,
    ref_name: &str,
    tag: bool,
    sha: &str,
    message: &str,
    source: &str,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        vars.insert(k.to_owned(), v.to_owned());
    };
    set("CI", "true");
    set("GITLAB_CI", "true");
    set("CI_COMMIT_SHA", sha);
    set("CI_COMMIT_REF_NAME", ref_name);
    set("CI_COMMIT_MESSAGE", message);
    set("CI_PIPELINE_SOURCE", source);
    set("CI_DEFAULT_BRANCH", &project.default_branch);
    set("CI_PROJECT_PATH", &project.full_path());
    set("CI_PROJECT_NAMESPACE", &project.namespace);
    set("CI_PROJECT_NAME", &project.path);
    if tag {
        set("CI_COMMIT_TAG", ref_name);
        set("CI_BUILD_TAG", ref_name);
    } else {
        set("CI_COMMIT_BRANCH", ref_name);
    }
    vars
}

fn git_error(err: GitError) -> ApiError {
    match err {
        GitError::UnknownRef(_) => ApiError::BadRequest("Reference not found".into()),
        GitError::NoRepository => ApiError::BadRequest("Project has no repository".into()),
        GitError::Failed(message) => ApiError::Internal(anyhow::anyhow!("git: {message}")),
    }
}

/// Grape's `requires :pipeline_id, type: Integer`.
pub fn pipeline_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Params("pipeline_id is invalid".into()))
}

/// The project's pipeline `pipeline_id`; another project's is `404 Not found`.
pub async fn get(
    app: &AppInner,
    project_id: i64,
    pipeline_id: i64,
) -> Result<kiln_store::PipelineRecord, ApiError> {
    match app.store.pipelines().get(pipeline_id).await {
        Ok(pipeline) if pipeline.project_id == project_id => Ok(pipeline),
        Ok(_) | Err(kiln_store::StoreError::NotFound) => {
            Err(ApiError::NotFoundMessage("404 Not found"))
        }
        Err(err) => Err(err.into()),
    }
}

/// Cancels what still runs in the pipeline and in the child pipelines its bridges started
/// (as GitLab cancels downstream pipelines); returns it as it is now.
pub async fn cancel(
    app: &AppInner,
    project_id: i64,
    pipeline_id: i64,
) -> Result<kiln_store::PipelineRecord, ApiError> {
    get(app, project_id, pipeline_id).await?;
    // Children nest two deep at most (GitLab's limit); each is its own transaction, taken
    // after the parent's, so no two locks are ever held in the other order.
    let mut todo = vec![pipeline_id];
    while let Some(next) = todo.pop() {
        app.store.pipelines().cancel(project_id, next).await?;
        let children = app.store.builds().downstream_of(next).await?;
        todo.extend(children.into_iter().map(|(_, child)| child));
    }
    get(app, project_id, pipeline_id).await
}

/// Retries the pipeline's failed and canceled builds for `user_id`; returns it as it is now.
pub async fn retry(
    app: &AppInner,
    project_id: i64,
    pipeline_id: i64,
    user_id: i64,
) -> Result<kiln_store::PipelineRecord, ApiError> {
    get(app, project_id, pipeline_id).await?;
    app.store
        .pipelines()
        .retry_failed(project_id, pipeline_id, Some(user_id))
        .await?;
    get(app, project_id, pipeline_id).await
}

/// Deletes the pipeline, its builds and their files.
pub async fn delete(app: &AppInner, project_id: i64, pipeline_id: i64) -> Result<(), ApiError> {
    get(app, project_id, pipeline_id).await?;
    let archives = app
        .store
        .pipelines()
        .delete(project_id, pipeline_id)
        .await?;
    for (build_id, location) in archives {
        app.artifacts.delete(&app.store, build_id, &location).await;
    }
    Ok(())
}
