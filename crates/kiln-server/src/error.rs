//! The one place where failures become GitLab's error responses: a JSON body `{"message": …}`
//! with the status code GitLab uses. Internal errors are logged and answered with a 500 that
//! tells nothing of the cause.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_store::StoreError;
use serde_json::json;

/// A build action refused by the build's state; each API version words it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotRetryable,
    NotErasable,
    Unplayable,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A build action its state does not allow; worded as v3 does unless `in_v4` rewords it.
    #[error("refused: {0:?}")]
    Refusal(Refusal),
    /// 400 `{"error": …}`: parameters that fail Grape's declared checks (`job_id is invalid`,
    /// `scope does not have a valid value`), joined as Grape joins them.
    #[error("{0}")]
    Params(String),
    /// 400 `{"message": {"<field>": ["<problem>"]}}`: a record Rails would not save.
    #[error("validation failed: {0}")]
    Validation(serde_json::Value),
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
    /// 422 `{"error": …}`: Grape's `error!(text, 422)` (a hook's `Invalid url given`).
    #[error("{0}")]
    Unprocessable(String),
    /// 409 with the message.
    #[error("{0}")]
    Conflict(String),
    /// Any other refusal, with its status and GitLab's message as given (e.g. current
    /// GitLab's `403 Forbidden - Job is not retryable`).
    #[error("{1}")]
    Refused(StatusCode, String),
    /// 500; the cause is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Params(_) | ApiError::Validation(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NotFoundMessage(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Refused(status, _) => *status,
            ApiError::Refusal(Refusal::Unplayable) => StatusCode::BAD_REQUEST,
            ApiError::Refusal(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(message)
            | ApiError::Conflict(message)
            | ApiError::Refused(_, message)
            | ApiError::Unprocessable(message)
            | ApiError::Params(message) => message.clone(),
            ApiError::Unauthorized => "401 Unauthorized".to_owned(),
            ApiError::Refusal(Refusal::NotRetryable) => {
                "403 Forbidden  - Build is not retryable".to_owned()
            }
            ApiError::Refusal(Refusal::NotErasable) => {
                "403 Forbidden  - Build is not erasable!".to_owned()
            }
            ApiError::Refusal(Refusal::Unplayable) => {
                "400 (Bad request) \"Unplayable Build\" not given".to_owned()
            }
            ApiError::Forbidden(None) => "403 Forbidden".to_owned(),
            ApiError::Forbidden(Some(reason)) => format!("403 Forbidden  - {reason}"),
            ApiError::NotFound("") => "404 Not Found".to_owned(),
            ApiError::NotFoundMessage(message) => (*message).to_owned(),
            ApiError::NotFound(what) => format!("404 {what} Not Found"),
            ApiError::PayloadTooLarge => "413 Request Entity Too Large".to_owned(),
            ApiError::Internal(_) => "500 Internal Server Error".to_owned(),
            ApiError::Validation(problems) => problems.to_string(),
        }
    }

    /// The error as current GitLab (v4) words it: jobs, not builds.
    pub fn in_v4(self) -> ApiError {
        match self {
            ApiError::Refusal(Refusal::NotRetryable) => {
                ApiError::forbidden_because("Job is not retryable")
            }
            ApiError::Refusal(Refusal::NotErasable) => {
                ApiError::forbidden_because("Job is not erasable!")
            }
            ApiError::Refusal(Refusal::Unplayable) => {
                ApiError::bad_request_because("Unplayable Job")
            }
            other => other,
        }
    }

    /// Current GitLab's `forbidden!(reason)`: `403 Forbidden - <reason>`.
    pub fn forbidden_because(reason: &str) -> ApiError {
        ApiError::Refused(StatusCode::FORBIDDEN, format!("403 Forbidden - {reason}"))
    }

    /// Current GitLab's `bad_request!(reason)`: `400 Bad request - <reason>`.
    pub fn bad_request_because(reason: &str) -> ApiError {
        ApiError::Refused(
            StatusCode::BAD_REQUEST,
            format!("400 Bad request - {reason}"),
        )
    }

    /// GitLab's `400 (Bad request) "<param>" is invalid` for a parameter of the wrong type.
    pub fn invalid_param(name: &str) -> ApiError {
        ApiError::BadRequest(format!("400 (Bad request) \"{name}\" is invalid"))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if err.is_invalid_text() {
            return ApiError::BadRequest(
                "400 Bad request - invalid byte sequence in a parameter".into(),
            );
        }
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
        if let ApiError::Validation(problems) = &self {
            return (self.status(), Json(json!({ "message": problems }))).into_response();
        }
        if let ApiError::Params(problems) | ApiError::Unprocessable(problems) = &self {
            return (self.status(), Json(json!({ "error": problems }))).into_response();
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
