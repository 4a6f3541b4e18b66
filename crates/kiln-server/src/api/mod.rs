//! The routers. Unknown routes answer like Grape: `{"error":"404 Not Found"}`.

pub mod build_files;
pub mod build_pages;
pub mod commit_statuses;
pub mod edge;
pub mod git_http;
pub mod health;
pub mod hooks;
pub mod lint;
pub mod projects;
pub mod protected_branches;
pub mod push_hook;
pub mod repository;
pub mod runners;
pub mod schedules;
pub mod triggers;
pub mod user;
pub mod v3;
pub mod v4;
pub mod variables;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Json;
use serde_json::json;

pub async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "404 Not Found" })),
    )
}

pub async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "405 Not Allowed" })),
    )
}

/// Makes every error a JSON body: axum's own rejections (a path segment that is not UTF-8, a
/// body over the limit) answer in plain text, which GitLab clients cannot parse.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let has_body = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // JSON errors are answered as they are, and pages answer theirs as pages.
    if !(status.is_client_error() || status.is_server_error()) || has_body {
        return response;
    }
    let message = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    (status, Json(json!({ "message": message }))).into_response()
}
