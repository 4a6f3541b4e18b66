//! The v3 Builds API (`lib/api/builds.rb`).

use crate::auth::CurrentUser;
use crate::cache::{CachedPage, PageKey, Presenter as CacheKeyPresenter};
use crate::pagination;
use crate::present::v3::Presenter;
use crate::query::QueryPairs;
use crate::service::{builds as service, projects::authorize};
use crate::{ApiError, AppState};
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kiln_core::{PageInfo, PageRequest, PaginationError, Permission, Scope};
use kiln_store::{BuildRecord, BuildsPage};
use std::future::Future;

fn build_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid_param("build_id"))
}

fn list_params(query: &QueryPairs) -> Result<(Scope, PageRequest), ApiError> {
    let scope =
        Scope::from_query_pairs(query.iter()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let page =
        PageRequest::parse(query.get("page"), query.get("per_page")).map_err(|e| match e {
            PaginationError::Page => ApiError::invalid_param("page"),
            PaginationError::PerPage => ApiError::invalid_param("per_page"),
        })?;
    Ok((scope, page))
}

fn json(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn to_json(value: &impl serde::Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(e.into()))
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
    let version = state.store.versions().builds(key.project_id);
    let cached = match state.cache.pages.get(&key, version) {
        Some(cached) => cached,
        None => {
            let builds = fetch.await?;
            let presenter = Presenter {
                external_url: &state.config.external_url,
            };
            let body: Vec<_> = builds.builds.iter().map(|b| presenter.build(b)).collect();
            let cached = CachedPage {
                body: to_json(&body)?,
                total: builds.total,
            };
            state.cache.pages.insert(key, cached.clone(), version);
            cached
        }
    };
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
    let build = service::play(&state, project.id, build_id(&build)?, &user).await?;
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
    let disposition = format!("infile; filename=\"{}.log\"", build.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(trace_stream(state.store.clone(), build.id)),
    )
        .into_response())
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
    // GitLab's find_by! miss is a RecordNotFound, which its API presents with a lower-case f.
    let build_id = match state
        .store
        .builds()
        .latest_successful(project.id, ref_name, job)
        .await
    {
        Ok(id) => id,
        Err(kiln_store::StoreError::NotFound) => return Err(record_not_found()),
        Err(err) => return Err(err.into()),
    };
    let build = service::show(&state.store, project.id, build_id).await?;
    send_artifacts(&state, &build).await
}

fn record_not_found() -> ApiError {
    ApiError::NotFoundMessage("404 Not found")
}

/// The trace as it is now, read a few parts at a time: a 100 MB trace is never held whole.
fn trace_stream(
    store: kiln_store::Store,
    build_id: i64,
) -> impl futures_util::Stream<Item = Result<Bytes, kiln_store::StoreError>> {
    const PARTS_PER_READ: i64 = 16;
    futures_util::stream::try_unfold(Some(0_i64), move |next| {
        let store = store.clone();
        async move {
            let Some(from) = next else { return Ok(None) };
            let parts = store
                .builds()
                .trace_parts(build_id, from, PARTS_PER_READ)
                .await?;
            let Some((start, last)) = parts.last() else {
                return Ok(None);
            };
            let more = (parts.len() as i64 == PARTS_PER_READ).then_some(start + last.len() as i64);
            let data: Vec<u8> = parts.into_iter().flat_map(|(_, data)| data).collect();
            Ok(Some((Bytes::from(data), more)))
        }
    })
}

async fn send_artifacts(state: &AppState, build: &BuildRecord) -> Result<Response, ApiError> {
    let location = service::live_archive(build).ok_or(ApiError::NotFound(""))?;
    // Quoted, as Rails' send_file does; the name comes from the job's `artifacts:name`.
    let disposition = format!(
        "attachment; filename=\"{}\"",
        crate::present::v3::archive_name(&location.file).replace(['"', '\\'], "_")
    );
    let archive = state
        .artifacts
        .open(&state.store, build.id, &location)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound(""))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(archive.into_stream()),
    )
        .into_response())
}
