//! The Triggers API (maintainers): v3 names a trigger by its token (GitLab 8.x
//! `Entities::Trigger`: token, dates), v4 by its id (`Entities::Trigger` with owner and
//! description; the whole token only for its owner, else its first 4 characters). And v4's
//! `POST /projects/:id/trigger/pipeline`, by a trigger token or a running job's token.

use crate::auth::CurrentUser;
use crate::params::{self, Params, VariablesError};
use crate::present::projects::Presenter as Users;
use crate::present::time::utc;
use crate::present::ApiVersion as Version;
use crate::service::pipelines::{self, PipelineRequest};
use crate::service::projects::authorize;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_core::Permission;
use kiln_store::{StoreError, TriggerRecord, UserRecord};
use serde_json::{json, Value};

pub fn routes(version: Version) -> Router<AppState> {
    let router = Router::new()
        .route(
            "/projects/{id}/triggers",
            get(move |s, u, p| list(s, u, p, version))
                .post(move |s, u, p, b| create(s, u, p, b, version)),
        )
        .route(
            "/projects/{id}/triggers/{trigger}",
            get(move |s, u, p| show(s, u, p, version))
                .put(move |s, u, p, b| update(s, u, p, b, version))
                .delete(move |s, u, p| remove(s, u, p, version)),
        );
    match version {
        Version::V3 => router,
        Version::V4 => router.route("/projects/{id}/trigger/pipeline", post(trigger_pipeline)),
    }
}

fn present(state: &AppState, t: &TriggerRecord, caller: &UserRecord, version: Version) -> Value {
    let updated = t.updated_at.unwrap_or(t.created_at);
    match version {
        Version::V3 => json!({
            "token": crate::service::triggers::token(state, t),
            "created_at": utc(t.created_at),
            "updated_at": utc(updated),
            "deleted_at": null,
            "last_used": t.last_used_at.map(utc),
        }),
        Version::V4 => {
            let shown = crate::service::triggers::shown_token(state, t, caller.id);
            let users = Users {
                external_url: &state.config.external_url,
                version,
            };
            json!({
                "id": t.id,
                "token": shown,
                "description": t.description,
                "created_at": utc(t.created_at),
                "updated_at": utc(updated),
                "last_used": t.last_used_at.map(utc),
                "expires_at": null,
                "owner": t.owner.as_ref().map(|o| users.user_basic(o)),
            })
        }
    }
}

/// The trigger a route names: by token in v3, by id in v4.
async fn find(
    state: &AppState,
    project_id: i64,
    raw: &str,
    version: Version,
) -> Result<TriggerRecord, ApiError> {
    let id = match version {
        Version::V3 => state.store.triggers().find(project_id, raw).await?,
        Version::V4 => Some(
            raw.parse::<i64>()
                .map_err(|_| ApiError::Params("trigger_id is invalid".into()))?,
        ),
    };
    let id = id.ok_or(ApiError::NotFound("Trigger"))?;
    match state.store.triggers().get(project_id, id).await {
        Ok(trigger) => Ok(trigger),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("Trigger")),
        Err(err) => Err(err.into()),
    }
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let triggers = state.store.triggers().list(project.id).await?;
    let body: Vec<_> = triggers
        .iter()
        .map(|t| present(&state, t, &user, version))
        .collect();
    Ok(Json(body).into_response())
}

async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, trigger)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let trigger = find(&state, project.id, &trigger, version).await?;
    Ok(Json(present(&state, &trigger, &user, version)).into_response())
}

/// `POST /projects/:id/triggers` (v4 requires `description`) — 201 with the new token.
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    if version == Version::V4 && params.get("description").is_none() {
        return Err(ApiError::Params("description is missing".into()));
    }
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let description = params.get("description").unwrap_or("");
    let trigger =
        crate::service::triggers::create(&state, project.id, user.id, description).await?;
    Ok((
        StatusCode::CREATED,
        Json(present(&state, &trigger, &user, version)),
    )
        .into_response())
}

/// `PUT /projects/:id/triggers/:trigger_id` — a new `description`.
async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, trigger)): Path<(String, String)>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let found = find(&state, project.id, &trigger, version).await?;
    if let Some(description) = params.get("description") {
        state
            .store
            .triggers()
            .describe(project.id, found.id, description)
            .await?;
    }
    let trigger = state.store.triggers().get(project.id, found.id).await?;
    Ok(Json(present(&state, &trigger, &user, version)).into_response())
}

/// `DELETE …/triggers/:trigger` — 204 in v4; v3 answers with the trigger removed.
async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, trigger)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let found = find(&state, project.id, &trigger, version).await?;
    state.store.triggers().remove(project.id, found.id).await?;
    Ok(match version {
        Version::V3 => Json(present(&state, &found, &user, version)).into_response(),
        Version::V4 => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `POST /projects/:id/trigger/pipeline` — `token` (a trigger's, or CI_JOB_TOKEN of a running
/// job of this project), `ref`, `variables[KEY]=value`; 201 with the pipeline.
async fn trigger_pipeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let mut problems = params::missing(&params, &["ref", "token"]);
    let variables = params::variables(&params);
    if variables == Err(VariablesError::Invalid) {
        problems.push("variables is invalid".to_owned());
    }
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let (ref_name, token) = (
        params.get("ref").unwrap_or_default(),
        params.get("token").unwrap_or_default(),
    );
    let project = crate::service::projects::find(&state, &id).await?;
    let variables = variables.map_err(|_| {
        ApiError::BadRequest("variables needs to be a map of key-valued strings".into())
    })?;
    // A trigger token, or a running job's token: the job's pipeline triggers this one.
    let (source, trigger_id, user_id) = match state.store.triggers().find(project.id, token).await?
    {
        Some(trigger) => ("trigger", Some(trigger), None),
        None => {
            let job = state
                .store
                .builds()
                .by_job_token(token)
                .await?
                .filter(|o| o.is_live() && o.project_id == project.id)
                .ok_or(ApiError::NotFound(""))?;
            let build = state
                .store
                .builds()
                .get(job.project_id, job.build_id)
                .await?;
            ("pipeline", None, build.user.map(|u| u.id))
        }
    };
    let as_object: serde_json::Map<String, Value> = variables
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let request = PipelineRequest {
        project: &project,
        ref_name,
        source,
        user_id,
        variables,
        trigger_request_id: None,
        push_key: None,
    };
    let pipeline_id = match pipelines::create(&state, request).await {
        Ok(id) => id,
        Err(ApiError::BadRequest(message)) => {
            return Err(ApiError::Validation(json!({ "base": [message] })));
        }
        Err(err) => return Err(err),
    };
    if let Some(trigger) = trigger_id {
        state
            .store
            .triggers()
            .record_request(trigger, &Value::Object(as_object).to_string(), pipeline_id)
            .await?;
    }
    let pipeline = pipelines::get(&state, project.id, pipeline_id).await?;
    let presenter = crate::present::v4::Presenter {
        external_url: &state.config.external_url,
    };
    Ok((
        StatusCode::CREATED,
        Json(presenter.pipeline(&project, &pipeline)),
    )
        .into_response())
}
