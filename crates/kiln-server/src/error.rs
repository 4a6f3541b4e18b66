//! The one place where failures become GitLab's error responses: a JSON body `{"message": …}`
//! with the status code GitLab uses. Internal errors are logged and answered with a 500 that
//! tells nothing of the cause.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400, with GitLab's message as given.
    #[error("{0}")]
    BadRequest(String),
    /// 401 `401 Unauthorized`.
    #[error("401 Unauthorized")]
    Unauthorized,
    /// 403 `403 Forbidden`, or `403 Forbidden  - <reason>` (two spaces, as GitLab's helper joins them).
    #[error("403 Forbidden")]
    Forbidden(Option<&'static str>),
    /// 404 with `404 <what> Not Found`, e.g. `404 Project Not Found`; `404 Not Found` when `what` is empty.
    #[error("404 Not Found")]
    NotFound(&'static str),
    /// 413 `413 Request Entity Too Large`.
    #[error("413 Request Entity Too Large")]
    PayloadTooLarge,
    /// 404 with a message of GitLab's other spelling (`404 Not found` from RecordNotFound).
    #[error("{0}")]
    NotFoundMessage(&'static str),
    /// 409 with the message.
    #[error("{0}")]
    Conflict(String),
    /// 500; the cause is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NotFoundMessage(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(message) | ApiError::Conflict(message) => message.clone(),
            ApiError::Unauthorized => "401 Unauthorized".to_owned(),
            ApiError::Forbidden(None) => "403 Forbidden".to_owned(),
            ApiError::Forbidden(Some(reason)) => format!("403 Forbidden  - {reason}"),
            ApiError::NotFound("") => "404 Not Found".to_owned(),
            ApiError::NotFoundMessage(message) => (*message).to_owned(),
            ApiError::NotFound(what) => format!("404 {what} Not Found"),
            ApiError::PayloadTooLarge => "413 Request Entity Too Large".to_owned(),
            ApiError::Internal(_) => "500 Internal Server Error".to_owned(),
        }
    }

    /// GitLab's `400 (Bad request) "<param>" is invalid` for a parameter of the wrong type.
    pub fn invalid_param(name: &str) -> ApiError {
        ApiError::BadRequest(format!("400 (Bad request) \"{name}\" is invalid"))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::NotFound(""),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = %err, "internal error");
        }
        (self.status(), Json(json!({ "message": self.message() }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_has_gitlabs_status_and_message() {
        let cases = [
            (
                ApiError::BadRequest("Scope contains invalid value(s)".into()),
                400,
                "Scope contains invalid value(s)",
            ),
            (ApiError::Unauthorized, 401, "401 Unauthorized"),
            (ApiError::Forbidden(None), 403, "403 Forbidden"),
            (
                ApiError::Forbidden(Some("Build is not retryable")),
                403,
                "403 Forbidden  - Build is not retryable",
            ),
            (ApiError::NotFound("Project"), 404, "404 Project Not Found"),
            (ApiError::NotFound(""), 404, "404 Not Found"),
            (ApiError::Conflict("busy".into()), 409, "busy"),
        ];
        for (err, status, message) in cases {
            assert_eq!(err.status().as_u16(), status);
            assert_eq!(err.message(), message);
        }
    }
}
