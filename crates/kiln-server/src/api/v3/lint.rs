//! `POST /ci/lint` (GitLab 8.x `lib/api/lint.rb`): `content` in, `{status, errors}` out.
//! `content` is declared with Grape's `requires`, so leaving it out is Grape's 400
//! `{"error":"content is missing"}`; an empty one is linted ("Please provide content…").

use crate::params::{self, Params};
use crate::ApiError;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub async fn lint(Params(params): Params) -> Result<Response, ApiError> {
    let Some(content) = params.get("content") else {
        return Ok(params::grape_error(&params::missing(&params, &["content"])));
    };
    // Includes cannot be read without a project; say so rather than pretend.
    let read = |_: &str| None;
    let body = match kiln_ci::lint(content, &read) {
        Ok(_) => json!({ "status": "valid", "errors": [] }),
        Err(err) => json!({ "status": "invalid", "errors": [err.message] }),
    };
    Ok(Json(body).into_response())
}
