//! A job's page, `/NS/PROJECT/-/jobs/ID`: its log (see `log`) beside its facts (duration,
//! queue time, runner, coverage, commit, pipeline, the other jobs of its stage), the plain
//! log at `…/raw`, and the cancel, retry, play and erase forms for those allowed to use them.

use super::page::{self, Page};
use super::pipelines::{actor, failed, project_for};
use super::session::Visitor;
use crate::params::Params;
use crate::service::builds as service;
use crate::service::job_logs::{self, Keep, WINDOW_BYTES};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_core::BuildStatus;
use kiln_store::{BuildFilter, BuildRecord, ProjectRecord, Window};

/// Search results a page without scripts lists (a script steps through all of them).
const LISTED_MATCHES: usize = 100;

struct Sibling {
    id: i64,
    name: String,
    status: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage<'a> {
    page: &'a Page,
    project: String,
    id: i64,
    name: String,
    stage: String,
    status: String,
    pipeline_id: i64,
    ref_name: String,
    short_sha: String,
    title: String,
    duration: String,
    queued: String,
    runner: String,
    coverage: Option<f64>,
    failure_reason: Option<String>,
    log: LogView,
    query: String,
    query_url: String,
    hits: Option<Hits>,
    siblings: Vec<Sibling>,
    can_update: bool,
    cancelable: bool,
    retryable: bool,
    playable: bool,
    erasable: bool,
    artifacts: Option<super::artifacts::Summary>,
}

/// The window of the log a page shows, rendered.
struct LogView {
    html: String,
    start: i64,
    end: i64,
    first_line: i64,
    lines: i64,
    size: i64,
    complete: bool,
    /// Whether more of the log follows that this page does not show (a page of its own).
    later: bool,
}

/// What a search found, for a page without scripts.
struct Hits {
    lines: Vec<(i64, i64)>,
    total: usize,
    more: bool,
}

/// A job as the viewer may read it.
pub(super) struct SeenJob {
    pub project: ProjectRecord,
    pub build: BuildRecord,
    pub can_update: bool,
    /// The project's event stream, as of before the build was read.
    pub live: String,
}

/// The job `id` of the project, as the viewer may read it.
pub(super) async fn job_of(
    state: &AppState,
    visitor: &Visitor,
    path: (&str, &str),
    id: &str,
) -> Result<SeenJob, ApiError> {
    let (project, can_update) = project_for(state, visitor, path).await?;
    let live = super::live::events_url(state, &project);
    let build_id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFoundMessage("404 Not found"))?;
    let build = service::show(&state.store, project.id, build_id).await?;
    if build.kind == "bridge" {
        return Err(ApiError::NotFoundMessage("404 Not found"));
    }
    Ok(SeenJob {
        project,
        build,
        can_update,
        live,
    })
}

/// `GET /NS/PROJECT/-/jobs/ID`
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
    query: crate::query::QueryPairs,
) -> Response {
    match show_page(&state, &visitor, (&namespace, &repo), (&id, &query)).await {
        Ok(response) => response,
        Err(err) => failed(&visitor, err),
    }
}

async fn show_page(
    state: &AppState,
    visitor: &Visitor,
    path: (&str, &str),
    (id, query): (&str, &crate::query::QueryPairs),
) -> Result<Response, ApiError> {
    let SeenJob {
        project,
        build,
        can_update,
        live,
    } = job_of(state, visitor, path, id).await?;
    let log = log_view(state, &build, query).await?;
    let text = query.get("q").unwrap_or("").trim().to_owned();
    let hits = if text.is_empty() {
        None
    } else {
        let (found, more) = job_logs::search(&state.store, build.id, &text).await?;
        Some(Hits {
            total: found.len(),
            lines: found
                .iter()
                .take(LISTED_MATCHES)
                .map(|m| (m.line, (m.offset - WINDOW_BYTES / 2).max(0)))
                .collect(),
            more,
        })
    };
    let filter = BuildFilter {
        pipeline_id: Some(build.pipeline_id),
        include_retried: false,
        ..BuildFilter::default()
    };
    let window = Window::Keyset {
        after: None,
        per_page: 1_000,
        newest_first: false,
    };
    let siblings = state
        .store
        .builds()
        .find(project.id, &filter, window)
        .await?
        .builds
        .into_iter()
        .filter(|b| b.stage_idx == build.stage_idx)
        .map(|b| Sibling {
            id: b.id,
            name: b.name,
            status: b.status.as_str().to_owned(),
        })
        .collect();
    let now = kiln_store::now_ms();
    let seconds = |from: Option<i64>, to: Option<i64>| match (from, to) {
        (Some(from), Some(to)) => super::pipelines::duration((to - from).max(0) / 1000),
        (Some(from), None) => format!(
            "{} so far",
            super::pipelines::duration((now - from).max(0) / 1000)
        ),
        _ => "—".to_owned(),
    };
    let (mut page, cookies) = visitor.page();
    page.live = Some(live);
    let status = build.status;
    let body = JobPage {
        page: &page,
        project: project.full_path(),
        id: build.id,
        name: build.name.clone(),
        stage: build.stage.clone(),
        status: status.as_str().to_owned(),
        pipeline_id: build.pipeline_id,
        ref_name: build.ref_name.clone(),
        short_sha: build.commit.sha.chars().take(8).collect(),
        title: build.commit.message.lines().next().unwrap_or("").to_owned(),
        duration: seconds(build.started_at, build.finished_at),
        queued: seconds(build.queued_at, build.started_at.or(build.finished_at)),
        runner: build.runner.as_ref().map_or_else(
            || "—".to_owned(),
            |r| format!("#{} {}", r.id, r.description),
        ),
        coverage: build.coverage,
        failure_reason: build
            .failure_reason
            .clone()
            .filter(|_| status == BuildStatus::Failed),
        log,
        query_url: form_urlencoded::byte_serialize(text.as_bytes()).collect(),
        query: text,
        hits,
        siblings,
        can_update,
        cancelable: super::pipelines::offers_cancel(status),
        retryable: status.is_complete(),
        playable: status == BuildStatus::Manual,
        erasable: status.is_complete() && build.erased_at.is_none(),
        artifacts: super::artifacts::summary(&build, kiln_store::now_ms()),
    };
    Ok(page::render(StatusCode::OK, &body, &cookies))
}

/// The bytes of the log a page or a script asks for: `from` (a window from there), `to` (the
/// window that ends there), or neither (the end of the log, where a running job writes).
fn asked_range(query: &crate::query::QueryPairs, size: i64) -> (i64, i64, Keep) {
    let offset = |key: &str| query.get(key).and_then(|v| v.parse::<i64>().ok());
    match (offset("from"), offset("to")) {
        (Some(from), _) => (from, from.saturating_add(WINDOW_BYTES), Keep::First),
        (None, Some(to)) => (to.saturating_sub(WINDOW_BYTES), to, Keep::Last),
        (None, None) => (size - WINDOW_BYTES, size, Keep::Last),
    }
}

async fn log_view(
    state: &AppState,
    build: &BuildRecord,
    query: &crate::query::QueryPairs,
) -> Result<LogView, ApiError> {
    let size = build.trace_size;
    let complete = job_logs::log_is_final(build.status);
    let range = asked_range(query, size);
    let window = job_logs::window(&state.store, build.id, range, (size, complete)).await?;
    let asked = query.get("from").is_some() || query.get("to").is_some();
    Ok(LogView {
        html: super::log::render(
            &String::from_utf8_lossy(&window.text),
            window.first_line as usize,
        ),
        start: window.start,
        end: window.end,
        first_line: window.first_line,
        lines: window.lines,
        size,
        complete,
        later: window.end < size && (complete || asked),
    })
}

/// `GET /NS/PROJECT/-/jobs/ID/log?from=…|to=…`: a window of the log, rendered, as JSON.
pub async fn log_window(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
    query: crate::query::QueryPairs,
) -> Response {
    let found = async {
        let build = job_of(&state, &visitor, (&namespace, &repo), &id)
            .await?
            .build;
        log_view(&state, &build, &query).await
    };
    match found.await {
        Ok(view) => axum::Json(serde_json::json!({
            "start": view.start,
            "end": view.end,
            "first_line": view.first_line,
            "lines": view.lines,
            "size": view.size,
            "complete": view.complete,
            "html": view.html,
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

/// `GET /NS/PROJECT/-/jobs/ID/log/search?q=…`: the lines whose text contains `q` (ASCII case
/// ignored), as JSON: `matches` (line and offset of each, at most 1000) and `more`.
pub async fn log_search(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
    query: crate::query::QueryPairs,
) -> Response {
    let text = query.get("q").unwrap_or("").trim().to_owned();
    let found = async {
        let build = job_of(&state, &visitor, (&namespace, &repo), &id)
            .await?
            .build;
        if text.is_empty() || text.len() > 1_000 {
            return Err(ApiError::BadRequest("q is missing or too long".into()));
        }
        Ok(job_logs::search(&state.store, build.id, &text).await?)
    };
    match found.await {
        Ok((matches, more)) => {
            let matches: Vec<_> = matches
                .iter()
                .map(|m| serde_json::json!({ "line": m.line, "offset": m.offset }))
                .collect();
            axum::Json(serde_json::json!({ "matches": matches, "more": more })).into_response()
        }
        Err(err) => err.into_response(),
    }
}

/// `GET /NS/PROJECT/-/jobs/ID/raw`: the log as plain text, streamed (a 100 MB log is never
/// held whole).
pub async fn raw(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
) -> Response {
    match job_of(&state, &visitor, (&namespace, &repo), &id).await {
        Ok(seen) => crate::api::build_files::show_trace(&state, &seen.build),
        Err(err) => failed(&visitor, err),
    }
}

/// What a job's form asks for.
#[derive(Clone, Copy)]
enum Action {
    Cancel,
    Retry,
    Play,
    Erase,
    KeepArtifacts,
}

/// `POST /NS/PROJECT/-/jobs/ID/ACTION` (cancel, retry, play, erase): to the job's page after,
/// or the new job's after a retry.
pub async fn act(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id, action)): Path<(String, String, String, String)>,
    Params(params): Params,
) -> Response {
    let action = match action.as_str() {
        "cancel" => Action::Cancel,
        "retry" => Action::Retry,
        "play" => Action::Play,
        "erase" => Action::Erase,
        _ => return failed(&visitor, ApiError::NotFoundMessage("404 Not found")),
    };
    act_on(&state, &visitor, (&namespace, &repo, &id), action, &params).await
}

/// `POST /NS/PROJECT/-/jobs/ID/artifacts/keep`
pub async fn keep_artifacts(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
    Params(params): Params,
) -> Response {
    let path = (namespace.as_str(), repo.as_str(), id.as_str());
    act_on(&state, &visitor, path, Action::KeepArtifacts, &params).await
}

/// Checks the form and the visitor's right to act, acts, and shows the job acted on.
async fn act_on(
    state: &AppState,
    visitor: &Visitor,
    (namespace, repo, id): (&str, &str, &str),
    action: Action,
    params: &crate::query::QueryPairs,
) -> Response {
    let (project, user_id) = match actor(state, visitor, (namespace, repo), params).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match perform(state, &project, (id, user_id), action).await {
        Ok(build) => page::redirect(&format!("/{}/-/jobs/{build}", project.full_path()), &[]),
        Err(err) => failed(visitor, err),
    }
}

async fn perform(
    state: &AppState,
    project: &ProjectRecord,
    (id, user_id): (&str, i64),
    action: Action,
) -> Result<i64, ApiError> {
    let build_id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFoundMessage("404 Not found"))?;
    let user = state.store.users().get(user_id).await?;
    let build = match action {
        Action::Cancel => service::cancel(state, project.id, build_id).await?,
        Action::Retry => service::retry(state, project.id, build_id, &user).await?,
        Action::Play => service::play(state, (project.id, build_id), &user, &[]).await?,
        Action::Erase => service::erase(state, project.id, build_id, &user).await?,
        Action::KeepArtifacts => service::keep_artifacts(state, project.id, build_id).await?,
    };
    Ok(build.id)
}

const PER_PAGE: u32 = 30;

struct JobRow {
    id: i64,
    name: String,
    status: String,
    stage: String,
    ref_name: String,
    short_sha: String,
    pipeline_id: i64,
    duration: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage<'a> {
    page: &'a Page,
    project: String,
    statuses: Vec<super::pipelines::StatusOption>,
    name: String,
    ref_name: String,
    rows: Vec<JobRow>,
    previous: Option<String>,
    next: Option<String>,
}

/// `GET /NS/PROJECT/-/jobs`: newest first, by status, name and ref.
pub async fn list(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo)): Path<(String, String)>,
    query: crate::query::QueryPairs,
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
    query: &crate::query::QueryPairs,
) -> Result<Response, ApiError> {
    let (project, _) = project_for(state, visitor, path).await?;
    let live = super::live::events_url(state, &project);
    let status = BuildStatus::ALL
        .iter()
        .copied()
        .find(|s| query.get("status") == Some(s.as_str()));
    let text = |key: &str| query.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
    let (name, ref_name) = (text("name"), text("ref"));
    let number = page::number(query);
    let filter = BuildFilter {
        scope: status.map_or_else(kiln_core::Scope::all, |s| kiln_core::Scope::of(&[s])),
        name: name.clone(),
        ref_name: ref_name.clone(),
        ..BuildFilter::default()
    };
    let window = Window::Offset {
        page: kiln_core::PageRequest {
            page: number,
            per_page: PER_PAGE,
        },
        newest_first: true,
    };
    let slice = state
        .store
        .builds()
        .find(project.id, &filter, window)
        .await?;
    let rows = slice
        .builds
        .iter()
        .filter(|b| b.kind != "bridge")
        .map(|b| JobRow {
            id: b.id,
            name: b.name.clone(),
            status: b.status.as_str().to_owned(),
            stage: b.stage.clone(),
            ref_name: b.ref_name.clone(),
            short_sha: b.commit.sha.chars().take(8).collect(),
            pipeline_id: b.pipeline_id,
            duration: match (b.started_at, b.finished_at) {
                (Some(from), Some(to)) => super::pipelines::duration((to - from).max(0) / 1000),
                _ => "—".to_owned(),
            },
        })
        .collect();
    let kept = [
        ("status", status.map(|s| s.as_str().to_owned())),
        ("name", name.clone()),
        ("ref", ref_name.clone()),
    ];
    let base = format!("/{}/-/jobs", project.full_path());
    let link = |number: u32| page::link(&base, number, &kept);
    let (mut page, cookies) = visitor.page();
    page.live = Some(live);
    let body = JobsPage {
        page: &page,
        project: project.full_path(),
        statuses: BuildStatus::ALL
            .iter()
            .map(|s| super::pipelines::StatusOption {
                name: s.as_str(),
                selected: Some(*s) == status,
            })
            .collect(),
        name: name.clone().unwrap_or_default(),
        ref_name: ref_name.clone().unwrap_or_default(),
        rows,
        previous: (number > 1).then(|| link(number - 1)),
        next: slice.has_more.then(|| link(number + 1)),
    };
    Ok(page::render(StatusCode::OK, &body, &cookies))
}
