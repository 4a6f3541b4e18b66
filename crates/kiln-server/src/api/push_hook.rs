//! `POST /api/v4/projects/:id/push_hook`: where a forge (GitLab, GitHub, Gitea, Forgejo)
//! sends its push events. No token: the request proves the project's push hook secret (set
//! with `PUT /projects/:id push_hook_secret`) as its forge signs. 401 when it does not; a
//! push makes the pipeline (201), a deleted ref or another event nothing (200).

use crate::service::push_hook::{self, Outcome};
use crate::{ApiError, AppState};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

/// The largest push event read (GitHub's own limit is 25 MB; a push of thousands of
/// commits is far below this).
const MAX_EVENT_BYTES: usize = 5 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/projects/{id}/push_hook", post(receive))
}

async fn receive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let project = crate::service::projects::find(&state, &id).await?;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_EVENT_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let outcome = push_hook::receive(&state, &project, &parts.headers, &body).await?;
    Ok(match outcome {
        Outcome::Created(pipeline) => (
            StatusCode::CREATED,
            Json(json!({ "message": "201 Created", "pipeline_id": pipeline })),
        )
            .into_response(),
        Outcome::AlreadyMade => {
            Json(json!({ "message": "The pushed commit has its pipeline already" })).into_response()
        }
        Outcome::Deleted => {
            Json(json!({ "message": "The ref was deleted: no pipeline" })).into_response()
        }
        Outcome::Ignored(event) => {
            Json(json!({ "message": format!("Ignored: {event} is not a push event") }))
                .into_response()
        }
    })
}
