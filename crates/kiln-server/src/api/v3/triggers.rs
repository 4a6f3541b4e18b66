//! `POST /projects/:id/trigger/builds` (GitLab 8.13+/9.x `lib/api/triggers.rb`, Grape-declared
//! parameters): a trigger token, a ref and `variables[KEY]=value` make a pipeline; the answer is
//! the trigger request.
//!
//! The checks run in GitLab's order: Grape's declared parameters (`requires :ref`,
//! `requires :token`, `optional :variables, type: Hash`, all reported together as
//! `{"error": …}`), then `not_found!` for an unknown project or token, `unauthorized!` for a
//! token of another project, the string check on the variables, and last the pipeline.

use crate::params::{self, Params, VariablesError};
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
    let mut problems = params::missing(&params, &["ref", "token"]);
    let variables = params::variables(&params);
    if variables == Err(VariablesError::Invalid) {
        problems.push("variables is invalid".to_owned());
    }
    if !problems.is_empty() {
        return Ok(params::grape_error(&problems));
    }
    let (ref_name, token) = (
        params.get("ref").unwrap_or_default(),
        params.get("token").unwrap_or_default(),
    );

    let project_ref = ProjectRef::parse(&id).ok_or(ApiError::NotFound(""))?;
    let project = match state.store.projects().get(&project_ref).await {
        Ok(project) => project,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("")),
        Err(err) => return Err(err.into()),
    };
    // GitLab finds the trigger by token alone and answers 401 when its project differs.
    let trigger_id = match state.store.triggers().find_any(token).await? {
        Some((trigger_id, owner)) if owner == project.id => trigger_id,
        Some(_) => return Err(ApiError::Unauthorized),
        None => return Err(ApiError::NotFound("")),
    };
    let variables = variables.map_err(|_| {
        ApiError::BadRequest("variables needs to be a map of key-valued strings".into())
    })?;

    let no_builds = || ApiError::BadRequest("No builds created".into());
    if ref_name.is_empty() {
        return Err(no_builds());
    }
    let as_object: Map<String, Value> = variables
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    // The request is recorded once the pipeline exists, so that a trigger that created
    // nothing leaves nothing behind.
    let request = PipelineRequest {
        project: &project,
        ref_name,
        source: "trigger",
        user_id: None,
        variables,
        trigger_request_id: None,
        push_key: None,
    };
    let pipeline_id = pipelines::create(&state, request)
        .await
        .map_err(|err| match err {
            ApiError::BadRequest(_) => no_builds(),
            other => other,
        })?;
    let request_id = state
        .store
        .triggers()
        .record_request(
            trigger_id,
            &Value::Object(as_object.clone()).to_string(),
            pipeline_id,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": request_id, "variables": as_object })),
    )
        .into_response())
}
