//! `POST /projects/:id/trigger/builds` (GitLab 8.x `lib/api/triggers.rb`): a trigger token,
//! a ref and `variables[KEY]=value` make a pipeline; the answer is the trigger request.

use crate::params::{self, Params};
use crate::service::pipelines::{self, PipelineRequest};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_store::{ProjectRef, StoreError};
use serde_json::{json, Map, Value};

pub async fn trigger(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let missing =
        |name: &str| ApiError::BadRequest(format!("400 (Bad request) \"{name}\" not given"));
    let token = params
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| missing("token"))?;
    let ref_name = params
        .get("ref")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| missing("ref"))?;
    let project_ref = ProjectRef::parse(&id).ok_or(ApiError::NotFound(""))?;
    let project = match state.store.projects().get(&project_ref).await {
        Ok(project) => project,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("")),
        Err(err) => return Err(err.into()),
    };
    let trigger_id = state
        .store
        .triggers()
        .find(project.id, token)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    let variables = params::variables(&params);
    let as_object: Map<String, Value> = variables
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let request_id = state
        .store
        .triggers()
        .record_request(trigger_id, &Value::Object(as_object.clone()).to_string())
        .await?;
    let request = PipelineRequest {
        project: &project,
        ref_name,
        source: "trigger",
        user_id: None,
        variables,
        trigger_request_id: Some(request_id),
    };
    pipelines::create(&state, request)
        .await
        .map_err(|err| match err {
            ApiError::BadRequest(_) => ApiError::BadRequest("No builds created".into()),
            other => other,
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": request_id, "variables": as_object })),
    )
        .into_response())
}
