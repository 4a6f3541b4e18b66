//! `/api/v4`: current GitLab's API (what is implemented of it).

mod pipelines;
pub mod runner_protocol;

use crate::AppState;
use axum::routing::post;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/pipeline", post(pipelines::create))
        .merge(runner_protocol::routes())
}
