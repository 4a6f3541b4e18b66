//! `POST /projects/:id/pipeline?ref=REF` (developer access): 201 with the pipeline.

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

pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::UpdateBuild).await?;
    let ref_name = params
        .get("ref")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::BadRequest("400 (Bad request) \"ref\" not given".into()))?;
    // v4 sends `variables[][key]`/`[value]` pairs or a JSON array of {key, value}.
    let mut variables = params::variables(&params);
    let keys: Vec<&str> = params
        .iter()
        .filter(|(k, _)| *k == "variables[][key]")
        .map(|(_, v)| v)
        .collect();
    let values: Vec<&str> = params
        .iter()
        .filter(|(k, _)| *k == "variables[][value]")
        .map(|(_, v)| v)
        .collect();
    variables.extend(
        keys.into_iter()
            .zip(values)
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let request = PipelineRequest {
        project: &project,
        ref_name,
        source: "api",
        user_id: Some(user.id),
        variables,
        trigger_request_id: None,
    };
    let pipeline_id = service::create(&state, request).await?;
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
