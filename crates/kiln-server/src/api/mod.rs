//! The routers. Unknown routes answer like Grape: `{"error":"404 Not Found"}`.

pub mod v3;
pub mod v4;

use axum::http::StatusCode;
use axum::response::IntoResponse;
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
