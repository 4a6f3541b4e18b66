//! The v4 Jobs API (current GitLab's `lib/api/ci/jobs.rb` and `job_artifacts.rb`) over the
//! same build services as v3's Builds API; only parsing and presenting differ.
//!
//! Lists page by offset (`page`, `per_page`) or by keyset (`pagination=keyset`, `order_by=id`,
//! `sort=asc|desc`, and the opaque `cursor` of the `next` link), and filter by `scope[]` and,
//! beyond GitLab, by `name` and `ref`.

use crate::api::build_files::{send_artifacts, send_trace};
use crate::api::build_pages::{cached_page, json, to_json};
use crate::auth::{CurrentUser, UserOrJob, Viewer};
use crate::cache::{PageKey, Presenter as CacheKeyPresenter};
use crate::pagination;
use crate::params::Params;
use crate::present::jobs::Presenter;
use crate::query::QueryPairs;
use crate::service::{
    builds as service,
    projects::{authorize, authorize_viewer},
};
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kiln_core::{PageInfo, Permission, Scope};
use kiln_store::{BuildFilter, BuildRecord, ProjectRecord, Window};

fn presenter<'a>(state: &'a AppState, project: &'a ProjectRecord) -> Presenter<'a> {
    Presenter {
        external_url: &state.config.external_url,
        project,
        now_ms: kiln_store::now_ms(),
    }
}

/// Grape's `requires :job_id, type: Integer`.
fn job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Params("job_id is invalid".into()))
}

/// `scope` / `scope[]`, checked against the statuses as Grape's `values:` does.
fn scope(query: &QueryPairs) -> Result<Scope, ApiError> {
    Scope::from_query_pairs(query.iter())
        .map_err(|_| ApiError::Params("scope does not have a valid value".into()))
}

/// The opaque cursor of a keyset page: base64 of `{"id":"N","_kd":"n"}`, GitLab's shape.
pub fn encode_cursor(id: i64) -> String {
    let json = format!("{{\"id\":\"{id}\",\"_kd\":\"n\"}}");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(raw: &str) -> Option<i64> {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = engine.decode(raw.trim_end_matches('=')).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match &value["id"] {
        serde_json::Value::String(id) => id.parse().ok(),
        serde_json::Value::Number(id) => id.as_i64(),
        _ => None,
    }
}

/// The page asked for; `newest_first` is the list's own order for offset pages.
fn window(query: &QueryPairs, newest_first: bool) -> Result<Window, ApiError> {
    let page = pagination::page_request(query, crate::present::ApiVersion::V4)?;
    if query.get("pagination") != Some("keyset") {
        return Ok(Window::Offset { page, newest_first });
    }
    if !matches!(query.get("order_by"), None | Some("id")) {
        return Err(ApiError::Refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "Keyset pagination is not yet available for this type of request".into(),
        ));
    }
    let newest_first = match query.get("sort") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::Params("sort does not have a valid value".into())),
    };
    let after = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => {
            Some(decode_cursor(raw).ok_or_else(|| ApiError::Params("cursor is invalid".into()))?)
        }
    };
    Ok(Window::Keyset {
        after,
        per_page: page.per_page,
        newest_first,
    })
}

/// Answers one list: cached when it is a counted offset page, with the headers its kind of
/// page has.
async fn list_response(
    state: &AppState,
    project: &ProjectRecord,
    (uri, query): (&Uri, &QueryPairs),
    filter: BuildFilter,
    window: Window,
) -> Result<Response, ApiError> {
    let url_base = format!("{}{}", state.config.external_url, uri.path());
    let present = |builds: &[BuildRecord]| {
        let presenter = presenter(state, project);
        let body: Vec<_> = builds.iter().map(|b| presenter.job(b)).collect();
        to_json(&body)
    };
    let counted =
        filter.name.is_none() && filter.ref_name.is_none() && filter.pipeline_id.is_none();
    if let (
        true,
        Window::Offset {
            page,
            newest_first: true,
        },
    ) = (counted, window)
    {
        let key = PageKey {
            presenter: CacheKeyPresenter::V4,
            project_id: project.id,
            sha: None,
            statuses: filter.scope.statuses().to_vec(),
            page: page.page,
            per_page: page.per_page,
            keyset: None,
        };
        let fetch = service::list(&state.store, project.id, &filter.scope, page);
        let cached = cached_page(state, key, fetch, |b| present(&b.builds)).await?;
        let headers = pagination::headers(&PageInfo::new(page, cached.total), &url_base, query);
        return Ok((headers, json(StatusCode::OK, cached.body)).into_response());
    }
    if let (
        true,
        Window::Keyset {
            after,
            per_page,
            newest_first,
        },
    ) = (counted, window)
    {
        // A keyset page of the whole list (or a status filter) is cached like an offset page.
        let key = PageKey {
            presenter: CacheKeyPresenter::V4,
            project_id: project.id,
            sha: None,
            statuses: filter.scope.statuses().to_vec(),
            page: 0,
            per_page,
            keyset: Some((after, newest_first)),
        };
        let version = state.store.versions().builds(project.id);
        let cached = match state.cache.pages.get(&key, version) {
            Some(cached) => cached,
            None => {
                let slice = state
                    .store
                    .builds()
                    .find(project.id, &filter, window)
                    .await?;
                let cached = crate::cache::CachedPage {
                    body: present(&slice.builds)?,
                    total: 0,
                    next: slice
                        .has_more
                        .then(|| slice.builds.last().map(|b| b.id))
                        .flatten(),
                };
                state.cache.pages.insert(key, cached.clone(), version);
                cached
            }
        };
        let next = cached.next.map(encode_cursor);
        let headers = pagination::keyset_headers(next.as_deref(), &url_base, query);
        return Ok((headers, json(StatusCode::OK, cached.body)).into_response());
    }
    let slice = state
        .store
        .builds()
        .find(project.id, &filter, window)
        .await?;
    let body = present(&slice.builds)?;
    let headers = match (window, slice.total) {
        (Window::Keyset { .. }, _) => {
            let next = slice
                .has_more
                .then(|| slice.builds.last().map(|b| encode_cursor(b.id)))
                .flatten();
            pagination::keyset_headers(next.as_deref(), &url_base, query)
        }
        (Window::Offset { page, .. }, Some(total)) => {
            pagination::headers(&PageInfo::new(page, total), &url_base, query)
        }
        (Window::Offset { page, .. }, None) => {
            pagination::headers_without_total(page, slice.has_more, &url_base, query)
        }
    };
    Ok((headers, json(StatusCode::OK, body)).into_response())
}

/// `GET /projects/:id/jobs` — newest first; `scope[]`, `name`, `ref`.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let filter = BuildFilter {
        scope: scope(&query)?,
        name: query.get("name").map(str::to_owned),
        ref_name: query.get("ref").map(str::to_owned),
        ..BuildFilter::default()
    };
    let window = window(&query, true)?;
    list_response(&state, &project, (&uri, &query), filter, window).await
}

/// The project and pipeline a pipeline's list is of. In GitLab's Pipelines API
/// (`authenticate_non_get!`), public projects answer anonymously.
async fn pipeline_of(
    state: &AppState,
    viewer: Option<&kiln_store::UserRecord>,
    id: &str,
    pipeline: &str,
) -> Result<(ProjectRecord, i64), ApiError> {
    let project = authorize_viewer(state, viewer, id, Permission::ReadBuild)
        .await?
        .project;
    let pipeline_id = crate::service::pipelines::pipeline_id(pipeline)?;
    crate::service::pipelines::get(state, project.id, pipeline_id).await?;
    Ok((project, pipeline_id))
}

/// `GET /projects/:id/pipelines/:pipeline_id/jobs` — oldest first, as GitLab pages them;
/// retried jobs only with `include_retried`.
pub async fn list_for_pipeline(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path((id, pipeline)): Path<(String, String)>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let (project, pipeline_id) = pipeline_of(&state, viewer.as_ref(), &id, &pipeline).await?;
    let mut problems = Vec::new();
    let include_retried = crate::params::boolean(&query, "include_retried", &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let filter = BuildFilter {
        scope: scope(&query)?,
        pipeline_id: Some(pipeline_id),
        include_retried: include_retried.unwrap_or(false),
        ..BuildFilter::default()
    };
    let window = window(&query, false)?;
    list_response(&state, &project, (&uri, &query), filter, window).await
}

/// `GET /projects/:id/pipelines/:pipeline_id/bridges`: the pipeline's `trigger:` jobs, each
/// with the pipeline it started (`Entities::Ci::Bridge`: the job's basics and
/// `downstream_pipeline`).
pub async fn list_bridges(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path((id, pipeline)): Path<(String, String)>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let (project, pipeline_id) = pipeline_of(&state, viewer.as_ref(), &id, &pipeline).await?;
    let filter = BuildFilter {
        scope: scope(&query)?,
        pipeline_id: Some(pipeline_id),
        include_retried: false,
        bridges: true,
        ..BuildFilter::default()
    };
    let window = window(&query, false)?;
    let slice = state
        .store
        .builds()
        .find(project.id, &filter, window)
        .await?;
    let downstream = state.store.builds().downstream_of(pipeline_id).await?;
    let presenter = presenter(&state, &project);
    let mut body = Vec::with_capacity(slice.builds.len());
    for bridge in &slice.builds {
        let mut shown = serde_json::to_value(presenter.job(bridge))
            .map_err(|e| ApiError::Internal(e.into()))?;
        let child = match downstream.iter().rev().find(|(b, _)| *b == bridge.id) {
            Some((_, child)) => {
                let child = state.store.pipelines().get(*child).await?;
                serde_json::to_value(presenter.pipeline_basic(&child))
                    .map_err(|e| ApiError::Internal(e.into()))?
            }
            None => serde_json::Value::Null,
        };
        if let Some(fields) = shown.as_object_mut() {
            for runner_only in [
                "artifacts_file",
                "artifacts",
                "runner",
                "runner_manager",
                "artifacts_expire_at",
                "tag_list",
                "archived",
            ] {
                fields.remove(runner_only);
            }
            fields.insert("downstream_pipeline".into(), child);
        }
        body.push(shown);
    }
    let url_base = format!("{}{}", state.config.external_url, uri.path());
    let page = match window {
        Window::Offset { page, .. } => page,
        Window::Keyset { per_page, .. } => kiln_core::PageRequest { page: 1, per_page },
    };
    let total = slice.total.unwrap_or(body.len() as u64);
    let headers = pagination::headers(&PageInfo::new(page, total), &url_base, &query);
    Ok((headers, json(StatusCode::OK, to_json(&body)?)).into_response())
}

fn present_one(
    state: &AppState,
    project: &ProjectRecord,
    build: &BuildRecord,
) -> Result<Bytes, ApiError> {
    to_json(&presenter(state, project).job(build))
}

/// `GET /projects/:id/jobs/:job_id`
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, job)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let build = service::show(&state.store, project.id, job_id(&job)?).await?;
    Ok(json(StatusCode::OK, present_one(&state, &project, &build)?))
}

/// `GET /job` — the job whose `JOB-TOKEN` calls.
pub async fn current(
    State(state): State<AppState>,
    caller: UserOrJob,
) -> Result<Response, ApiError> {
    let job = caller.job.ok_or(ApiError::NotFound("Job"))?;
    let project = state
        .store
        .projects()
        .get(&kiln_store::ProjectRef::Id(job.project_id))
        .await?;
    Ok(json(StatusCode::OK, present_one(&state, &project, &job)?))
}

type JobPath = Path<(String, String)>;

/// The project (with `permission`) and job id of a job route.
async fn job_of(
    state: &AppState,
    user: &kiln_store::UserRecord,
    (id, job): (String, String),
    permission: Permission,
) -> Result<(ProjectRecord, i64), ApiError> {
    let project = authorize(state, user, &id, permission).await?;
    Ok((project, job_id(&job)?))
}

/// `POST /projects/:id/jobs/:job_id/cancel` — 201 with the job.
pub async fn cancel(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(path): JobPath,
) -> Result<Response, ApiError> {
    let (project, job) = job_of(&state, &user, path, Permission::UpdateBuild).await?;
    let build = service::cancel(&state, project.id, job).await?;
    Ok(json(
        StatusCode::CREATED,
        present_one(&state, &project, &build)?,
    ))
}

/// `POST /projects/:id/jobs/:job_id/retry` — 201 with the new job.
pub async fn retry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(path): JobPath,
) -> Result<Response, ApiError> {
    let (project, job) = job_of(&state, &user, path, Permission::UpdateBuild).await?;
    let build = service::retry(&state, project.id, job, &user)
        .await
        .map_err(ApiError::in_v4)?;
    Ok(json(
        StatusCode::CREATED,
        present_one(&state, &project, &build)?,
    ))
}

/// `POST /projects/:id/jobs/:job_id/erase` — 201 with the erased job.
pub async fn erase(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(path): JobPath,
) -> Result<Response, ApiError> {
    let (project, job) = job_of(&state, &user, path, Permission::UpdateBuild).await?;
    let build = service::erase(&state, project.id, job, &user)
        .await
        .map_err(ApiError::in_v4)?;
    Ok(json(
        StatusCode::CREATED,
        present_one(&state, &project, &build)?,
    ))
}

/// `POST /projects/:id/jobs/:job_id/play` — 200 with the job, now pending; the
/// `job_variables_attributes` given reach the job.
pub async fn play(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(path): JobPath,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let (project, job) = job_of(&state, &user, path, Permission::UpdateBuild).await?;
    let variables = crate::params::keyed_list(&params, "job_variables_attributes")
        .map_err(|_| ApiError::Params("job_variables_attributes is invalid".into()))?;
    let build = service::play(&state, (project.id, job), &user, &variables)
        .await
        .map_err(ApiError::in_v4)?;
    Ok(json(StatusCode::OK, present_one(&state, &project, &build)?))
}

/// `GET /projects/:id/jobs/:job_id/trace`
pub async fn trace(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(path): JobPath,
) -> Result<Response, ApiError> {
    let (project, job) = job_of(&state, &user, path, Permission::ReadBuild).await?;
    let build = service::show(&state.store, project.id, job).await?;
    Ok(send_trace(&state, &build))
}

/// `GET /projects/:id/jobs/:job_id/artifacts` — the zip; a `JOB-TOKEN` of the project may
/// download it too.
pub async fn artifacts(
    State(state): State<AppState>,
    caller: UserOrJob,
    Path((id, job)): JobPath,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &caller.user, &id, Permission::ReadBuild).await?;
    caller.may_reach(project.id)?;
    let build = service::show(&state.store, project.id, job_id(&job)?).await?;
    send_artifacts(&state, &build).await
}

/// `GET /projects/:id/jobs/:job_id/artifacts/*artifact_path` — one file of the archive.
pub async fn artifact_file(
    State(state): State<AppState>,
    caller: UserOrJob,
    Path((id, job, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &caller.user, &id, Permission::ReadBuild).await?;
    caller.may_reach(project.id)?;
    let build = service::show(&state.store, project.id, job_id(&job)?).await?;
    crate::api::build_files::send_archive_entry(&state, &build, &path).await
}

/// `POST /projects/:id/jobs/:job_id/artifacts/keep` — 200 with the job.
pub async fn keep(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(path): JobPath,
) -> Result<Response, ApiError> {
    let (project, job) = job_of(&state, &user, path, Permission::UpdateBuild).await?;
    let build = service::keep_artifacts(&state, project.id, job).await?;
    Ok(json(StatusCode::OK, present_one(&state, &project, &build)?))
}

/// `DELETE /projects/:id/jobs/:job_id/artifacts` — 204 (maintainer, as GitLab's
/// `delete_job_artifact`).
pub async fn delete_artifacts(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(path): JobPath,
) -> Result<Response, ApiError> {
    let (project, job) = job_of(&state, &user, path, Permission::Maintain).await?;
    service::delete_artifacts(&state, project.id, job).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /projects/:id/jobs/artifacts/:ref_name/download?job=NAME` and
/// `…/:ref_name/raw/*artifact_path?job=NAME`: the newest successful job of that name on the
/// ref (which may hold slashes).
pub async fn artifacts_by_ref(
    State(state): State<AppState>,
    caller: UserOrJob,
    Path((id, rest)): Path<(String, String)>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &caller.user, &id, Permission::ReadBuild).await?;
    caller.may_reach(project.id)?;
    let job = query
        .get("job")
        .ok_or_else(|| ApiError::Params("job is missing".into()))?;
    if let Some(ref_name) = rest.strip_suffix("/download") {
        let build = service::latest_successful(&state.store, project.id, ref_name, job).await?;
        return send_artifacts(&state, &build).await;
    }
    let (ref_name, path) = rest.split_once("/raw/").ok_or(ApiError::NotFound(""))?;
    let build = service::latest_successful(&state.store, project.id, ref_name, job).await?;
    crate::api::build_files::send_archive_entry(&state, &build, path).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn cursors_round_trip() {
        let cursor = super::encode_cursor(12345);
        assert_eq!(super::decode_cursor(&cursor), Some(12345));
        assert_eq!(super::decode_cursor("not a cursor"), None);
    }
}
