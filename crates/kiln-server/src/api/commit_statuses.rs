//! Commit statuses, v3 and v4: `GET /projects/:id/repository/commits/:sha/statuses` (the
//! commit's builds and external statuses as `CommitStatus` entries; `ref`, `stage`, `name`,
//! `pipeline_id`, `all`, `order_by`, `sort`, pages) and `POST /projects/:id/statuses/:sha`
//! (a status reported by another system; developers, as GitLab's `create_commit_status`).

use crate::auth::CurrentUser;
use crate::pagination;
use crate::params::{self, Params};
use crate::present::time::utc;
use crate::present::ApiVersion as Version;
use crate::query::QueryPairs;
use crate::service::commit_statuses::{self as service, Report};
use crate::service::projects::authorize;
use crate::{ApiError, AppState};
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_core::{BuildStatus, PageInfo, Permission, Scope};
use kiln_store::{BuildRecord, ProjectRecord};
use serde_json::{json, Value};

pub fn routes(version: Version) -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{id}/repository/commits/{sha}/statuses",
            get(move |s, u, p, q, uri| list(s, u, p, q, uri, version)),
        )
        .route(
            "/projects/{id}/statuses/{sha}",
            post(move |s, u, p, b| create(s, u, p, b, version)),
        )
}

/// A build or external status as GitLab's `Entities::CommitStatus`.
fn present(state: &AppState, project: &ProjectRecord, b: &BuildRecord, version: Version) -> Value {
    let users = crate::present::projects::Presenter {
        external_url: &state.config.external_url,
        version,
    };
    let target_url = match b.kind.as_str() {
        "external" => b.target_url.clone(),
        _ => Some(format!(
            "{}/{}/-/jobs/{}",
            state.config.external_url,
            project.full_path(),
            b.id
        )),
    };
    json!({
        "id": b.id,
        "sha": b.commit.sha,
        "ref": b.ref_name,
        "status": b.status.as_str(),
        "name": b.name,
        "target_url": target_url,
        "description": b.description,
        "created_at": utc(b.created_at),
        "started_at": b.started_at.map(utc),
        "finished_at": b.finished_at.map(utc),
        "allow_failure": b.allow_failure,
        "coverage": b.coverage,
        "pipeline_id": b.pipeline_id,
        "author": b.user.as_ref().map(|u| users.user_basic(u)),
    })
}

/// Every build of the commit, newest first, read page by page.
async fn commit_builds(
    state: &AppState,
    project: &ProjectRecord,
    sha: &str,
) -> Result<Vec<BuildRecord>, ApiError> {
    let mut all = Vec::new();
    for page in 1.. {
        let request = kiln_core::PageRequest {
            page,
            per_page: kiln_core::pagination::MAX_PER_PAGE,
        };
        let listed = state
            .store
            .builds()
            .list_for_commit(project.id, sha, &Scope::all(), request)
            .await;
        let listed = match listed {
            Ok(listed) => listed,
            // No pipeline has it: its statuses are none, if the repository has it at all.
            Err(kiln_store::StoreError::NotFound) => {
                use crate::service::repository::{mirror, read_commit};
                read_commit(mirror(state, project).await?, sha).await?;
                return Ok(Vec::new());
            }
            Err(err) => return Err(err.into()),
        };
        let done = listed.builds.len() < request.per_page as usize;
        all.extend(listed.builds);
        if done || all.len() as u64 >= listed.total {
            break;
        }
    }
    Ok(all)
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, sha)): Path<(String, String)>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let page = pagination::page_request(&query, version)?;
    let mut problems = Vec::new();
    let all = params::boolean(&query, "all", &mut problems).unwrap_or(false);
    let pipeline_id = params::integer(&query, "pipeline_id", &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let given = |name: &str| query.get(name).filter(|v| !v.is_empty());
    let mut statuses: Vec<BuildRecord> = commit_builds(&state, &project, &sha)
        .await?
        .into_iter()
        .filter(|b| all || !b.retried)
        .filter(|b| pipeline_id.is_none_or(|p| b.pipeline_id == p))
        .filter(|b| given("ref").is_none_or(|r| b.ref_name == r))
        .filter(|b| given("stage").is_none_or(|s| b.stage == s))
        .filter(|b| given("name").is_none_or(|n| b.name == n))
        .collect();
    // GitLab orders by `id` (or `pipeline_id`), ascending unless `sort=desc`.
    match query.get("order_by") {
        Some("pipeline_id") => statuses.sort_by_key(|b| (b.pipeline_id, b.id)),
        _ => statuses.sort_by_key(|b| b.id),
    }
    if query.get("sort") == Some("desc") {
        statuses.reverse();
    }
    let info = PageInfo::new(page, statuses.len() as u64);
    let body: Vec<Value> = statuses
        .iter()
        .skip(page.offset() as usize)
        .take(page.per_page as usize)
        .map(|b| present(&state, &project, b, version))
        .collect();
    let url_base = format!("{}{}", state.config.external_url, uri.path());
    let headers = pagination::headers(&info, &url_base, &query);
    Ok((headers, Json(body)).into_response())
}

/// GitLab's length limit on a status's text fields.
const MAX_FIELD: usize = 255;

/// The report, checked as Grape and the `GenericCommitStatus` model check it.
fn report(sha: String, params: &QueryPairs) -> Result<Report, ApiError> {
    let mut problems = params::missing(params, &["state"]);
    let state = params.get("state").unwrap_or("");
    let state = kiln_core::external_status::REPORTABLE
        .into_iter()
        .find(|s| s.as_str() == state);
    if problems.is_empty() && state.is_none() {
        problems.push("state does not have a valid value".to_owned());
    }
    let number = |name: &str, problems: &mut Vec<String>| -> Option<f64> {
        let raw = params.get(name).filter(|v| !v.is_empty())?;
        match raw.trim().parse::<f64>() {
            Ok(value) if value.is_finite() => Some(value),
            _ => {
                problems.push(format!("{name} is invalid"));
                None
            }
        }
    };
    let coverage = number("coverage", &mut problems);
    let pipeline_id = params::integer(params, "pipeline_id", &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let text = |name: &str| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut invalid = serde_json::Map::new();
    for name in ["ref", "target_url", "description", "name"] {
        if text(name).is_some_and(|v| v.chars().count() > MAX_FIELD) {
            invalid.insert(
                name.to_owned(),
                json!([format!("is too long (maximum is {MAX_FIELD} characters)")]),
            );
        }
    }
    let target_url = text("target_url");
    if target_url
        .as_deref()
        .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
    {
        invalid.insert("target_url".into(), json!(["must be a valid URL"]));
    }
    if !invalid.is_empty() {
        return Err(ApiError::Validation(Value::Object(invalid)));
    }
    Ok(Report {
        sha,
        state: state.unwrap_or(BuildStatus::Pending),
        ref_name: text("ref"),
        name: text("name")
            .or_else(|| text("context"))
            .unwrap_or_else(|| "default".to_owned()),
        pipeline_id,
        target_url,
        description: text("description"),
        coverage,
    })
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, sha)): Path<(String, String)>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let report = report(sha, &params)?;
    let status = service::report(&state, &project, &user, report).await?;
    let body = present(&state, &project, &status, version);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
