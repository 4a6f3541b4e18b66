//! A project's pipelines at GitLab's addresses: `/NS/PROJECT/-/pipelines` (filters by status
//! and ref, pages), `/NS/PROJECT/-/pipelines/ID` (stages as columns, `needs`, child pipelines
//! linked from their bridges), and the forms that run, cancel and retry pipelines. A role that
//! may not act is offered no button, and its post is refused anyway.

use super::page::{self, Page};
use super::session::Visitor;
use crate::params::Params;
use crate::query::QueryPairs;
use crate::service::pipelines::PipelineRequest;
use crate::service::projects::authorize_viewer;
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kiln_core::{BuildStatus, Caller, PageRequest, Permission};
use kiln_store::{
    BuildFilter, BuildRecord, PipelineFilter, PipelineRecord, ProjectRecord, UserRecord, Window,
};

const PER_PAGE: u32 = 20;
use crate::service::pipelines::STATUSES;

struct StageCell {
    name: String,
    status: String,
}

/// One choice of a status filter.
pub(super) struct StatusOption {
    pub(super) name: &'static str,
    pub(super) selected: bool,
}

struct Row {
    id: i64,
    status: String,
    ref_name: String,
    source: String,
    user: Option<String>,
    short_sha: String,
    title: String,
    stages: Vec<StageCell>,
    duration: String,
    age: String,
}

#[derive(Template)]
#[template(path = "pipelines.html")]
struct PipelinesPage<'a> {
    page: &'a Page,
    project: String,
    default_branch: String,
    statuses: Vec<StatusOption>,
    ref_name: String,
    can_run: bool,
    can_maintain: bool,
    rows: Vec<Row>,
    previous: Option<String>,
    next: Option<String>,
}

struct JobCell {
    id: i64,
    name: String,
    status: String,
    bridge: bool,
    downstream: Option<String>,
    needs: Option<String>,
    retryable: bool,
    playable: bool,
}

struct StageColumn {
    name: String,
    jobs: Vec<JobCell>,
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelinePage<'a> {
    page: &'a Page,
    project: String,
    id: i64,
    status: String,
    ref_name: String,
    short_sha: String,
    title: String,
    yaml_errors: Option<String>,
    upstream: Option<String>,
    can_update: bool,
    cancelable: bool,
    retryable: bool,
    stages: Vec<StageColumn>,
    dag: Option<super::dag::Dag>,
}

/// An error as a page, with the status the API would answer.
pub(super) fn failed(visitor: &Visitor, err: ApiError) -> Response {
    let (page, _) = visitor.page();
    let status = err.status();
    let heading = status.canonical_reason().unwrap_or("Error").to_owned();
    page::error(status, &page, &heading, &err.message())
}

/// The project (as the viewer may read its builds) and whether they may act on them.
pub(super) async fn project_for(
    state: &AppState,
    visitor: &Visitor,
    (namespace, repo): (&str, &str),
) -> Result<(ProjectRecord, bool), ApiError> {
    let viewer = visitor.session.as_ref().map(|(_, s)| &s.user);
    let access = authorize_viewer(
        state,
        viewer,
        &format!("{namespace}/{repo}"),
        Permission::ReadBuild,
    )
    .await?;
    let caller = Caller {
        is_admin: viewer.is_some_and(|u| u.is_admin),
        access: access.access,
    };
    let can = viewer.is_some() && caller.can(Permission::UpdateBuild, access.project.visibility);
    Ok((access.project, can))
}

/// Whether the visitor may open the project's settings (a maintainer, or an admin).
pub(super) async fn may_maintain(
    state: &AppState,
    visitor: &Visitor,
    project: &ProjectRecord,
) -> bool {
    let Some(user) = visitor.user() else {
        return false;
    };
    let path = project.full_path();
    crate::service::projects::authorize(state, user, &path, Permission::Maintain)
        .await
        .is_ok()
}

/// `GET /NS/PROJECT`: its pipelines, until the project has a page of its own.
pub async fn project_home(Path((namespace, repo)): Path<(String, String)>) -> Response {
    page::redirect(&format!("/{namespace}/{repo}/-/pipelines"), &[])
}

/// `GET /NS/PROJECT/-/pipelines`
pub async fn list(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo)): Path<(String, String)>,
    query: QueryPairs,
) -> Response {
    match list_page(&state, &visitor, (&namespace, &repo), &query).await {
        Ok(response) => response,
        Err(err) => failed(&visitor, err),
    }
}

async fn list_page(
    state: &AppState,
    visitor: &Visitor,
    path: (&str, &str),
    query: &QueryPairs,
) -> Result<Response, ApiError> {
    let (project, can_run) = project_for(state, visitor, path).await?;
    let live = super::live::events_url(state, &project);
    let status = query
        .get("status")
        .filter(|s| STATUSES.contains(s))
        .map(str::to_owned);
    let ref_name = query
        .get("ref")
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let number = page::number(query);
    let filter = PipelineFilter {
        status: status.clone(),
        ref_name: ref_name.clone(),
        ..PipelineFilter::default()
    };
    let request = PageRequest {
        page: number,
        per_page: PER_PAGE,
    };
    let (pipelines, total) = state
        .store
        .pipelines()
        .find(project.id, &filter, request)
        .await?;
    let now = kiln_store::now_ms();
    let mut rows = Vec::with_capacity(pipelines.len());
    for pipeline in &pipelines {
        let builds = builds_of(state, project.id, pipeline.id, false).await?;
        rows.push(row(pipeline, &builds, now));
    }
    let kept = [("status", status.clone()), ("ref", ref_name.clone())];
    let base = format!("/{}/-/pipelines", project.full_path());
    let link = |number: u32| page::link(&base, number, &kept);
    let shown = u64::from(number) * u64::from(PER_PAGE);
    let (mut page, cookies) = visitor.page();
    page.live = Some(live);
    let body = PipelinesPage {
        page: &page,
        project: project.full_path(),
        default_branch: project.default_branch.clone(),
        statuses: STATUSES
            .iter()
            .map(|name| StatusOption {
                name,
                selected: status.as_deref() == Some(*name),
            })
            .collect(),
        ref_name: ref_name.clone().unwrap_or_default(),
        can_run,
        can_maintain: may_maintain(state, visitor, &project).await,
        rows,
        previous: (number > 1).then(|| link(number - 1)),
        next: (shown < total).then(|| link(number + 1)),
    };
    Ok(page::render(StatusCode::OK, &body, &cookies))
}

/// The pipeline's current builds (or bridges), oldest first.
async fn builds_of(
    state: &AppState,
    project_id: i64,
    pipeline_id: i64,
    bridges: bool,
) -> Result<Vec<BuildRecord>, ApiError> {
    let filter = BuildFilter {
        pipeline_id: Some(pipeline_id),
        include_retried: false,
        bridges,
        ..BuildFilter::default()
    };
    let window = Window::Keyset {
        after: None,
        per_page: 10_000,
        newest_first: false,
    };
    Ok(state
        .store
        .builds()
        .find(project_id, &filter, window)
        .await?
        .builds)
}

fn row(pipeline: &PipelineRecord, builds: &[BuildRecord], now: i64) -> Row {
    // (stage index, name, each build's status and allow_failure)
    type Stage = (i64, String, Vec<(BuildStatus, bool)>);
    let mut stages: Vec<Stage> = Vec::new();
    for build in builds {
        match stages
            .iter_mut()
            .find(|(idx, _, _)| *idx == build.stage_idx)
        {
            Some((_, _, kinds)) => kinds.push((build.status, build.allow_failure)),
            None => stages.push((
                build.stage_idx,
                build.stage.clone(),
                vec![(build.status, build.allow_failure)],
            )),
        }
    }
    stages.sort_by_key(|(idx, _, _)| *idx);
    Row {
        id: pipeline.id,
        status: pipeline.status.clone(),
        ref_name: pipeline.ref_name.clone(),
        source: pipeline.source.clone(),
        user: pipeline.user.as_ref().map(|u| u.username.clone()),
        short_sha: pipeline.sha.chars().take(8).collect(),
        title: builds
            .first()
            .map(|b| b.commit.message.lines().next().unwrap_or("").to_owned())
            .unwrap_or_default(),
        stages: stages
            .into_iter()
            .map(|(_, name, kinds)| StageCell {
                name,
                status: kiln_core::processing::composite(kinds, false)
                    .map_or("skipped", |s| s.as_str())
                    .to_owned(),
            })
            .collect(),
        duration: match (pipeline.started_at, pipeline.finished_at) {
            (Some(start), Some(end)) => duration((end - start).max(0) / 1000),
            (Some(start), None) => format!("{} so far", duration((now - start).max(0) / 1000)),
            _ => "not started".to_owned(),
        },
        age: format!(
            "{} ago",
            duration((now - pipeline.created_at).max(0) / 1000)
        ),
    }
}

/// `1h 02m 05s`, `2m 05s`, `5s`.
pub(super) fn duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// `GET /NS/PROJECT/-/pipelines/ID`
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
) -> Response {
    match show_page(&state, &visitor, (&namespace, &repo), &id).await {
        Ok(response) => response,
        Err(err) => failed(&visitor, err),
    }
}

async fn show_page(
    state: &AppState,
    visitor: &Visitor,
    path: (&str, &str),
    id: &str,
) -> Result<Response, ApiError> {
    let (project, can_update) = project_for(state, visitor, path).await?;
    let live = super::live::events_url(state, &project);
    let pipeline_id = crate::service::pipelines::pipeline_id(id)?;
    let pipeline = crate::service::pipelines::get(state, project.id, pipeline_id).await?;
    let mut builds = builds_of(state, project.id, pipeline_id, false).await?;
    let bridges = builds_of(state, project.id, pipeline_id, true).await?;
    let downstream = state.store.builds().downstream_of(pipeline_id).await?;
    let title = builds
        .first()
        .or(bridges.first())
        .map(|b| b.commit.message.lines().next().unwrap_or("").to_owned())
        .unwrap_or_default();
    let bridge_ids: Vec<i64> = bridges.iter().map(|b| b.id).collect();
    builds.extend(bridges);
    builds.sort_by_key(|b| (b.stage_idx, b.id));
    let base = format!("/{}", project.full_path());
    let mut stages: Vec<StageColumn> = Vec::new();
    let needs: Vec<Vec<String>> = builds.iter().map(needs_of).collect();
    for (build, needs) in builds.iter().zip(&needs) {
        let bridge = bridge_ids.contains(&build.id);
        let cell = JobCell {
            id: build.id,
            name: build.name.clone(),
            status: build.status.as_str().to_owned(),
            bridge,
            downstream: downstream
                .iter()
                .rev()
                .find(|(b, _)| *b == build.id)
                .map(|(_, child)| format!("{base}/-/pipelines/{child}")),
            needs: (!needs.is_empty()).then(|| needs.join(", ")),
            retryable: !bridge && build.status.is_complete(),
            playable: !bridge && build.status == BuildStatus::Manual,
        };
        match stages.last_mut() {
            Some(column) if column.name == build.stage => column.jobs.push(cell),
            _ => stages.push(StageColumn {
                name: build.stage.clone(),
                jobs: vec![cell],
            }),
        }
    }
    let dag = super::dag::layout(
        &builds
            .iter()
            .zip(&needs)
            .map(|(build, needs)| super::dag::DagJob {
                name: &build.name,
                status: build.status.as_str(),
                href: (!bridge_ids.contains(&build.id))
                    .then(|| format!("{base}/-/jobs/{}", build.id)),
                needs: needs.iter().map(String::as_str).collect(),
            })
            .collect::<Vec<_>>(),
    );
    let upstream = state
        .store
        .builds()
        .upstream_of(pipeline_id)
        .await?
        .map(|parent| format!("{base}/-/pipelines/{parent}"));
    let status = pipeline.status.clone();
    let (mut page, cookies) = visitor.page();
    page.live = Some(live);
    let body = PipelinePage {
        page: &page,
        project: project.full_path(),
        id: pipeline.id,
        ref_name: pipeline.ref_name.clone(),
        short_sha: pipeline.sha.chars().take(8).collect(),
        title,
        yaml_errors: pipeline.yaml_errors.clone(),
        upstream,
        can_update,
        cancelable: builds.iter().any(|b| offers_cancel(b.status)),
        retryable: builds
            .iter()
            .any(|b| matches!(b.status, BuildStatus::Failed | BuildStatus::Canceled)),
        stages,
        dag,
        status,
    };
    Ok(page::render(StatusCode::OK, &body, &cookies))
}

/// Whether a Cancel button is offered for a build: GitLab offers none for a manual job
/// waiting to be run (canceling it would only hide the button that runs it).
pub(super) fn offers_cancel(status: BuildStatus) -> bool {
    status.is_cancelable() && status != BuildStatus::Manual
}

/// The jobs a DAG job needs, as its stored definition names them (none for a stage job).
fn needs_of(build: &BuildRecord) -> Vec<String> {
    match crate::service::definition::decode(&build.options) {
        Ok(crate::service::definition::JobDefinition::Compiled(plan)) => plan
            .needs
            .unwrap_or_default()
            .into_iter()
            .map(|need| need.job)
            .collect(),
        _ => Vec::new(),
    }
}

/// Who may act: a signed-in user allowed to update builds, whose form is this visitor's.
pub(super) async fn actor(
    state: &AppState,
    visitor: &Visitor,
    path: (&str, &str),
    params: &QueryPairs,
) -> Result<(ProjectRecord, i64), Response> {
    let (project, user) = form_actor(state, visitor, path, params, Permission::UpdateBuild).await?;
    Ok((project, user.id))
}

/// Who may act on a form: a visitor whose form is theirs (CSRF token), signed in, with
/// `permission` on the project.
pub(super) async fn form_actor(
    state: &AppState,
    visitor: &Visitor,
    path: (&str, &str),
    params: &QueryPairs,
    permission: Permission,
) -> Result<(ProjectRecord, UserRecord), Response> {
    if let Some(refused) = visitor.refuse_form(params.get("authenticity_token")) {
        return Err(refused);
    }
    let Some(user) = visitor.user() else {
        return Err(page::redirect("/users/sign_in", &[]));
    };
    let raw = format!("{}/{}", path.0, path.1);
    match crate::service::projects::authorize(state, user, &raw, permission).await {
        Ok(project) => Ok((project, user.clone())),
        Err(err) => Err(failed(visitor, err)),
    }
}

/// `POST /NS/PROJECT/-/pipelines`: "Run pipeline" (`ref`, and `KEY=value` lines).
pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo)): Path<(String, String)>,
    Params(params): Params,
) -> Response {
    let (project, user_id) = match actor(&state, &visitor, (&namespace, &repo), &params).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let ref_name = params.get("ref").unwrap_or_default().trim().to_owned();
    let variables: Vec<(String, String)> = params
        .get("variables")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    let request = PipelineRequest {
        project: &project,
        ref_name: &ref_name,
        source: "web",
        user_id: Some(user_id),
        variables,
        trigger_request_id: None,
        push_key: None,
    };
    match crate::service::pipelines::create(&state, request).await {
        Ok(id) => page::redirect(&format!("/{}/-/pipelines/{id}", project.full_path()), &[]),
        Err(err) => failed(&visitor, err),
    }
}

/// `POST /NS/PROJECT/-/pipelines/ID/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
    Params(params): Params,
) -> Response {
    act(&state, &visitor, (&namespace, &repo, &id), &params, false).await
}

/// `POST /NS/PROJECT/-/pipelines/ID/retry`
pub async fn retry(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
    Params(params): Params,
) -> Response {
    act(&state, &visitor, (&namespace, &repo, &id), &params, true).await
}

async fn act(
    state: &AppState,
    visitor: &Visitor,
    (namespace, repo, id): (&str, &str, &str),
    params: &QueryPairs,
    retry: bool,
) -> Response {
    let (project, user_id) = match actor(state, visitor, (namespace, repo), params).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let done = async {
        let pipeline_id = crate::service::pipelines::pipeline_id(id)?;
        if retry {
            crate::service::pipelines::retry(state, project.id, pipeline_id, user_id).await?;
        } else {
            crate::service::pipelines::cancel(state, project.id, pipeline_id).await?;
        }
        Ok::<i64, ApiError>(pipeline_id)
    };
    match done.await {
        Ok(pipeline_id) => page::redirect(
            &format!("/{}/-/pipelines/{pipeline_id}", project.full_path()),
            &[],
        ),
        Err(err) => failed(visitor, err),
    }
}
