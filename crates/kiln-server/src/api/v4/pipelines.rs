//! `POST /projects/:id/pipeline?ref=REF` (developer access, current GitLab's
//! `lib/api/ci/pipelines.rb`): 201 with the pipeline.
//!
//! Grape checks the declared parameters (`requires :ref`, `optional :variables, type: Array`)
//! before the endpoint looks at the project, so a missing ref is `{"error":"ref is missing"}`
//! whatever the project. A pipeline that cannot be created is `render_validation_error!`:
//! 400 `{"message":{"base":["Reference not found"]}}`.

use crate::auth::{CurrentUser, Viewer};
use crate::pagination;
use crate::params::{self, Params};
use crate::present::v4;
use crate::query::QueryPairs;
use crate::service::pipelines::{self as service, PipelineRequest};
use crate::service::projects::{authorize, authorize_viewer};
use crate::{ApiError, AppState};
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_core::{PageInfo, Permission};
use kiln_store::{PipelineFilter, PipelineOrder, PipelineScope};
use serde_json::json;

pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let mut problems = params::missing(&params, &["ref"]);
    // `variables[][key]=K&variables[][value]=V…`, or a JSON array of {key, value}.
    let variables = params::variable_list(&params);
    if variables.is_err() {
        problems.push("variables is invalid".to_owned());
    }
    let variables = match variables {
        Ok(variables) if problems.is_empty() => variables,
        _ => return Ok(params::grape_error(&problems)),
    };
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let ref_name = params.get("ref").unwrap_or_default();
    if ref_name.is_empty() {
        return Ok(not_created("Reference not found"));
    }
    let request = PipelineRequest {
        project: &project,
        ref_name,
        source: "api",
        user_id: Some(user.id),
        variables,
        trigger_request_id: None,
        push_key: None,
    };
    let pipeline_id = match service::create(&state, request).await {
        Ok(pipeline_id) => pipeline_id,
        Err(ApiError::BadRequest(message)) => return Ok(not_created(&message)),
        Err(err) => return Err(err),
    };
    let pipeline = service::get(&state, project.id, pipeline_id).await?;
    Ok(present(&state, &project, &pipeline, StatusCode::CREATED))
}

/// GitLab's `render_validation_error!` for a pipeline that was not saved: its errors on `base`.
fn not_created(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "message": { "base": [message] } })),
    )
        .into_response()
}

fn present(
    state: &AppState,
    project: &kiln_store::ProjectRecord,
    pipeline: &kiln_store::PipelineRecord,
    status: StatusCode,
) -> Response {
    let presenter = v4::Presenter {
        external_url: &state.config.external_url,
    };
    (status, Json(presenter.pipeline(project, pipeline))).into_response()
}

// The pipeline statuses `status=` may name.
use crate::service::pipelines::STATUSES;

/// Grape's `DateTime` (ISO 8601) as milliseconds.
fn timestamp(query: &QueryPairs, name: &str, problems: &mut Vec<String>) -> Option<i64> {
    let raw = query.get(name).filter(|v| !v.is_empty())?;
    let formats = [time::format_description::well_known::Rfc3339];
    for format in formats {
        if let Ok(at) = time::OffsetDateTime::parse(raw, &format) {
            return Some((at.unix_timestamp_nanos() / 1_000_000) as i64);
        }
    }
    if let Ok(date) = time::Date::parse(
        raw,
        time::macros::format_description!("[year]-[month]-[day]"),
    ) {
        return Some(date.midnight().assume_utc().unix_timestamp() * 1000);
    }
    problems.push(format!("{name} is invalid"));
    None
}

/// A parameter that must be one of `values` (Grape's `values:`).
fn one_of<'a>(
    query: &'a QueryPairs,
    name: &str,
    values: &[&str],
    problems: &mut Vec<String>,
) -> Option<&'a str> {
    let value = query.get(name).filter(|v| !v.is_empty())?;
    if values.contains(&value) {
        Some(value)
    } else {
        problems.push(format!("{name} does not have a valid value"));
        None
    }
}

fn list_filter(query: &QueryPairs) -> Result<PipelineFilter, ApiError> {
    let mut problems = Vec::new();
    let scopes = ["running", "pending", "finished", "branches", "tags"];
    let scope = one_of(query, "scope", &scopes, &mut problems).and_then(PipelineScope::parse);
    let status = one_of(query, "status", STATUSES, &mut problems).map(str::to_owned);
    let orders = ["id", "status", "ref", "updated_at", "user_id"];
    let order = one_of(query, "order_by", &orders, &mut problems).and_then(PipelineOrder::parse);
    let sort = one_of(query, "sort", &["asc", "desc"], &mut problems);
    let updated_after = timestamp(query, "updated_after", &mut problems);
    let updated_before = timestamp(query, "updated_before", &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let text = |name: &str| query.get(name).filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(PipelineFilter {
        scope,
        status,
        ref_name: text("ref"),
        sha: text("sha"),
        username: text("username"),
        source: text("source"),
        updated_after,
        updated_before,
        order: order.unwrap_or(PipelineOrder::Id),
        ascending: sort == Some("asc"),
    })
}

/// `GET /projects/:id/pipelines` — `PipelineBasic`s, newest first by default.
pub async fn list(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let project = authorize_viewer(&state, viewer.as_ref(), &id, Permission::ReadBuild)
        .await?
        .project;
    let filter = list_filter(&query)?;
    let page = pagination::page_request(&query, crate::present::ApiVersion::V4)?;
    let (pipelines, total) = state
        .store
        .pipelines()
        .find(project.id, &filter, page)
        .await?;
    let presenter = crate::present::jobs::Presenter {
        external_url: &state.config.external_url,
        project: &project,
        now_ms: kiln_store::now_ms(),
    };
    let body: Vec<_> = pipelines
        .iter()
        .map(|p| presenter.pipeline_basic(p))
        .collect();
    let url_base = format!("{}{}", state.config.external_url, uri.path());
    let headers = pagination::headers(&PageInfo::new(page, total), &url_base, &query);
    Ok((headers, Json(body)).into_response())
}

/// `GET /projects/:id/pipelines/latest?ref=` — the newest pipeline of the ref (the default
/// branch when none is given).
pub async fn latest(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let project = authorize_viewer(&state, viewer.as_ref(), &id, Permission::ReadBuild)
        .await?
        .project;
    let ref_name = query
        .get("ref")
        .filter(|r| !r.is_empty())
        .unwrap_or(&project.default_branch);
    let pipeline = state
        .store
        .pipelines()
        .latest(project.id, ref_name)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    Ok(present(&state, &project, &pipeline, StatusCode::OK))
}

type PipelinePath = Path<(String, String)>;

/// `GET /projects/:id/pipelines/:pipeline_id`
pub async fn show(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path((id, pipeline)): PipelinePath,
) -> Result<Response, ApiError> {
    let project = authorize_viewer(&state, viewer.as_ref(), &id, Permission::ReadBuild)
        .await?
        .project;
    let pipeline = service::get(&state, project.id, service::pipeline_id(&pipeline)?).await?;
    Ok(present(&state, &project, &pipeline, StatusCode::OK))
}

/// `GET /projects/:id/pipelines/:pipeline_id/variables` — `[{key, value, variable_type}]`
/// (developers, as GitLab's `read_pipeline_variable`).
pub async fn variables(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, pipeline)): PipelinePath,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let pipeline = service::get(&state, project.id, service::pipeline_id(&pipeline)?).await?;
    let pairs: Vec<(String, String)> =
        serde_json::from_str(&pipeline.variables).unwrap_or_default();
    let body: Vec<_> = pairs
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": value, "variable_type": "env_var" }))
        .collect();
    Ok(Json(body).into_response())
}

/// `POST /projects/:id/pipelines/:pipeline_id/cancel` — 200 with the pipeline.
pub async fn cancel(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, pipeline)): PipelinePath,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let pipeline = service::cancel(&state, project.id, service::pipeline_id(&pipeline)?).await?;
    Ok(present(&state, &project, &pipeline, StatusCode::OK))
}

/// `POST /projects/:id/pipelines/:pipeline_id/retry` — 201 with the pipeline.
pub async fn retry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, pipeline)): PipelinePath,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let pipeline_id = service::pipeline_id(&pipeline)?;
    let pipeline = service::retry(&state, project.id, pipeline_id, user.id).await?;
    Ok(present(&state, &project, &pipeline, StatusCode::CREATED))
}

/// `DELETE /projects/:id/pipelines/:pipeline_id` — 204 (owners, as GitLab's
/// `destroy_pipeline`).
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, pipeline)): PipelinePath,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Own).await?;
    service::delete(&state, project.id, service::pipeline_id(&pipeline)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
