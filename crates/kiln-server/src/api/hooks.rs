//! Project webhooks (`/projects/:id/hooks`, maintainers): GitLab 8.x's `Entities::ProjectHook`
//! in v3 (`build_events`), current GitLab's in v4 (`job_events`, `alert_status`,
//! `disabled_until`), with v4's test (`POST …/hooks/:hook_id/test/:trigger`) and log of
//! deliveries (`GET …/hooks/:hook_id/events`).

use crate::auth::CurrentUser;
use crate::pagination;
use crate::params::{self, Params};
use crate::present::time::utc;
use crate::present::ApiVersion as Version;
use crate::query::QueryPairs;
use crate::service::hooks::{self as service, HookInput};
use crate::service::projects::authorize;
use crate::webhooks::payload;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_core::Permission;
use kiln_store::{DeliveryRecord, HookRecord, ProjectRecord, UserRecord};
use serde_json::{json, Value};

pub fn routes(version: Version) -> Router<AppState> {
    let router = Router::new()
        .route(
            "/projects/{id}/hooks",
            get(move |s, u, p| list(s, u, p, version))
                .post(move |s, u, p, b| create(s, u, p, b, version)),
        )
        .route(
            "/projects/{id}/hooks/{hook_id}",
            get(move |s, u, p| show(s, u, p, version))
                .put(move |s, u, p, b| update(s, u, p, b, version))
                .delete(move |s, u, p| remove(s, u, p, version)),
        );
    match version {
        Version::V3 => router,
        Version::V4 => router
            .route("/projects/{id}/hooks/{hook_id}/events", get(events))
            .route("/projects/{id}/hooks/{hook_id}/test/{trigger}", post(test)),
    }
}

fn present(h: &HookRecord, version: Version) -> Value {
    match version {
        Version::V3 => json!({
            "id": h.id,
            "url": h.url,
            "project_id": h.project_id,
            "push_events": h.push_events,
            "issues_events": false,
            "merge_requests_events": false,
            "tag_push_events": false,
            "note_events": false,
            "build_events": h.job_events,
            "pipeline_events": h.pipeline_events,
            "wiki_page_events": false,
            "enable_ssl_verification": h.enable_ssl_verification,
            "created_at": utc(h.created_at),
        }),
        Version::V4 => json!({
            "id": h.id,
            "url": h.url,
            "name": h.name,
            "description": h.description,
            "created_at": utc(h.created_at),
            "push_events": h.push_events,
            "tag_push_events": false,
            "merge_requests_events": false,
            "repository_update_events": false,
            "enable_ssl_verification": h.enable_ssl_verification,
            "alert_status": h.alert_status(kiln_store::now_ms()),
            "disabled_until": h.disabled_until.filter(|_| !h.disabled).map(utc),
            "url_variables": [],
            "custom_headers": [],
            "custom_webhook_template": null,
            "project_id": h.project_id,
            "issues_events": false,
            "confidential_issues_events": false,
            "note_events": false,
            "confidential_note_events": null,
            "pipeline_events": h.pipeline_events,
            "wiki_page_events": false,
            "deployment_events": false,
            "feature_flag_events": false,
            "job_events": h.job_events,
            "releases_events": false,
            "milestone_events": false,
            "emoji_events": false,
            "resource_access_token_events": false,
            "push_events_branch_filter": null,
            "branch_filter_strategy": "wildcard",
        }),
    }
}

/// The parameters of a create or update; v3 names job events `build_events`.
fn input(params: &QueryPairs, version: Version) -> Result<HookInput, ApiError> {
    let mut problems = Vec::new();
    let jobs = match version {
        Version::V3 => "build_events",
        Version::V4 => "job_events",
    };
    let mut flag = |name: &str| params::boolean(params, name, &mut problems);
    let (push_events, job_events, pipeline_events, enable_ssl_verification) = (
        flag("push_events"),
        flag(jobs),
        flag("pipeline_events"),
        flag("enable_ssl_verification"),
    );
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let text = |name: &str| params.get(name).map(str::to_owned);
    Ok(HookInput {
        url: text("url"),
        token: text("token"),
        name: text("name"),
        description: text("description"),
        push_events,
        job_events,
        pipeline_events,
        enable_ssl_verification,
    })
}

/// The project, once the caller may maintain it (every hook route is a maintainer's).
async fn project(state: &AppState, user: &UserRecord, id: &str) -> Result<ProjectRecord, ApiError> {
    authorize(state, user, id, Permission::Maintain).await
}

fn hook_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::Params("hook_id is invalid".into()))
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = project(&state, &user, &id).await?;
    let hooks = state.store.hooks().list(project.id).await?;
    let body: Vec<_> = hooks.iter().map(|h| present(h, version)).collect();
    Ok(Json(body).into_response())
}

async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, hook)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = project(&state, &user, &id).await?;
    let hook = service::find(&state, project.id, hook_id(&hook)?).await?;
    Ok(Json(present(&hook, version)).into_response())
}

/// `POST /projects/:id/hooks` — 201 with the hook; a URL it may not call is 422.
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    params::require(&params, &["url"])?;
    let project = project(&state, &user, &id).await?;
    let hook = service::create(&state, project.id, input(&params, version)?).await?;
    Ok((StatusCode::CREATED, Json(present(&hook, version))).into_response())
}

/// `PUT /projects/:id/hooks/:hook_id` (v3 requires `url`, as GitLab 8.x did).
async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, hook)): Path<(String, String)>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    if version == Version::V3 {
        params::require(&params, &["url"])?;
    }
    let hook_id = hook_id(&hook)?;
    let project = project(&state, &user, &id).await?;
    let hook = service::update(&state, project.id, hook_id, input(&params, version)?).await?;
    Ok(Json(present(&hook, version)).into_response())
}

/// `DELETE …/hooks/:hook_id` — 204 in v4; v3 answers with the hook removed.
async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, hook)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = project(&state, &user, &id).await?;
    let hook = service::find(&state, project.id, hook_id(&hook)?).await?;
    service::delete(&state, project.id, hook.id).await?;
    Ok(match version {
        Version::V3 => Json(present(&hook, version)).into_response(),
        Version::V4 => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `POST …/hooks/:hook_id/test/:trigger` — 201 `{"message":"201 Created"}` when the receiver
/// took it.
async fn test(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, hook, trigger)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let hook_id = hook_id(&hook)?;
    let event = service::test_event(&trigger)
        .ok_or_else(|| ApiError::Params("trigger does not have a valid value".into()))?;
    let project = project(&state, &user, &id).await?;
    let hook = service::find(&state, project.id, hook_id).await?;
    service::test(&state, &hook, event).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "message": "201 Created" })),
    )
        .into_response())
}

/// `GET …/hooks/:hook_id/events` — the hook's attempted deliveries, newest first, paginated.
async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, hook)): Path<(String, String)>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let hook_id = hook_id(&hook)?;
    let page = pagination::page_request(&query, Version::V4)?;
    let project = project(&state, &user, &id).await?;
    let hook = service::find(&state, project.id, hook_id).await?;
    let log = service::log(&state, &hook, page).await?;
    let body: Vec<_> = log
        .iter()
        .map(|d| present_delivery(&state, &hook, d))
        .collect();
    let url_base = format!(
        "{}/api/v4/projects/{}/hooks/{}/events",
        state.config.external_url, project.id, hook.id
    );
    let has_more = body.len() == page.per_page as usize;
    let headers = pagination::headers_without_total(page, has_more, &url_base, &query);
    Ok((headers, Json(body)).into_response())
}

/// GitLab's `WebHookLog`: the last attempt of a delivery, its request as sent (the token
/// redacted) and the start of the answer.
fn present_delivery(state: &AppState, hook: &HookRecord, d: &DeliveryRecord) -> Value {
    let mut request_headers = json!({
        "Content-Type": "application/json",
        "User-Agent": concat!("Kiln/", env!("CARGO_PKG_VERSION")),
        "X-Gitlab-Event": payload::event_name(d.event),
        "X-Gitlab-Event-UUID": d.event_uuid,
        "Idempotency-Key": d.event_uuid,
        "X-Gitlab-Instance": state.config.external_url,
    });
    if hook.token_sealed.is_some() {
        request_headers["X-Gitlab-Token"] = json!("[REDACTED]");
    }
    let request_data = d
        .request_body
        .as_deref()
        .and_then(|body| serde_json::from_str::<Value>(body).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": d.id,
        "url": hook.url,
        "trigger": payload::trigger_name(d.event),
        "request_headers": request_headers,
        "request_data": request_data,
        "response_headers": {},
        "response_body": d.response_body.as_deref().or(d.error.as_deref()).unwrap_or(""),
        "execution_duration": d.duration_ms.map(|ms| ms as f64 / 1000.0),
        "response_status": d.response_status.map_or_else(|| "internal error".to_owned(), |s| s.to_string()),
        "created_at": utc(d.finished_at.unwrap_or(d.created_at)),
    })
}
