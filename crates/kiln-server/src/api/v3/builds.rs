//! The v3 Builds API (`lib/api/builds.rb`).

use crate::auth::CurrentUser;
use crate::pagination;
use crate::present::v3::Presenter;
use crate::query::QueryPairs;
use crate::service::{builds as service, projects::authorize};
use crate::{ApiError, AppState};
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_core::{PageInfo, PageRequest, PaginationError, Permission, Scope};
use kiln_store::{BuildRecord, BuildsPage};

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

fn present_page(
    state: &AppState,
    uri: &axum::http::Uri,
    query: &QueryPairs,
    page: PageRequest,
    builds: BuildsPage,
) -> Response {
    let presenter = Presenter {
        external_url: &state.config.external_url,
    };
    let info = PageInfo::new(page, builds.total);
    let url_base = format!("{}{}", state.config.external_url, uri.path());
    let headers = pagination::headers(&info, &url_base, query);
    let body: Vec<_> = builds.builds.iter().map(|b| presenter.build(b)).collect();
    (headers, Json(body)).into_response()
}

fn present_one(state: &AppState, status: StatusCode, build: &BuildRecord) -> Response {
    let presenter = Presenter {
        external_url: &state.config.external_url,
    };
    (status, Json(presenter.build(build))).into_response()
}

/// `GET /projects/:id/builds`
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let project = authorize(&state.store, &user, &id, Permission::ReadBuild).await?;
    let (scope, page) = list_params(&query)?;
    let builds = service::list(&state.store, project.id, &scope, page).await?;
    Ok(present_page(&state, &uri, &query, page, builds))
}

/// `GET /projects/:id/repository/commits/:sha/builds`
pub async fn list_for_commit(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, sha)): Path<(String, String)>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let project = authorize(&state.store, &user, &id, Permission::ReadBuild).await?;
    let (scope, page) = list_params(&query)?;
    let builds = service::list_for_commit(&state.store, project.id, &sha, &scope, page).await?;
    Ok(present_page(&state, &uri, &query, page, builds))
}

/// `GET /projects/:id/builds/:build_id`
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state.store, &user, &id, Permission::ReadBuild).await?;
    let build = service::show(&state.store, project.id, build_id(&build)?).await?;
    Ok(present_one(&state, StatusCode::OK, &build))
}

/// `POST /projects/:id/builds/:build_id/cancel` — 201 with the build, canceled or unchanged.
pub async fn cancel(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state.store, &user, &id, Permission::UpdateBuild).await?;
    let build = service::cancel(&state.store, project.id, build_id(&build)?).await?;
    Ok(present_one(&state, StatusCode::CREATED, &build))
}

/// `POST /projects/:id/builds/:build_id/retry` — 201 with the new build.
pub async fn retry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, build)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state.store, &user, &id, Permission::UpdateBuild).await?;
    let build = service::retry(&state.store, project.id, build_id(&build)?, &user).await?;
    Ok(present_one(&state, StatusCode::CREATED, &build))
}
