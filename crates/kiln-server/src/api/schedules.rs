//! Pipeline schedules (v4, `/projects/:id/pipeline_schedules`), in current GitLab's
//! `Entities::Ci::PipelineSchedule` and `PipelineScheduleDetails`: developers list, make and
//! play them; their owner or a maintainer changes, takes over or deletes one.

use crate::auth::CurrentUser;
use crate::params::{self, Params};
use crate::present::jobs::Presenter as Jobs;
use crate::present::projects::Presenter as Users;
use crate::present::time::utc;
use crate::present::ApiVersion;
use crate::query::QueryPairs;
use crate::service::projects::authorize;
use crate::service::schedules::{self as service, ScheduleInput, Variable};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use kiln_core::Permission;
use kiln_store::{ProjectRecord, ScheduleRecord, StoreError, UserRecord};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/pipeline_schedules", get(list).post(create))
        .route(
            "/projects/{id}/pipeline_schedules/{schedule_id}",
            get(show).put(update).delete(remove),
        )
        .route(
            "/projects/{id}/pipeline_schedules/{schedule_id}/take_ownership",
            post(take_ownership),
        )
        .route(
            "/projects/{id}/pipeline_schedules/{schedule_id}/play",
            post(play),
        )
        .route(
            "/projects/{id}/pipeline_schedules/{schedule_id}/variables",
            post(add_variable),
        )
        .route(
            "/projects/{id}/pipeline_schedules/{schedule_id}/variables/{key}",
            put(update_variable).delete(remove_variable),
        )
}

fn present(state: &AppState, s: &ScheduleRecord) -> Value {
    let users = Users {
        external_url: &state.config.external_url,
        version: ApiVersion::V4,
    };
    json!({
        "id": s.id,
        "description": s.description,
        "ref": s.ref_name,
        "cron": s.cron,
        "cron_timezone": s.cron_timezone,
        "next_run_at": s.active.then(|| utc(s.next_run_at)),
        "active": s.active,
        "created_at": utc(s.created_at),
        "updated_at": utc(s.updated_at),
        "owner": s.owner.as_ref().map(|o| users.user_basic(o)),
    })
}

fn present_variable(v: &Variable) -> Value {
    json!({
        "variable_type": v.variable_type,
        "key": v.key,
        "value": v.value,
        "hidden": false,
        "protected": false,
        "masked": false,
        "raw": false,
        "environment_scope": "*",
        "description": null,
    })
}

/// `PipelineScheduleDetails`: with its last pipeline and its variables.
async fn details(
    state: &AppState,
    project: &ProjectRecord,
    s: &ScheduleRecord,
) -> Result<Value, ApiError> {
    let mut body = present(state, s);
    let last = match s.last_pipeline_id {
        Some(id) => match state.store.pipelines().get(id).await {
            Ok(pipeline) => {
                let jobs = Jobs {
                    external_url: &state.config.external_url,
                    project,
                    now_ms: kiln_store::now_ms(),
                };
                serde_json::to_value(jobs.pipeline_basic(&pipeline))
                    .map_err(|e| ApiError::Internal(e.into()))?
            }
            Err(StoreError::NotFound) => Value::Null,
            Err(err) => return Err(err.into()),
        },
        None => Value::Null,
    };
    body["last_pipeline"] = last;
    let variables = service::variables(state, s.id).await?;
    body["variables"] = variables.iter().map(present_variable).collect();
    Ok(body)
}

fn input(params: &QueryPairs) -> Result<ScheduleInput, ApiError> {
    let mut problems = Vec::new();
    let active = params::boolean(params, "active", &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let text = |name: &str| params.get(name).map(str::to_owned);
    Ok(ScheduleInput {
        description: text("description"),
        ref_name: text("ref"),
        cron: text("cron"),
        cron_timezone: text("cron_timezone"),
        active,
    })
}

fn schedule_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::Params("pipeline_schedule_id is invalid".into()))
}

/// The project and the schedule, once the caller holds `permission`.
async fn reach(
    state: &AppState,
    user: &UserRecord,
    id: &str,
    schedule: &str,
    permission: Permission,
) -> Result<(ProjectRecord, ScheduleRecord), ApiError> {
    let schedule_id = schedule_id(schedule)?;
    let project = authorize(state, user, id, permission).await?;
    let schedule = service::find(state, project.id, schedule_id).await?;
    Ok((project, schedule))
}

/// As `reach`, for what only the schedule's owner or a maintainer may do.
async fn reach_owned(
    state: &AppState,
    user: &UserRecord,
    id: &str,
    schedule: &str,
) -> Result<(ProjectRecord, ScheduleRecord), ApiError> {
    let (project, schedule) = reach(state, user, id, schedule, Permission::UpdateBuild).await?;
    let owns = schedule.owner.as_ref().is_some_and(|o| o.id == user.id);
    if !owns
        && authorize(state, user, id, Permission::Maintain)
            .await
            .is_err()
    {
        return Err(ApiError::Forbidden(None));
    }
    Ok((project, schedule))
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let active = match query.get("scope").filter(|s| !s.is_empty()) {
        None => None,
        Some("active") => Some(true),
        Some("inactive") => Some(false),
        Some(_) => return Err(ApiError::Params("scope does not have a valid value".into())),
    };
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let schedules = state.store.schedules().list(project.id, active).await?;
    let body: Vec<_> = schedules.iter().map(|s| present(&state, s)).collect();
    Ok(Json(body).into_response())
}

async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, schedule)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (project, schedule) = reach(&state, &user, &id, &schedule, Permission::ReadBuild).await?;
    Ok(Json(details(&state, &project, &schedule).await?).into_response())
}

/// `POST …/pipeline_schedules` — `description`, `ref`, `cron` required; `cron_timezone`
/// (UTC), `active` (true). 201 with the details.
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    params::require(&params, &["description", "ref", "cron"])?;
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let schedule = service::create(&state, project.id, user.id, input(&params)?).await?;
    let body = details(&state, &project, &schedule).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, schedule)): Path<(String, String)>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let (project, schedule) = reach_owned(&state, &user, &id, &schedule).await?;
    let schedule = service::update(&state, &schedule, input(&params)?, None).await?;
    Ok(Json(details(&state, &project, &schedule).await?).into_response())
}

/// `POST …/take_ownership` — the caller becomes the owner (201, as GitLab's POST answers).
async fn take_ownership(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, schedule)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (project, schedule) = reach_owned(&state, &user, &id, &schedule).await?;
    let schedule =
        service::update(&state, &schedule, ScheduleInput::default(), Some(user.id)).await?;
    let body = details(&state, &project, &schedule).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE …/pipeline_schedules/:id` — 204.
async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, schedule)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (project, schedule) = reach_owned(&state, &user, &id, &schedule).await?;
    state
        .store
        .schedules()
        .delete(project.id, schedule.id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST …/play` — a run now; 201 `{"message":"201 Created"}`.
async fn play(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, schedule)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (project, schedule) = reach(&state, &user, &id, &schedule, Permission::UpdateBuild).await?;
    service::play(&state, &project, &schedule).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "message": "201 Created" })),
    )
        .into_response())
}

fn variable_input(params: &QueryPairs, key: Option<String>) -> Variable {
    Variable {
        key: key
            .or_else(|| params.get("key").map(str::to_owned))
            .unwrap_or_default(),
        value: params.get("value").unwrap_or_default().to_owned(),
        variable_type: params
            .get("variable_type")
            .filter(|t| !t.is_empty())
            .unwrap_or("env_var")
            .to_owned(),
    }
}

/// The schedule's variable `key`.
async fn variable(
    state: &AppState,
    schedule: &ScheduleRecord,
    key: &str,
) -> Result<Variable, ApiError> {
    let current = service::variables(state, schedule.id).await?;
    current
        .into_iter()
        .find(|v| v.key == key)
        .ok_or(ApiError::NotFound("Variable"))
}

/// `POST …/variables` — `key`, `value`, `variable_type`; 201 with the variable.
async fn add_variable(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, schedule)): Path<(String, String)>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    params::require(&params, &["key", "value"])?;
    let (_, schedule) = reach_owned(&state, &user, &id, &schedule).await?;
    let variable = variable_input(&params, None);
    let sealed = service::seal(&state, &variable)?;
    match state
        .store
        .schedules()
        .add_variable(schedule.id, &sealed)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Validation(
                json!({ "key": ["has already been taken"] }),
            ))
        }
        Err(err) => return Err(err.into()),
    }
    Ok((StatusCode::CREATED, Json(present_variable(&variable))).into_response())
}

async fn update_variable(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, schedule, key)): Path<(String, String, String)>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let (_, schedule) = reach_owned(&state, &user, &id, &schedule).await?;
    let old = variable(&state, &schedule, &key).await?;
    let variable = Variable {
        key,
        value: params.get("value").map_or(old.value, str::to_owned),
        variable_type: params
            .get("variable_type")
            .map_or(old.variable_type, str::to_owned),
    };
    let sealed = service::seal(&state, &variable)?;
    state
        .store
        .schedules()
        .update_variable(schedule.id, &sealed)
        .await?;
    Ok(Json(present_variable(&variable)).into_response())
}

/// `DELETE …/variables/:key` — 202 with the variable removed, as GitLab answers.
async fn remove_variable(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, schedule, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, schedule) = reach_owned(&state, &user, &id, &schedule).await?;
    let old = variable(&state, &schedule, &key).await?;
    state
        .store
        .schedules()
        .delete_variable(schedule.id, &key)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(present_variable(&old))).into_response())
}
