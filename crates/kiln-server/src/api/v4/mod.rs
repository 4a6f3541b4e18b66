//! `/api/v4`: current GitLab's API (what is implemented of it).

mod pipelines;
pub mod runner_protocol;

use crate::api::runners;
use crate::present::runners::Version;
use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/pipeline", post(pipelines::create))
        .route(
            "/runners",
            get(|s, u, q, uri| runners::list_owned(s, u, q, uri, Version::V4))
                .post(runner_protocol::register)
                .delete(runner_protocol::unregister),
        )
        .merge(runner_protocol::routes())
        .merge(runners::routes(Version::V4))
        .merge(crate::api::user::routes(Version::V4))
}
