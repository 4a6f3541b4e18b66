//! `/api/v3`: GitLab 8.x's API.

mod builds;
mod triggers;

use crate::api::runners;
use crate::present::runners::Version;
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
        .route("/projects/{id}/builds/{build_id}/play", post(builds::play))
        .route(
            "/projects/{id}/builds/{build_id}/erase",
            post(builds::erase),
        )
        .route("/projects/{id}/builds/{build_id}/trace", get(builds::trace))
        .route(
            "/projects/{id}/builds/{build_id}/artifacts",
            get(builds::artifacts),
        )
        .route(
            "/projects/{id}/builds/{build_id}/artifacts/keep",
            post(builds::keep),
        )
        .route(
            "/projects/{id}/builds/artifacts/{*rest}",
            get(builds::artifacts_by_ref),
        )
        .route("/projects/{id}/trigger/builds", post(triggers::trigger))
        .route("/ci/lint", post(crate::api::lint::lint))
        .route(
            "/runners",
            get(|s, u, q, uri| runners::list_owned(s, u, q, uri, Version::V3)),
        )
        .merge(runners::routes(Version::V3))
        .merge(crate::api::user::routes(Version::V3))
        .merge(crate::api::projects::routes(Version::V3))
        .merge(crate::api::repository::routes(Version::V3))
        .merge(crate::api::commit_statuses::routes(Version::V3))
        .merge(crate::api::variables::routes(Version::V3))
        .merge(crate::api::hooks::routes(Version::V3))
        .merge(crate::api::protected_branches::routes(Version::V3))
        .merge(crate::api::triggers::routes(Version::V3))
}
