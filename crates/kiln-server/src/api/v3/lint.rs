//! `POST /ci/lint` (GitLab 8.x `lib/api/lint.rb`): `content` in, `{status, errors}` out.

use crate::params::Params;
use crate::ApiError;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub async fn lint(Params(params): Params) -> Result<Response, ApiError> {
    let content = params
        .get("content")
        .ok_or_else(|| ApiError::BadRequest("400 (Bad request) \"content\" not given".into()))?;
    // Includes cannot be read without a project; say so rather than pretend.
    let read = |_: &str| None;
    let body = match kiln_ci::lint(content, &read) {
        Ok(_) => json!({ "status": "valid", "errors": [] }),
        Err(err) => json!({ "status": "invalid", "errors": [err.message] }),
    };
    Ok(Json(body).into_response())
}
