//! The v3 Builds API (`lib/api/builds.rb`).

use crate::api::build_files::{send_artifacts, send_trace};
use crate::api::build_pages::{cached_page, json, to_json};
use crate::auth::CurrentUser;
use crate::cache::{PageKey, Presenter as CacheKeyPresenter};
use crate::pagination;
use crate::present::v3::Presenter;
use crate::query::QueryPairs;
use crate::service::{builds as service, projects::authorize};
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kiln_core::{PageInfo, PageRequest, Permission, Scope};
use kiln_store::{BuildRecord, BuildsPage};
use std::future::Future;

fn build_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid_param("build_id"))
}

fn list_params(query: &QueryPairs) -> Result<(Scope, PageRequest), ApiError> {
    let scope =
        Scope::from_query_pairs(query.iter()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let page = pagination::page_request(query, crate::present::ApiVersion::V3)?;
    Ok((scope, page))
}

/// Answers a list request from the cache, or by `fetch` and then caches the presented page.
async fn page_response(
    state: &AppState,
    uri: &Uri,
    query: &QueryPairs,
    key: PageKey,
    page: PageRequest,
    fetch: impl Future<Output = Result<BuildsPage, ApiError>>,
) -> Result<Response, ApiError> {
    let presenter = Presenter {
        external_url: &state.config.external_url,
    };
    let cached = cached_page(state, key, fetch, |builds| {
        let body: Vec<_> = builds.builds.iter().map(|b| presenter.build(b)).collect();
        to_json(&body)
    })
    .await?;
    let info = PageInfo::new(page, cached.total);
    let url_base = format!("{}{}", state.config.external_url, uri.path());
    let headers = pagination::headers(&info, &url_base, query);
    Ok((headers, json(StatusCode::OK, cached.body)).into_response())
}

fn present_one(state: &AppState, build: &BuildRecord) -> Result<Bytes, ApiError> {
    to_json(
        &Presenter {
            external_url: &state.config.external_url,
        }
        .build(build),
    )
}

/// `GET /projects/:id/builds`
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let (scope, page) = list_params(&query)?;
    let key = PageKey {
        presenter: CacheKeyPresenter::V3,
        project_id: project.id,
        sha: None,
        statuses: scope.statuses().to_vec(),
        page: page.page,
        per_page: page.per_page,
        keyset: None,
    };
    let fetch = service::list(&state.store, project.id, &scope, page);
    page_response(&state, &uri, &query, key, page, fetch).await
}

/// `GET /projects/:id/repository/commits/:sha/builds`
pub async fn list_for_commit(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, sha)): Path<(String, String)>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let (scope, page) = list_params(&query)?;
    let key = PageKey {
        presenter: CacheKeyPresenter::V3,
        project_id: project.id,
        sha: Some(sha.clone()),
        statuses: scope.statuses().to_vec(),
        page: page.page,
        per_page: page.per_page,
        keyset: None,
    };
    let fetch = service::list_for_commit(&state.store, project.id, &sha, &scope, page);
    page_response(&state, &uri, &query, key, page, fetch).await
}

/// `GET /projects/:id/builds/:build_id`
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let key = (CacheKeyPresenter::V3, project.id, build_id(&build)?);
    let version = state.store.versions().builds(project.id);
    if let Some(body) = state.cache.builds.get(&key, version) {
        return Ok(json(StatusCode::OK, body));
    }
    let body = present_one(&state, &service::show(&state.store, key.1, key.2).await?)?;
    state.cache.builds.insert(key, body.clone(), version);
    Ok(json(StatusCode::OK, body))
}

/// `POST /projects/:id/builds/:build_id/cancel` — 201 with the build, canceled or unchanged.
pub async fn cancel(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let build = service::cancel(&state, project.id, build_id(&build)?).await?;
    Ok(json(StatusCode::CREATED, present_one(&state, &build)?))
}

/// `POST /projects/:id/builds/:build_id/retry` — 201 with the new build.
pub async fn retry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let build = service::retry(&state, project.id, build_id(&build)?, &user).await?;
    Ok(json(StatusCode::CREATED, present_one(&state, &build)?))
}

/// `POST /projects/:id/builds/:build_id/play` — 200 with the build, now pending.
pub async fn play(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let ids = (project.id, build_id(&build)?);
    let build = service::play(&state, ids, &user, &[]).await?;
    Ok(json(StatusCode::OK, present_one(&state, &build)?))
}

/// `POST /projects/:id/builds/:build_id/erase` — 201 with the erased build.
pub async fn erase(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let build = service::erase(&state, project.id, build_id(&build)?, &user).await?;
    Ok(json(StatusCode::CREATED, present_one(&state, &build)?))
}

/// `POST /projects/:id/builds/:build_id/artifacts/keep` — 200 with the build.
pub async fn keep(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let build = service::keep_artifacts(&state, project.id, build_id(&build)?).await?;
    Ok(json(StatusCode::OK, present_one(&state, &build)?))
}

/// `GET /projects/:id/builds/:build_id/trace` — the log so far, also while the build runs.
pub async fn trace(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let build = service::show(&state.store, project.id, build_id(&build)?).await?;
    Ok(send_trace(&state, &build))
}

/// `GET /projects/:id/builds/:build_id/artifacts` — the zip.
pub async fn artifacts(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let build = service::show(&state.store, project.id, build_id(&build)?).await?;
    send_artifacts(&state, &build).await
}

/// `GET /projects/:id/builds/artifacts/:ref_name/download?job=NAME` — the artifacts of the
/// newest successful build of that name on that ref (the ref may contain slashes).
pub async fn artifacts_by_ref(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, rest)): Path<(String, String)>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let ref_name = rest
        .strip_suffix("/download")
        .ok_or(ApiError::NotFound(""))?;
    let job = query
        .get("job")
        .ok_or_else(|| ApiError::BadRequest("400 (Bad request) \"job\" not given".into()))?;
    let build = service::latest_successful(&state.store, project.id, ref_name, job).await?;
    send_artifacts(&state, &build).await
}
