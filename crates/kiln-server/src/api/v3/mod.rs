//! `/api/v3`: GitLab 8.x's API.

mod builds;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/builds", get(builds::list))
        .route(
            "/projects/{id}/repository/commits/{sha}/builds",
            get(builds::list_for_commit),
        )
        .route("/projects/{id}/builds/{build_id}", get(builds::show))
        .route(
            "/projects/{id}/builds/{build_id}/cancel",
            post(builds::cancel),
        )
        .route(
            "/projects/{id}/builds/{build_id}/retry",
            post(builds::retry),
        )
}
