//! The runners API (GitLab's `lib/api/runners.rb`), the same under v3 and v4 but for the
//! shapes: `GET /runners` (the user's own, `scope`), `GET /runners/all` (admin),
//! `GET|PUT|DELETE /runners/:id`, `GET /projects/:id/runners`.

use crate::auth::CurrentUser;
use crate::pagination;
use crate::params::{self, Params};
use crate::present::runners::{basic, details, Version};
use crate::query::QueryPairs;
use crate::service::projects::authorize;
use crate::service::runners as service;
use crate::{ApiError, AppState};
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kiln_core::{PageInfo, PageRequest, PaginationError, Permission};
use kiln_store::{ProjectRef, RunnerRecord, RunnerScope, RunnerUpdate, UserRecord};
use serde_json::Value;

/// The routes but `GET /runners`, which v4 shares with the runner protocol's registration.
pub fn routes(version: Version) -> Router<AppState> {
    Router::new()
        .route(
            "/runners/all",
            get(
                move |s: State<AppState>, u: CurrentUser, q: QueryPairs, uri: OriginalUri| {
                    list(s, u, q, uri, version, Listing::All)
                },
            ),
        )
        .route(
            "/runners/{id}",
            get(
                move |s: State<AppState>, u: CurrentUser, id: Path<String>| show(s, u, id, version),
            )
            .put(
                move |s: State<AppState>, u: CurrentUser, id: Path<String>, p: Params| {
                    update(s, u, id, p, version)
                },
            )
            .delete(
                move |s: State<AppState>, u: CurrentUser, id: Path<String>| {
                    remove(s, u, id, version)
                },
            ),
        )
        .route(
            "/projects/{id}/runners",
            get(
                move |s: State<AppState>,
                      u: CurrentUser,
                      id: Path<String>,
                      q: QueryPairs,
                      uri: OriginalUri| {
                    project_runners(s, u, id, q, uri, version)
                },
            ),
        )
}

/// `GET /runners`: the runners of the projects the user maintains.
pub async fn list_owned(
    state: State<AppState>,
    user: CurrentUser,
    query: QueryPairs,
    uri: OriginalUri,
    version: Version,
) -> Result<Response, ApiError> {
    list(state, user, query, uri, version, Listing::Owned).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Owned,
    All,
}

/// GitLab's `scope` (and v4's `paused`, `status`, `type`, `tag_list`) filters.
fn filter(
    query: &QueryPairs,
    version: Version,
    now: i64,
) -> Result<impl Fn(&RunnerRecord) -> bool, ApiError> {
    let mut scopes: Vec<&str> = vec!["active", "paused", "online"];
    if version == Version::V4 {
        scopes.extend([
            "offline",
            "never_contacted",
            "instance_type",
            "project_type",
        ]);
    }
    let scope = query
        .get("scope")
        .or(query.get("status"))
        .map(str::to_owned);
    if let Some(scope) = &scope {
        if !scopes.contains(&scope.as_str()) {
            return Err(ApiError::BadRequest("Scope contains invalid value".into()));
        }
    }
    let kind = query.get("type").map(str::to_owned);
    let mut problems = Vec::new();
    let paused = params::boolean(query, "paused", &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid_param("paused"));
    }
    let tags = params::tag_list(query);
    Ok(move |r: &RunnerRecord| {
        let in_scope = match scope.as_deref() {
            None => true,
            Some("active") => r.active,
            Some("paused") => !r.active,
            Some("instance_type" | "project_type") => {
                Some(r.runner_type.as_str()) == scope.as_deref()
            }
            Some(other) => service::status(r, now) == other,
        };
        in_scope
            && kind.as_deref().is_none_or(|k| k == r.runner_type)
            && paused.is_none_or(|p| p != r.active)
            && tags
                .as_ref()
                .is_none_or(|tags| tags.iter().all(|t| r.tags.contains(t)))
    })
}

fn page_of(
    query: &QueryPairs,
    uri: &OriginalUri,
    external_url: &str,
    items: Vec<Value>,
) -> Result<Response, ApiError> {
    let page =
        PageRequest::parse(query.get("page"), query.get("per_page")).map_err(|e| match e {
            PaginationError::Page => ApiError::invalid_param("page"),
            PaginationError::PerPage => ApiError::invalid_param("per_page"),
        })?;
    let info = PageInfo::new(page, items.len() as u64);
    let shown: Vec<Value> = items
        .into_iter()
        .skip(page.offset() as usize)
        .take(page.per_page as usize)
        .collect();
    let url_base = format!("{external_url}{}", uri.path());
    let headers = pagination::headers(&info, &url_base, query);
    Ok((headers, Json(shown)).into_response())
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    query: QueryPairs,
    uri: OriginalUri,
    version: Version,
    listing: Listing,
) -> Result<Response, ApiError> {
    let scope = match listing {
        Listing::All if !user.is_admin => return Err(ApiError::Forbidden(None)),
        Listing::All => RunnerScope::All,
        Listing::Owned => RunnerScope::OwnedBy(user.id),
    };
    let now = kiln_store::now_ms();
    let keep = filter(&query, version, now)?;
    let runners = state.store.runners().list(scope).await?;
    let items = runners
        .iter()
        .filter(|r| keep(r))
        .map(|r| basic(version, r, now))
        .collect();
    page_of(&query, &uri, &state.config.external_url, items)
}

async fn project_runners(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
    uri: OriginalUri,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let now = kiln_store::now_ms();
    let keep = filter(&query, version, now)?;
    let runners = state
        .store
        .runners()
        .list(RunnerScope::Project(project.id))
        .await?;
    let items = runners
        .iter()
        .filter(|r| keep(r))
        .map(|r| basic(version, r, now))
        .collect();
    page_of(&query, &uri, &state.config.external_url, items)
}

/// The runner, if `user` may see it: an admin any, anyone an instance runner, a project's
/// maintainer its project's.
async fn visible(state: &AppState, user: &UserRecord, raw: &str) -> Result<RunnerRecord, ApiError> {
    let id: i64 = raw.parse().map_err(|_| ApiError::NotFound("Runner"))?;
    let runner = match state.store.runners().get(id).await {
        Ok(runner) => runner,
        Err(kiln_store::StoreError::NotFound) => return Err(ApiError::NotFound("Runner")),
        Err(err) => return Err(err.into()),
    };
    if runner.is_shared() || service::may_manage(state, user, &runner).await? {
        return Ok(runner);
    }
    Err(ApiError::Forbidden(None))
}

/// The runner, if `user` may change it (GitLab's `authenticate_update_runner!`).
async fn manageable(
    state: &AppState,
    user: &UserRecord,
    raw: &str,
) -> Result<RunnerRecord, ApiError> {
    let runner = visible(state, user, raw).await?;
    if runner.is_shared() && !user.is_admin {
        return Err(ApiError::Forbidden(Some("Runner is shared")));
    }
    if !service::may_manage(state, user, &runner).await? {
        return Err(ApiError::Forbidden(None));
    }
    Ok(runner)
}

async fn present_details(
    state: &AppState,
    runner: &RunnerRecord,
    version: Version,
) -> Result<Value, ApiError> {
    let mut projects = Vec::new();
    if let Some(project) = runner.project_id {
        projects.push(state.store.projects().get(&ProjectRef::Id(project)).await?);
    }
    Ok(details(version, runner, &projects, kiln_store::now_ms()))
}

async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let runner = visible(&state, &user, &id).await?;
    Ok(Json(present_details(&state, &runner, version).await?).into_response())
}

async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let mut problems = Vec::new();
    let active = params::boolean(&params, "active", &mut problems);
    let paused = params::boolean(&params, "paused", &mut problems);
    let run_untagged = params::boolean(&params, "run_untagged", &mut problems);
    let locked = params::boolean(&params, "locked", &mut problems);
    let maximum_timeout = match params.get("maximum_timeout") {
        None => None,
        Some("") => Some(None),
        Some(text) => match text.parse::<i64>() {
            Ok(value) => Some(Some(value)),
            Err(_) => {
                problems.push("maximum_timeout is invalid".into());
                None
            }
        },
    };
    if !problems.is_empty() {
        return Ok(params::grape_error(&problems));
    }
    let runner = manageable(&state, &user, &id).await?;
    let change = RunnerUpdate {
        description: params.get("description").map(str::to_owned),
        active: paused.map(|p| !p).or(active),
        locked,
        run_untagged,
        access_level: params.get("access_level").map(str::to_owned),
        maximum_timeout,
        tags: params::tag_list(&params),
    };
    let updated = service::update(&state, runner.id, &change).await?;
    Ok(Json(present_details(&state, &updated, version).await?).into_response())
}

async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let runner = manageable(&state, &user, &id).await?;
    if runner.embedded {
        return Err(ApiError::Forbidden(Some("Runner is a Kiln server's own")));
    }
    let presented = present_details(&state, &runner, version).await?;
    state.store.runners().remove(runner.id).await?;
    Ok(match version {
        // GitLab 8.x answered with the removed runner.
        Version::V3 => Json(presented).into_response(),
        Version::V4 => StatusCode::NO_CONTENT.into_response(),
    })
}

impl From<service::RunnerError> for ApiError {
    fn from(err: service::RunnerError) -> Self {
        match err {
            service::RunnerError::Forbidden => ApiError::Forbidden(None),
            service::RunnerError::Invalid(message) => ApiError::BadRequest(message),
            service::RunnerError::Store(err) => err.into(),
        }
    }
}
