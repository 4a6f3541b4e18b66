//! `POST /projects/:id/pipeline?ref=REF` (developer access, current GitLab's
//! `lib/api/ci/pipelines.rb`): 201 with the pipeline.
//!
//! Grape checks the declared parameters (`requires :ref`, `optional :variables, type: Array`)
//! before the endpoint looks at the project, so a missing ref is `{"error":"ref is missing"}`
//! whatever the project. A pipeline that cannot be created is `render_validation_error!`:
//! 400 `{"message":{"base":["Reference not found"]}}`.

use crate::auth::CurrentUser;
use crate::params::{self, Params};
use crate::present::v4;
use crate::service::pipelines::{self as service, PipelineRequest};
use crate::service::projects::authorize;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_core::Permission;
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
    let pipeline = state.store.pipelines().get(pipeline_id).await?;
    let presenter = v4::Presenter {
        external_url: &state.config.external_url,
    };
    Ok((
        StatusCode::CREATED,
        Json(presenter.pipeline(&project, &pipeline, Some(&user))),
    )
        .into_response())
}

/// GitLab's `render_validation_error!` for a pipeline that was not saved: its errors on `base`.
fn not_created(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "message": { "base": [message] } })),
    )
        .into_response()
}
